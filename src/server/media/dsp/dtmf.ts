/**
 * In-band DTMF: a receiver to ITU-T Q.24 and a generator.
 *
 * ## Receiver (DtmfDetector)
 *
 * Blocks. The input is cut into blocks of N = 102 samples (12.75 ms), independently of the frame
 * size given to `process` (any length works: the filter state carries over between calls). Each
 * block is analysed as two halves of M = 51 samples: an 8-filter Goertzel bank (the 4 row and 4
 * column frequencies, rectangular window) runs over each half, giving the complex DFT values Xa
 * and Xb of each half at each nominal frequency. The whole block's value at frequency w is
 * X = Xa + e^{-jwM} Xb: the levels used to pick the strongest row and column are those of a
 * 102-sample block (the customary length, as in spandsp: 78 Hz bins).
 *
 * Two-tone fit. For the strongest row bin r and column bin c, the halves are fitted with two
 * complex sinusoids: with D(d) = sum_{n<M} e^{jdn} (the Dirichlet kernel) and w'r, w'c the tones'
 * actual frequencies, each half obeys
 *     Xr = ar D(w'r - wr) + ac D(w'c - wr)
 *     Xc = ar D(w'r - wc) + ac D(w'c - wc)
 * a 2x2 complex system solved for the tones' complex amplitudes ar, ac. The frequencies come from
 * the phase advance between the halves, angle(ab conj(aa)) = w'M, unambiguous to +-78 Hz and
 * accurate to about 1 Hz at 15 dB S/N (a 102-sample magnitude alone cannot tell a 3.5 % offset
 * at 697 Hz: it costs only 1.4 dB there). Three rounds of (solve, re-estimate the frequencies)
 * are run, the last two also subtracting the tones' negative-frequency images. Modelling the
 * cross terms removes the rectangular window's leakage of the strong tone
 * into the weak tone's bin (up to -14.6 dB over a 51-sample half), which would otherwise bend
 * both the frequency and the level of the weak tone at 8 dB twist; solving with the measured
 * frequency also corrects each level for its offset. All of this runs per block, only for
 * blocks that pass the cheap checks, so the per-sample cost stays at 8 Goertzel updates.
 *
 * A block is a "hit" for key (r, c) when:
 *   1. r exceeds every other row bin, and c every other column bin, by 8 dB (relative peak);
 *   2. each tone's fitted level is at least `minLevelDbm` (default -30 dBm0 per tone);
 *   3. twist: the column (high group) tone is at most `maxNormalTwistDb` (default 9) below the row
 *      tone and at most `maxReverseTwistDb` (default 5) above it. Q.24 asks for 8 dB normal and
 *      4 dB reverse; the defaults add 1 dB of measurement margin so the spec limits themselves
 *      pass reliably after G.711 and noise (and 10 dB / 6 dB are still rejected);
 *   4. frequency: both measured offsets within +-2.5 % of nominal (Q.24: accept +-1.5 %, reject
 *      +-3.5 %; 2.5 % is the midpoint);
 *   5. steadiness: the two halves of each tone are within 3 dB of each other, so a tone must fill
 *      at least ~87 of the block's 102 samples;
 *   6. purity: the fitted two-tone model's energy (computed exactly, beat terms included) is at
 *      least 90 % of the block's energy, i.e. the residual is at most -10 dB. A clean key
 *      measures 0.998-1.002 (also through G.711), a key in white noise at 15 dB S/N >= 0.93; the
 *      best block of ~2 hours of espeak-ng speech (20 voices, 2 levels) measured 0.86.
 * Tests 4, 5 and 6 are what reject speech: a voiced sound spreads its energy over many
 * harmonics and formants, and its components glide in frequency and level.
 *
 * State machine (per block): a key is reported when two consecutive blocks are hits for the
 * same key and no key is currently held. Thanks to test 5 a hit block holds >= 87 samples of
 * tone, so two consecutive hits need >= 174 contiguous samples (21.75 ms): a 20 ms tone (160
 * samples) can never be reported, while a 40 ms tone (320 samples) always contains two whole
 * blocks. A held key continues through blocks that pass looser limits (hysteresis: 6 dB peak,
 * 3 %, 6 dB balance, 2 dB more twist, 3 dB less level, 70 % purity), so a tone measured right at
 * a limit does not flicker into two keys. It ends after two consecutive blocks that do not
 * continue it (so ~25 ms or more of pause; a single bad block inside a long tone does not split
 * it). A different key following without a pause is reported once the old one has ended.
 *
 * Cost: 8 Goertzel updates and one square per sample, nothing allocated; the per-block decision
 * runs 78 times a second and allocates nothing either (the returned key strings are constants;
 * doubles are kept in typed arrays, see phaseOffset). bench/dtmf/bench.js compares the cost with
 * spandsp's dtmf_rx: about 1.1x.
 *
 * ## Generator (DtmfGenerator)
 *
 * Two quadrature (rotating phasor) oscillators, phase continuous across `fill` calls, at
 * `levelDbm0` per tone (default -6 dBm0, i.e. about -12 dBFS per tone, peaks of -3 dBFS), with an
 * optional `twistDb` (high group that many dB below the low group; 0 by default).
 */
