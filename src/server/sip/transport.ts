/**
 * Our own UDP transport for the sip package's transaction layer.
 *
 * sip.create()/sip.start() are not used: their UDP transport binds `options.port || 5060`
 * (port 0 impossible), ignores bind errors and cannot tell which port it got. This one binds
 * exactly what it is told (port 0 = any), rejects start() with a readable message, reports the
 * bound address, and hands the transaction layer connections of the shape it expects:
 * `{ send(m), protocol: 'UDP', release() }`.
 *
 * Like the sip package's transport wrapper it stamps every outgoing request's top Via with our
 * sent-by (host:port), protocol UDP and an empty `rport` (RFC 3581), and on every incoming
 * request it sets `received` and fills `rport` (RFC 3261 18.2.1, RFC 3581 section 4).
 */
import * as dgram from 'node:dgram';
import * as sip from 'sip';

export interface UdpTarget {
  address: string;
  port: number;
}

export interface UdpTransportOptions {
  /** IPv4 address to bind. */
  host: string;
  /** UDP port to bind; 0 = any free port. */
  port: number;
  /** Host written in Via sent-by (defaults to `host`). */
  advertisedHost?: string;
  log: (line: string) => void;
  /** Every well-formed message received. Exceptions thrown here are logged, never propagated. */
  onMessage: (m: sip.SipMessage, remote: UdpTarget) => void;
  /** Observes every message actually put on the wire (including retransmissions). */
  onSent?: (m: sip.SipMessage, target: UdpTarget) => void;
}

export function isRequest(m: sip.SipMessage): m is sip.SipRequest {
  return typeof (m as sip.SipRequest).method === 'string';
}

function describeSocketError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    case 'EACCES':
      return 'permission denied';
    case 'EINVAL':
      return 'invalid address or port';
    default:
      return err.message;
  }
}

/** Same checks as sip.js' checkMessage, plus the ones our code relies on. */
function wellFormed(m: sip.SipMessage): boolean {
  const h = m.headers;
  if (!h || !Array.isArray(h.via) || h.via.length === 0 || !h.via[0] || typeof h.via[0].params !== 'object') return false;
  if (typeof h['call-id'] !== 'string' || h['call-id'] === '') return false;
  if (!h.to || typeof h.to.uri !== 'string' || !h.from || typeof h.from.uri !== 'string') return false;
  if (!h.cseq || !Number.isFinite(h.cseq.seq) || typeof h.cseq.method !== 'string') return false;
  if (isRequest(m)) {
    if (typeof m.uri !== 'string' || m.uri === '') return false;
    // CSeq method must equal the request method (RFC 3261 8.1.1.5).
    if (h.cseq.method !== m.method) return false;
  } else if (!(m.status >= 100 && m.status <= 699)) {
    return false;
  }
  return true;
}

export function firstLine(m: sip.SipMessage): string {
  return isRequest(m) ? `${m.method} ${sip.stringifyUri(m.uri)}` : `${m.status} ${m.reason}`;
}

export class UdpTransport {
  private socket: dgram.Socket | undefined;
  private bound: { host: string; port: number } | undefined;
  private closing = false;

  constructor(private readonly opts: UdpTransportOptions) {}

  /** Bind the socket. Rejects with "SIP UDP host:port: reason" when that is impossible. */
  start(): Promise<{ host: string; port: number }> {
    if (this.socket) return Promise.reject(new Error('SIP UDP transport already started'));
    const { host, port } = this.opts;
    return new Promise((resolve, reject) => {
      const sock = dgram.createSocket({ type: 'udp4' });
      this.socket = sock;
      const onBindError = (err: NodeJS.ErrnoException): void => {
        this.socket = undefined;
        try {
          sock.close();
        } catch {
          /* never bound: nothing to close */
        }
        // Keep the errno code (EADDRINUSE...) so callers can retry on another port.
        reject(Object.assign(new Error(`SIP UDP ${host}:${port}: ${describeSocketError(err)}`), { code: err.code }));
      };
      sock.once('error', onBindError);
      sock.on('message', (data, rinfo) => this.receive(data, rinfo));
      try {
        sock.bind({ address: host, port, exclusive: true }, () => {
          sock.removeListener('error', onBindError);
          sock.on('error', (err) => this.opts.log(`SIP UDP socket error: ${err.message}`));
          const a = sock.address();
          this.bound = { host: a.address, port: a.port };
          resolve({ ...this.bound });
        });
      } catch (e) {
        onBindError(e as NodeJS.ErrnoException);
      }
    });
  }

