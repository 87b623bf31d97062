/**
 * A small in-memory registrar (RFC 3261 section 10.3) with optional digest authentication
 * (RFC 2617 / 3261 22.4) done by the sip package's digest module.
 *
 * Bindings expire lazily (checked on lookup and on every REGISTER): no timers.
 */
import * as sip from 'sip';
import * as digest from 'sip/digest';
import { headerText, paramString, unquote, uriUser } from './util';

export const MAX_EXPIRES = 3600;
export const DEFAULT_EXPIRES = 3600;
/** How long a nonce we issued stays valid. */
const NONCE_TTL_MS = 5 * 60 * 1000;
/** Bound on outstanding nonces (unanswered challenges), against floods. */
const MAX_NONCES = 1000;

export interface Binding {
  /** Contact URI. */
  uri: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Epoch ms of the last REGISTER that refreshed it. */
  updatedAt: number;
  callId: string;
  cseq: number;
}

export interface RegistrarOptions {
  realm: string;
  /** user -> password; users listed here must authenticate. */
  auth?: Record<string, string>;
  log: (line: string) => void;
  /** Builds a response (adds To tag, Server header...). */
  makeResponse: (rq: sip.SipRequest, status: number, reason?: string, ext?: { headers?: Record<string, unknown> }) => sip.SipResponse;
  now?: () => number;
}

export type RegistrarEvent =
  | { type: 'registered'; user: string; contact: string; expires: number }
  | { type: 'unregistered'; user: string; contact: string };

export class Registrar {
  private readonly bindings = new Map<string, Map<string, Binding>>();
  private readonly nonces = new Map<string, { ctx: digest.DigestContext; created: number }>();
  private readonly now: () => number;