import { SAMPLE_RATE, dbm0ToPeak, msToSamples } from './levels';

/** Row (low group) frequencies, Hz. */
export const DTMF_ROW_FREQS: readonly number[] = [697, 770, 852, 941];
/** Column (high group) frequencies, Hz. */
export const DTMF_COL_FREQS: readonly number[] = [1209, 1336, 1477, 1633];
/** The keypad, row-major: DTMF_KEYPAD[row][col]. */
export const DTMF_KEYPAD: readonly string[] = ['123A', '456B', '789C', '*0#D'];
/** All 16 keys. */
export const DTMF_KEYS = '123A456B789C*0#D';

/** Row and column frequency of a key, or undefined for a non-DTMF character. */
export function dtmfFrequencies(key: string): { row: number; col: number } | undefined {
  const i = DTMF_KEYS.indexOf(key.length === 1 ? key.toUpperCase() : '');
  if (i < 0) return undefined;
  return { row: DTMF_ROW_FREQS[i >> 2], col: DTMF_COL_FREQS[i & 3] };
}

/** Samples per analysis half-block. */
export const DTMF_HALF_BLOCK = 51;
/** Samples per analysis block (12.75 ms). */
export const DTMF_BLOCK = 2 * DTMF_HALF_BLOCK;

const M = DTMF_HALF_BLOCK;
const N = DTMF_BLOCK;
const FREQS = [...DTMF_ROW_FREQS, ...DTMF_COL_FREQS];
/** Single-character key strings (constants, so reporting a key allocates nothing). */
const KEY_STR: readonly string[] = DTMF_KEYS.split('');

// Per-filter constants.
const W = new Float64Array(8); // w = 2 pi f / fs
const COEF = new Float64Array(8); // 2cos(w)
const COSW = new Float64Array(8); // cos(w)
const SINW = new Float64Array(8); // sin(w)
const COSWM = new Float64Array(8); // cos(wM)
const SINWM = new Float64Array(8); // sin(wM)
const COSR = new Float64Array(8); // cos(w(M-1)): X = Y e^{-jw(M-1)}
const SINR = new Float64Array(8); // sin(w(M-1))
for (let k = 0; k < 8; k++) {
  const w = (2 * Math.PI * FREQS[k]) / SAMPLE_RATE;
  W[k] = w;
  COEF[k] = 2 * Math.cos(w);
  COSW[k] = Math.cos(w);
  SINW[k] = Math.sin(w);
  COSWM[k] = Math.cos(w * M);
  SINWM[k] = Math.sin(w * M);
  COSR[k] = Math.cos(w * (M - 1));
  SINR[k] = Math.sin(w * (M - 1));
}

/**
 * Decision limits. "Strict" ones decide whether a block may start a key; "weak" ones whether a
 * block continues the key being held.
 */
interface Limits {
  relPeak: number; // power ratio
  freqTol: number; // fraction of nominal
  balance: number; // power ratio between the halves
  normalTwist: number; // power ratio
  reverseTwist: number; // power ratio
  minEnergy: number; // per tone, block energy (sum of squares)
  toneToTotal: number; // fraction
}

const dbr = (db: number): number => Math.pow(10, db / 10);

/** Indexes into DtmfDetector.meas. */
const V_RELR = 0; // row runner-up / row power
const V_RELC = 1; // column runner-up / column power
const V_OFFR = 2; // row |offset| (fraction)
const V_OFFC = 3; // column |offset|
const V_BALR = 4; // row half balance (power ratio >= 1)
const V_BALC = 5; // column half balance
const V_ER = 6; // row tone block energy
const V_EC = 7; // column tone block energy
const V_ETOT = 8; // block energy
const V_EMODEL = 9; // energy of the fitted two-tone model over the block

