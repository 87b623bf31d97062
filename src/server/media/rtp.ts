/**
 * One RTP stream (RFC 3550) on a bound UDP socket: G.711 PCMU/PCMA at 8 kHz in 20 ms frames,
 * RFC 4733 telephone-events both ways, a jitter buffer, symmetric RTP (we send to where the
 * peer's packets come from), and RFC 3550 receive statistics. Driven by the MediaClock: the
 * owner calls `pull()` in its receive tick and `send()` in its send tick. Nothing here
 * allocates per frame.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from './g711';
import { JitterBuffer } from './jitter';
import { FRAME_SAMPLES } from './clock';

export const PT_PCMU = 0;
export const PT_PCMA = 8;
const HEADER = 12;

/** RFC 4733 event codes. */
export const EVENT_CODES: Record<string, number> = { '0': 0, '1': 1, '2': 2, '3': 3, '4': 4, '5': 5, '6': 6, '7': 7, '8': 8, '9': 9, '*': 10, '#': 11, A: 12, B: 13, C: 14, D: 15, '!': 16 };
const EVENT_KEYS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D', '!'];

export interface RtpStreamOptions {
  socket: dgram.Socket;
  remote?: { address: string; port: number };
  payloadType?: number;
  /** Payload type for RFC 4733 (the remote's); undefined when not negotiated. */
  telephoneEvent?: number;
  /** Jitter-buffer depth in frames (default 2). */
  jitterFrames?: number;
  /** Latch onto the address packets come from (symmetric RTP). Default true. */
  symmetric?: boolean;
}

export interface RtpStats {
  txPackets: number;
  txEvents: number;
  rxPackets: number;
  rxLost: number;
  rxLate: number;
  rxDuplicate: number;
  rxEvents: number;
  /** RFC 3550 interarrival jitter, in ms. */
  jitterMs: number;
  rxOtherPt: number;
}

interface PendingEvent {
  code: number;
  samples: number;
  gapSamples: number;
}

export class RtpStream {
  readonly socket: dgram.Socket;
  remote: { address: string; port: number } | undefined;
  payloadType: number;
  telephoneEvent: number | undefined;
  /** The decoded frame from the last pull() (silence when nothing arrived). */
  readonly rxFrame = new Int16Array(FRAME_SAMPLES);
  /** Fill this, then call send(). */
  readonly txFrame = new Int16Array(FRAME_SAMPLES);
  /** Called once per received RFC 4733 event (repeats and end packets de-duplicated). `!` is flash. */
  onEvent: ((key: string) => void) | undefined;
  /** Date.now() of the last RFC 4733 packet received (0 when none). */
  lastEventAt = 0;

  private readonly jitter: JitterBuffer;
  private readonly rxBytes = new Uint8Array(FRAME_SAMPLES);
  // Rings of send buffers: a datagram that the kernel queues keeps a reference to its buffer,
  // so the next packet never writes into the one just handed to send().
  private readonly txBufs = [Buffer.alloc(HEADER + FRAME_SAMPLES), Buffer.alloc(HEADER + FRAME_SAMPLES), Buffer.alloc(HEADER + FRAME_SAMPLES)];
  private readonly txPayloads = this.txBufs.map((b) => b.subarray(HEADER));
  private readonly evBufs = [Buffer.alloc(HEADER + 4), Buffer.alloc(HEADER + 4), Buffer.alloc(HEADER + 4), Buffer.alloc(HEADER + 4)];
  private txIdx = 0;
  private evIdx = 0;
  private readonly ssrc: number;
  private seq: number;
  private ts: number;
  private marker = true;
  private lastEventTs = -1;
  private lastEventSsrc = -1;
  private transit = NaN;
  private jitterTs = 0;
  private readonly events: PendingEvent[] = [];
  private evActive: PendingEvent | undefined;
  private evTs = 0;
  private evElapsed = 0;
  private evGapLeft = 0;
  private evEndSent = 0;
  private readonly symmetric: boolean;
  private closed = false;
  readonly stats: RtpStats = { txPackets: 0, txEvents: 0, rxPackets: 0, rxLost: 0, rxLate: 0, rxDuplicate: 0, rxEvents: 0, jitterMs: 0, rxOtherPt: 0 };

