/** Small helpers shared by the SIP modules (internal). */
import { randomBytes } from 'node:crypto';
import * as sip from 'sip';

/** RFC 3261 section 17.1.1.1 timer values (ms). */
export const T1 = 500;
export const T2 = 4000;
/** 64*T1: transaction / 2xx-retransmission give-up time. */
export const TIMEOUT_64T1 = 64 * T1;

/**
 * A set of timers that can all be cleared at once. Every timer of the SIP layer goes
 * through one of these, so stop() leaves nothing pending.
 */
export class TimerSet {
  private readonly timers = new Set<NodeJS.Timeout>();

  /** `onError` receives exceptions thrown by timer callbacks (e.g. by event listeners). */
  constructor(private readonly onError: (err: unknown) => void = () => {}) {}

  set(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      try {
        fn();
      } catch (e) {
        this.onError(e);
      }
    }, ms);
    this.timers.add(t);
    return t;
  }

  clear(t: NodeJS.Timeout | undefined): void {
    if (t === undefined) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  clearAll(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  get size(): number {
    return this.timers.size;
  }
}

export function randomToken(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

/** Remove one level of double quotes and backslash escapes (quoted-string, RFC 3261 25.1). */
export function unquote(s: string | undefined | null): string {
  if (!s) return '';
  const t = s.trim();
  if (t.length >= 2 && t[0] === '"' && t[t.length - 1] === '"') return t.slice(1, -1).replace(/\\(.)/g, '$1');
  return t;
}

/** Quote a display name (the sip stringifier writes `name` verbatim). */
export function quoteDisplayName(name: string | undefined): string | undefined {
  if (!name) return undefined;
  return `"${name.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, ' ')}"`;
}

/** The user part of a SIP URI string ('' when absent or unparsable). */
export function uriUser(uri: string | sip.SipUri | undefined): string {
  if (!uri) return '';
  const u = sip.parseUri(uri);
  return u?.user ? decodeURIComponent(u.user) : '';
}

/** A param value from a parsed header, as a string (null for a flag param, undefined if absent). */
export function paramString(params: sip.Params | undefined, name: string): string | null | undefined {
  if (!params || !Object.prototype.hasOwnProperty.call(params, name)) return undefined;
  const v = params[name];
  if (v === null || v === undefined) return null;
  return String(v);
}

/** Tag param of From/To. */
export function tagOf(aor: sip.NameAddr | undefined): string | undefined {
  const t = paramString(aor?.params, 'tag');
  return t ? t : undefined;
}

/** Header names as sip.stringify writes them. */
function prettyName(lname: string): string {
  if (lname === 'call-id') return 'Call-ID';
  return lname.replace(/\b([a-z])/g, (a) => a.toUpperCase());
}

/**
 * A header of a parsed message rendered back as text (values of repeated headers joined
 * with ", "), using the sip stringifier for structured headers.
 */
export function headerText(headers: sip.SipHeaders, name: string): string | undefined {
  const lname = name.toLowerCase();
  const v = headers[lname];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  let text: string;
  try {
    text = sip.stringify({ status: 200, reason: 'OK', headers: { [lname]: v } });
  } catch {
    return undefined;
  }
  const prefix = `${prettyName(lname)}: `;
  const values = text
    .split('\r\n')
    .slice(1)
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length));
  return values.length ? values.join(', ') : undefined;
}

/** Content of a message body as a JS string (the sip package keeps bodies as latin1 "binary"). */
export function bodyFromWire(content: string | undefined): string {
  return content ? Buffer.from(content, 'latin1').toString('utf8') : '';
}

/** A JS string turned into the latin1 "binary" form the sip stringifier counts bytes in. */
export function bodyToWire(body: string): string {
  return Buffer.from(body, 'utf8').toString('latin1');
}

export const REASON_PHRASES: Record<number, string> = {
  100: 'Trying',
  180: 'Ringing',
  181: 'Call Is Being Forwarded',
  182: 'Queued',
  183: 'Session Progress',
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  415: 'Unsupported Media Type',
  420: 'Bad Extension',
  423: 'Interval Too Brief',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  491: 'Request Pending',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  600: 'Busy Everywhere',
  603: 'Decline',
  604: 'Does Not Exist Anywhere',
  606: 'Not Acceptable',
};

export function reasonPhrase(status: number): string {
  return REASON_PHRASES[status] ?? (status < 200 ? 'Progress' : status < 300 ? 'OK' : 'Error');
}
