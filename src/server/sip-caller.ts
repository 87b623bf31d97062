/**
 * SipCaller: a scriptable SIP peer for tests, demos and load runs, built on SipUA.
 *
 *   const caller = new SipCaller({ port: 0 });
 *   await caller.start();
 *   const call = caller.call('sip:1000@127.0.0.1:5060');
 *   const sdp = await call.answered;        // rejects with .status on failure
 *   call.hangup();
 *   await call.ended;                       // { by: 'local', reason: 'local hangup' }
 *   call.history                            // [{ t, what: 'sent INVITE' }, { what: 'got 100' }, ...]
 *
 * It can also be the far end (autoAnswer / autoReject / onIncoming) and register with a
 * registrar (digest challenge answered).
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import {
  SipUA,
  buildAudioSdp,
  type CallEndReason,
  type CallEndedBy,
  type InboundCall,
  type InfoEvent,
  type OutboundCall,
  type OutboundCallState,
  type ParsedAudioSdp,
  type SipResponseInfo,
  type SipTraceEvent,
} from './sip';
import { TimerSet } from './sip/util';
import dgram from 'node:dgram';
import { createRtpSocket } from './media/udp';
import { MediaClock } from './media/clock';
import { PeerMedia } from './media/rtp-peer';

export interface HistoryEntry {
  /** Milliseconds since the call was placed (call history) or the caller started (caller history). */
  t: number;
  /**
   * 'sent INVITE', 'got 100', 'got 180', 'got 200', 'sent ACK', 'got BYE', 'sent 200', ... for
   * messages on the wire (retransmissions included); 'progress', 'answered', 'failed', 'bye',
   * 'info', 'ended', 'incoming', 'confirmed', 'cancel', 'register' for events.
   */
  what: string;
  detail?: Record<string, unknown>;
}

export interface SipCallerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Our user / calling number; default 'caller'. */
  user?: string;
  /** Display name for outgoing calls. */
  name?: string;
  /** Answer incoming calls (180 at once, 200 after delayMs). */
  autoAnswer?: false | { delayMs?: number };
  /** Reject incoming calls with this status (wins over autoAnswer). */
  autoReject?: number | false;
  /** RTP port written in the SDP when media is off. Default 40000. */
  rtpPort?: number;
  /** Real RTP: send and receive audio and keys on every call (default true). */
  media?: boolean;
  /** Keep the audio each call hears, for analysis (default true; turn off for load runs). */
  keepAudio?: boolean;
  /** Registrar passwords if this caller should itself require digest auth for REGISTER. */
  auth?: { [user: string]: string };
  realm?: string;
  /** Keep at most this many history entries per caller (oldest dropped); default 10000. */
  historyLimit?: number;
  log?: (line: string) => void;
}

export interface CallerCallOptions {
  /** Calling number (From user); default the caller's user. */
  from?: string;
  /** Display name; default the caller's name. */
  name?: string;
  /** SDP offer; default buildAudioSdp() of rtpPort on our host. */
  sdp?: string;
  headers?: Record<string, string>;
}

/** Rejection of CallerCall.answered. */
export class CallFailedError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string) {
    super(`call failed: ${status} ${reason}`);
    this.name = 'CallFailedError';
    this.status = status;
    this.reason = reason;
  }
}

export interface CallEnd {
  by: CallEndedBy;
  reason: CallEndReason;
}

/** An outgoing call of a SipCaller, with promises and a history. */
export class CallerCall {
  readonly id: string;
  /** The underlying SipUA call (events: progress, answered, failed, bye, info, ended). */
  readonly call: OutboundCall;
  /** Resolves with the remote SDP on 2xx; rejects with a CallFailedError (.status) otherwise. */
  readonly answered: Promise<ParsedAudioSdp>;
  /** Resolves once the call is over, however it ended. */
  readonly ended: Promise<CallEnd>;
  readonly history: HistoryEntry[] = [];
  private readonly t0 = performance.now();
  /** RTP of this call, once it is answered (when the caller has media on). */
  media: PeerMedia | undefined;

  /** Send audio (8 kHz linear samples); resolves once it has all gone out. */
  play(samples: Int16Array): Promise<void> {
    if (!this.media) return Promise.reject(new Error('this call has no media (not answered, or media is off)'));
    return this.media.send(samples);
  }

