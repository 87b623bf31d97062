/**
 * Recording a line to a file: 8 kHz mono 16-bit linear PCM, as `.wav` (RIFF, format 1,
 * little-endian, 44-byte header) or `.au` (Sun, encoding 3 = 16-bit linear, big-endian, 32-byte
 * header with the annotation "ctport"). 16-bit linear is used for `.au` too (not mu-law) so a
 * recording keeps everything the line delivered; sox, Audacity and readAudioFile read both.
 *
 * `write()` is called from the media clock (one 160-sample frame every 20 ms): it only copies the
 * samples into a pooled chunk (16 KiB, about one second) and returns; nothing is allocated per
 * frame. A timer (default every second) and bursts of more than four chunks start an asynchronous
 * flush through the FileHandle: the pending bytes go out in one positional writev, then the
 * header is rewritten with the sizes of the data now on disk. Flushes are serialised; the data is
 * always written before the header that counts it, so at any moment the file on disk is a
 * complete, valid file whose header counts at most the data present (at most about one flush
 * interval of audio is missing if the process is killed). Nothing is fsync'ed: a killed process
 * loses nothing the kernel has; a power cut may.
 *
 * `close()` flushes everything, patches the header and closes the handle; `abort()` drops what is
 * still buffered, waits for a flush in progress and closes, so the file ends as it was on disk.
 * Both are idempotent (later calls return the first call's promise) and may be called while a
 * flush is in progress. A failed write (disk full, ...) stops the recording: further samples are
 * dropped, `error` is set and close()/abort()/flush() reject with an AudioFileError
 * ('EAUDIOWRITE'), after closing the handle.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AudioFileError } from './audio-file';

/** Rate of every recording. */
export const RECORD_RATE = 8000;

export type RecordFormat = 'wav' | 'au';

export interface RecorderOptions {
  /** Largest interval between flushes, in ms (default 1000). */
  flushIntervalMs?: number;
  /** Size of the pooled buffers in bytes (default 16384, about one second of audio; even). */
  chunkBytes?: number;
}

export interface RecorderResult {
  /** The file written. */
  file: string;
  /** Samples in the file. */
  samples: number;
  /** Its duration. */
  seconds: number;
  /** Size of the file in bytes, header included. */
  bytes: number;
}

const WAV_HEADER_BYTES = 44;
const AU_HEADER_BYTES = 32;
const AU_ANNOTATION = 'ctport';
/** Largest data size either header can count (32-bit fields; WAV's RIFF size adds 36). */
const MAX_DATA_BYTES = 0xffffffff - 36 - 1;
/** Free chunks kept for reuse; more are released to the garbage collector after a burst. */
const MAX_FREE_CHUNKS = 4;
/** Pending chunks that start a flush before the timer does. */
const BURST_CHUNKS = 4;

interface Chunk {
  buf: Uint8Array;
  /** Bytes filled by write(). */
  fill: number;
  /** Bytes of it already on disk (or being written: see Flush). */
  written: number;
}

function formatOf(file: string): RecordFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.wav') return 'wav';
  if (ext === '.au') return 'au';
  throw new AudioFileError(
    'EAUDIOFORMAT',
    file,
    ext === '' ? 'no extension, so the recording format is unknown (use .wav or .au)' : `cannot record to "${ext}" files (use .wav or .au)`,
  );
}

/** Fill `h` with the header of `format` for `dataBytes` bytes of samples. */
function buildHeader(format: RecordFormat, h: Buffer, dataBytes: number): void {
  if (format === 'wav') {
    h.write('RIFF', 0, 'latin1');
    h.writeUInt32LE(36 + dataBytes, 4);
    h.write('WAVE', 8, 'latin1');
    h.write('fmt ', 12, 'latin1');
    h.writeUInt32LE(16, 16); // fmt chunk size
    h.writeUInt16LE(1, 20); // PCM
    h.writeUInt16LE(1, 22); // channels
    h.writeUInt32LE(RECORD_RATE, 24);
    h.writeUInt32LE(RECORD_RATE * 2, 28); // byte rate
    h.writeUInt16LE(2, 32); // block align
    h.writeUInt16LE(16, 34); // bits per sample
    h.write('data', 36, 'latin1');
    h.writeUInt32LE(dataBytes, 40);
  } else {
    h.writeUInt32BE(0x2e736e64, 0); // ".snd"
    h.writeUInt32BE(AU_HEADER_BYTES, 4); // data offset
    h.writeUInt32BE(dataBytes, 8);
    h.writeUInt32BE(3, 12); // 16-bit linear PCM
    h.writeUInt32BE(RECORD_RATE, 16);
    h.writeUInt32BE(1, 20); // channels
    h.fill(0, 24, AU_HEADER_BYTES);
    h.write(AU_ANNOTATION, 24, 'latin1');
  }
}

