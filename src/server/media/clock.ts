/**
 * One media clock for every RTP stream of a process. A single timer is paced from the monotonic
 * clock against the ideal 20 ms schedule; each tick runs every registered stream once (first
 * every receive side, then every send side, so bridges and conferences use the current frame).
 * There is never one setInterval per call. If the process falls far behind (more than
 * MAX_CATCHUP frames), the schedule is re-based instead of bursting.
 */
export const FRAME_MS = 20;
export const FRAME_SAMPLES = 160;
const FRAME_NS = BigInt(FRAME_MS) * 1_000_000n;
const MAX_CATCHUP = 5;

export interface ClockClient {
  /** Receive side of one frame period. */
  rxTick(): void;
  /** Send side of one frame period. */
  txTick(): void;
}

export interface ClockStats {
  ticks: number;
  /** Lateness of each tick against the ideal schedule, in microseconds (last `sampleSize` ticks). */
  lateness: Float64Array;
  latenessCount: number;
  rebases: number;
}

export class MediaClock {
  private readonly clients = new Set<ClockClient>();
  private timer: NodeJS.Timeout | undefined;
  private start = 0n;
  private frames = 0n;
  private readonly sampleSize: number;
  readonly stats: ClockStats;

  private readonly onError: (e: unknown) => void;

  constructor(opts: { latencySamples?: number; onError?: (e: unknown) => void } = {}) {
    this.sampleSize = opts.latencySamples ?? 4096;
    this.onError = opts.onError ?? (() => undefined);
    this.stats = { ticks: 0, lateness: new Float64Array(this.sampleSize), latenessCount: 0, rebases: 0 };
  }

  get size(): number {
    return this.clients.size;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  add(c: ClockClient): void {
    this.clients.add(c);
    if (!this.timer) {
      this.start = process.hrtime.bigint();
      this.frames = 0n;
      this.schedule();
    }
  }

  remove(c: ClockClient): void {
    this.clients.delete(c);
    if (this.clients.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** Stop the clock (all clients are dropped). */
  stop(): void {
    this.clients.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Clear the lateness samples (for benchmarks). */
  resetStats(): void {
    this.stats.ticks = 0;
    this.stats.latenessCount = 0;
    this.stats.rebases = 0;
  }

  private schedule(): void {
    const next = this.start + (this.frames + 1n) * FRAME_NS;
    const wait = Number(next - process.hrtime.bigint()) / 1e6;
    this.timer = setTimeout(() => this.tick(), wait > 0 ? Math.floor(wait) : 0);
  }

  private tick(): void {
    const now = process.hrtime.bigint();
    let due = (now - this.start) / FRAME_NS - this.frames;
    if (due > BigInt(MAX_CATCHUP)) {
      // Far behind (a stall): re-base on now rather than sending a burst.
      this.stats.rebases++;
      this.start = now - FRAME_NS;
      this.frames = 0n;
      due = 1n;
    }
    for (let i = 0n; i < due; i++) {
      this.frames++;
      const ideal = this.start + this.frames * FRAME_NS;
      const late = Number(process.hrtime.bigint() - ideal) / 1000;
      this.stats.lateness[this.stats.latenessCount++ % this.sampleSize] = late;
      this.stats.ticks++;
      for (const c of this.clients) {
        try {
          c.rxTick();
        } catch (e) {
          this.onError(e); // a faulty stream must not stop the clock
        }
      }
      for (const c of this.clients) {
        try {
          c.txTick();
        } catch (e) {
          this.onError(e);
        }
      }
    }
    if (this.clients.size > 0) this.schedule();
    else this.timer = undefined;
  }
}
