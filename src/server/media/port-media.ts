/**
 * The media side of one call on a port: what it sends (prompt, tone, in-band DTMF, bridge
 * partner, conference mix or silence) and what it does with what it hears (DTMF detection,
 * voice activity, silence timing, dial-tone detection, recording, feeding a bridge or a
 * conference). Driven by the shared MediaClock: rxTick then txTick, once per 20 ms.
 */
import { ClockClient, FRAME_SAMPLES, MediaClock } from './clock';
import { RtpStream } from './rtp';
import { DtmfDetector, DtmfGenerator } from './dsp/dtmf';
import { ToneDetector, ToneGenerator, ToneSpec } from './dsp/tones';
import { SilenceTimer, VoiceActivity } from './dsp/energy';
import { Recorder } from './recorder';

/** auto: RFC 4733 when the peer negotiated telephone-event, else in-band. */
export type DtmfMode = 'auto' | 'rfc4733' | 'inband';
export type PlayEnd = 'done' | 'dtmf' | 'stopped' | 'hangup';
export type RecordEnd = 'timeout' | 'dtmf' | 'silence' | 'record_stop' | 'hangup' | 'shutdown' | 'error';

export interface PortMediaOptions {
  stream: RtpStream;
  clock: MediaClock;
  dtmfMode?: DtmfMode;
  /** A key arrived (RFC 4733 or in-band). */
  onDigit: (key: string) => void;
  onFlash: () => void;
  onGrunt: (state: 'start' | 'stop') => void;
  onToneEnd: () => void;
}

interface Playback {
  samples: Int16Array;
  pos: number;
  resolve: (end: PlayEnd) => void;
}

interface Recording {
  recorder: Recorder;
  maxFrames: number;
  frames: number;
  termDigits: string;
  silence: SilenceTimer | undefined;
  resolve: (end: RecordEnd) => void;
}

/** Suppress in-band detection this long after an RFC 4733 packet (peers that send both). */
const RFC4733_HOLD_MS = 250;

export class PortMedia implements ClockClient {
  readonly stream: RtpStream;
  private readonly clock: MediaClock;
  private readonly opts: PortMediaOptions;
  private readonly dtmfRx = new DtmfDetector();
  private readonly dtmfTx = new DtmfGenerator();
  private readonly toneGen = new ToneGenerator();
  private readonly vad = new VoiceActivity();
  private playback: Playback | undefined;
  private recording: Recording | undefined;
  private toneOn = false;
  private gruntOn = false;
  private digitQueue = '';
  private digitWaiters: (() => void)[] = [];
  private pauseFrames = 0;
  private dialTone: { detector: ToneDetector; resolve: (ok: boolean) => void; timer: NodeJS.Timeout } | undefined;
  /** True when the last rxTick produced received audio. */
  rxActive = false;
  /** Bridge partner: we send what it hears. */
  partner: PortMedia | undefined;
  /** Conference we are in. */
  conference: Conference | undefined;
  private closed = false;

  constructor(opts: PortMediaOptions) {
    this.opts = opts;
    this.stream = opts.stream;
    this.clock = opts.clock;
    this.stream.onEvent = (key) => {
      if (key === '!') this.opts.onFlash();
      else this.digit(key, true);
    };
    this.stream.afterReceive = this.clock.poll;
    this.clock.add(this);
  }

  get rxFrame(): Int16Array {
    return this.stream.rxFrame;
  }

  get dtmfMode(): DtmfMode {
    return this.opts.dtmfMode ?? 'auto';
  }

  private digit(key: string, viaRfc4733: boolean): void {
    const rec = this.recording;
    this.opts.onDigit(key);
    if (rec && rec.termDigits.includes(key)) this.endRecording('dtmf');
    // Pass the key through a bridge: RFC 4733 to the partner when it negotiated it, else
    // in-band (in-band keys already travel in the audio).
    const partner = this.partner;
    if (partner && viaRfc4733 && !partner.stream.queueEvents(key)) partner.dtmfTx.start(key, 100, 60);
  }

  // ------------------------------------------------------------------ clock

