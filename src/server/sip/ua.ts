/**
 * SipUA: a SIP user agent (UAC + UAS) and registrar over UDP, for the bundled ctserver.
 *
 * Layering (RFC 3261 section 5):
 *   - syntax: sip.parse / sip.stringify (the `sip` package)
 *   - transport: our UdpTransport (binds exactly host:port, port 0 allowed)
 *   - transactions: sip.makeTransactionLayer (timers A/B/D/E/F/G/H/I/J/K)
 *   - TU: this file (request dispatch, registrar, OPTIONS) and calls.ts (INVITE dialogs)
 *
 * All timers live in one TimerSet and the transaction layer is destroyed on stop(), so a
 * stopped UA leaves nothing pending and the process can exit.
 */
import { EventEmitter } from 'node:events';
import * as dns from 'node:dns';
import { isIPv4 } from 'node:net';
import * as os from 'node:os';
import * as sip from 'sip';
import * as digest from 'sip/digest';
import {
  InboundCall,
  OutboundCall,
  type InviteOptions,
  type RequestCallbacks,
  type SipCall,
  type UaCore,
} from './calls';
import { parseAudioSdp } from './sdp';
import { Registrar, type RegistrarEvent } from './registrar';
import { UdpTransport, firstLine, isRequest, type UdpTarget } from './transport';
import { TimerSet, bodyToWire, headerText, paramString, randomToken, reasonPhrase, tagOf } from './util';

export interface SipUAOptions {
  /** IPv4 address to bind; default 127.0.0.1 ('localhost' is accepted). */
  host?: string;
  /** UDP port; default 5060; 0 = any free port (see start()). */
  port?: number;
  /** Host written in Via / Contact; default: the bound host (first external IPv4 when bound to 0.0.0.0). */
  advertisedHost?: string;
  /** User part of our Contact and default From; default 'ctserver'. */
  user?: string;
  /** User-Agent / Server header; default 'ctport'. */
  userAgent?: string;
  /** Digest realm of the registrar; default 'ctserver'. */
  realm?: string;
  /** user -> password: these users must authenticate their REGISTER (digest, RFC 2617). */
  auth?: { [user: string]: string };
  /** SDP for InboundCall.answer() called without one (e.g. a test peer's placeholder). */
  defaultSdp?: (call?: InboundCall) => string;
  /** Log sink (one line per call); default: silent. */
  log?: (line: string) => void;
}

/** One SIP message on the wire, for tracing ('trace' event). */
export interface SipTraceEvent {
  direction: 'in' | 'out';
  /** Request method (undefined for responses). */
  method?: string;
  /** Response status (undefined for requests). */
  status?: number;
  reason?: string;
  callId: string;
  cseq: number;
  /** CSeq method (for a response: the method it answers). */
  cseqMethod: string;
  /** Where it came from / went to. */
  remote: { address: string; port: number };
  /** First line, e.g. "INVITE sip:1000@127.0.0.1:5060" or "200 OK". */
  summary: string;
}

/** A final response to an out-of-dialog request. */
export interface SipResponseInfo {
  status: number;
  reason: string;
  /** Header name (lower case) -> value as text. */
  headers: Record<string, string>;
}

export interface RegisterOptions {
  user: string;
  /** Answer a 401/407 digest challenge with this password. */
  password?: string;
  /** Requested binding lifetime in seconds; 0 unregisters. Default 3600. */
  expires?: number;
  /** Contact to bind; default our own sip:user@host:port. */
  contact?: string;
}

type RunState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/** Methods we implement (Allow header). */
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER';

/** Characters allowed unescaped in a SIP URI user part (RFC 3261 25.1, simplified). */
const USER_RE = /^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$/;

interface PendingRequest {
  cbs: RequestCallbacks;
  final: boolean;
}

function dialogKey(callId: string, localTag: string): string {
  return `${callId}\n${localTag}`;
}

