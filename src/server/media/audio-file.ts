/**
 * Reading audio files for `play`: every supported file becomes 8 kHz mono 16-bit linear PCM
 * (an Int16Array), the format of a line.
 *
 * Formats, chosen by the file's extension (case-insensitive):
 *
 * - `.au`, `.snd`: Sun/NeXT audio. Encodings 1 (mu-law), 27 (A-law), 2 (8-bit signed linear),
 *   3 (16-bit linear), 4 (24-bit), 5 (32-bit), 6 (32-bit float), 7 (64-bit float); big-endian as
 *   the format prescribes (the little-endian DEC variant, magic `.sd\0`/"dns.", is read too). A data
 *   size of 0xffffffff ("unknown") or one beyond the end of the file means "to the end of the file".
 * - `.wav`: RIFF/RIFX WAVE, parsed with the `wavefile` package. Format 1 (PCM: 8-bit unsigned,
 *   16, 24 or 32-bit signed), 3 (IEEE float, 32 or 64-bit), 6 (A-law), 7 (mu-law) and
 *   WAVE_FORMAT_EXTENSIBLE (0xfffe) wrapping any of these.
 * - `.ul`, `.ulaw`, `.mu`: headerless 8 kHz mu-law. `.al`, `.alaw`: headerless 8 kHz A-law.
 *   `.sln`, `.raw`: headerless 8 kHz 16-bit signed little-endian (Asterisk's signed linear).
 *
 * Any sample rate and channel count is accepted: channels are averaged to mono, then the signal
 * is resampled to 8 kHz by a windowed-sinc (Kaiser, ~80 dB stop band) polyphase filter whose
 * low-pass keeps 0-3.4 kHz and removes everything at and above 4 kHz (for rates above 8 kHz) or
 * above the source's own Nyquist frequency (for rates below). wavefile's own `toSampleRate` is not
 * used: it took over a second for 30 s of 44.1 kHz stereo; this one takes a few tens of ms.
 *
 * Files are read with fs.promises only. Every failure is an AudioFileError whose message names the
 * file and the reason; `code` is 'EAUDIOREAD' (missing, unreadable, a folder), 'EAUDIOFORMAT' (not
 * a file of the format its extension claims, an unsupported encoding or rate, an unknown
 * extension) or 'EAUDIOTOOBIG' (larger than `maxBytes`).
 *
 * AudioCache keeps decoded files in memory (LRU within a byte budget), keyed by path, mtime and
 * size, so a prompt played on many lines is read and converted once, and an edited file is
 * re-read.
 */
import { promises as fsp } from 'node:fs';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { WaveFile } from 'wavefile';
import { CtError } from '../../core/errors';
import { ALAW_TO_LINEAR, ULAW_TO_LINEAR } from './g711';

/** The rate every file is converted to. */
export const LINE_RATE = 8000;

/** Default largest file readAudioFile accepts (bytes). */
export const DEFAULT_MAX_AUDIO_BYTES = 128 * 1024 * 1024;

/** An audio file that could not be read or converted. `file` is the path as given. */
export class AudioFileError extends CtError {
  readonly file: string;
  constructor(code: string, file: string, reason: string) {
    super(code, `audio file ${file}: ${reason}`);
    this.file = file;
  }
}

export interface ReadAudioOptions {
  /** Files larger than this are refused with 'EAUDIOTOOBIG' (default 128 MiB). */
  maxBytes?: number;
}

/** File extensions readAudioFile understands (lower case, with the dot). */
export const AUDIO_EXTENSIONS: readonly string[] = ['.au', '.snd', '.wav', '.ul', '.ulaw', '.mu', '.al', '.alaw', '.sln', '.raw'];

// ------------------------------------------------------------------ sample decoding

/** How the samples of a file are stored. */
type Encoding =
  | 'ulaw'
  | 'alaw'
  | 'u8' // unsigned 8-bit (WAV)
  | 's8' // signed 8-bit (Sun)
  | 's16'
  | 's24'
  | 's32'
  | 'f32'
  | 'f64';

const BYTES: Record<Encoding, number> = { ulaw: 1, alaw: 1, u8: 1, s8: 1, s16: 2, s24: 3, s32: 4, f32: 4, f64: 8 };

interface SampleFormat {
  encoding: Encoding;
  bigEndian: boolean;
  channels: number;
  rate: number;
}