/**
 * Offset (rad/sample) of the tone seen in bin k, angle(b conj(a) e^{-jwM}) / M, with a and b
 * read from arrays at the given indexes, written into out[o].
 *
 * (These helpers take array indexes rather than doubles and write their results into arrays:
 * V8 boxes - allocates - a double passed to or returned from a call it does not inline.)
 */
function phaseOffset(
  a: Float64Array, ar: number, ai: number,
  b: Float64Array, br: number, bi: number,
  k: number, out: Float64Array, o: number,
): void {
  const xr = a[ar], xi = a[ai], yr = b[br], yi = b[bi];
  const qr0 = yr * xr + yi * xi;
  const qi0 = yi * xr - yr * xi;
  const qr = qr0 * COSWM[k] + qi0 * SINWM[k];
  const qi = qi0 * COSWM[k] - qr0 * SINWM[k];
  out[o] = Math.atan2(qi, qr) / M;
}

/**
 * The kernel D(d) = sum_{n<M} e^{jdn} = e^{jd(M-1)/2} sin(Md/2)/sin(d/2), for d read from f[o];
 * writes re into f[o] and im into f[o + 1].
 */
function kernel(f: Float64Array, o: number): void {
  const h = f[o] / 2;
  const s = Math.sin(h);
  const mag = Math.abs(s) < 1e-12 ? M : Math.sin(M * h) / s;
  const ph = h * (M - 1);
  f[o] = mag * Math.cos(ph);
  f[o + 1] = mag * Math.sin(ph);
}

function passes(l: Limits, v: Float64Array): boolean {
  const er = v[V_ER];
  const ec = v[V_EC];
  return (
    v[V_RELR] * l.relPeak <= 1 &&
    v[V_RELC] * l.relPeak <= 1 &&
    v[V_OFFR] <= l.freqTol &&
    v[V_OFFC] <= l.freqTol &&
    v[V_BALR] <= l.balance &&
    v[V_BALC] <= l.balance &&
    er >= l.minEnergy &&
    ec >= l.minEnergy &&
    er <= ec * l.normalTwist &&
    ec <= er * l.reverseTwist &&
    v[V_EMODEL] >= l.toneToTotal * v[V_ETOT]
  );
}

export interface DtmfDetectorOptions {
  /** Called with each key as it is detected (synchronously, from inside `process`). */
  onDigit?: (key: string) => void;
  /** Minimum level of each of the two tones, dBm0 (default -30). */
  minLevelDbm?: number;
  /** Largest accepted normal twist (high group weaker), dB (default 9: Q.24's 8 + 1 margin). */
  maxNormalTwistDb?: number;
  /** Largest accepted reverse twist (high group stronger), dB (default 5: Q.24's 4 + 1 margin). */
  maxReverseTwistDb?: number;
}

/** In-band DTMF receiver (see the module comment for the algorithm). */
export class DtmfDetector {
  private readonly onDigit: ((key: string) => void) | undefined;
  private readonly strict: Limits;
  private readonly weak: Limits;

  /** Goertzel states: s1 at [k], s2 at [8 + k]. */
  private readonly st = new Float64Array(16);
  /** First-half DFT values Xa: re at [k], im at [8 + k]. */
  private readonly xa = new Float64Array(16);
  /** Second-half DFT values Xb (filled at the end of a block). */
  private readonly xb = new Float64Array(16);
  /** Whole-block powers |X|^2 per filter (scratch). */
  private readonly pw = new Float64Array(8);
  /** Measurements of the current candidate (V_* indexes). */
  private readonly meas = new Float64Array(10);
  /**
   * Two-tone fit scratch: [0..3] tone amplitudes (re, im) of row then column in half a,
   * [4..7] the same in half b; [8..15] the kernel values D (re, im): Drr, Dcr, Drc, Dcc;
   * [16..23] the image kernels Irr, Icr, Irc, Icc; [24..31] D(2w'r), D(2w'c), D(w'r + w'c),
   * D(w'r - w'c) for the model's energy; [32], [33] phase offsets.
   */
  private readonly fit = new Float64Array(34);
  /**
   * Sum of squares in the current half [0] and in the first half [1]. (Doubles live in typed
   * arrays, not object fields: V8 may box a double stored in a field, i.e. allocate.)
   */
  private readonly en = new Float64Array(2);
  /** Samples into the current half (0..M-1) and which half (0 or 1). */
  private pos = 0;
  private half = 0;