  rxTick(): void {
    if (this.closed) return;
    this.rxActive = this.stream.pull();
    const frame = this.stream.rxFrame;
    if (this.rxActive) {
      const keys = this.dtmfRx.process(frame);
      if (keys && Date.now() - this.stream.lastEventAt > RFC4733_HOLD_MS) for (const k of keys) this.digit(k, false);
    }
    if (this.gruntOn) {
      const g = this.vad.process(frame);
      if (g) this.opts.onGrunt(g);
    }
    const rec = this.recording;
    if (rec) {
      rec.recorder.write(frame);
      rec.frames++;
      if (rec.silence && rec.silence.process(frame)) this.endRecording('silence');
      else if (rec.frames >= rec.maxFrames) this.endRecording('timeout');
    }
    const dt = this.dialTone;
    if (dt && dt.detector.process(frame)) {
      this.dialTone = undefined;
      clearTimeout(dt.timer);
      dt.resolve(true);
    }
  }

  txTick(): void {
    if (this.closed) return;
    const out = this.stream.txFrame;
    if (this.stream.sendingEvents) {
      this.stream.send();
      if (this.digitWaiters.length > 0) this.wakeDigits();
      return;
    }
    if (this.pauseFrames > 0) {
      this.pauseFrames--;
      out.fill(0);
    } else if (this.dtmfTx.fill(out)) {
      // in-band key being sent
    } else if (this.digitQueue.length > 0) {
      this.nextDigit(out);
    } else if (this.playback) {
      const pb = this.playback;
      const n = Math.min(FRAME_SAMPLES, pb.samples.length - pb.pos);
      out.set(pb.samples.subarray(pb.pos, pb.pos + n));
      if (n < FRAME_SAMPLES) out.fill(0, n);
      pb.pos += n;
      if (pb.pos >= pb.samples.length) this.endPlayback('done');
    } else if (this.toneOn) {
      if (!this.toneGen.fill(out)) {
        this.toneOn = false;
        this.opts.onToneEnd();
      }
    } else if (this.partner) {
      out.set(this.partner.rxFrame);
    } else if (this.conference) {
      this.conference.mixFor(this, out);
    } else {
      out.fill(0);
    }
    this.stream.send();
    if (this.digitWaiters.length > 0) this.wakeDigits();
  }

  // ------------------------------------------------------------------ play

  /** Play linear 8 kHz samples; resolves when they end or are cut short. One playback at a time. */
  play(samples: Int16Array): Promise<PlayEnd> {
    this.endPlayback('stopped');
    return new Promise<PlayEnd>((resolve) => {
      this.playback = { samples, pos: 0, resolve };
    });
  }

  get playing(): boolean {
    return this.playback !== undefined;
  }

  endPlayback(end: PlayEnd): void {
    const pb = this.playback;
    if (!pb) return;
    this.playback = undefined;
    pb.resolve(end);
  }

  // ------------------------------------------------------------------ record

  /** Record what the port hears. Resolves with why it stopped; the file is closed by the caller. */
  record(recorder: Recorder, opts: { maxSeconds: number; termDigits: string; silenceSeconds: number }): Promise<RecordEnd> {
    this.endRecording('record_stop');
    return new Promise<RecordEnd>((resolve) => {
      this.recording = {
        recorder,
        maxFrames: opts.maxSeconds > 0 ? opts.maxSeconds * 50 : Number.MAX_SAFE_INTEGER,
        frames: 0,
        termDigits: opts.termDigits,
        silence: opts.silenceSeconds > 0 ? new SilenceTimer(opts.silenceSeconds) : undefined,
        resolve,
      };
    });
  }

  get recordingActive(): boolean {
    return this.recording !== undefined;
  }

  endRecording(end: RecordEnd): void {
    const rec = this.recording;
    if (!rec) return;
    this.recording = undefined;
    rec.resolve(end);
  }

  // ------------------------------------------------------------------ dial

