/**
 * Call-progress tones: tables, a generator and a detector (for `ctwaitfordial`).
 *
 * A ToneSpec is a sum of 1..4 sines switched by a cadence: alternating on/off durations in ms
 * (an empty cadence is a continuous tone). A cadence with `repeat: true` loops forever; with
 * `repeat: false` it is played once and the tone then stays on (this is how a stutter dial tone
 * is described: bursts, then steady dial tone).
 *
 * 'dialx': the Voicetronix API named a second dial tone 'dialx' without a fixed meaning; here it
 * is taken to be the *special* (or "stutter") dial tone a switch gives when a feature is active
 * (message waiting, call diversion...):
 *   - us: stutter dial tone, 350+440 Hz, 10 x (0.1 s on, 0.1 s off), then continuous
 *     (Telcordia GR-506 "recall/stutter dial tone");
 *   - uk: BT "special dial tone", 350+440 Hz, 0.75 s on, 0.75 s off, repeating (BT SIN 350);
 *   - eu: CEPT "special dial tone", 425 Hz, 0.4 s on, 0.04 s off, repeating (CEPT T/CS 20-15,
 *     ETSI TR 101 041).
 * The other tones:
 *   - us (ANSI T1.401 / Telcordia GR-506): dial 350+440 continuous; ringback 440+480 2 s on
 *     4 s off; busy 480+620 0.5 s on 0.5 s off;
 *   - uk (BT SIN 350): dial 350+440 continuous; ringback 400+450 0.4 on 0.2 off 0.4 on 2.0 off;
 *     busy 400 Hz 0.375 on 0.375 off;
 *   - eu (CEPT / ETSI): 425 Hz; dial continuous; ringback 1 s on 4 s off; busy 0.5 on 0.5 off.
 * Levels: -13 dBm0 per frequency (the usual network level for a dual tone, about -10 dBm0 total).
 */
import { SAMPLE_RATE, dbm0ToPeak, msToSamples } from './levels';

export interface ToneSpec {
  /** Name for logs ('dial', 'busy', ...). */
  readonly name: string;
  /** Frequencies in Hz, summed (1 to 4). */
  readonly freqs: readonly number[];
  /** Alternating on/off durations in ms, starting with on; [] = continuous. */
  readonly cadence: readonly number[];
  /** true: the cadence loops; false: played once, then the tone stays on. */
  readonly repeat: boolean;
  /** Level per frequency in dBm0 (default -13). */
  readonly levelDbm0?: number;
}

export interface ToneSet {
  readonly dial: ToneSpec;
  readonly dialx: ToneSpec;
  readonly busy: ToneSpec;
  readonly ringback: ToneSpec;
}

/** Default level of each frequency of a call-progress tone, dBm0. */
export const TONE_LEVEL_DBM0 = -13;

const STUTTER_US: number[] = [];
for (let i = 0; i < 10; i++) STUTTER_US.push(100, 100);

export const TONE_TABLES: { readonly us: ToneSet; readonly uk: ToneSet; readonly eu: ToneSet } = {
  us: {
    dial: { name: 'dial', freqs: [350, 440], cadence: [], repeat: true },
    dialx: { name: 'dialx', freqs: [350, 440], cadence: STUTTER_US, repeat: false },
    busy: { name: 'busy', freqs: [480, 620], cadence: [500, 500], repeat: true },
    ringback: { name: 'ringback', freqs: [440, 480], cadence: [2000, 4000], repeat: true },
  },
  uk: {
    dial: { name: 'dial', freqs: [350, 440], cadence: [], repeat: true },
    dialx: { name: 'dialx', freqs: [350, 440], cadence: [750, 750], repeat: true },
    busy: { name: 'busy', freqs: [400], cadence: [375, 375], repeat: true },
    ringback: { name: 'ringback', freqs: [400, 450], cadence: [400, 200, 400, 2000], repeat: true },
  },
  eu: {
    dial: { name: 'dial', freqs: [425], cadence: [], repeat: true },
    dialx: { name: 'dialx', freqs: [425], cadence: [400, 40], repeat: true },
    busy: { name: 'busy', freqs: [425], cadence: [500, 500], repeat: true },
    ringback: { name: 'ringback', freqs: [425], cadence: [1000, 4000], repeat: true },
  },
};