  /** Results of the last classify(): key index passing the strict / weak limits, or -1. */
  private strictHit = -1;
  private weakHit = -1;
  /** Strict hit of the previous block (-1 none, else key index). */
  private lastHit = -1;
  /** Key being held (-1 none, else key index) and how many blocks in a row missed it. */
  private current = -1;
  private misses = 0;

  constructor(opts: DtmfDetectorOptions = {}) {
    this.onDigit = opts.onDigit;
    const a = dbm0ToPeak(opts.minLevelDbm ?? -30);
    const minEnergy = (N * a * a) / 2;
    const nt = opts.maxNormalTwistDb ?? 9;
    const rt = opts.maxReverseTwistDb ?? 5;
    this.strict = {
      relPeak: dbr(8),
      freqTol: 0.025,
      balance: dbr(3),
      normalTwist: dbr(nt),
      reverseTwist: dbr(rt),
      minEnergy,
      toneToTotal: 0.9,
    };
    this.weak = {
      relPeak: dbr(6),
      freqTol: 0.03,
      balance: dbr(6),
      normalTwist: dbr(nt + 2),
      reverseTwist: dbr(rt + 2),
      minEnergy: minEnergy / 2,
      toneToTotal: 0.7,
    };
  }

  /** The key currently held ('' when none). */
  get holding(): string {
    return this.current < 0 ? '' : KEY_STR[this.current];
  }

  /** Forget all state (filters, timing, the held key). */
  reset(): void {
    this.st.fill(0);
    this.xa.fill(0);
    this.en.fill(0);
    this.pos = 0;
    this.half = 0;
    this.lastHit = -1;
    this.current = -1;
    this.misses = 0;
  }

  /**
   * Feed linear 8 kHz samples (any count). Returns the keys newly detected during this call,
   * usually '' (no allocation then); `onDigit` is called for each as well.
   */
  process(frame: Int16Array): string {
    let out = '';
    const n = frame.length;
    const st = this.st;
    let i = 0;
    while (i < n) {
      let todo = M - this.pos;
      if (todo > n - i) todo = n - i;
      const end = i + todo;
      // Two passes over the chunk (rows + energy, then columns): 4 filters per loop keep all
      // the state in registers.
      {
        const c0 = COEF[0], c1 = COEF[1], c2 = COEF[2], c3 = COEF[3];
        let a0 = st[0], a1 = st[1], a2 = st[2], a3 = st[3];
        let b0 = st[8], b1 = st[9], b2 = st[10], b3 = st[11];
        let e = this.en[0];
        for (let j = i; j < end; j++) {
          const x = frame[j];
          e += x * x;
          let t = x + c0 * a0 - b0;
          b0 = a0; a0 = t;
          t = x + c1 * a1 - b1;
          b1 = a1; a1 = t;
          t = x + c2 * a2 - b2;
          b2 = a2; a2 = t;
          t = x + c3 * a3 - b3;
          b3 = a3; a3 = t;
        }
        st[0] = a0; st[1] = a1; st[2] = a2; st[3] = a3;
        st[8] = b0; st[9] = b1; st[10] = b2; st[11] = b3;
        this.en[0] = e;
      }
      {
        const c4 = COEF[4], c5 = COEF[5], c6 = COEF[6], c7 = COEF[7];
        let a4 = st[4], a5 = st[5], a6 = st[6], a7 = st[7];
        let b4 = st[12], b5 = st[13], b6 = st[14], b7 = st[15];
        for (let j = i; j < end; j++) {
          const x = frame[j];
          let t = x + c4 * a4 - b4;
          b4 = a4; a4 = t;
          t = x + c5 * a5 - b5;
          b5 = a5; a5 = t;
          t = x + c6 * a6 - b6;
          b6 = a6; a6 = t;
          t = x + c7 * a7 - b7;
          b7 = a7; a7 = t;
        }
        st[4] = a4; st[5] = a5; st[6] = a6; st[7] = a7;
        st[12] = b4; st[13] = b5; st[14] = b6; st[15] = b7;
      }
      this.pos += todo;
      i = end;
      if (this.pos === M) {
        this.pos = 0;
        if (this.half === 0) {
          this.endHalf(this.xa);
          this.en[1] = this.en[0];
          this.en[0] = 0;
          this.half = 1;
        } else {
          const key = this.endBlock();
          if (key >= 0) {
            const s = KEY_STR[key];
            out = out === '' ? s : out + s;
            if (this.onDigit) this.onDigit(s);
          }
        }
      }
    }
    return out;
  }