  /** Send keys: RFC 4733 when negotiated, or in-band tones with { mode: 'inband' }. */
  sendDigits(keys: string, opts?: { mode?: 'rfc4733' | 'inband'; toneMs?: number; gapMs?: number }): Promise<void> {
    if (!this.media) return Promise.reject(new Error('this call has no media (not answered, or media is off)'));
    return this.media.sendDigits(keys, opts);
  }

  /** Everything this call has heard so far (8 kHz linear). */
  heard(): Int16Array {
    return this.media ? this.media.heard() : new Int16Array(0);
  }

  /** @internal */
  constructor(
    call: OutboundCall,
    private readonly sink: (what: string, detail: Record<string, unknown>) => void,
  ) {
    this.id = call.id;
    this.call = call;
    this.answered = new Promise<ParsedAudioSdp>((resolve, reject) => {
      call.once('answered', (sdp) => resolve(sdp));
      call.once('failed', (status, reason) => reject(new CallFailedError(status, reason)));
      call.once('ended', (reason) => reject(new CallFailedError(call.status ?? 0, `ended before answer (${reason})`)));
    });
    // Callers that only await `ended` must not get an unhandled rejection.
    this.answered.catch(() => {});
    this.ended = new Promise<CallEnd>((resolve) => {
      call.once('ended', (reason) => resolve({ by: call.endedBy ?? 'local', reason }));
    });
    call.on('progress', (status, reason) => this.record('progress', { status, reason }));
    call.on('answered', () => this.record('answered'));
    call.on('failed', (status, reason) => this.record('failed', { status, reason }));
    call.on('bye', () => this.record('bye'));
    call.on('info', (info: InfoEvent) => this.record('info', { ...info }));
    call.on('ended', (reason) => this.record('ended', { reason, by: call.endedBy }));
  }

  get state(): OutboundCallState {
    return this.call.state;
  }

  /** Last final status received for the INVITE. */
  get status(): number | undefined {
    return this.call.status;
  }

  /** BYE after answer, CANCEL before. */
  hangup(): void {
    this.call.hangup();
  }

  cancel(): boolean {
    return this.call.cancel();
  }

  info(contentType: string, body: string): Promise<number> {
    return this.call.info(contentType, body);
  }

  /** How many history entries have this `what` (e.g. count('got 200')). */
  count(what: string): number {
    return this.history.filter((h) => h.what === what).length;
  }

  /** @internal */
  record(what: string, detail?: Record<string, unknown>): void {
    const entry: HistoryEntry = { t: Math.round((performance.now() - this.t0) * 10) / 10, what };
    if (detail) entry.detail = detail;
    this.history.push(entry);
    this.sink(what, { callId: this.id, ...detail });
  }
}

const MAX_TRACKED_CALLS = 1000;

export class SipCaller extends EventEmitter {
  /** The user agent underneath (for anything not wrapped here). */
  readonly ua: SipUA;
  readonly history: HistoryEntry[] = [];
  /** Called for every incoming call (after the 'incoming' event). */
  onIncoming: ((call: InboundCall) => void) | undefined;
  autoAnswer: false | { delayMs?: number };
  autoReject: number | false;
  private readonly user: string;
  private readonly name: string | undefined;
  private readonly rtpPort: number;
  private readonly historyLimit: number;
  private readonly timers: TimerSet;
  private readonly calls = new Map<string, CallerCall>();
  private t0 = performance.now();
  /** The caller's own media clock (one for all its calls). */
  readonly clock = new MediaClock();
  private readonly mediaOn: boolean;
  private readonly keepAudio: boolean;
  private readonly host: string;
  private spare: dgram.Socket[] = [];
  private spareTarget = 4;
  private refilling: Promise<void> | undefined;
  private readonly inboundMedia = new WeakMap<InboundCall, PeerMedia>();
  private readonly sockets = new Set<dgram.Socket>();
  private readonly medias = new Set<PeerMedia>();
  private stopped = false;