export type ToneRegion = keyof typeof TONE_TABLES;

const MAX_FREQS = 4;
const MAX_SEGMENTS = 64;

function checkSpec(spec: ToneSpec): void {
  if (!spec || !Array.isArray(spec.freqs) || spec.freqs.length < 1 || spec.freqs.length > MAX_FREQS) {
    throw new RangeError(`tone spec needs 1 to ${MAX_FREQS} frequencies`);
  }
  for (const f of spec.freqs) {
    if (!(f > 0 && f < SAMPLE_RATE / 2)) throw new RangeError(`tone frequency out of range: ${f}`);
  }
  if (!Array.isArray(spec.cadence) || spec.cadence.length > MAX_SEGMENTS) {
    throw new RangeError(`tone cadence must have at most ${MAX_SEGMENTS} entries`);
  }
  for (const d of spec.cadence) if (!(d >= 0)) throw new RangeError(`bad cadence duration: ${d}`);
}

/**
 * Generates a ToneSpec: `start(spec, durationMs?)`, then `fill(frame)` each frame. Oscillators
 * are rotating phasors, phase-continuous across frames; each on-segment starts at sine phase 0.
 * Nothing allocates after `start`.
 */
export class ToneGenerator {
  private readonly re = new Float64Array(MAX_FREQS);
  private readonly im = new Float64Array(MAX_FREQS);
  private readonly rc = new Float64Array(MAX_FREQS);
  private readonly rs = new Float64Array(MAX_FREQS);
  private readonly seg = new Int32Array(MAX_SEGMENTS);
  private nFreqs = 0;
  private amp = 0;
  private nSeg = 0;
  private repeat = true;
  /** Current segment (even = on, odd = off), -1 = steady after a non-repeating cadence. */
  private segIdx = -1;
  private segPos = 0;
  /** Samples still to produce when finite; -1 = unlimited. */
  private remaining = -1;
  private running = false;

  /** True while a tone is playing. */
  get active(): boolean {
    return this.running;
  }

  /** Start `spec`, for `durationMs` if given (else until `stop`). Replaces any current tone. */
  start(spec: ToneSpec, durationMs?: number): void {
    checkSpec(spec);
    this.nFreqs = spec.freqs.length;
    this.amp = dbm0ToPeak(spec.levelDbm0 ?? TONE_LEVEL_DBM0);
    for (let k = 0; k < this.nFreqs; k++) {
      const w = (2 * Math.PI * spec.freqs[k]) / SAMPLE_RATE;
      this.rc[k] = Math.cos(w);
      this.rs[k] = Math.sin(w);
    }
    this.nSeg = spec.cadence.length;
    for (let i = 0; i < this.nSeg; i++) this.seg[i] = msToSamples(spec.cadence[i]);
    // A cadence of all zeros would never advance: treat as continuous.
    let total = 0;
    for (let i = 0; i < this.nSeg; i++) total += this.seg[i];
    if (total === 0) this.nSeg = 0;
    this.repeat = spec.repeat;
    this.segIdx = this.nSeg > 0 ? 0 : -1;
    this.segPos = 0;
    this.resetPhase();
    this.remaining = durationMs === undefined ? -1 : Math.max(0, msToSamples(durationMs));
    this.running = true;
  }

  /** Stop at once. */
  stop(): void {
    this.running = false;
  }

  private resetPhase(): void {
    for (let k = 0; k < MAX_FREQS; k++) {
      this.re[k] = 1;
      this.im[k] = 0;
    }
  }

