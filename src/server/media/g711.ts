/**
 * G.711 (mu-law, PT 0, and A-law, PT 8) by lookup tables.
 *
 * The tables are built once, when this module is loaded, from the `alawmulaw` package's
 * per-sample functions (`mulaw.encodeSample/decodeSample`, `alaw.encodeSample/decodeSample`), so
 * that library stays the single source of truth for the companding law; everything on the media
 * hot path is then a table look-up per sample, with no allocation.
 *
 * Linear samples are 16-bit two's complement (Int16Array). The encoder tables are indexed by the
 * sample's 16-bit pattern (`sample & 0xffff`), so negative samples need no offset.
 *
 * The ulaw<->alaw transcoding tables are the composition decode-then-encode through the linear
 * tables above (not the G.711 Table 3/4 direct mappings, which differ in a few low-level codes by
 * one step); a round trip ulaw->alaw->ulaw is therefore within one quantisation step.
 */
import { alaw, mulaw } from 'alawmulaw';

/** The mu-law code of silence (linear 0). */
export const ULAW_SILENCE = 0xff;
/** The A-law code of silence (linear +8, the smallest positive level: A-law has no zero). */
export const ALAW_SILENCE = 0xd5;

/** RTP payload types of the two G.711 laws. */
export type G711PayloadType = 0 | 8;
/** RTP payload type of mu-law (PCMU). */
export const PT_PCMU = 0;
/** RTP payload type of A-law (PCMA). */
export const PT_PCMA = 8;

/** mu-law code -> linear sample. */
export const ULAW_TO_LINEAR: Int16Array = new Int16Array(256);
/** A-law code -> linear sample. */
export const ALAW_TO_LINEAR: Int16Array = new Int16Array(256);
/** Linear sample (index `sample & 0xffff`) -> mu-law code. */
export const LINEAR_TO_ULAW: Uint8Array = new Uint8Array(65536);
/** Linear sample (index `sample & 0xffff`) -> A-law code. */
export const LINEAR_TO_ALAW: Uint8Array = new Uint8Array(65536);
/** mu-law code -> A-law code. */
export const ULAW_TO_ALAW: Uint8Array = new Uint8Array(256);
/** A-law code -> mu-law code. */
export const ALAW_TO_ULAW: Uint8Array = new Uint8Array(256);

(function buildTables(): void {
  for (let c = 0; c < 256; c++) {
    ULAW_TO_LINEAR[c] = mulaw.decodeSample(c);
    ALAW_TO_LINEAR[c] = alaw.decodeSample(c);
  }
  for (let i = 0; i < 65536; i++) {
    const s = i >= 32768 ? i - 65536 : i;
    // alawmulaw's mu-law encoder returns ~code as a (possibly negative) JS number: mask it.
    LINEAR_TO_ULAW[i] = mulaw.encodeSample(s) & 0xff;
    LINEAR_TO_ALAW[i] = alaw.encodeSample(s) & 0xff;
  }
  for (let c = 0; c < 256; c++) {
    ULAW_TO_ALAW[c] = LINEAR_TO_ALAW[ULAW_TO_LINEAR[c] & 0xffff];
    ALAW_TO_ULAW[c] = LINEAR_TO_ULAW[ALAW_TO_LINEAR[c] & 0xffff];
  }
})();

function count(n: number | undefined, a: number, b: number): number {
  const m = a < b ? a : b;
  return n === undefined || n > m ? m : n < 0 ? 0 : n;
}

/** Decode mu-law `src` into linear `dst` (n samples, default the shorter length); returns n. */
export function decodeUlaw(src: Uint8Array, dst: Int16Array, n?: number): number {
  const len = count(n, src.length, dst.length);
  const t = ULAW_TO_LINEAR;
  for (let i = 0; i < len; i++) dst[i] = t[src[i]];
  return len;
}

/** Decode A-law `src` into linear `dst` (n samples, default the shorter length); returns n. */
export function decodeAlaw(src: Uint8Array, dst: Int16Array, n?: number): number {
  const len = count(n, src.length, dst.length);
  const t = ALAW_TO_LINEAR;
  for (let i = 0; i < len; i++) dst[i] = t[src[i]];
  return len;
}

/** Encode linear `src` into mu-law `dst` (n samples, default the shorter length); returns n. */
export function encodeUlaw(src: Int16Array, dst: Uint8Array, n?: number): number {
  const len = count(n, src.length, dst.length);
  const t = LINEAR_TO_ULAW;
  for (let i = 0; i < len; i++) dst[i] = t[src[i] & 0xffff];
  return len;
}

/** Encode linear `src` into A-law `dst` (n samples, default the shorter length); returns n. */
export function encodeAlaw(src: Int16Array, dst: Uint8Array, n?: number): number {
  const len = count(n, src.length, dst.length);
  const t = LINEAR_TO_ALAW;
  for (let i = 0; i < len; i++) dst[i] = t[src[i] & 0xffff];
  return len;
}

/** Decode by RTP payload type (0 = mu-law, 8 = A-law); returns the number of samples. */
export function decode(pt: G711PayloadType, src: Uint8Array, dst: Int16Array, n?: number): number {
  return pt === 8 ? decodeAlaw(src, dst, n) : decodeUlaw(src, dst, n);
}

/** Encode by RTP payload type (0 = mu-law, 8 = A-law); returns the number of samples. */
export function encode(pt: G711PayloadType, src: Int16Array, dst: Uint8Array, n?: number): number {
  return pt === 8 ? encodeAlaw(src, dst, n) : encodeUlaw(src, dst, n);
}

/** Transcode mu-law -> A-law (may be in place: `src === dst`); returns the number of bytes. */
export function ulawToAlaw(src: Uint8Array, dst: Uint8Array, n?: number): number {
  const len = count(n, src.length, dst.length);
  const t = ULAW_TO_ALAW;
  for (let i = 0; i < len; i++) dst[i] = t[src[i]];
  return len;
}

/** Transcode A-law -> mu-law (may be in place: `src === dst`); returns the number of bytes. */
export function alawToUlaw(src: Uint8Array, dst: Uint8Array, n?: number): number {
  const len = count(n, src.length, dst.length);
  const t = ALAW_TO_ULAW;
  for (let i = 0; i < len; i++) dst[i] = t[src[i]];
  return len;
}

/** The silence code of a payload type. */
export function silenceCode(pt: G711PayloadType): number {
  return pt === 8 ? ALAW_SILENCE : ULAW_SILENCE;
}