  /** Turns the Goertzel states into the half's DFT values (into x) and clears the states. */
  private endHalf(x: Float64Array): void {
    const st = this.st;
    for (let k = 0; k < 8; k++) {
      const s1 = st[k];
      const s2 = st[8 + k];
      // Y = s1 - e^{-jw} s2; X = Y e^{-jw(M-1)}
      const yr = s1 - COSW[k] * s2;
      const yi = SINW[k] * s2;
      x[k] = yr * COSR[k] + yi * SINR[k];
      x[8 + k] = yi * COSR[k] - yr * SINR[k];
      st[k] = 0;
      st[8 + k] = 0;
    }
  }

  /** Ends a block: classifies it, runs the state machine; returns a newly reported key or -1. */
  private endBlock(): number {
    this.endHalf(this.xb);
    this.classify();
    this.en[0] = 0;
    this.en[1] = 0;
    this.half = 0;

    const hit = this.strictHit;
    let report = -1;
    if (this.current >= 0) {
      if (hit === this.current || this.weakHit === this.current) {
        this.misses = 0;
      } else if (++this.misses >= 2) {
        this.current = -1;
        this.misses = 0;
      }
    }
    if (this.current < 0 && hit >= 0 && hit === this.lastHit) {
      this.current = hit;
      this.misses = 0;
      report = hit;
    }
    this.lastHit = hit;
    return report;
  }

  /** Sets strictHit / weakHit for the block just completed (halves in xa, xb). */
  private classify(): void {
    this.strictHit = -1;
    this.weakHit = -1;
    const eTotal = this.en[0] + this.en[1];
    const weak = this.weak;
    // Quick exit on quiet blocks: two tones at the (weak) minimum level hold >= 2*minEnergy of
    // the block's actual energy.
    if (eTotal < 2 * weak.minEnergy) return;

    const xa = this.xa;
    const xb = this.xb;
    const pw = this.pw;
    for (let k = 0; k < 8; k++) {
      // X = Xa + e^{-jwM} Xb
      const br = xb[k];
      const bi = xb[8 + k];
      const xr = xa[k] + COSWM[k] * br + SINWM[k] * bi;
      const xi = xa[8 + k] + COSWM[k] * bi - SINWM[k] * br;
      pw[k] = xr * xr + xi * xi;
    }
    let r = 0;
    for (let k = 1; k < 4; k++) if (pw[k] > pw[r]) r = k;
    let c = 4;
    for (let k = 5; k < 8; k++) if (pw[k] > pw[c]) c = k;
    const pr = pw[r];
    const pc = pw[c];
    let r2 = 0;
    for (let k = 0; k < 4; k++) if (k !== r && pw[k] > r2) r2 = pw[k];
    let c2 = 0;
    for (let k = 4; k < 8; k++) if (k !== c && pw[k] > c2) c2 = pw[k];
    if (r2 * weak.relPeak > pr || c2 * weak.relPeak > pc) return;
    // Cheap purity gate before the fit: an on-bin sine's block energy is 2|X|^2/N; a tone 3 %
    // off its bin keeps at least ~1/4 of that at 1633 Hz (and more elsewhere).
    if ((2 * (pr + pc)) / N < 0.25 * weak.toneToTotal * eTotal) return;

    if (!this.fitTones(r, c)) return;
    const v = this.meas;
    v[V_RELR] = r2 / pr;
    v[V_RELC] = c2 / pc;
    v[V_ETOT] = eTotal;
    if (passes(weak, v)) {
      const key = r * 4 + (c - 4);
      this.weakHit = key;
      if (passes(this.strict, v)) this.strictHit = key;
    }
  }