  constructor(opts: SipCallerOptions = {}) {
    super();
    this.user = opts.user ?? 'caller';
    this.name = opts.name;
    this.rtpPort = opts.rtpPort ?? 40000;
    this.historyLimit = opts.historyLimit ?? 10000;
    this.autoAnswer = opts.autoAnswer ?? false;
    this.autoReject = opts.autoReject ?? false;
    this.mediaOn = opts.media ?? true;
    this.keepAudio = opts.keepAudio ?? true;
    this.host = opts.host ?? '127.0.0.1';
    const log = opts.log ?? (() => {});
    this.timers = new TimerSet((e) => log(`SipCaller: timer callback threw: ${(e as Error)?.stack ?? String(e)}`));
    this.ua = new SipUA({
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 0,
      user: this.user,
      userAgent: 'ctport-sip-caller',
      auth: opts.auth,
      realm: opts.realm,
      defaultSdp: (call) => this.defaultSdp(call),
      log,
    });
    this.ua.on('trace', (ev) => this.onTrace(ev));
    this.ua.on('invite', (call) => this.onInvite(call));
    this.ua.on('registered', (user, contact, expires) => this.record('registered', { user, contact, expires }));
    this.ua.on('unregistered', (user, contact) => this.record('unregistered', { user, contact }));
  }

  async start(): Promise<{ host: string; port: number }> {
    const a = await this.ua.start();
    this.t0 = performance.now();
    if (this.mediaOn) await this.reserveMedia(this.spareTarget);
    return a;
  }