  constructor(private readonly opts: RegistrarOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The freshest unexpired binding of `user`. */
  lookup(user: string): Binding | undefined {
    const map = this.bindings.get(user);
    if (!map) return undefined;
    this.prune(user, map);
    let best: Binding | undefined;
    for (const b of map.values()) if (!best || b.updatedAt > best.updatedAt) best = b;
    return best ? { ...best } : undefined;
  }

  /** All unexpired bindings of `user`. */
  list(user: string): Binding[] {
    const map = this.bindings.get(user);
    if (!map) return [];
    this.prune(user, map);
    return [...map.values()].map((b) => ({ ...b }));
  }

  private prune(user: string, map: Map<string, Binding>): void {
    const now = this.now();
    for (const [k, b] of map) if (b.expiresAt <= now) map.delete(k);
    if (map.size === 0) this.bindings.delete(user);
  }

  /** Handle one REGISTER; returns the response to send and the events to emit after sending it. */
  handle(rq: sip.SipRequest): { response: sip.SipResponse; events: RegistrarEvent[] } {
    const events: RegistrarEvent[] = [];
    const respond = (status: number, reason?: string, headers?: Record<string, unknown>) => ({
      response: this.opts.makeResponse(rq, status, reason, headers ? { headers } : undefined),
      events,
    });
    const user = uriUser(rq.headers.to?.uri);
    if (!user) return respond(404, 'Not Found (no user part in To)');

    const password = this.opts.auth?.[user];
    if (password !== undefined) {
      const verdict = this.authenticate(rq, user, password);
      if (verdict !== true) return verdict === 'challenge' ? { response: this.challenge(rq), events } : respond(403, verdict);
    }

    // Expires header (RFC 3261 10.2.1.1 / 20.19): a delta-seconds integer.
    const expiresText = headerText(rq.headers, 'expires');
    let headerExpires: number | undefined;
    if (expiresText !== undefined) {
      if (!/^\s*\d+\s*$/.test(expiresText)) return respond(400, 'Bad Request (bad Expires)');
      headerExpires = parseInt(expiresText, 10);
    }
    const callId = rq.headers['call-id']!;
    const cseq = rq.headers.cseq!.seq;
    const contact = rq.headers.contact;
    const now = this.now();
    let map = this.bindings.get(user);
    if (map) this.prune(user, map);
    map = this.bindings.get(user);

    if (contact === '*') {
      // Remove all bindings; only valid with Expires: 0 (RFC 3261 10.3 step 6).
      if (headerExpires !== 0) return respond(400, 'Bad Request (Contact: * needs Expires: 0)');
      if (map) {
        for (const b of map.values()) events.push({ type: 'unregistered', user, contact: b.uri });
        this.bindings.delete(user);
      }
      return respond(200, 'OK');
    }

    if (Array.isArray(contact)) {
      // Validate everything before changing anything (the request is atomic, 10.3 step 7).
      const updates: { uri: string; expires: number }[] = [];
      for (const c of contact) {
        if (!sip.parseUri(c.uri)) return respond(400, `Bad Request (bad Contact URI ${JSON.stringify(c.uri)})`);
        const p = paramString(c.params, 'expires');
        let expires = headerExpires ?? DEFAULT_EXPIRES;
        if (p !== undefined && p !== null) {
          if (!/^\d+$/.test(p)) return respond(400, 'Bad Request (bad expires parameter)');
          expires = parseInt(p, 10);
        }
        expires = Math.min(expires, MAX_EXPIRES);
        const existing = map?.get(c.uri);
        if (existing && existing.callId === callId && cseq <= existing.cseq) {
          return respond(500, 'Server Internal Error (CSeq out of order)');
        }
        updates.push({ uri: c.uri, expires });
      }
      for (const u of updates) {
        if (u.expires === 0) {
          if (map?.delete(u.uri)) events.push({ type: 'unregistered', user, contact: u.uri });
          continue;
        }
        if (!map) {
          map = new Map();
          this.bindings.set(user, map);
        }
        map.set(u.uri, { uri: u.uri, expiresAt: now + u.expires * 1000, updatedAt: now, callId, cseq });
        events.push({ type: 'registered', user, contact: u.uri, expires: u.expires });
      }
      if (map && map.size === 0) this.bindings.delete(user);
    }

    // 200 lists all current bindings with their remaining time (10.3 step 8).
    const current = this.list(user);
    const headers: Record<string, unknown> = { date: new Date(now).toUTCString() };
    if (current.length > 0) {
      headers.contact = current.map((b) => ({
        uri: b.uri,
        params: { expires: String(Math.max(0, Math.round((b.expiresAt - now) / 1000))) },
      }));
    }
    return respond(200, 'OK', headers);
  }

  /**
   * true when the request carries valid credentials, 'challenge' when it must be challenged
   * (no credentials, or a nonce we do not know / no longer know), otherwise the 403 reason.
   */
  private authenticate(rq: sip.SipRequest, user: string, password: string): true | 'challenge' | string {
    const realm = this.opts.realm;
    const creds = (rq.headers.authorization ?? []).find(
      (a) => typeof a.scheme === 'string' && a.scheme.toLowerCase() === 'digest' && unquote(a.realm) === realm,
    );
    if (!creds) return 'challenge';
    this.pruneNonces();
    const entry = this.nonces.get(unquote(creds.nonce));
    if (!entry) return 'challenge';
    if (unquote(creds.username) !== user) return 'Forbidden (username does not match the registered user)';
    if (!digest.authenticateRequest(entry.ctx, rq, { user, password })) {
      this.opts.log(`SIP registrar: wrong credentials for ${user}`);
      return 'Forbidden (wrong credentials)';
    }
    return true;
  }

  private challenge(rq: sip.SipRequest): sip.SipResponse {
    this.pruneNonces();
    // digest.challenge() picks the nonce, qop="auth,auth-int" and stores them in ctx, which
    // authenticateRequest() later checks the answer against.
    const ctx: digest.DigestContext = { realm: this.opts.realm };
    const rs = digest.challenge(ctx, this.opts.makeResponse(rq, 401, 'Unauthorized'));
    if (ctx.nonce) {
      if (this.nonces.size >= MAX_NONCES) {
        const oldest = this.nonces.keys().next().value;
        if (oldest !== undefined) this.nonces.delete(oldest);
      }
      this.nonces.set(ctx.nonce, { ctx, created: this.now() });
    }
    return rs;
  }

  private pruneNonces(): void {
    const limit = this.now() - NONCE_TTL_MS;
    for (const [k, v] of this.nonces) {
      if (v.created >= limit) break; // insertion order = age order
      this.nonces.delete(k);
    }
  }
}