  constructor(opts: RtpStreamOptions) {
    this.socket = opts.socket;
    this.remote = opts.remote;
    this.payloadType = opts.payloadType ?? PT_PCMU;
    this.telephoneEvent = opts.telephoneEvent;
    this.symmetric = opts.symmetric ?? true;
    this.jitter = new JitterBuffer(opts.jitterFrames ?? 2, FRAME_SAMPLES);
    const rnd = crypto.randomBytes(8);
    this.ssrc = rnd.readUInt32BE(0);
    this.seq = rnd.readUInt16BE(4);
    this.ts = rnd.readUInt16BE(6) * 160;
    for (const b of [...this.txBufs, ...this.evBufs]) {
      b[0] = 0x80;
      b.writeUInt32BE(this.ssrc, 8);
    }
    this.socket.on('message', this.onMessage);
  }

  /**
   * Called after every received datagram: the media clock's poll(), so that a busy event loop
   * (hundreds of sockets' packets handled in one go) does not hold back frames that fall due.
   */
  afterReceive: (() => void) | undefined;

  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this.receive(msg, rinfo);
    if (this.afterReceive !== undefined) this.afterReceive();
  };

  private receive(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed || msg.length < HEADER || msg[0] >> 6 !== 2) return;
    const cc = msg[0] & 0x0f;
    let off = HEADER + cc * 4;
    if (msg[0] & 0x10) {
      if (msg.length < off + 4) return;
      off += 4 + msg.readUInt16BE(off + 2) * 4;
    }
    let end = msg.length;
    if (msg[0] & 0x20) end -= msg[msg.length - 1];
    if (end < off) return;
    const pt = msg[1] & 0x7f;
    const seq = msg.readUInt16BE(2);
    const ts = msg.readUInt32BE(4);
    const ssrc = msg.readUInt32BE(8);
    if (this.symmetric && (!this.remote || this.remote.port !== rinfo.port || this.remote.address !== rinfo.address)) {
      this.remote = { address: rinfo.address, port: rinfo.port };
    }
    if (this.telephoneEvent !== undefined && pt === this.telephoneEvent) {
      if (end - off < 4) return;
      this.lastEventAt = Date.now();
      if (ts === this.lastEventTs && ssrc === this.lastEventSsrc) return; // repeat or end packet of the same event
      this.lastEventTs = ts;
      this.lastEventSsrc = ssrc;
      const code = msg[off];
      this.stats.rxEvents++;
      if (code < EVENT_KEYS.length) this.onEvent?.(EVENT_KEYS[code]);
      return;
    }
    if (pt !== PT_PCMU && pt !== PT_PCMA) {
      this.stats.rxOtherPt++;
      return;
    }
    if (pt !== this.payloadType) this.rxPt = pt;
    this.stats.rxPackets++;
    // RFC 3550 A.8 interarrival jitter, in timestamp units.
    const arrival = performance.now() * 8; // 8 kHz units
    const transit = arrival - ts;
    if (!Number.isNaN(this.transit)) {
      let d = transit - this.transit;
      if (d < 0) d = -d;
      if (d < 8000 * 10) this.jitterTs += (d - this.jitterTs) / 16;
    }
    this.transit = transit;
    this.jitter.push(seq, msg, off, end - off);
  }

  /** Payload type of received audio, when it differs from ours (a peer may send PCMA to our PCMU). */
  private rxPt: number | undefined;

  /** Receive tick: decode the next frame into rxFrame. Returns true when it holds received audio. */
  pull(): boolean {
    const pt = this.rxPt ?? this.payloadType;
    this.jitter.silenceByte = pt === PT_PCMA ? 0xd5 : 0xff;
    const n = this.jitter.pull(this.rxBytes);
    this.stats.rxLost = this.jitter.lost;
    this.stats.rxLate = this.jitter.late;
    this.stats.rxDuplicate = this.jitter.duplicate;
    this.stats.jitterMs = this.jitterTs / 8;
    if (n === 0) {
      this.rxFrame.fill(0);
      return false;
    }
    if (pt === PT_PCMA) decodeAlaw(this.rxBytes, this.rxFrame, n);
    else decodeUlaw(this.rxBytes, this.rxFrame, n);
    if (n < FRAME_SAMPLES) this.rxFrame.fill(0, n);
    return true;
  }

  /** Queue RFC 4733 events (keys 0-9 * # A-D, `!` for flash). Returns false when not negotiated. */
  queueEvents(keys: string, toneMs = 100, gapMs = 60): boolean {
    if (this.telephoneEvent === undefined) return false;
    for (const k of keys) {
      const code = EVENT_CODES[k];
      if (code === undefined) continue;
      this.events.push({ code, samples: Math.max(160, Math.round((toneMs * 8) / 160) * 160), gapSamples: Math.round((gapMs * 8) / 160) * 160 });
    }
    return true;
  }

  /** True while RFC 4733 events are queued or being sent. */
  get sendingEvents(): boolean {
    return this.evActive !== undefined || this.events.length > 0 || this.evGapLeft > 0;
  }

  /** Send tick: send txFrame as audio, or the current RFC 4733 event packet instead. */
  send(): void {
    if (this.closed) return;
    const ts = this.ts;
    this.ts = (this.ts + FRAME_SAMPLES) >>> 0;
    if (!this.remote) return;
    if (this.evGapLeft > 0) this.evGapLeft -= FRAME_SAMPLES;
    if (!this.evActive && this.evGapLeft <= 0 && this.events.length > 0) {
      this.evActive = this.events.shift();
      this.evTs = ts;
      this.evElapsed = 0;
      this.evEndSent = 0;
    }
    const ev = this.evActive;
    if (ev) {
      this.evElapsed += FRAME_SAMPLES;
      const ending = this.evElapsed >= ev.samples;
      const repeats = ending ? 3 : 1; // the end packet is sent three times (RFC 4733 2.5.1.4)
      for (let i = 0; i < repeats; i++) {
        const b = this.evBufs[this.evIdx];
        this.evIdx = (this.evIdx + 1) % this.evBufs.length;
        b[1] = (this.telephoneEvent! & 0x7f) | (this.evElapsed === FRAME_SAMPLES ? 0x80 : 0);
        b[12] = ev.code;
        b[13] = (ending ? 0x80 : 0) | 10; // E bit, volume -10 dBm0
        b.writeUInt16BE(Math.min(this.evElapsed, 0xffff), 14);
        b.writeUInt32BE(this.evTs, 4);
        b.writeUInt16BE(this.seq, 2);
        this.seq = (this.seq + 1) & 0xffff;
        this.socket.send(b, this.remote.port, this.remote.address);
      }
      this.stats.txEvents++;
      if (ending) {
        this.evActive = undefined;
        this.evGapLeft = ev.gapSamples;
      }
      return;
    }
    const buf = this.txBufs[this.txIdx];
    const payload = this.txPayloads[this.txIdx];
    this.txIdx = (this.txIdx + 1) % this.txBufs.length;
    buf[1] = (this.payloadType & 0x7f) | (this.marker ? 0x80 : 0);
    this.marker = false;
    buf.writeUInt16BE(this.seq, 2);
    this.seq = (this.seq + 1) & 0xffff;
    buf.writeUInt32BE(ts, 4);
    if (this.payloadType === PT_PCMA) encodeAlaw(this.txFrame, payload, FRAME_SAMPLES);
    else encodeUlaw(this.txFrame, payload, FRAME_SAMPLES);
    this.socket.send(buf, this.remote.port, this.remote.address);
    this.stats.txPackets++;
  }

  /** Skip a send tick without sending (keeps the timestamp running). */
  idle(): void {
    this.ts = (this.ts + FRAME_SAMPLES) >>> 0;
  }

  close(): void {
    this.closed = true;
    this.socket.removeListener('message', this.onMessage);
  }
}