  /** Ends all calls, clears all timers, closes the sockets and the media clock. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timers.clearAll();
    await this.ua.stop();
    this.timers.clearAll();
    for (const m of this.medias) m.close();
    this.medias.clear();
    await this.refilling;
    for (const s of this.sockets) s.close();
    this.sockets.clear();
    this.spare = [];
    this.clock.stop();
  }

  /** Make sure `n` RTP sockets are bound and ready, so that n calls can start at once. */
  async reserveMedia(n: number): Promise<void> {
    this.spareTarget = Math.max(this.spareTarget, n);
    while (this.spare.length < n && !this.stopped) {
      const s = createRtpSocket();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(0, this.host, () => resolve());
      });
      s.removeAllListeners('error');
      s.on('error', () => undefined);
      this.sockets.add(s);
      this.spare.push(s);
    }
  }

  private takeSocket(): dgram.Socket | undefined {
    const s = this.spare.shift();
    if (!this.refilling && !this.stopped) {
      this.refilling = this.reserveMedia(this.spareTarget).finally(() => (this.refilling = undefined));
    }
    return s;
  }

  private releaseSocket(s: dgram.Socket): void {
    this.sockets.delete(s);
    s.close();
  }

  private startMedia(socket: dgram.Socket, remote: ParsedAudioSdp): PeerMedia | undefined {
    if (this.stopped || remote.port === 0) return undefined;
    const pt = remote.payloads.find((x) => x === 0 || x === 8) ?? 0;
    const m = new PeerMedia({ socket, clock: this.clock, remote: { address: remote.address, port: remote.port }, payloadType: pt, telephoneEvent: remote.telephoneEvent, keepAudio: this.keepAudio });
    this.medias.add(m);
    return m;
  }

  /** The media of an incoming call this caller answered. */
  mediaOf(call: InboundCall): PeerMedia | undefined {
    return this.inboundMedia.get(call);
  }

  address(): { host: string; port: number } {
    return this.ua.address();
  }

  /** sip:user@host:port of this caller. */
  uri(user: string = this.user): string {
    return this.ua.uri(user);
  }

  /**
   * Our SDP. For an incoming call being answered, with media on, it binds the call to a real RTP
   * socket and starts sending and receiving; otherwise it names the placeholder rtpPort.
   */
  defaultSdp(call?: InboundCall): string {
    if (call && this.mediaOn && call.remoteSdp) {
      const socket = this.takeSocket();
      if (socket) {
        const m = this.startMedia(socket, call.remoteSdp);
        if (m) {
          this.inboundMedia.set(call, m);
          call.once('ended', () => {
            m.close();
            this.medias.delete(m);
            this.releaseSocket(socket);
          });
        }
        const te = call.remoteSdp.telephoneEvent;
        const pt = call.remoteSdp.payloads.find((x) => x === 0 || x === 8) ?? 0;
        return buildAudioSdp({ address: this.ua.advertisedHost, port: socket.address().port, codecs: [pt === 8 ? 'PCMA' : 'PCMU'], telephoneEvent: te ?? false });
      }
    }
    return buildAudioSdp({ address: this.ua.advertisedHost, port: this.rtpPort });
  }

  /** Place a call. Throws synchronously on a bad URI or a stopped caller. */
  call(targetUri: string, opts: CallerCallOptions & { codecs?: ('PCMU' | 'PCMA')[] } = {}): CallerCall {
    const name = opts.name ?? this.name;
    const socket = opts.sdp === undefined && this.mediaOn ? this.takeSocket() : undefined;
    const sdp = opts.sdp ?? (socket ? buildAudioSdp({ address: this.ua.advertisedHost, port: socket.address().port, codecs: opts.codecs }) : this.defaultSdp());
    let oc: OutboundCall;
    try {
      oc = this.ua.invite(targetUri, {
        from: { number: opts.from ?? this.user, ...(name ? { name } : {}) },
        sdp,
        headers: opts.headers,
      });
    } catch (e) {
      if (socket) this.releaseSocket(socket);
      throw e;
    }
    const cc = new CallerCall(oc, (what, detail) => this.record(what, detail));
    if (socket) {
      oc.once('answered', (remote: ParsedAudioSdp) => {
        cc.media = this.startMedia(socket, remote);
      });
      oc.once('ended', () => {
        if (cc.media) {
          cc.media.close();
          this.medias.delete(cc.media);
        }
        this.releaseSocket(socket);
      });
    }
    this.calls.set(oc.id, cc);
    if (this.calls.size > MAX_TRACKED_CALLS) {
      const oldest = this.calls.keys().next().value;
      if (oldest !== undefined) this.calls.delete(oldest);
    }
    return cc;
  }

  /** REGISTER with `registrarUri`; resolves with the final status. */
  async register(registrarUri: string, opts: { user?: string; password?: string; expires?: number } = {}): Promise<number> {
    const user = opts.user ?? this.user;
    const status = await this.ua.register(registrarUri, { user, password: opts.password, expires: opts.expires });
    this.record('register', { registrar: registrarUri, user, status });
    return status;
  }

  /** OPTIONS ping. */
  options(uri: string): Promise<SipResponseInfo> {
    return this.ua.options(uri);
  }

  private record(what: string, detail?: Record<string, unknown>): void {
    const entry: HistoryEntry = { t: Math.round((performance.now() - this.t0) * 10) / 10, what };
    if (detail) entry.detail = detail;
    this.history.push(entry);
    if (this.history.length > this.historyLimit) this.history.splice(0, this.history.length - this.historyLimit);
  }

  private onTrace(ev: SipTraceEvent): void {
    const what = `${ev.direction === 'out' ? 'sent' : 'got'} ${ev.method ?? String(ev.status)}`;
    const detail = { cseq: ev.cseqMethod, seq: ev.cseq, remote: `${ev.remote.address}:${ev.remote.port}` };
    const call = this.calls.get(ev.callId);
    if (call) call.record(what, detail);
    else this.record(what, { callId: ev.callId, ...detail });
  }

  private onInvite(call: InboundCall): void {
    this.record('incoming', { callId: call.id, from: call.from.number, name: call.from.name, to: call.to.user });
    call.on('confirmed', () => this.record('confirmed', { callId: call.id }));
    call.on('cancel', () => this.record('cancel', { callId: call.id }));
    call.on('bye', () => this.record('bye', { callId: call.id }));
    call.on('info', (info) => this.record('info', { callId: call.id, ...info }));
    call.on('ended', (reason) => this.record('ended', { callId: call.id, reason, by: call.endedBy }));
    const listened = this.emit('incoming', call);
    if (this.onIncoming) this.onIncoming(call);
    if (call.state !== 'incoming') return; // a listener already rang, answered or rejected
    if (this.autoReject) {
      call.reject(this.autoReject);
      return;
    }
    if (this.autoAnswer) {
      call.ringing();
      const timer = this.timers.set(() => {
        call.answer();
      }, this.autoAnswer.delayMs ?? 0);
      call.once('ended', () => this.timers.clear(timer));
      return;
    }
    if (!listened && !this.onIncoming) call.reject(480, 'Temporarily Unavailable');
  }
}

export interface SipCaller {
  on(event: 'incoming', listener: (call: InboundCall) => void): this;
  once(event: 'incoming', listener: (call: InboundCall) => void): this;
}