/** Decode interleaved frames of `data` to one mono channel, scaled to the 16-bit range. */
function decodeToMono(data: Uint8Array, f: SampleFormat): Float32Array {
  const width = BYTES[f.encoding];
  const ch = f.channels;
  const frameBytes = width * ch;
  const frames = Math.floor(data.length / frameBytes);
  const out = new Float32Array(frames);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const le = !f.bigEndian;
  const inv = 1 / ch;
  let o = 0;
  switch (f.encoding) {
    case 'ulaw':
    case 'alaw': {
      const t = f.encoding === 'ulaw' ? ULAW_TO_LINEAR : ALAW_TO_LINEAR;
      if (ch === 1) {
        for (let i = 0; i < frames; i++) out[i] = t[data[i]];
      } else {
        for (let i = 0; i < frames; i++) {
          let s = 0;
          for (let c = 0; c < ch; c++) s += t[data[o++]];
          out[i] = s * inv;
        }
      }
      break;
    }
    case 'u8':
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < ch; c++) s += data[o++] - 128;
        out[i] = s * inv * 256;
      }
      break;
    case 's8':
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < ch; c++) s += dv.getInt8(o++);
        out[i] = s * inv * 256;
      }
      break;
    case 's16':
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < ch; c++, o += 2) s += dv.getInt16(o, le);
        out[i] = s * inv;
      }
      break;
    case 's24':
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < ch; c++, o += 3) {
          const v = le
            ? data[o] | (data[o + 1] << 8) | (data[o + 2] << 16)
            : data[o + 2] | (data[o + 1] << 8) | (data[o] << 16);
          s += (v << 8) >> 8; // sign-extend 24 -> 32 bits
        }
        out[i] = (s * inv) / 256;
      }
      break;
    case 's32':
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < ch; c++, o += 4) s += dv.getInt32(o, le);
        out[i] = (s * inv) / 65536;
      }
      break;
    case 'f32':
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < ch; c++, o += 4) s += dv.getFloat32(o, le);
        out[i] = s * inv * 32768;
      }
      break;
    case 'f64':
      for (let i = 0; i < frames; i++) {
        let s = 0;
        for (let c = 0; c < ch; c++, o += 8) s += dv.getFloat64(o, le);
        out[i] = s * inv * 32768;
      }
      break;
  }
  return out;
}

/** Fast path: mono 16-bit or G.711 at 8 kHz needs no float stage. */
function decodeDirect(data: Uint8Array, f: SampleFormat): Int16Array | undefined {
  if (f.channels !== 1 || f.rate !== LINE_RATE) return undefined;
  if (f.encoding === 'ulaw' || f.encoding === 'alaw') {
    const t = f.encoding === 'ulaw' ? ULAW_TO_LINEAR : ALAW_TO_LINEAR;
    const out = new Int16Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = t[data[i]];
    return out;
  }
  if (f.encoding === 's16') {
    const n = data.length >> 1;
    const out = new Int16Array(n);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const le = !f.bigEndian;
    for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, le);
    return out;
  }
  return undefined;
}

