/**
 * Goertzel single-bin DFT helpers.
 *
 * For a block x[0..N-1] and an angular frequency w = 2*pi*f/fs (any f, not only bin centres) the
 * recursion s[n] = x[n] + 2cos(w) s[n-1] - s[n-2] gives, with s1 = s[N-1] and s2 = s[N-2],
 *
 *     X = sum x[n] e^{-jwn} = e^{-jw(N-1)} * (s1 - e^{-jw} s2)
 *
 * so |X|^2 = s1^2 + s2^2 - 2cos(w) s1 s2, and a sine of peak amplitude A exactly at f gives
 * |X| = A*N/2 (plus the small leakage of its negative-frequency image).
 *
 * The DTMF detector inlines its own 8-filter bank for speed; these are the generic versions,
 * used by ToneDetector, by tests and by the benchmark.
 */
import { SAMPLE_RATE } from './levels';

/** 2*cos(2*pi*f/fs), the Goertzel recursion coefficient. */
export function goertzelCoeff(freq: number, rate: number = SAMPLE_RATE): number {
  return 2 * Math.cos((2 * Math.PI * freq) / rate);
}

/** |X|^2 of `samples[start .. start+n-1]` at `freq` Hz. Allocation-free. */
export function goertzelPower(
  samples: ArrayLike<number>,
  freq: number,
  start = 0,
  n: number = samples.length - start,
  rate: number = SAMPLE_RATE,
): number {
  const c = goertzelCoeff(freq, rate);
  let s1 = 0;
  let s2 = 0;
  const end = start + n;
  for (let i = start; i < end; i++) {
    const s0 = samples[i] + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - c * s1 * s2;
}

/**
 * Peak amplitude of the sine at `freq` in `samples[start .. start+n-1]`, estimated as 2|X|/N
 * (exact for a sine on `freq` when the block holds a whole number of half periods, within a
 * fraction of a dB otherwise).
 */
export function goertzelAmplitude(
  samples: ArrayLike<number>,
  freq: number,
  start = 0,
  n: number = samples.length - start,
  rate: number = SAMPLE_RATE,
): number {
  return n > 0 ? (2 * Math.sqrt(Math.max(0, goertzelPower(samples, freq, start, n, rate)))) / n : 0;
}

/**
 * The complex DFT value X at `freq` of `samples[start .. start+n-1]`, referred to the block's
 * first sample, written into out[0] (re) and out[1] (im). Returns `out`.
 */
export function goertzelComplex(
  samples: ArrayLike<number>,
  freq: number,
  out: Float64Array,
  start = 0,
  n: number = samples.length - start,
  rate: number = SAMPLE_RATE,
): Float64Array {
  const w = (2 * Math.PI * freq) / rate;
  const cw = Math.cos(w);
  const c = 2 * cw;
  let s1 = 0;
  let s2 = 0;
  const end = start + n;
  for (let i = start; i < end; i++) {
    const s0 = samples[i] + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  // Y = s1 - e^{-jw} s2 ; X = Y e^{-jw(n-1)}
  const yr = s1 - cw * s2;
  const yi = Math.sin(w) * s2;
  const r = -w * (n - 1);
  const cr = Math.cos(r);
  const sr = Math.sin(r);
  out[0] = yr * cr - yi * sr;
  out[1] = yr * sr + yi * cr;
  return out;
}

/**
 * Estimate the frequency (Hz) of the strongest component near `freq` from the phase advance of
 * the Goertzel output between two adjacent sub-blocks of `half` samples each starting at
 * `start`. Unambiguous within +-fs/(2*half) of `freq`. Allocation-free.
 */
export function goertzelFrequency(
  samples: ArrayLike<number>,
  freq: number,
  start = 0,
  half: number = (samples.length - start) >> 1,
  rate: number = SAMPLE_RATE,
): number {
  const w = (2 * Math.PI * freq) / rate;
  const cw = Math.cos(w);
  const sw = Math.sin(w);
  const c = 2 * cw;
  let ar = 0;
  let ai = 0;
  for (let h = 0; h < 2; h++) {
    let s1 = 0;
    let s2 = 0;
    const b = start + h * half;
    for (let i = b; i < b + half; i++) {
      const s0 = samples[i] + c * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    const yr = s1 - cw * s2;
    const yi = sw * s2;
    if (h === 0) {
      ar = yr;
      ai = yi;
    } else {
      // P = Yb * conj(Ya) * e^{-jw*half}; its angle is the excess phase advance d*half.
      const pr = yr * ar + yi * ai;
      const pi = yi * ar - yr * ai;
      const rr = Math.cos(w * half);
      const ri = -Math.sin(w * half);
      const qr = pr * rr - pi * ri;
      const qi = pr * ri + pi * rr;
      const d = Math.atan2(qi, qr) / half;
      return freq + (d * rate) / (2 * Math.PI);
    }
  }
  return freq;
}