  address(): { host: string; port: number } | undefined {
    return this.bound ? { ...this.bound } : undefined;
  }

  get running(): boolean {
    return this.bound !== undefined && !this.closing;
  }

  /** A connection for the transaction layer (UDP: connectionless, release is a no-op). */
  open(target: UdpTarget, onError?: (err: Error) => void): sip.Connection {
    return {
      send: (m: sip.SipMessage) => this.send(m, target, onError),
      protocol: 'UDP',
      release: () => {},
    };
  }

  /** Serialize and send one message. Send failures go to onError (or the log), never throw. */
  send(m: sip.SipMessage, target: UdpTarget, onError?: (err: Error) => void): void {
    const sock = this.socket;
    const bound = this.bound;
    if (!sock || !bound || this.closing) {
      this.opts.log(`SIP > ${target.address}:${target.port} dropped (transport not running): ${firstLine(m)}`);
      return;
    }
    if (isRequest(m)) {
      // What sip.js' makeTransport().wrap() did: our sent-by in the top Via, and rport.
      const via = m.headers.via?.[0];
      if (via) {
        via.host = this.opts.advertisedHost ?? bound.host;
        via.port = bound.port;
        via.protocol = 'UDP';
        via.version = '2.0';
        if (!Object.prototype.hasOwnProperty.call(via.params, 'rport')) via.params.rport = null;
      }
    }
    let text: string;
    try {
      text = sip.stringify(m);
    } catch (e) {
      const err = new Error(`SIP: cannot serialize ${firstLine(m)}: ${(e as Error).message}`);
      this.opts.log(err.message);
      if (onError) onError(err);
      return;
    }
    // The sip package works on "binary" (latin1) strings: one char per byte.
    const buf = Buffer.from(text, 'latin1');
    this.opts.log(`SIP > ${target.address}:${target.port} ${firstLine(m)} (${m.headers['call-id'] ?? '?'})`);
    try {
      sock.send(buf, target.port, target.address, (err) => {
        if (!err) return;
        const e = new Error(`SIP UDP send to ${target.address}:${target.port} failed: ${err.message}`);
        this.opts.log(e.message);
        if (onError) onError(e);
      });
    } catch (e) {
      const err = new Error(`SIP UDP send to ${target.address}:${target.port} failed: ${(e as Error).message}`);
      this.opts.log(err.message);
      if (onError) onError(err);
      return;
    }
    if (this.opts.onSent) {
      try {
        this.opts.onSent(m, target);
      } catch (e) {
        this.opts.log(`SIP onSent hook threw: ${(e as Error).message}`);
      }
    }
  }

  close(): Promise<void> {
    const sock = this.socket;
    if (!sock || this.closing) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      try {
        sock.close(() => {
          this.socket = undefined;
          resolve();
        });
      } catch {
        this.socket = undefined;
        resolve();
      }
    });
  }

  private receive(data: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closing) return;
    const remote = { address: rinfo.address, port: rinfo.port };
    // RFC 5626 keep-alives ("\r\n\r\n") and empty datagrams: ignore silently.
    if (data.length === 0 || /^[\r\n\s]*$/.test(data.toString('latin1'))) return;
    let m: sip.SipMessage | undefined;
    try {
      m = sip.parse(data);
    } catch {
      m = undefined;
    }
    if (!m || !wellFormed(m)) {
      this.opts.log(`SIP < ${remote.address}:${remote.port}: malformed datagram (${data.length} bytes) ignored`);
      return;
    }
    if (isRequest(m)) {
      const via = m.headers.via![0];
      via.params.received = rinfo.address;
      if (Object.prototype.hasOwnProperty.call(via.params, 'rport')) via.params.rport = rinfo.port;
    }
    this.opts.log(`SIP < ${remote.address}:${remote.port} ${firstLine(m)} (${m.headers['call-id']})`);
    try {
      this.opts.onMessage(m, remote);
    } catch (e) {
      this.opts.log(`SIP: error handling ${firstLine(m)}: ${(e as Error).stack ?? String(e)}`);
    }
  }
}