  /**
   * Write the next `frame.length` samples (zeros during off-segments). Returns true while the
   * tone is active; false once a finite tone has ended (the rest of the frame is zeros).
   */
  fill(frame: Int16Array): boolean {
    const n = frame.length;
    if (!this.running) {
      frame.fill(0);
      return false;
    }
    let i = 0;
    while (i < n) {
      if (this.remaining === 0) {
        this.running = false;
        frame.fill(0, i);
        return i > 0;
      }
      let todo = n - i;
      if (this.remaining > 0 && this.remaining < todo) todo = this.remaining;
      let on = true;
      if (this.segIdx >= 0) {
        const left = this.seg[this.segIdx] - this.segPos;
        if (left < todo) todo = left;
        on = (this.segIdx & 1) === 0;
      }
      if (todo > 0) {
        if (on) this.synth(frame, i, i + todo);
        else frame.fill(0, i, i + todo);
        i += todo;
        if (this.remaining > 0) this.remaining -= todo;
      }
      if (this.segIdx >= 0) {
        this.segPos += todo;
        while (this.segIdx >= 0 && this.segPos >= this.seg[this.segIdx]) {
          this.segPos = 0;
          this.segIdx++;
          if (this.segIdx >= this.nSeg) this.segIdx = this.repeat ? 0 : -1;
          if (this.segIdx >= 0 && (this.segIdx & 1) === 0) this.resetPhase();
        }
      }
    }
    if (this.remaining === 0) this.running = false;
    return true;
  }

  private synth(frame: Int16Array, from: number, to: number): void {
    const amp = this.amp;
    const nf = this.nFreqs;
    // Unrolled for the common 1- and 2-frequency cases.
    if (nf === 2) {
      let ar = this.re[0], ai = this.im[0], br = this.re[1], bi = this.im[1];
      const ac = this.rc[0], as = this.rs[0], bc = this.rc[1], bs = this.rs[1];
      for (let j = from; j < to; j++) {
        frame[j] = Math.round(amp * (ai + bi));
        let t = ar * ac - ai * as;
        ai = ai * ac + ar * as;
        ar = t;
        t = br * bc - bi * bs;
        bi = bi * bc + br * bs;
        br = t;
      }
      const ga = 1 / Math.sqrt(ar * ar + ai * ai);
      const gb = 1 / Math.sqrt(br * br + bi * bi);
      this.re[0] = ar * ga; this.im[0] = ai * ga;
      this.re[1] = br * gb; this.im[1] = bi * gb;
      return;
    }
    for (let j = from; j < to; j++) {
      let s = 0;
      for (let k = 0; k < nf; k++) {
        const r = this.re[k];
        const im = this.im[k];
        s += im;
        this.re[k] = r * this.rc[k] - im * this.rs[k];
        this.im[k] = im * this.rc[k] + r * this.rs[k];
      }
      frame[j] = Math.round(amp * s);
    }
    for (let k = 0; k < nf; k++) {
      const g = 1 / Math.sqrt(this.re[k] * this.re[k] + this.im[k] * this.im[k]);
      this.re[k] *= g;
      this.im[k] *= g;
    }
  }
}

export interface ToneDetectorOptions {
  /** How long the tone must be present without a break, ms (default 300). */
  minMs?: number;
  /** Minimum level of each frequency, dBm0 (default -30). */
  minLevelDbm0?: number;
  /** Maximum level difference between the frequencies, dB (default 10). */
  maxTwistDb?: number;
  /** Minimum share of the signal energy held by the tone's frequencies (default 0.5). */
  minPurity?: number;
}

/** Analysis block of the ToneDetector: 160 samples (20 ms), 50 Hz bins. */
export const TONE_BLOCK = 160;

/**
 * Detects a continuous tone (the frequencies of a ToneSpec, or a list of frequencies) present
 * without a break for at least `minMs` (default 300 ms). Blocks of 160 samples, independent of
 * the frame size; a block qualifies when each frequency is at least `minLevelDbm0`, the
 * frequencies are within `maxTwistDb` of each other, and together they hold at least `minPurity`
 * of the block's energy (so busy tone 480+620 does not pass as dial tone 350+440, nor speech).
 *
 * With single-frequency tone plans (eu: 425 Hz for dial, busy and ringback alike) only the
 * duration tells dial tone from the others: busy is on for 0.5 s and ringback for 1 s, so use
 * `minMs` >= 1500 there to be sure.
 */
export class ToneDetector {
  private readonly nf: number;
  private readonly coef = new Float64Array(MAX_FREQS);
  private readonly s1 = new Float64Array(MAX_FREQS);
  private readonly s2 = new Float64Array(MAX_FREQS);
  private readonly minTone: number;
  private readonly twist: number;
  private readonly purity: number;
  private readonly needBlocks: number;
  private pos = 0;
  /** Block energy so far (a typed array: a double in an object field may be boxed by V8). */
  private readonly en = new Float64Array(1);
  private good = 0;
  private detected = false;