function why(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && e.code === 'ENOENT') return 'folder does not exist';
  if (e && (e.code === 'EACCES' || e.code === 'EPERM')) return 'permission denied';
  if (e && e.code === 'ENOSPC') return 'no space left on device';
  if (e && e.code === 'EISDIR') return 'is a folder';
  return e && e.message ? e.message : String(err);
}

/** writev at `position`, looping over short writes. */
async function writeAllv(fh: FileHandle, bufs: Uint8Array[], position: number): Promise<void> {
  let pos = position;
  let list = bufs;
  for (;;) {
    const total = list.reduce((a, b) => a + b.length, 0);
    if (total === 0) return;
    const { bytesWritten } = await fh.writev(list, pos);
    if (bytesWritten >= total) return;
    if (bytesWritten <= 0) throw new Error('write made no progress');
    pos += bytesWritten;
    let skip = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const b of list) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    list = rest;
  }
}

export class Recorder {
  /** The file being written. */
  readonly file: string;
  readonly format: RecordFormat;
  /** Bytes before the samples. */
  readonly headerBytes: number;

  private readonly fh: FileHandle;
  private readonly chunkBytes: number;
  private readonly flushIntervalMs: number;
  private readonly header: Buffer;
  private readonly bigEndian: boolean;
  /** Chunks holding data, oldest first; the last one is being filled. */
  private queue: Chunk[] = [];
  private readonly free: Uint8Array[] = [];
  /** Bytes accepted by write() (all of them, on disk or not). */
  private acceptedBytes = 0;
  /** Bytes of samples on disk. */
  private diskBytes = 0;
  /** Data size the header on disk states. */
  private headerCount = 0;
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private burstQueued = false;
  private accepting = true;
  private finishing: Promise<RecorderResult> | undefined;
  private failure: AudioFileError | undefined;

  private constructor(file: string, format: RecordFormat, fh: FileHandle, opts: RecorderOptions) {
    this.file = file;
    this.format = format;
    this.fh = fh;
    this.headerBytes = format === 'wav' ? WAV_HEADER_BYTES : AU_HEADER_BYTES;
    this.header = Buffer.alloc(this.headerBytes);
    this.bigEndian = format === 'au';
    const chunk = Math.floor(opts.chunkBytes ?? 16384);
    this.chunkBytes = Math.max(320, chunk - (chunk % 2));
    this.flushIntervalMs = Math.max(1, opts.flushIntervalMs ?? 1000);
  }

  /**
   * Create (or truncate) `file` and write the header of an empty recording. The format follows the
   * extension: `.wav` or `.au` (case-insensitive). Rejects with AudioFileError: 'EAUDIOFORMAT'
   * (other extension), 'EAUDIOWRITE' (cannot create or write the file).
   */
  static async open(file: string, opts: RecorderOptions = {}): Promise<Recorder> {
    const format = formatOf(file);
    let fh: FileHandle;
    try {
      fh = await fsp.open(file, 'w');
    } catch (err) {
      throw new AudioFileError('EAUDIOWRITE', file, `cannot create: ${why(err)}`);
    }
    const rec = new Recorder(file, format, fh, opts);
    try {
      buildHeader(format, rec.header, 0);
      await writeAllv(fh, [rec.header], 0);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw new AudioFileError('EAUDIOWRITE', file, `cannot write the header: ${why(err)}`);
    }
    return rec;
  }

  /** Samples accepted so far (on disk or still buffered). */
  get samples(): number {
    return this.acceptedBytes / 2;
  }

  /** Duration of the samples accepted so far. */
  get seconds(): number {
    return this.acceptedBytes / 2 / RECORD_RATE;
  }

  /** Samples on disk and counted by the header. */
  get samplesOnDisk(): number {
    return this.headerCount / 2;
  }

  /** True once close() or abort() was called. */
  get closed(): boolean {
    return this.finishing !== undefined;
  }

  /** The write error that stopped the recording, if any. */
  get error(): AudioFileError | undefined {
    return this.failure;
  }