  /**
   * Fits two sinusoids (near row bin r and column bin c) to both halves, as described in the
   * module comment. Three rounds: the first ignores the tones' negative-frequency images, the
   * next two subtract the images predicted by the previous round (they leak up to -28 dB into a
   * 51-sample bin, enough to bias the levels by several percent). Writes offsets, balances and
   * energies into meas; false if the fit is degenerate or a frequency is far out of tolerance.
   */
  private fitTones(r: number, c: number): boolean {
    const xa = this.xa;
    const xb = this.xb;
    const f = this.fit;
    const v = this.meas;
    // Initial frequency offsets from the raw bins: angle(Xb conj(Xa) e^{-jwM}) / M.
    phaseOffset(xa, r, 8 + r, xb, r, 8 + r, r, f, 32);
    phaseOffset(xa, c, 8 + c, xb, c, 8 + c, c, f, 33);
    let dr = f[32];
    let dc = f[33];
    const lim = 1.5 * this.weak.freqTol;
    for (let iter = 0; iter < 3; iter++) {
      if (Math.abs(dr) > lim * W[r] || Math.abs(dc) > lim * W[c]) return false;
      const wr = W[r] + dr; // the tones' frequencies
      const wc = W[c] + dc;
      // Kernels: Drr = D(w'r - wr) (row tone into row bin), Dcr = D(w'c - wr) (column tone
      // into row bin), Drc = D(w'r - wc), Dcc = D(w'c - wc).
      f[8] = dr; kernel(f, 8);
      f[10] = wc - W[r]; kernel(f, 10);
      f[12] = wr - W[c]; kernel(f, 12);
      f[14] = dc; kernel(f, 14);
      if (iter > 0) {
        // Images: D(-w'r - wr), D(-w'c - wr), D(-w'r - wc), D(-w'c - wc).
        f[16] = -wr - W[r]; kernel(f, 16);
        f[18] = -wc - W[r]; kernel(f, 18);
        f[20] = -wr - W[c]; kernel(f, 20);
        f[22] = -wc - W[c]; kernel(f, 22);
      }
      const rrR = f[8], rrI = f[9], crR = f[10], crI = f[11], rcR = f[12], rcI = f[13], ccR = f[14], ccI = f[15];
      // det = Drr Dcc - Dcr Drc
      const detR = rrR * ccR - rrI * ccI - (crR * rcR - crI * rcI);
      const detI = rrR * ccI + rrI * ccR - (crR * rcI + crI * rcR);
      const dd = detR * detR + detI * detI;
      if (!(dd > 0)) return false;
      for (let h = 0; h < 2; h++) {
        const x = h === 0 ? xa : xb;
        const o = 4 * h;
        let Xr = x[r], Xi = x[8 + r], Yr = x[c], Yi = x[8 + c];
        if (iter > 0) {
          // Subtract conj(ar) Irr + conj(ac) Icr from the row bin, conj(ar) Irc + conj(ac) Icc
          // from the column bin (amplitudes of the previous round).
          const pr = f[o], pi = -f[o + 1], qr = f[o + 2], qi = -f[o + 3];
          Xr -= pr * f[16] - pi * f[17] + qr * f[18] - qi * f[19];
          Xi -= pr * f[17] + pi * f[16] + qr * f[19] + qi * f[18];
          Yr -= pr * f[20] - pi * f[21] + qr * f[22] - qi * f[23];
          Yi -= pr * f[21] + pi * f[20] + qr * f[23] + qi * f[22];
        }
        // ar = (Xr Dcc - Dcr Xc) / det ; ac = (Drr Xc - Drc Xr) / det
        const nr = Xr * ccR - Xi * ccI - (crR * Yr - crI * Yi);
        const ni = Xr * ccI + Xi * ccR - (crR * Yi + crI * Yr);
        const mr = rrR * Yr - rrI * Yi - (rcR * Xr - rcI * Xi);
        const mi = rrR * Yi + rrI * Yr - (rcR * Xi + rcI * Xr);
        f[o] = (nr * detR + ni * detI) / dd;
        f[o + 1] = (ni * detR - nr * detI) / dd;
        f[o + 2] = (mr * detR + mi * detI) / dd;
        f[o + 3] = (mi * detR - mr * detI) / dd;
      }
      phaseOffset(f, 0, 1, f, 4, 5, r, f, 32);
      phaseOffset(f, 2, 3, f, 6, 7, c, f, 33);
      dr = f[32];
      dc = f[33];
    }
    const par = f[0] * f[0] + f[1] * f[1];
    const pbr = f[4] * f[4] + f[5] * f[5];
    const pac = f[2] * f[2] + f[3] * f[3];
    const pbc = f[6] * f[6] + f[7] * f[7];
    if (!(par > 0 && pbr > 0 && pac > 0 && pbc > 0)) return false;
    v[V_OFFR] = Math.abs(dr) / W[r];
    v[V_OFFC] = Math.abs(dc) / W[c];
    v[V_BALR] = par > pbr ? par / pbr : pbr / par;
    v[V_BALC] = pac > pbc ? pac / pbc : pbc / pac;
    // A fitted amplitude a = A/2 (A the sine's peak); block energy N A^2/2 = 2N|a|^2, from the
    // mean of the halves.
    v[V_ER] = N * (par + pbr);
    v[V_EC] = N * (pac + pbc);
    // The model's exact energy, m[n] = 2Re(ar e^{jw'r n}) + 2Re(ac e^{jw'c n}) per half:
    // sum m^2 = 2M(|ar|^2 + |ac|^2) + 2Re(ar^2 D(2w'r)) + 2Re(ac^2 D(2w'c))
    //         + 4Re(ar ac D(w'r + w'c)) + 4Re(ar conj(ac) D(w'r - w'c)).
    // (Two tones beat: over 102 samples the cross terms move the energy by up to ~10 %, so the
    // purity test compares like with like: the fit's own energy against the block's.)
    const wr = W[r] + dr;
    const wc = W[c] + dc;
    f[24] = 2 * wr; kernel(f, 24);
    f[26] = 2 * wc; kernel(f, 26);
    f[28] = wr + wc; kernel(f, 28);
    f[30] = wr - wc; kernel(f, 30);
    let em = 0;
    for (let h = 0; h < 2; h++) {
      const o = 4 * h;
      const ar = f[o], ai = f[o + 1], cr = f[o + 2], ci = f[o + 3];
      em += 2 * M * (ar * ar + ai * ai + cr * cr + ci * ci);
      em += 2 * ((ar * ar - ai * ai) * f[24] - 2 * ar * ai * f[25]);
      em += 2 * ((cr * cr - ci * ci) * f[26] - 2 * cr * ci * f[27]);
      const pr = ar * cr - ai * ci; // ar ac
      const pi = ar * ci + ai * cr;
      em += 4 * (pr * f[28] - pi * f[29]);
      const qr = ar * cr + ai * ci; // ar conj(ac)
      const qi = ai * cr - ar * ci;
      em += 4 * (qr * f[30] - qi * f[31]);
    }
    v[V_EMODEL] = em;
    return true;
  }
}