function toInt16(x: Float32Array): Int16Array {
  const out = new Int16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = Math.round(x[i]);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

// ------------------------------------------------------------------ resampling

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Zeroth-order modified Bessel function of the first kind (for the Kaiser window). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 50; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

interface Polyphase {
  /** Number of phases (output positions per input sample, before reduction). */
  phases: number;
  /** Taps per phase. */
  taps: number;
  /** Taps of phase p start at p * taps; tap j weighs input sample floor(t) - half + 1 + j. */
  coef: Float32Array;
  half: number;
}

/** Stop-band attenuation of the resampler's low-pass (dB) and its Kaiser beta. */
const STOPBAND_DB = 80;
const KAISER_BETA = 0.1102 * (STOPBAND_DB - 8.7);
/** Pass band edge and stop band edge as fractions of the lower of the two rates. */
const PASS_FRACTION = 3400 / 8000;
const STOP_FRACTION = 4000 / 8000;
/** Most phases a table may have; rarer ratios are rounded to the nearest of these many phases. */
const MAX_PHASES = 1024;

const polyphaseCache = new Map<number, Polyphase>();

/** The polyphase filter converting `rate` to 8 kHz (cached per rate). */
function polyphaseFor(rate: number): Polyphase {
  const cached = polyphaseCache.get(rate);
  if (cached) return cached;
  const g = gcd(LINE_RATE, rate);
  const phases = Math.min(LINE_RATE / g, MAX_PHASES);
  const low = Math.min(rate, LINE_RATE);
  // Cut-off (the -6 dB point) midway in the transition band, as a fraction of the input rate.
  const fc = ((PASS_FRACTION + STOP_FRACTION) / 2) * (low / rate);
  const transition = ((STOP_FRACTION - PASS_FRACTION) * low) / rate; // cycles per input sample
  const length = Math.ceil((STOPBAND_DB - 7.95) / (2.285 * 2 * Math.PI * transition)) + 1;
  const half = Math.max(2, Math.ceil(length / 2));
  const taps = 2 * half;
  const coef = new Float32Array(phases * taps);
  const i0beta = besselI0(KAISER_BETA);
  for (let p = 0; p < phases; p++) {
    const frac = p / phases;
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const d = j - half + 1 - frac; // input sample position relative to the output instant
      const r = d / half;
      const w = Math.abs(r) >= 1 ? 0 : besselI0(KAISER_BETA * Math.sqrt(1 - r * r)) / i0beta;
      const x = 2 * fc * d;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const v = 2 * fc * sinc * w;
      coef[p * taps + j] = v;
      sum += v;
    }
    // Unity gain at DC for every phase.
    for (let j = 0; j < taps; j++) coef[p * taps + j] /= sum;
  }
  const pp: Polyphase = { phases, taps, coef, half };
  if (polyphaseCache.size > 16) polyphaseCache.clear();
  polyphaseCache.set(rate, pp);
  return pp;
}

/**
 * Resample mono `x` at `rate` Hz to 8 kHz with an anti-aliasing (or anti-imaging) low-pass.
 * Exported for tests and for other media code.
 */
