/**
 * The media side of a SipCaller call: sends audio (a buffer of 8 kHz samples, then silence) and
 * keys (RFC 4733 or in-band), and keeps what it hears so a test can analyse it. Driven by the
 * caller's own MediaClock.
 */
import dgram from 'node:dgram';
import { ClockClient, FRAME_SAMPLES, MediaClock } from './clock';
import { RtpStream, PT_PCMA, PT_PCMU } from './rtp';
import { DtmfDetector, DtmfGenerator } from './dsp/dtmf';

export interface PeerMediaOptions {
  socket: dgram.Socket;
  clock: MediaClock;
  remote: { address: string; port: number };
  payloadType: number;
  telephoneEvent?: number;
  /** Keep what is heard (default true). Off for load runs. */
  keepAudio?: boolean;
}

export class PeerMedia implements ClockClient {
  readonly stream: RtpStream;
  private readonly clock: MediaClock;
  private queue: { samples: Int16Array; resolve: () => void }[] = [];
  private pos = 0;
  private heardBuf: Int16Array;
  private heardLen = 0;
  private readonly keep: boolean;
  private readonly dtmfTx = new DtmfGenerator();
  private readonly dtmfRx = new DtmfDetector();
  private inbandKeys = '';
  private inbandWaiters: (() => void)[] = [];
  /** Keys heard: RFC 4733 events and in-band tones, in order. */
  digits = '';
  /** Frames with received audio, and frames sent. */
  rxFrames = 0;
  txFrames = 0;
  /** Time (ms, performance.now) of the first received audio frame that was not silent. */
  firstSoundAt: number | undefined;
  private closed = false;

  constructor(opts: PeerMediaOptions) {
    this.clock = opts.clock;
    this.keep = opts.keepAudio ?? true;
    this.heardBuf = new Int16Array(this.keep ? 8000 * 10 : 0);
    this.stream = new RtpStream({ socket: opts.socket, remote: opts.remote, payloadType: opts.payloadType === PT_PCMA ? PT_PCMA : PT_PCMU, telephoneEvent: opts.telephoneEvent });
    this.stream.onEvent = (k) => {
      if (k !== '!') this.digits += k;
    };
    this.stream.afterReceive = this.clock.poll;
    this.clock.add(this);
  }

  rxTick(): void {
    if (this.closed) return;
    const got = this.stream.pull();
    const f = this.stream.rxFrame;
    if (got) {
      this.rxFrames++;
      if (this.firstSoundAt === undefined) {
        for (let i = 0; i < FRAME_SAMPLES; i++) {
          if (f[i] > 300 || f[i] < -300) {
            this.firstSoundAt = performance.now();
            break;
          }
        }
      }
      const keys = this.dtmfRx.process(f);
      if (keys) this.digits += keys;
    }
    if (this.keep) {
      if (this.heardLen + FRAME_SAMPLES > this.heardBuf.length) {
        const bigger = new Int16Array(this.heardBuf.length * 2);
        bigger.set(this.heardBuf.subarray(0, this.heardLen));
        this.heardBuf = bigger;
      }
      this.heardBuf.set(f, this.heardLen);
      this.heardLen += FRAME_SAMPLES;
    }
  }

  txTick(): void {
    if (this.closed) return;
    const out = this.stream.txFrame;
    if (this.stream.sendingEvents) {
      this.stream.send();
      this.txFrames++;
      return;
    }
    if (this.dtmfTx.fill(out)) {
      // in-band key
    } else if (this.inbandKeys.length > 0) {
      const k = this.inbandKeys[0];
      this.inbandKeys = this.inbandKeys.slice(1);
      this.dtmfTx.start(k, this.inbandToneMs, this.inbandGapMs);
      if (!this.dtmfTx.fill(out)) out.fill(0);
    } else if (this.queue.length > 0) {
      const cur = this.queue[0];
      const n = Math.min(FRAME_SAMPLES, cur.samples.length - this.pos);
      out.set(cur.samples.subarray(this.pos, this.pos + n));
      if (n < FRAME_SAMPLES) out.fill(0, n);
      this.pos += n;
      if (this.pos >= cur.samples.length) {
        this.queue.shift();
        this.pos = 0;
        cur.resolve();
      }
    } else {
      out.fill(0);
      if (this.inbandWaiters.length > 0) {
        const w = this.inbandWaiters;
        this.inbandWaiters = [];
        w.forEach((f) => f());
      }
    }
    this.stream.send();
    this.txFrames++;
  }

  /** Queue samples (8 kHz linear) to send; resolves when the last one has gone out. */
  send(samples: Int16Array): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.closed) return resolve();
      this.queue.push({ samples, resolve });
    });
  }

  private inbandToneMs = 100;
  private inbandGapMs = 60;

  /** Send keys as RFC 4733 events (default when negotiated) or as in-band tones. */
  sendDigits(keys: string, opts: { mode?: 'rfc4733' | 'inband'; toneMs?: number; gapMs?: number } = {}): Promise<void> {
    const mode = opts.mode ?? (this.stream.telephoneEvent !== undefined ? 'rfc4733' : 'inband');
    const toneMs = opts.toneMs ?? 100;
    const gapMs = opts.gapMs ?? 60;
    if (mode === 'rfc4733') {
      if (!this.stream.queueEvents(keys, toneMs, gapMs)) return Promise.reject(new Error('telephone-event was not negotiated'));
      return new Promise<void>((resolve) => {
        const check = (): void => {
          if (!this.stream.sendingEvents || this.closed) resolve();
          else setTimeout(check, 20);
        };
        setTimeout(check, 20);
      });
    }
    this.inbandToneMs = toneMs;
    this.inbandGapMs = gapMs;
    this.inbandKeys += keys;
    return new Promise<void>((resolve) => this.inbandWaiters.push(resolve));
  }

  /** Everything heard so far (8 kHz linear, silence where nothing arrived). */
  heard(): Int16Array {
    return this.heardBuf.slice(0, this.heardLen);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clock.remove(this);
    this.stream.close();
    for (const q of this.queue) q.resolve();
    this.queue = [];
    const w = this.inbandWaiters;
    this.inbandWaiters = [];
    w.forEach((f) => f());
  }
}