export interface DtmfGeneratorOptions {
  /** Level of the low-group tone, dBm0 (default -6). */
  levelDbm0?: number;
  /** How many dB the high-group tone is below the low-group one (default 0; negative = above). */
  twistDb?: number;
}

/**
 * DTMF generator: `start(keys, toneMs, gapMs)` then `fill(frame)` every frame until it returns
 * false. Each key is a tone of `toneMs` followed by `gapMs` of silence.
 */
export class DtmfGenerator {
  private lowAmp: number;
  private highAmp: number;
  private keys = '';
  private keyIdx = 0;
  private toneSamples = 0;
  private gapSamples = 0;
  /** Position within the current key's tone+gap period. */
  private pos = 0;
  /** Oscillators: phasor (re, im) and rotation (cos, sin) for the low and high tone. */
  private lr = 0;
  private li = 0;
  private lc = 1;
  private ls = 0;
  private hr = 0;
  private hi = 0;
  private hc = 1;
  private hs = 0;

  constructor(opts: DtmfGeneratorOptions = {}) {
    this.lowAmp = 0;
    this.highAmp = 0;
    this.setLevel(opts.levelDbm0 ?? -6, opts.twistDb ?? 0);
  }

  /** Change the level (dBm0 of the low-group tone) and twist (dB the high group is below). */
  setLevel(levelDbm0: number, twistDb = 0): void {
    this.lowAmp = dbm0ToPeak(levelDbm0);
    this.highAmp = dbm0ToPeak(levelDbm0 - twistDb);
  }

  /** True while keys remain to be played. */
  get active(): boolean {
    return this.keyIdx < this.keys.length;
  }