export function resampleTo8k(x: Float32Array, rate: number): Int16Array {
  if (rate === LINE_RATE) return toInt16(x);
  const n = x.length;
  const outLen = Math.ceil((n * LINE_RATE) / rate);
  const out = new Int16Array(outLen);
  if (n === 0) return out;
  const { phases, taps, coef, half } = polyphaseFor(rate);
  // Position of output sample i in input samples: i * rate / 8000 = i * step (exact in integers).
  const g = gcd(LINE_RATE, rate);
  const L = LINE_RATE / g;
  const M = rate / g;
  const exact = L <= MAX_PHASES;
  for (let i = 0; i < outLen; i++) {
    let base: number;
    let p: number;
    if (exact) {
      const num = i * M; // < 2^53 for any realistic file
      base = Math.floor(num / L);
      p = num - base * L;
    } else {
      const t = (i * rate) / LINE_RATE;
      base = Math.floor(t);
      p = Math.round((t - base) * phases);
      if (p === phases) {
        p = 0;
        base++;
      }
    }
    const first = base - half + 1;
    const c0 = p * taps;
    let acc = 0;
    if (first >= 0 && first + taps <= n) {
      for (let j = 0; j < taps; j++) acc += x[first + j] * coef[c0 + j];
    } else {
      const jFrom = first < 0 ? -first : 0;
      const jTo = Math.min(taps, n - first);
      for (let j = jFrom; j < jTo; j++) acc += x[first + j] * coef[c0 + j];
    }
    const v = Math.round(acc);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

function convert(data: Uint8Array, f: SampleFormat): Int16Array {
  return decodeDirect(data, f) ?? resampleTo8k(decodeToMono(data, f), f.rate);
}

// ------------------------------------------------------------------ containers

function checkLayout(file: string, what: string, channels: number, rate: number): void {
  if (!Number.isInteger(channels) || channels < 1 || channels > 64) {
    throw new AudioFileError('EAUDIOFORMAT', file, `${what} has an invalid channel count (${channels})`);
  }
  if (!Number.isInteger(rate) || rate < 1000 || rate > 768000) {
    throw new AudioFileError('EAUDIOFORMAT', file, `${what} has an unsupported sample rate (${rate} Hz; 1000 to 768000 Hz are accepted)`);
  }
}

const SUN_MAGIC = 0x2e736e64; // ".snd"
const SUN_MAGIC_LE = 0x646e732e; // ".snd" read as little-endian: the DEC variant
const SUN_ENCODINGS: Record<number, Encoding> = { 1: 'ulaw', 2: 's8', 3: 's16', 4: 's24', 5: 's32', 6: 'f32', 7: 'f64', 27: 'alaw' };
const SUN_ENCODING_NAMES: Record<number, string> = {
  8: 'fragmented sample data',
  10: 'DSP program',
  11: '8-bit fixed point',
  12: '16-bit fixed point',
  13: '24-bit fixed point',
  14: '32-bit fixed point',
  18: '16-bit linear with emphasis',
  19: '16-bit linear compressed',
  20: '16-bit linear with emphasis and compression',
  21: 'Music Kit DSP commands',
  23: 'G.721 ADPCM',
  24: 'G.722 ADPCM',
  25: 'G.723 3-bit ADPCM',
  26: 'G.723 5-bit ADPCM',
};

function parseSun(file: string, buf: Uint8Array): Int16Array {
  if (buf.length < 24) throw new AudioFileError('EAUDIOFORMAT', file, `not a Sun .au file (only ${buf.length} bytes, shorter than a header)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getUint32(0, false);
  if (magic !== SUN_MAGIC && magic !== SUN_MAGIC_LE) throw new AudioFileError('EAUDIOFORMAT', file, 'not a Sun .au file (bad magic)');
  const le = magic === SUN_MAGIC_LE;
  const offset = dv.getUint32(4, le);
  const size = dv.getUint32(8, le);
  const code = dv.getUint32(12, le);
  const rate = dv.getUint32(16, le);
  const channels = dv.getUint32(20, le);
  if (offset < 24 || offset > buf.length) {
    throw new AudioFileError('EAUDIOFORMAT', file, `corrupt Sun .au header (data offset ${offset}, file size ${buf.length})`);
  }
  const encoding = SUN_ENCODINGS[code];
  if (!encoding) {
    const name = SUN_ENCODING_NAMES[code];
    throw new AudioFileError('EAUDIOFORMAT', file, `unsupported Sun .au encoding: ${name ? `${name} (encoding ${code})` : `encoding ${code}`}`);
  }
  checkLayout(file, 'Sun .au file', channels, rate);
  const avail = buf.length - offset;
  const len = size === 0xffffffff || size > avail ? avail : size;
  return convert(buf.subarray(offset, offset + len), { encoding, bigEndian: !le, channels, rate });
}

const WAV_FORMAT_NAMES: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0040: 'G.721 ADPCM',
  0x0050: 'MPEG',
  0x0055: 'MP3',
  0x0064: 'G.726 ADPCM',
  0x0092: 'AC-3',
  0x1600: 'AAC',
  0xf1ac: 'FLAC',
};

interface WavFmt {
  audioFormat: number;
  numChannels: number;
  sampleRate: number;
  blockAlign: number;
  bitsPerSample: number;
  /** First 4 bytes of the WAVE_FORMAT_EXTENSIBLE sub-format GUID (the format code). */
  subformat?: number[];
}

function wavEncodingName(format: number, bits: number): string {
  const name =
    format === 1 ? `${bits}-bit PCM` : format === 3 ? `${bits}-bit float` : format === 6 ? `${bits}-bit A-law` : format === 7 ? `${bits}-bit mu-law` : WAV_FORMAT_NAMES[format];
  return `${name ?? 'unknown encoding'} (format ${format})`;
}

function parseWav(file: string, buf: Uint8Array): Int16Array {
  const head = buf.length >= 4 ? String.fromCharCode(buf[0], buf[1], buf[2], buf[3]) : '';
  if (head === 'RF64') throw new AudioFileError('EAUDIOFORMAT', file, 'RF64 (64-bit WAV) files are not supported');
  if (buf.length < 12 || (head !== 'RIFF' && head !== 'RIFX')) {
    throw new AudioFileError('EAUDIOFORMAT', file, 'not a WAV file (no RIFF header)');
  }
  const wav = new WaveFile();
  try {
    wav.fromBuffer(buf, true);
  } catch (e) {
    throw new AudioFileError('EAUDIOFORMAT', file, `not a valid WAV file (${(e as Error).message})`);
  }
  const fmt = wav.fmt as WavFmt;
  const data = (wav.data as { samples?: Uint8Array }).samples ?? new Uint8Array(0);
  let format = fmt.audioFormat;
  const bits = fmt.bitsPerSample;
  if (format === 0xfffe) {
    const sub = fmt.subformat;
    if (!sub || sub.length === 0) throw new AudioFileError('EAUDIOFORMAT', file, 'WAVE_FORMAT_EXTENSIBLE header without a sub-format');
    format = sub[0] & 0xffff;
  }
  let encoding: Encoding | undefined;
  if (format === 1) {
    encoding = bits === 8 ? 'u8' : bits === 16 ? 's16' : bits === 24 ? 's24' : bits === 32 ? 's32' : undefined;
  } else if (format === 3) {
    encoding = bits === 32 ? 'f32' : bits === 64 ? 'f64' : undefined;
  } else if ((format === 6 || format === 7) && bits === 8) {
    encoding = format === 6 ? 'alaw' : 'ulaw';
  }
  if (!encoding) throw new AudioFileError('EAUDIOFORMAT', file, `unsupported WAV encoding: ${wavEncodingName(format, bits)}`);
  checkLayout(file, 'WAV file', fmt.numChannels, fmt.sampleRate);
  if (fmt.blockAlign && fmt.blockAlign !== BYTES[encoding] * fmt.numChannels) {
    throw new AudioFileError(
      'EAUDIOFORMAT',
      file,
      `corrupt WAV header (block align ${fmt.blockAlign} for ${fmt.numChannels} channel(s) of ${BYTES[encoding]} byte(s))`,
    );
  }
  return convert(data, { encoding, bigEndian: wav.container === 'RIFX', channels: fmt.numChannels, rate: fmt.sampleRate });
}

function parseRaw(buf: Uint8Array, encoding: Encoding): Int16Array {
  return convert(buf, { encoding, bigEndian: false, channels: 1, rate: LINE_RATE });
}

/** Convert the bytes of a file (its name picks the format) to 8 kHz mono 16-bit linear. */
export function decodeAudio(file: string, buf: Uint8Array): Int16Array {
  const ext = path.extname(file).toLowerCase();
  switch (ext) {
    case '.au':
    case '.snd':
      return parseSun(file, buf);
    case '.wav':
      return parseWav(file, buf);
    case '.ul':
    case '.ulaw':
    case '.mu':
      return parseRaw(buf, 'ulaw');
    case '.al':
    case '.alaw':
      return parseRaw(buf, 'alaw');
    case '.sln':
    case '.raw':
      return parseRaw(buf, 's16');
    default:
      throw new AudioFileError(
        'EAUDIOFORMAT',
        file,
        ext === '' ? `no extension, so the format is unknown (use one of ${AUDIO_EXTENSIONS.join(' ')})` : `unknown audio extension "${ext}" (use one of ${AUDIO_EXTENSIONS.join(' ')})`,
      );
  }
}

function readError(file: string, err: unknown): AudioFileError {
  const e = err as NodeJS.ErrnoException;
  const why =
    e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.code === 'EISDIR' ? 'is a folder, not a file' : e.message;
  const out = new AudioFileError('EAUDIOREAD', file, `cannot read: ${why}`);
  (out as { cause?: unknown }).cause = err;
  return out;
}

function checkExtension(file: string): void {
  const ext = path.extname(file).toLowerCase();
  if (!AUDIO_EXTENSIONS.includes(ext)) decodeAudio(file, new Uint8Array(0)); // throws the message
}

/** Read a file through a handle: its stat and its bytes come from the same inode. */
async function readWithStat(file: string, maxBytes: number): Promise<{ stat: Stats; bytes: Buffer }> {
  let fh: import('node:fs/promises').FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    throw readError(file, err);
  }
  try {
    let stat: Stats;
    let bytes: Buffer;
    try {
      stat = await fh.stat();
      if (stat.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
      if (!stat.isFile()) throw new Error('not a regular file');
    } catch (err) {
      throw readError(file, err);
    }
    if (stat.size > maxBytes) {
      throw new AudioFileError('EAUDIOTOOBIG', file, `too large (${stat.size} bytes; the limit is ${maxBytes})`);
    }
    try {
      bytes = await fh.readFile();
    } catch (err) {
      throw readError(file, err);
    }
    if (bytes.length > maxBytes) {
      throw new AudioFileError('EAUDIOTOOBIG', file, `too large (${bytes.length} bytes; the limit is ${maxBytes})`);
    }
    return { stat, bytes };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * Read an audio file as 8 kHz mono 16-bit linear samples. Rejects with AudioFileError
 * ('EAUDIOREAD', 'EAUDIOFORMAT', 'EAUDIOTOOBIG').
 */
export async function readAudioFile(file: string, opts: ReadAudioOptions = {}): Promise<Int16Array> {
  return (await readAudioFileWithStat(file, opts)).samples;
}

async function readAudioFileWithStat(file: string, opts: ReadAudioOptions): Promise<{ samples: Int16Array; stat: Stats }> {
  if (typeof file !== 'string' || file.length === 0) throw new AudioFileError('EAUDIOREAD', String(file), 'no file name given');
  checkExtension(file); // before touching the disk
  const { stat, bytes } = await readWithStat(file, opts.maxBytes ?? DEFAULT_MAX_AUDIO_BYTES);
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { samples: decodeAudio(file, u8), stat };
}

// ------------------------------------------------------------------ cache

export interface AudioCacheOptions {
  /** Most bytes of decoded samples kept (default 32 MiB, about 35 minutes of audio). */
  maxBytes?: number;
  /** Passed to readAudioFile. */
  maxFileBytes?: number;
}

interface CacheEntry {
  key: string;
  samples: Int16Array;
}

/**
 * Decoded audio files in memory, least recently used dropped first once `maxBytes` is exceeded.
 * `get(path)` stats the file each time; a change of mtime or size reads it again. Concurrent gets
 * of the same file share one read. Failures are not cached.
 *
 * The returned arrays are shared between callers: treat them as read-only.
 */
export class AudioCache {
  readonly maxBytes: number;
  private readonly maxFileBytes: number;
  /** path -> entry, in least-recently-used order (Map iteration order). */
  private readonly entries = new Map<string, CacheEntry>();
  private readonly loading = new Map<string, Promise<Int16Array>>();
  private used = 0;
  private hitCount = 0;
  private missCount = 0;

  constructor(opts: AudioCacheOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
    this.maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_AUDIO_BYTES;
  }

  /** Samples of `file` (8 kHz mono 16-bit), from memory when the file has not changed. */
  async get(file: string): Promise<Int16Array> {
    checkExtension(file);
    let st: Stats;
    try {
      st = await fsp.stat(file);
    } catch (err) {
      this.drop(file);
      throw readError(file, err);
    }
    const key = `${st.mtimeMs}:${st.size}:${st.ino}`;
    const hit = this.entries.get(file);
    if (hit && hit.key === key) {
      this.entries.delete(file); // move to the most recently used end
      this.entries.set(file, hit);
      this.hitCount++;
      return hit.samples;
    }
    const loadKey = `${file}\0${key}`;
    const pending = this.loading.get(loadKey);
    if (pending) return pending;
    this.missCount++;
    const p = (async () => {
      try {
        const { samples, stat } = await readAudioFileWithStat(file, { maxBytes: this.maxFileBytes });
        this.store(file, `${stat.mtimeMs}:${stat.size}:${stat.ino}`, samples);
        return samples;
      } finally {
        this.loading.delete(loadKey);
      }
    })();
    this.loading.set(loadKey, p);
    return p;
  }

  /** Forget one file, or everything. */
  clear(file?: string): void {
    if (file === undefined) {
      this.entries.clear();
      this.used = 0;
    } else {
      this.drop(file);
    }
  }

  /** Numbers for logs and tests. */
  get stats(): { files: number; bytes: number; hits: number; misses: number } {
    return { files: this.entries.size, bytes: this.used, hits: this.hitCount, misses: this.missCount };
  }

  private drop(file: string): void {
    const e = this.entries.get(file);
    if (e) {
      this.entries.delete(file);
      this.used -= e.samples.byteLength;
    }
  }

  private store(file: string, key: string, samples: Int16Array): void {
    this.drop(file);
    if (samples.byteLength > this.maxBytes) return;
    this.entries.set(file, { key, samples });
    this.used += samples.byteLength;
    for (const [f, e] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(f);
      this.used -= e.samples.byteLength;
    }
  }
}