  /**
   * Send a dial string: keys as RFC 4733 events and/or in-band tones (by dtmfMode), `,` a one
   * second pause, `&` a hook flash (RFC 4733 event 16; the caller also sends SIP INFO).
   * Resolves when everything has been sent.
   */
  sendDigits(dial: string): Promise<void> {
    this.digitQueue += dial;
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.closed || (this.digitQueue.length === 0 && !this.busyDialing())) resolve();
        else this.digitWaiters.push(check);
      };
      this.digitWaiters.push(check);
    });
  }

  private busyDialing(): boolean {
    return this.pauseFrames > 0 || this.dtmfTx.active || this.stream.sendingEvents;
  }

  private wakeDigits(): void {
    if (this.digitQueue.length > 0 || this.busyDialing()) return;
    const w = this.digitWaiters;
    this.digitWaiters = [];
    w.forEach((f) => f());
  }

  private nextDigit(out: Int16Array): void {
    const ch = this.digitQueue[0];
    this.digitQueue = this.digitQueue.slice(1);
    out.fill(0);
    if (ch === ',') {
      this.pauseFrames = 49; // this frame plus 49: one second
      return;
    }
    const hasTe = this.stream.telephoneEvent !== undefined;
    const rfc = hasTe && this.dtmfMode !== 'inband';
    if (ch === '&') {
      // The flash itself goes out as SIP INFO (Signal=16), sent by the server; here we only
      // leave the far end time to act on it before what follows.
      this.pauseFrames = 25;
      return;
    }
    if (rfc) this.stream.queueEvents(ch, 100, 60);
    else this.dtmfTx.start(ch, 100, 60);
  }

  // ------------------------------------------------------------------ tones, grunt, dial tone

  startTone(spec: ToneSpec): void {
    this.toneGen.start(spec);
    this.toneOn = true;
  }

  stopTone(): boolean {
    if (!this.toneOn) return false;
    this.toneOn = false;
    this.opts.onToneEnd();
    return true;
  }

  setGrunt(on: boolean): void {
    this.gruntOn = on;
    if (on) this.vad.reset?.();
  }

  /** Wait for `spec` to be heard continuously for minMs (EU plans need longer: only duration tells 425 Hz dial tone from busy). */
  waitForDialTone(spec: ToneSpec, ms: number, minMs = 300): Promise<boolean> {
    if (this.dialTone) {
      clearTimeout(this.dialTone.timer);
      this.dialTone.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.dialTone = undefined;
        resolve(false);
      }, ms);
      this.dialTone = { detector: new ToneDetector(spec, { minMs }), resolve, timer };
    });
  }

  // ------------------------------------------------------------------ teardown

  /** End everything (the call is gone). Pending operations resolve with `hangup`. */
  close(end: 'hangup' | 'shutdown' = 'hangup'): void {
    if (this.closed) return;
    this.closed = true;
    this.clock.remove(this);
    this.endPlayback('hangup');
    this.endRecording(end);
    if (this.dialTone) {
      clearTimeout(this.dialTone.timer);
      this.dialTone.resolve(false);
      this.dialTone = undefined;
    }
    this.digitQueue = '';
    this.wakeDigits();
    if (this.partner) {
      this.partner.partner = undefined;
      this.partner = undefined;
    }
    this.conference?.leave(this);
    this.stream.close();
  }
}

/**
 * An N-party conference: each member hears the sum of every other member, with a soft limiter
 * so that loud mixes do not clip. The sum is made once per clock tick.
 */
export class Conference {
  readonly members = new Set<PortMedia>();
  private readonly sum = new Int32Array(FRAME_SAMPLES);
  private sumTick = -1;

  constructor(private readonly clock: MediaClock) {}

  join(m: PortMedia): void {
    if (m.partner) {
      m.partner.partner = undefined;
      m.partner = undefined;
    }
    m.conference?.leave(m);
    m.conference = this;
    this.members.add(m);
  }

  leave(m: PortMedia): void {
    if (m.conference === this) m.conference = undefined;
    this.members.delete(m);
  }

  mixFor(m: PortMedia, out: Int16Array): void {
    const tick = this.clock.stats.ticks;
    const sum = this.sum;
    if (tick !== this.sumTick) {
      this.sumTick = tick;
      sum.fill(0);
      for (const member of this.members) {
        if (!member.rxActive) continue;
        const f = member.rxFrame;
        for (let i = 0; i < FRAME_SAMPLES; i++) sum[i] += f[i];
      }
    }
    const own = m.rxActive ? m.rxFrame : undefined;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      const x = own ? sum[i] - own[i] : sum[i];
      out[i] = softClip(x);
    }
  }
}

const KNEE = 20000;
const HEAD = 32767 - KNEE;

/** Linear below the knee, then a tanh curve that never exceeds 32767. */
export function softClip(x: number): number {
  if (x > KNEE) return KNEE + Math.round(HEAD * Math.tanh((x - KNEE) / HEAD));
  if (x < -KNEE) return -KNEE - Math.round(HEAD * Math.tanh((-x - KNEE) / HEAD));
  return x;
}