function firstExternalIPv4(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

export class SipUA extends EventEmitter {
  private readonly host: string;
  private readonly port: number;
  private readonly user: string;
  private readonly userAgent: string;
  private readonly log: (line: string) => void;
  private readonly timers: TimerSet;
  private readonly registrar: Registrar;
  private readonly dialogs = new Map<string, SipCall>();
  private readonly pending = new Set<PendingRequest>();
  /** Messages that came from the network (vs. made up by the transaction layer: 408, 503). */
  private readonly fromNetwork = new WeakSet<object>();
  private readonly regState = new Map<string, { callId: string; tag: string; cseq: number }>();
  private readonly core: UaCore;
  private transport: UdpTransport | undefined;
  private tl: sip.TransactionLayer | undefined;
  private tlDestroyed = false;
  private runState: RunState = 'idle';
  private bound: { host: string; port: number } | undefined;
  private advertised: string;
  private stopPromise: Promise<void> | undefined;
  private startPromise: Promise<{ host: string; port: number }> | undefined;

  constructor(private readonly opts: SipUAOptions = {}) {
    super();
    const host = opts.host === undefined || opts.host === 'localhost' ? '127.0.0.1' : opts.host;
    if (!isIPv4(host)) {
      throw new Error(`SipUA: host must be an IPv4 address (the sip package cannot parse IPv6 URIs), got ${JSON.stringify(opts.host)}`);
    }
    const port = opts.port ?? 5060;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`SipUA: port must be an integer 0..65535, got ${String(opts.port)}`);
    this.host = host;
    this.port = port;
    this.user = opts.user ?? 'ctserver';
    if (!USER_RE.test(this.user)) throw new Error(`SipUA: bad user ${JSON.stringify(this.user)}`);
    this.userAgent = opts.userAgent ?? 'ctport';
    if (/[\r\n]/.test(this.userAgent)) throw new Error('SipUA: userAgent must not contain CR/LF');
    this.log = opts.log ?? (() => {});
    this.advertised = opts.advertisedHost ?? host;
    this.timers = new TimerSet((e) => this.log(`SIP: error in timer callback: ${(e as Error)?.stack ?? String(e)}`));
    this.registrar = new Registrar({
      realm: opts.realm ?? 'ctserver',
      auth: opts.auth,
      log: this.log,
      makeResponse: (rq, status, reason, ext) => this.makeResponse(rq, status, reason, ext),
    });
    this.core = this.makeCore();
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Bind the UDP socket. Resolves with the bound address (the real port when port 0 was
   * asked for); rejects with e.g. "SIP UDP 127.0.0.1:5060: address already in use".
   */
  start(): Promise<{ host: string; port: number }> {
    if (this.runState !== 'idle') return Promise.reject(new Error(`SipUA.start(): already ${this.runState} (create a new SipUA to start again)`));
    this.startPromise = this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<{ host: string; port: number }> {
    this.runState = 'starting';
    const transport = new UdpTransport({
      host: this.host,
      port: this.port,
      advertisedHost: this.opts.advertisedHost,
      log: this.log,
      onMessage: (m, remote) => this.onWire(m, remote),
      onSent: (m, target) => this.trace('out', m, target),
    });
    try {
      this.bound = await transport.start();
    } catch (e) {
      this.runState = 'idle';
      throw e;
    }
    this.transport = transport;
    if (this.opts.advertisedHost === undefined && this.bound.host === '0.0.0.0') {
      this.advertised = firstExternalIPv4() ?? '127.0.0.1';
    }
    // The open function is not used by sip 0.0.6's transaction layer (connections are passed
    // explicitly), but give it the right one anyway.
    this.tl = sip.makeTransactionLayer({ 'max-forwards': 70 }, (target) => transport.open(target as UdpTarget));
    this.tlDestroyed = false;
    this.runState = 'running';
    this.log(`SIP UA listening on udp:${this.bound.host}:${this.bound.port}`);
    return { ...this.bound };
  }

  /**
   * End every call (BYE / CANCEL / 503, best effort, each emitting 'ended' with 'ua stopped'),
   * clear every timer, destroy the transactions and close the socket. Idempotent.
   */
  stop(): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    if (this.runState === 'idle' || this.runState === 'stopped') return Promise.resolve();
    this.stopPromise = this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    if (this.runState === 'starting') {
      // start() is binding: let it finish (or fail), then stop.
      await this.startPromise?.catch(() => undefined);
      if ((this.runState as RunState) !== 'running') {
        this.runState = 'stopped';
        return;
      }
    }
    this.runState = 'stopping';
    for (const call of [...this.dialogs.values()]) {
      try {
        call.terminate();
      } catch (e) {
        this.log(`SIP: error ending call ${call.id}: ${(e as Error).message}`);
      }
    }
    this.dialogs.clear();
    // Client transactions put their first message on the wire on process.nextTick: let the
    // BYEs / CANCELs go out before the transactions are destroyed.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.tlDestroyed = true;
    this.tl?.destroy();
    for (const p of [...this.pending]) {
      p.final = true;
      try {
        p.cbs.onAbort?.('SipUA stopped');
      } catch (e) {
        this.log(`SIP: error in abort callback: ${(e as Error).message}`);
      }
    }
    this.pending.clear();
    this.timers.clearAll();
    await this.transport?.close();
    this.runState = 'stopped';
    this.log('SIP UA stopped');
  }

  /** The bound address. Throws before start(). */
  address(): { host: string; port: number } {
    if (!this.bound) throw new Error('SipUA.address(): not started');
    return { ...this.bound };
  }

  /** A SIP URI pointing at this UA: sip:user@host:port. Throws before start(). */
  uri(user: string = this.user): string {
    const a = this.address();
    return `sip:${user}@${this.advertised}:${a.port}`;
  }

  /** Host written in Via / Contact (and a sensible address for our SDP). */
  get advertisedHost(): string {
    return this.advertised;
  }

  get running(): boolean {
    return this.runState === 'running';
  }

  /** Calls in progress (including ones that ended but wait for an ACK). */
  calls(): SipCall[] {
    return [...this.dialogs.values()];
  }

  /** Freshest unexpired registration of `user`. */
  lookup(user: string): { uri: string; expires: number } | undefined {
    const b = this.registrar.lookup(user);
    return b ? { uri: b.uri, expires: Math.max(0, Math.round((b.expiresAt - Date.now()) / 1000)) } : undefined;
  }

  // ---------------------------------------------------------------- UAC API

  /**
   * Place a call. Returns at once; the INVITE goes out on the next tick. Throws if the UA is
   * not running, the URI is not a sip: URI, or a header/number is invalid.
   */
  invite(uri: string, opts: InviteOptions): OutboundCall {
    this.assertRunning('invite');
    this.checkTargetUri('invite', uri);
    if (typeof opts?.sdp !== 'string' || opts.sdp === '') throw new Error('invite: opts.sdp (our SDP offer) is required');
    parseAudioSdp(opts.sdp);
    const number = opts.from?.number ?? this.user;
    if (!USER_RE.test(number)) throw new Error(`invite: bad calling number ${JSON.stringify(number)}`);
    const call = new OutboundCall(this.core, uri, opts, `sip:${number}@${this.advertised}`);
    this.dialogs.set(call.key, call);
    call.start();
    return call;
  }

  /**
   * REGISTER with a registrar (answers one digest challenge when a password is given).
   * Resolves with the final status (200, 401, 403, 408...). Rejects only if the UA stops.
   */
  register(registrarUri: string, opts: RegisterOptions): Promise<number> {
    this.assertRunning('register');
    const r = this.checkTargetUri('register', registrarUri);
    if (!USER_RE.test(opts.user)) throw new Error(`register: bad user ${JSON.stringify(opts.user)}`);
    const expires = opts.expires ?? 3600;
    if (!Number.isInteger(expires) || expires < 0) throw new Error(`register: expires must be an integer >= 0, got ${expires}`);
    const aor = `sip:${opts.user}@${r.host}`;
    const stateKey = `${registrarUri}\n${opts.user}`;
    let st = this.regState.get(stateKey);
    if (!st) {
      // Same Call-ID and increasing CSeq for all REGISTERs to one registrar (RFC 3261 10.2).
      st = { callId: `${randomToken(10)}@ctport`, tag: randomToken(5), cseq: Math.floor(Math.random() * 10000) };
      this.regState.set(stateKey, st);
    }
    const state = st;
    const contact = opts.contact ?? this.contactUri(opts.user);
    const build = (): sip.SipRequest => ({
      method: 'REGISTER',
      uri: registrarUri,
      headers: {
        via: [this.newVia()],
        'max-forwards': '70',
        to: { uri: aor, params: {} },
        from: { uri: aor, params: { tag: state.tag } },
        'call-id': state.callId,
        cseq: { seq: ++state.cseq, method: 'REGISTER' },
        contact: [{ uri: contact, params: {} }],
        expires: String(expires),
        'user-agent': this.userAgent,
      },
    });
    return new Promise((resolve, reject) => {
      const attempt = (rq: sip.SipRequest, challenged: boolean): void => {
        this.sendRequest(rq, registrarUri, {
          onResponse: (rs) => {
            if (rs.status < 200) return;
            if ((rs.status === 401 || rs.status === 407) && opts.password !== undefined && !challenged) {
              const again = build();
              try {
                digest.signRequest(null, again, rs, { user: opts.user, password: opts.password });
              } catch (e) {
                this.log(`SIP REGISTER: cannot answer the challenge: ${(e as Error).message}`);
                resolve(rs.status);
                return;
              }
              attempt(again, true);
              return;
            }
            resolve(rs.status);
          },
          onAbort: (why) => reject(new Error(`REGISTER: ${why}`)),
        });
      };
      attempt(build(), false);
    });
  }

  /** OPTIONS ping. */
  options(uri: string): Promise<SipResponseInfo> {
    return this.request('OPTIONS', uri);
  }

  /**
   * Any out-of-dialog non-INVITE request (OPTIONS, MESSAGE, ...). Resolves with the final
   * response; timeouts resolve as 408. Rejects if the UA stops first.
   */
  request(
    method: string,
    uri: string,
    opts: { headers?: Record<string, string>; contentType?: string; body?: string } = {},
  ): Promise<SipResponseInfo> {
    this.assertRunning('request');
    if (!/^[A-Z]+$/.test(method) || method === 'INVITE' || method === 'ACK' || method === 'CANCEL') {
      throw new Error(`request: method ${JSON.stringify(method)} not allowed here (use invite() for calls)`);
    }
    this.checkTargetUri('request', uri);
    const rq: sip.SipRequest = {
      method,
      uri,
      headers: {
        via: [this.newVia()],
        'max-forwards': '70',
        to: { uri, params: {} },
        from: { uri: `sip:${this.user}@${this.advertised}`, params: { tag: randomToken(5) } },
        'call-id': `${randomToken(10)}@ctport`,
        cseq: { seq: 1, method },
        'user-agent': this.userAgent,
      },
    };
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      const lk = k.toLowerCase();
      if (['via', 'from', 'to', 'call-id', 'cseq', 'content-length', 'max-forwards'].includes(lk)) {
        throw new Error(`request: header ${JSON.stringify(k)} is set by the SIP stack and cannot be overridden`);
      }
      if (!/^[A-Za-z0-9!%*_+`'~.-]+$/.test(k) || /[\r\n]/.test(String(v))) throw new Error(`request: bad header ${JSON.stringify(k)}`);
      rq.headers[lk] = String(v);
    }
    if (opts.body !== undefined) {
      rq.headers['content-type'] = opts.contentType ?? 'text/plain';
      rq.content = bodyToWire(opts.body);
    }
    return new Promise((resolve, reject) => {
      this.sendRequest(rq, uri, {
        onResponse: (rs) => {
          if (rs.status < 200) return;
          const headers: Record<string, string> = {};
          for (const name of Object.keys(rs.headers)) {
            const v = headerText(rs.headers, name);
            if (v !== undefined) headers[name] = v;
          }
          resolve({ status: rs.status, reason: rs.reason || reasonPhrase(rs.status), headers });
        },
        onAbort: (why) => reject(new Error(`${method}: ${why}`)),
      });
    });
  }

  // ---------------------------------------------------------------- internals: sending

  private assertRunning(what: string): void {
    if (this.runState !== 'running') throw new Error(`${what}: SipUA is not running (${this.runState})`);
  }

  private checkTargetUri(what: string, uri: string): sip.SipUri {
    const u = typeof uri === 'string' ? sip.parseUri(uri) : undefined;
    if (!u) throw new Error(`${what}: cannot parse SIP URI ${JSON.stringify(uri)}`);
    if (u.schema !== 'sip') throw new Error(`${what}: only sip: URIs are supported, got ${JSON.stringify(uri)}`);
    return u;
  }

  private contactUri(user: string = this.user): string {
    return `sip:${user}@${this.advertised}:${this.bound?.port ?? this.port}`;
  }

  private newVia(): sip.Via {
    return { version: '2.0', protocol: 'UDP', host: this.advertised, port: this.bound?.port ?? this.port, params: {} };
  }

  /**
   * Where a URI points (RFC 3263 simplified: IPv4 literal or A record, port or 5060, UDP only).
   * Calls back synchronously for IP literals.
   */
  private resolve(hop: string | sip.SipUri, cb: (err: Error | null, target?: UdpTarget) => void): void {
    const u = sip.parseUri(hop);
    if (!u) return cb(new Error(`cannot parse SIP URI ${JSON.stringify(sip.stringifyUri(hop))}`));
    const transport = paramString(u.params, 'transport');
    if (transport && transport.toLowerCase() !== 'udp') return cb(new Error(`transport=${transport} is not supported (UDP only)`));
    const maddr = paramString(u.params, 'maddr');
    const host = maddr || u.host;
    const port = u.port && Number.isFinite(u.port) ? u.port : 5060;
    if (isIPv4(host)) return cb(null, { address: host, port });
    if (host === 'localhost') return cb(null, { address: '127.0.0.1', port });
    dns.lookup(host, { family: 4 }, (err, address) => {
      if (err) cb(new Error(`cannot resolve ${host}: ${err.code ?? err.message}`));
      else cb(null, { address, port });
    });
  }

  private sendRequest(rq: sip.SipRequest, hop: string | sip.SipUri, cbs: RequestCallbacks): void {
    if (!this.tl || this.tlDestroyed || !this.transport) {
      cbs.onAbort?.('SipUA is not running');
      return;
    }
    const pending: PendingRequest = { cbs, final: false };
    this.pending.add(pending);
    const deliver = (rs: sip.SipResponse, network: boolean): void => {
      if (rs.status >= 200 && !pending.final) {
        pending.final = true;
        this.pending.delete(pending);
      }
      try {
        cbs.onResponse(rs, network);
      } catch (e) {
        this.log(`SIP: error handling response ${rs.status} to ${rq.method}: ${(e as Error)?.stack ?? String(e)}`);
      }
    };
    this.resolve(hop, (err, target) => {
      const tl = this.tl;
      const transport = this.transport;
      if (this.tlDestroyed || !tl || !transport) {
        if (!pending.final) {
          pending.final = true;
          this.pending.delete(pending);
          cbs.onAbort?.('SipUA stopped');
        }
        return;
      }
      if (err || !target) {
        this.log(`SIP: cannot send ${rq.method}: ${err?.message}`);
        deliver(sip.makeResponse(rq, 503, `Service Unavailable (${err?.message ?? 'no target'})`), false);
        return;
      }
      let tx: sip.ClientTransaction | undefined;
      // A failed send (e.g. EMSGSIZE) ends the transaction like RFC 3261 8.1.3.1: as a 503.
      const cn = transport.open(target, (e) => tx?.message(sip.makeResponse(rq, 503, `Service Unavailable (${e.message})`)));
      tx = tl.createClientTransaction(cn, rq, (rs) => deliver(rs, this.fromNetwork.has(rs)));
    });
  }

  private sendAck(ack: sip.SipRequest, hop: string | sip.SipUri): void {
    this.resolve(hop, (err, target) => {
      if (err || !target) {
        this.log(`SIP: cannot send ACK: ${err?.message}`);
        return;
      }
      this.transport?.send(ack, target);
    });
  }

  /** RFC 3261 18.2.2 + RFC 3581: received address, rport or sent-by port. */
  private responseTarget(rq: sip.SipRequest): UdpTarget {
    const via = rq.headers.via![0];
    const received = paramString(via.params, 'received');
    const rport = paramString(via.params, 'rport');
    const address = received || via.host;
    const port = rport && /^\d+$/.test(rport) ? Number(rport) : via.port && Number.isFinite(via.port) ? via.port : 5060;
    return { address, port };
  }

  private makeResponse(
    rq: sip.SipRequest,
    status: number,
    reason?: string,
    ext?: { toTag?: string; headers?: Record<string, unknown>; content?: string },
  ): sip.SipResponse {
    const rs = sip.makeResponse(rq, status, reason ?? reasonPhrase(status));
    const to = rq.headers.to;
    if (status > 100 && to) {
      // A UAS adds a To tag to every response but 100 (RFC 3261 8.2.6.2). Copy: makeResponse
      // shares the request's header objects.
      const tag = tagOf(to) ?? ext?.toTag ?? randomToken(5);
      rs.headers.to = { ...to, params: { ...to.params, tag } };
    }
    rs.headers.server = this.userAgent;
    for (const [k, v] of Object.entries(ext?.headers ?? {})) rs.headers[k] = v;
    if (ext?.content !== undefined) rs.content = ext.content;
    return rs;
  }

  private makeCore(): UaCore {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const ua = this;
    return {
      timers: this.timers,
      userAgent: this.userAgent,
      user: this.user,
      allow: ALLOW,
      defaultSdp: this.opts.defaultSdp,
      get stopping() {
        return ua.runState !== 'running';
      },
      log: (line) => this.log(line),
      contactUri: (user) => this.contactUri(user),
      newVia: () => this.newVia(),
      sendRequest: (rq, hop, cbs) => this.sendRequest(rq, hop, cbs),
      sendAck: (ack, hop) => this.sendAck(ack, hop),
      sendResponseDirect: (rs, target) => this.transport?.send(rs, target),
      responseTarget: (rq) => this.responseTarget(rq),
      makeResponse: (rq, status, reason, ext) => this.makeResponse(rq, status, reason, ext),
      forget: (call) => {
        if (this.dialogs.get(call.key) === call) this.dialogs.delete(call.key);
      },
    };
  }

  private trace(direction: 'in' | 'out', m: sip.SipMessage, remote: UdpTarget): void {
    if (this.listenerCount('trace') === 0) return;
    const cseq = m.headers.cseq;
    const ev: SipTraceEvent = {
      direction,
      callId: String(m.headers['call-id'] ?? ''),
      cseq: cseq?.seq ?? 0,
      cseqMethod: cseq?.method ?? '',
      remote: { address: remote.address, port: remote.port },
      summary: firstLine(m),
    };
    if (isRequest(m)) ev.method = m.method;
    else {
      ev.status = m.status;
      ev.reason = m.reason;
    }
    try {
      this.emit('trace', ev);
    } catch (e) {
      this.log(`SIP: 'trace' listener threw: ${(e as Error).message}`);
    }
  }

  // ---------------------------------------------------------------- internals: receiving

  private onWire(m: sip.SipMessage, remote: UdpTarget): void {
    if (this.runState !== 'running' || !this.tl) return;
    this.fromNetwork.add(m);
    this.trace('in', m, remote);
    if (isRequest(m)) this.onRequest(m, remote);
    else this.onResponse(m, remote);
  }

  private onResponse(rs: sip.SipResponse, remote: UdpTarget): void {
    const tx = this.tl!.getClient(rs);
    if (tx) {
      tx.message(rs, remote);
      return;
    }
    // A 2xx retransmission after the INVITE client transaction is gone: re-ACK it.
    const cseq = rs.headers.cseq!;
    const fromTag = tagOf(rs.headers.from);
    if (cseq.method === 'INVITE' && rs.status >= 200 && rs.status < 300 && fromTag) {
      const call = this.dialogs.get(dialogKey(rs.headers['call-id']!, fromTag));
      if (call instanceof OutboundCall) {
        call.handleStray2xx(rs);
        return;
      }
    }
    this.log(`SIP: stray response ${rs.status} ${cseq.method} ignored`);
  }

  private onRequest(rq: sip.SipRequest, remote: UdpTarget): void {
    const tl = this.tl!;
    const callId = rq.headers['call-id']!;
    if (rq.method === 'ACK') {
      // ACK for a non-2xx final response: same branch as the INVITE, its transaction eats it.
      tl.getServer(rq)?.message(rq, remote);
      // ACK for a 2xx: a new transaction, for the dialog (RFC 3261 13.3.1.4 / 17.2.1).
      const toTag = tagOf(rq.headers.to);
      if (toTag) this.dialogs.get(dialogKey(callId, toTag))?.handleAck(rq);
      return;
    }
    const existing = tl.getServer(rq);
    if (existing) {
      existing.message(rq, remote); // a retransmission: the transaction resends its last response
      return;
    }
    const raw = tl.createServerTransaction(rq, this.transport!.open(this.responseTarget(rq)));
    let answered = false;
    const tx: sip.ServerTransaction = {
      send: (rs) => {
        if (rs.status >= 200) answered = true;
        raw.send(rs);
      },
      message: (m, r) => raw.message(m, r),
      shutdown: () => raw.shutdown(),
    };
    try {
      this.handleRequest(rq, tx);
    } catch (e) {
      this.log(`SIP: error handling ${rq.method}: ${(e as Error)?.stack ?? String(e)}`);
      if (!answered) tx.send(this.makeResponse(rq, 500, 'Server Internal Error'));
    }
  }

  private handleRequest(rq: sip.SipRequest, tx: sip.ServerTransaction): void {
    const h = rq.headers;
    // We support no extensions: any Require (except on CANCEL) gets 420 (RFC 3261 8.2.2.3).
    if (rq.method !== 'CANCEL') {
      const require = headerText(h, 'require');
      const options = (require ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (options.length > 0) {
        tx.send(this.makeResponse(rq, 420, 'Bad Extension', { headers: { unsupported: options.join(', ') } }));
        return;
      }
    }
    const toTag = tagOf(h.to);
    if (toTag && rq.method !== 'CANCEL') {
      const call = this.dialogs.get(dialogKey(h['call-id']!, toTag));
      if (!call) {
        tx.send(this.makeResponse(rq, 481)); // RFC 3261 12.2.2
        return;
      }
      call.handleInDialog(rq, tx);
      return;
    }
    switch (rq.method) {
      case 'INVITE':
        this.onInvite(rq, tx);
        return;
      case 'CANCEL':
        this.onCancel(rq, tx);
        return;
      case 'REGISTER':
        this.onRegister(rq, tx);
        return;
      case 'OPTIONS':
        tx.send(this.makeResponse(rq, 200, 'OK', { headers: { allow: ALLOW, accept: 'application/sdp' } }));
        return;
      case 'BYE':
      case 'INFO':
      case 'PRACK':
      case 'UPDATE':
        tx.send(this.makeResponse(rq, 481)); // only meaningful inside a dialog
        return;
      default:
        tx.send(this.makeResponse(rq, 405, 'Method Not Allowed', { headers: { allow: ALLOW } }));
    }
  }

  private onInvite(rq: sip.SipRequest, tx: sip.ServerTransaction): void {
    const h = rq.headers;
    const callId = h['call-id']!;
    const fromTag = tagOf(h.from);
    const branch = paramString(h.via![0].params, 'branch');
    // Merged request / late retransmission detection (RFC 3261 8.2.2.2).
    for (const c of this.dialogs.values()) {
      if (c instanceof InboundCall && c.id === callId && c.remoteTag === fromTag && c.inviteSeq === h.cseq!.seq) {
        if (c.inviteBranch !== branch) tx.send(this.makeResponse(rq, 482, 'Loop Detected'));
        return; // same branch: a retransmission that outlived its transaction
      }
    }
    const contact = h.contact;
    if (!Array.isArray(contact) || contact.length === 0 || !sip.parseUri(contact[0].uri)) {
      tx.send(this.makeResponse(rq, 400, 'Bad Request (missing or bad Contact)'));
      return;
    }
    if (rq.content) {
      if (!/^application\/sdp\b/i.test(headerText(h, 'content-type') ?? '')) {
        tx.send(this.makeResponse(rq, 415, 'Unsupported Media Type', { headers: { accept: 'application/sdp' } }));
        return;
      }
      try {
        parseAudioSdp(Buffer.from(rq.content, 'latin1').toString('utf8'));
      } catch (e) {
        this.log(`SIP: INVITE ${callId} rejected: ${(e as Error).message}`);
        tx.send(this.makeResponse(rq, 488, 'Not Acceptable Here', { headers: { warning: `399 ctport "${(e as Error).message.replace(/"/g, "'")}"` } }));
        return;
      }
    }
    const call = new InboundCall(this.core, rq, tx);
    this.dialogs.set(call.key, call);
    tx.send(this.makeResponse(rq, 100, 'Trying'));
    let handled = false;
    try {
      handled = this.emit('invite', call);
    } catch (e) {
      this.log(`SIP: 'invite' listener threw: ${(e as Error)?.stack ?? String(e)}`);
      if (call.state === 'incoming' || call.state === 'ringing') call.reject(500, 'Server Internal Error');
      return;
    }
    if (!handled) call.reject(480, 'Temporarily Unavailable');
  }

  /** RFC 3261 9.2: CANCEL matches the INVITE transaction by Call-ID and top Via branch. */
  private onCancel(rq: sip.SipRequest, tx: sip.ServerTransaction): void {
    const callId = rq.headers['call-id']!;
    const branch = paramString(rq.headers.via![0].params, 'branch');
    for (const c of this.dialogs.values()) {
      if (c instanceof InboundCall && c.id === callId && c.inviteBranch === branch) {
        c.handleCancel(rq, tx);
        return;
      }
    }
    // The INVITE transaction may still exist although its call is over: then 200, no effect.
    const inviteTx = this.tl!.getServer({ ...rq, method: 'INVITE', headers: { ...rq.headers, cseq: { seq: rq.headers.cseq!.seq, method: 'INVITE' } } });
    tx.send(this.makeResponse(rq, inviteTx ? 200 : 481));
  }

  private onRegister(rq: sip.SipRequest, tx: sip.ServerTransaction): void {
    const { response, events } = this.registrar.handle(rq);
    tx.send(response);
    for (const ev of events) this.emitRegistrar(ev);
  }

  private emitRegistrar(ev: RegistrarEvent): void {
    try {
      if (ev.type === 'registered') this.emit('registered', ev.user, ev.contact, ev.expires);
      else this.emit('unregistered', ev.user, ev.contact);
    } catch (e) {
      this.log(`SIP: '${ev.type}' listener threw: ${(e as Error).message}`);
    }
  }
}

export interface SipUA {
  on(event: 'invite', listener: (call: InboundCall) => void): this;
  on(event: 'registered', listener: (user: string, contact: string, expires: number) => void): this;
  on(event: 'unregistered', listener: (user: string, contact: string) => void): this;
  on(event: 'trace', listener: (ev: SipTraceEvent) => void): this;
  once(event: 'invite', listener: (call: InboundCall) => void): this;
  once(event: 'registered', listener: (user: string, contact: string, expires: number) => void): this;
  once(event: 'unregistered', listener: (user: string, contact: string) => void): this;
  once(event: 'trace', listener: (ev: SipTraceEvent) => void): this;
}