  constructor(spec: ToneSpec | readonly number[], opts: ToneDetectorOptions = {}) {
    const freqs = Array.isArray(spec) ? (spec as readonly number[]) : (spec as ToneSpec).freqs;
    if (freqs.length < 1 || freqs.length > MAX_FREQS) throw new RangeError(`ToneDetector needs 1 to ${MAX_FREQS} frequencies`);
    this.nf = freqs.length;
    for (let k = 0; k < this.nf; k++) this.coef[k] = 2 * Math.cos((2 * Math.PI * freqs[k]) / SAMPLE_RATE);
    const a = dbm0ToPeak(opts.minLevelDbm0 ?? -30);
    // |X|^2 of an on-bin sine of peak a over the block: (a N / 2)^2.
    this.minTone = ((a * TONE_BLOCK) / 2) ** 2;
    this.twist = Math.pow(10, (opts.maxTwistDb ?? 10) / 10);
    this.purity = opts.minPurity ?? 0.5;
    this.needBlocks = Math.max(1, Math.ceil(msToSamples(opts.minMs ?? 300) / TONE_BLOCK));
  }

  /** True while the tone has been present for at least minMs (as of the last complete block). */
  get present(): boolean {
    return this.detected;
  }

  reset(): void {
    this.s1.fill(0);
    this.s2.fill(0);
    this.pos = 0;
    this.en[0] = 0;
    this.good = 0;
    this.detected = false;
  }

  /** Feed samples (any count); returns true while the tone has lasted >= minMs. */
  process(frame: Int16Array): boolean {
    const n = frame.length;
    const nf = this.nf;
    let i = 0;
    while (i < n) {
      let todo = TONE_BLOCK - this.pos;
      if (todo > n - i) todo = n - i;
      const end = i + todo;
      // Energy and the first two filters in one pass (the usual 1- or 2-frequency tone); any
      // further frequencies in their own passes.
      {
        const c0 = this.coef[0];
        const c1 = this.coef[1]; // 0 when unused: that filter then runs harmlessly
        let a0 = this.s1[0], b0 = this.s2[0], a1 = this.s1[1], b1 = this.s2[1];
        let e = this.en[0];
        for (let j = i; j < end; j++) {
          const x = frame[j];
          e += x * x;
          let t = x + c0 * a0 - b0;
          b0 = a0;
          a0 = t;
          t = x + c1 * a1 - b1;
          b1 = a1;
          a1 = t;
        }
        this.en[0] = e;
        this.s1[0] = a0;
        this.s2[0] = b0;
        this.s1[1] = a1;
        this.s2[1] = b1;
      }
      for (let k = 2; k < nf; k++) {
        const c = this.coef[k];
        let a = this.s1[k];
        let b = this.s2[k];
        for (let j = i; j < end; j++) {
          const t = frame[j] + c * a - b;
          b = a;
          a = t;
        }
        this.s1[k] = a;
        this.s2[k] = b;
      }
      this.pos += todo;
      i = end;
      if (this.pos === TONE_BLOCK) {
        if (this.blockOk()) {
          if (this.good < this.needBlocks) this.good++;
        } else {
          this.good = 0;
        }
        this.detected = this.good >= this.needBlocks;
        this.s1.fill(0);
        this.s2.fill(0);
        this.en[0] = 0;
        this.pos = 0;
      }
    }
    return this.detected;
  }

  private blockOk(): boolean {
    let sum = 0;
    let lo = Infinity;
    let hi = 0;
    for (let k = 0; k < this.nf; k++) {
      const a = this.s1[k];
      const b = this.s2[k];
      const p = a * a + b * b - this.coef[k] * a * b;
      if (p < this.minTone) return false;
      if (p < lo) lo = p;
      if (p > hi) hi = p;
      sum += p;
    }
    if (hi > lo * this.twist) return false;
    // Block energy of an on-bin sine is 2|X|^2/N.
    return (2 * sum) / TONE_BLOCK >= this.purity * this.en[0];
  }
}