  /**
   * Append samples (copied; `pcm` may be reused at once). Returns how many were accepted: all of
   * them, or fewer once the file reaches the 4 GiB limit of its header, or 0 after close/abort or a
   * write error. Never blocks and never throws.
   */
  write(pcm: Int16Array, count: number = pcm.length): number {
    if (!this.accepting || this.failure) return 0;
    let n = Math.min(count, pcm.length);
    if (!(n > 0)) return 0;
    const room = Math.floor((MAX_DATA_BYTES - this.acceptedBytes) / 2);
    if (n > room) n = room;
    if (n <= 0) return 0;
    const be = this.bigEndian;
    let i = 0;
    while (i < n) {
      let cur = this.queue.length > 0 ? this.queue[this.queue.length - 1] : undefined;
      if (!cur || cur.fill === cur.buf.length) {
        cur = { buf: this.free.pop() ?? new Uint8Array(this.chunkBytes), fill: 0, written: 0 };
        this.queue.push(cur);
      }
      const b = cur.buf;
      let o = cur.fill;
      const end = Math.min(n, i + ((b.length - o) >> 1));
      if (be) {
        for (; i < end; i++, o += 2) {
          const v = pcm[i];
          b[o] = (v >> 8) & 0xff;
          b[o + 1] = v & 0xff;
        }
      } else {
        for (; i < end; i++, o += 2) {
          const v = pcm[i];
          b[o] = v & 0xff;
          b[o + 1] = (v >> 8) & 0xff;
        }
      }
      cur.fill = o;
    }
    this.acceptedBytes += n * 2;
    this.pendingBytes += n * 2;
    if (this.pendingBytes >= BURST_CHUNKS * this.chunkBytes) {
      if (!this.burstQueued) {
        this.burstQueued = true;
        this.flush().catch(() => undefined);
      }
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush().catch(() => undefined);
      }, this.flushIntervalMs);
      this.timer.unref?.();
    }
    return n;
  }

  /**
   * Write what is buffered and patch the header now (after any flush in progress). Resolves when
   * it is on disk; rejects with the write error that stopped the recording, if any.
   */
  flush(): Promise<void> {
    const p = this.chain.then(() => this.flushNow());
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Flush everything, patch the header, close the file. Idempotent. */
  close(): Promise<RecorderResult> {
    if (!this.finishing) this.finishing = this.finish(false);
    return this.finishing;
  }

  /**
   * Stop at once: samples not yet on disk are dropped; a flush in progress is completed, the header
   * is patched to match and the file is closed. Idempotent; after close() it returns close()'s result.
   */
  abort(): Promise<RecorderResult> {
    if (!this.finishing) this.finishing = this.finish(true);
    return this.finishing;
  }

  private async finish(discard: boolean): Promise<RecorderResult> {
    this.accepting = false;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (discard) {
      await this.chain; // the flush in progress, if any, completes
      this.discardPending();
    }
    try {
      await this.flush();
    } catch {
      // reported below, after the handle is closed
    }
    try {
      await this.fh.close();
    } catch (err) {
      if (!this.failure) this.failure = new AudioFileError('EAUDIOWRITE', this.file, `cannot close: ${why(err)}`);
    }
    if (this.failure) throw this.failure;
    const samples = this.headerCount / 2;
    return { file: this.file, samples, seconds: samples / RECORD_RATE, bytes: this.headerBytes + this.headerCount };
  }

  /** Forget buffered bytes that are not on disk (no flush may be running). */
  private discardPending(): void {
    for (const c of this.queue) this.recycle(c.buf);
    this.queue = [];
    this.acceptedBytes = this.diskBytes;
    this.pendingBytes = 0;
  }

  private recycle(buf: Uint8Array): void {
    if (buf.length === this.chunkBytes && this.free.length < MAX_FREE_CHUNKS) this.free.push(buf);
  }

  private async flushNow(): Promise<void> {
    this.burstQueued = false;
    if (this.failure) throw this.failure;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Snapshot what is filled now; write() may go on appending behind it meanwhile.
    const parts: Uint8Array[] = [];
    const upto: number[] = [];
    let total = 0;
    for (const c of this.queue) {
      upto.push(c.fill);
      if (c.fill > c.written) {
        parts.push(c.buf.subarray(c.written, c.fill));
        total += c.fill - c.written;
      }
    }
    this.pendingBytes -= total;
    try {
      if (total > 0) {
        await writeAllv(this.fh, parts, this.headerBytes + this.diskBytes);
        this.diskBytes += total;
      }
      const snapshot = this.queue.slice(0, upto.length);
      for (let k = 0; k < snapshot.length; k++) snapshot[k].written = upto[k];
      // Release chunks that are full and written (the queue may have grown meanwhile).
      while (this.queue.length > 0) {
        const c = this.queue[0];
        if (c.fill < c.buf.length || c.written < c.fill) break;
        this.queue.shift();
        this.recycle(c.buf);
      }
      if (this.headerCount !== this.diskBytes) {
        buildHeader(this.format, this.header, this.diskBytes);
        await writeAllv(this.fh, [this.header], 0);
        this.headerCount = this.diskBytes;
      }
    } catch (err) {
      this.failure = new AudioFileError('EAUDIOWRITE', this.file, `write failed: ${why(err)}`);
      this.accepting = false;
      for (const c of this.queue) this.recycle(c.buf);
      this.queue = [];
      this.pendingBytes = 0;
      throw this.failure;
    }
  }
}