  /**
   * Start playing `keys` (one or more of 0-9 * # A-D; case-insensitive), each as a tone of
   * `durationMs` (default 100) followed by `gapMs` (default 60) of silence. Replaces anything
   * still playing. Throws on a non-DTMF character.
   */
  start(keys: string, durationMs = 100, gapMs = 60): void {
    const k = keys.toUpperCase();
    for (const ch of k) {
      if (DTMF_KEYS.indexOf(ch) < 0) throw new RangeError(`not a DTMF key: ${JSON.stringify(ch)}`);
    }
    if (!(durationMs > 0) || !(gapMs >= 0)) throw new RangeError('DTMF duration must be > 0 and gap >= 0');
    this.keys = k;
    this.keyIdx = 0;
    this.toneSamples = msToSamples(durationMs);
    this.gapSamples = msToSamples(gapMs);
    this.pos = 0;
    this.beginKey();
  }

  /** Stop at once. */
  stop(): void {
    this.keys = '';
    this.keyIdx = 0;
  }

  private beginKey(): void {
    if (this.keyIdx >= this.keys.length) return;
    const i = DTMF_KEYS.indexOf(this.keys[this.keyIdx]);
    const wl = (2 * Math.PI * DTMF_ROW_FREQS[i >> 2]) / SAMPLE_RATE;
    const wh = (2 * Math.PI * DTMF_COL_FREQS[i & 3]) / SAMPLE_RATE;
    this.lc = Math.cos(wl);
    this.ls = Math.sin(wl);
    this.hc = Math.cos(wh);
    this.hs = Math.sin(wh);
    // Start both at sine phase 0 (phasor (1, 0), output = imaginary part): no click.
    this.lr = 1;
    this.li = 0;
    this.hr = 1;
    this.hi = 0;
    this.pos = 0;
  }

  /**
   * Write the next `frame.length` samples into `frame` (silence where no tone is due). Returns
   * true while active: this frame holds part of the sequence (tone or gap). Returns false, with
   * the frame all zeros, once the sequence had already ended.
   */
  fill(frame: Int16Array): boolean {
    const n = frame.length;
    if (this.keyIdx >= this.keys.length) {
      frame.fill(0);
      return false;
    }
    let i = 0;
    while (i < n) {
      if (this.keyIdx >= this.keys.length) {
        frame.fill(0, i);
        break;
      }
      if (this.pos < this.toneSamples) {
        let todo = this.toneSamples - this.pos;
        if (todo > n - i) todo = n - i;
        let lr = this.lr, li = this.li, hr = this.hr, hi = this.hi;
        const lc = this.lc, ls = this.ls, hc = this.hc, hs = this.hs;
        const la = this.lowAmp, ha = this.highAmp;
        for (let j = i; j < i + todo; j++) {
          frame[j] = Math.round(la * li + ha * hi);
          let t = lr * lc - li * ls;
          li = li * lc + lr * ls;
          lr = t;
          t = hr * hc - hi * hs;
          hi = hi * hc + hr * hs;
          hr = t;
        }
        // Renormalise the phasors (rounding drift), once per chunk.
        const gl = 1 / Math.sqrt(lr * lr + li * li);
        const gh = 1 / Math.sqrt(hr * hr + hi * hi);
        this.lr = lr * gl;
        this.li = li * gl;
        this.hr = hr * gh;
        this.hi = hi * gh;
        this.pos += todo;
        i += todo;
      } else {
        const periodEnd = this.toneSamples + this.gapSamples;
        let todo = periodEnd - this.pos;
        if (todo > n - i) todo = n - i;
        frame.fill(0, i, i + todo);
        this.pos += todo;
        i += todo;
      }
      if (this.pos >= this.toneSamples + this.gapSamples) {
        this.keyIdx++;
        this.beginKey();
      }
    }
    return true;
  }
}

export interface DtmfSamplesOptions {
  /** Tone duration per key, ms (default 100). */
  toneMs?: number;
  /** Silence after each key, ms (default 60). */
  gapMs?: number;
  /** Level of the low-group tone, dBm0 (default -6). */
  level?: number;
  /** dB the high group is below the low group (default 0). */
  twistDb?: number;
}

/** A whole DTMF sequence as linear samples (for tests and tools; allocates). */
export function dtmfSamples(keys: string, opts: DtmfSamplesOptions = {}): Int16Array {
  const toneMs = opts.toneMs ?? 100;
  const gapMs = opts.gapMs ?? 60;
  const gen = new DtmfGenerator({ levelDbm0: opts.level ?? -6, twistDb: opts.twistDb ?? 0 });
  const per = msToSamples(toneMs) + msToSamples(gapMs);
  const out = new Int16Array(per * keys.length);
  if (keys.length > 0) {
    gen.start(keys, toneMs, gapMs);
    gen.fill(out);
  }
  return out;
}
