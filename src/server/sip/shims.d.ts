/**
 * Type shims for the untyped `sip` package (kirm/sip.js 0.0.6) and its `sip/digest` module.
 *
 * Only what this project uses is declared, and it describes what the JavaScript really does
 * (see node_modules/sip/sip.js), quirks included:
 *  - parsed header values keep their quotes (display names, digest parameters);
 *  - `parseUri` yields `port: NaN` when the URI has no port, and `undefined` for anything it
 *    cannot parse (IPv6 hosts included);
 *  - headers the parser does not know stay raw strings (several occurrences joined with ",").
 *
 * These types are internal: the public API of src/server/sip never exposes them.
 */

declare module 'sip' {
  export type ParamValue = string | number | null | undefined;
  export type Params = Record<string, ParamValue>;

  export interface SipUri {
    schema: string;
    user?: string;
    password?: string;
    host: string;
    /** NaN when the URI carries no port. */
    port?: number;
    params: Params;
    headers: Record<string, string>;
  }

  /** A name-addr / addr-spec header value (From, To, Contact, Refer-To). `uri` stays a string. */
  export interface NameAddr {
    /** Display name as written, quotes included (`"Alice Smith"`), or undefined. */
    name?: string;
    uri: string;
    params: Params;
  }

  /** Route / Record-Route / Path entries: like NameAddr but the URI is parsed. */
  export interface RouteEntry {
    name?: string;
    uri: SipUri | string;
    params: Params;
  }

  export interface Via {
    version?: string;
    protocol: string;
    host: string;
    port?: number;
    params: Params;
  }

  export interface CSeq {
    seq: number;
    method: string;
  }

  /** A parsed (WWW|Proxy)-Authenticate / Authorization entry; values keep their quotes. */
  export interface AuthHeader {
    scheme: string;
    [param: string]: string | undefined;
  }

  export interface SipHeaders {
    via?: Via[];
    to?: NameAddr;
    from?: NameAddr;
    'call-id'?: string;
    cseq?: CSeq;
    contact?: NameAddr[] | '*';
    route?: RouteEntry[];
    'record-route'?: RouteEntry[];
    'content-length'?: number;
    'www-authenticate'?: AuthHeader[];
    'proxy-authenticate'?: AuthHeader[];
    authorization?: AuthHeader[];
    'proxy-authorization'?: AuthHeader[];
    [name: string]: unknown;
  }

  export interface SipRequest {
    method: string;
    uri: string | SipUri;
    version?: string;
    headers: SipHeaders;
    content?: string;
  }

  export interface SipResponse {
    status: number;
    reason: string;
    version?: string;
    headers: SipHeaders;
    content?: string;
  }

  export type SipMessage = SipRequest | SipResponse;

  /** What the transaction layer hands messages to. */
  export interface Connection {
    send(m: SipMessage): void;
    /** 'UDP' makes the transaction layer retransmit (timers A/E/G). */
    protocol: string;
    release(): void;
  }

  export interface ServerTransaction {
    send(rs: SipResponse): void;
    message(rq: SipRequest, remote?: unknown): void;
    shutdown(): void;
  }

  export interface ClientTransaction {
    /** Feed a response; pass `remote` for responses that came from the network. */
    message(rs: SipResponse, remote?: unknown): void;
    shutdown(): void;
  }

  export interface TransactionLayer {
    createServerTransaction(rq: SipRequest, cn: Connection): ServerTransaction;
    /** Overwrites via[0].params.branch (except for CANCEL). Sends on the next tick. */
    createClientTransaction(cn: Connection, rq: SipRequest, callback: (rs: SipResponse) => void): ClientTransaction;
    getServer(m: SipRequest): ServerTransaction | undefined;
    getClient(m: SipResponse): ClientTransaction | undefined;
    /** Shuts every transaction down (clears its timers). */
    destroy(): void;
  }

  export interface TransactionLayerOptions {
    'max-forwards'?: number;
  }

  export function parse(data: Buffer | string): SipMessage | undefined;
  export function stringify(m: SipMessage): string;
  export function makeResponse(
    rq: SipRequest,
    status: number,
    reason?: string,
    extension?: { headers?: Partial<SipHeaders> & Record<string, unknown>; content?: string },
  ): SipResponse;
  export function parseUri(s: string | SipUri): SipUri | undefined;
  export function stringifyUri(uri: string | SipUri): string;
  export function stringifyAuthHeader(a: AuthHeader): string;
  export function generateBranch(): string;
  export function copyMessage<T extends SipMessage>(m: T, deep?: boolean): T;
  /**
   * The second argument is accepted but never used by sip 0.0.6: connections are passed to
   * createServerTransaction / createClientTransaction explicitly.
   */
  export function makeTransactionLayer(
    options: TransactionLayerOptions,
    open: (target: unknown, onError?: (err: Error) => void) => Connection,
  ): TransactionLayer;
}

declare module 'sip/digest' {
  import type { SipRequest, SipResponse } from 'sip';

  /** Mutable digest state, server or client side (the module stores nonce, nc, ha1 ... in it). */
  export interface DigestContext {
    realm?: string;
    nonce?: string;
    cnonce?: string;
    nc?: number;
    qop?: string;
    algorithm?: string;
    opaque?: string;
    proxy?: boolean;
    ha1?: string;
    userhash?: string;
    uri?: string;
    user?: string;
    domain?: string;
  }

  export interface DigestCredentials {
    user: string;
    password?: string;
    /** Precomputed md5(user:realm:password). */
    hash?: string;
    /** Client side: which challenge realm to answer (default: the first challenge). */
    realm?: string;
  }

  /** Server: add a WWW-Authenticate (or Proxy-Authenticate for 407) challenge to `rs`. */
  export function challenge<T extends SipResponse>(ctx: DigestContext, rs: T): T;
  /** Server: check the Authorization header of `rq` against `ctx` (increments ctx.nc). */
  export function authenticateRequest(ctx: DigestContext, rq: SipRequest, creds: DigestCredentials): boolean;
  /** Client: add an Authorization header answering the challenge in `rs`. */
  export function signRequest(
    ctx: DigestContext | null | undefined,
    rq: SipRequest,
    rs?: SipResponse,
    creds?: DigestCredentials,
  ): DigestContext | null;
  export function signResponse<T extends SipResponse>(ctx: DigestContext, rs: T): T;
  export function authenticateResponse(ctx: DigestContext, rs: SipResponse): boolean | undefined;
  export function kd(...parts: string[]): string;
  export function calculateUserRealmPasswordHash(user: string, realm: string, password: string): string;
}
