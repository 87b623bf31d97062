/**
 * One media clock for every RTP stream of a process. A single timer is paced from the monotonic
 * clock against the ideal schedule; there is never one setInterval per call.
 *
 * The 20 ms frame period is cut into `slots` equal slots (10 by default, 2 ms each) and every
 * client is given the least-loaded slot when it is added. The clock wakes once per slot and runs
 * that slot's clients (first every receive side, then every send side). So each stream still
 * sends one frame every 20 ms on its own exact schedule (frame k of a client in slot s is due at
 * start + k * 20 ms + s * 20/slots ms), but the work of N streams is spread over the period
 * instead of being done in one burst: the last packet of a burst of 400 would otherwise leave
 * several ms after the first, and the replies from the far ends would come back as one burst too.
 *
 * Bridges and conferences read their partners' latest received frame, which each partner
 * refreshes once per 20 ms in its own slot, so each received frame is passed on exactly once.
 * The timer is not the only way in: `poll()` (called after each received RTP packet) runs the
 * slot ticks that have fallen due, so frames go out on time even while the event loop works
 * through a burst of received packets (timers only run between I/O batches).
 *
 * If the process falls far behind (more than MAX_CATCHUP frames), the schedule is re-based
 * instead of bursting.
 */
export const FRAME_MS = 20;
export const FRAME_SAMPLES = 160;
const FRAME_NS = BigInt(FRAME_MS) * 1_000_000n;
const MAX_CATCHUP = 5;
export const DEFAULT_SLOTS = 10;

export interface ClockClient {
  /** Receive side of one frame period. */
  rxTick(): void;
  /** Send side of one frame period. */
  txTick(): void;
}

export interface ClockStats {
  /** Slot ticks run (each runs one slot's clients once; slots without clients are skipped). */
  ticks: number;
  /** Lateness of each slot tick against its ideal time, in microseconds (last `sampleSize` ticks). */
  lateness: Float64Array;
  latenessCount: number;
  rebases: number;
}

export class MediaClock {
  /** Clients of each slot. */
  private readonly slotClients: Set<ClockClient>[];
  private readonly slotIndex = new Map<ClockClient, number>();
  private timer: NodeJS.Timeout | undefined;
  /** performance.now() at which the next slot with clients falls due (Infinity when stopped). */
  private nextDueMs = Infinity;
  private ticking = false;
  private start = 0n;
  /** Slot ticks done since `start`. */
  private done = 0n;
  private readonly slotNs: bigint;
  /** `slots` as a bigint, for the schedule arithmetic. */
  private readonly slotCount: bigint;
  private readonly sampleSize: number;
  readonly slots: number;
  readonly stats: ClockStats;
  /** process.hrtime.bigint() time at which the slot tick now running was due (for probes). */
  ideal = 0n;

  private readonly onError: (e: unknown) => void;

  constructor(opts: { latencySamples?: number; slots?: number; onError?: (e: unknown) => void } = {}) {
    const slots = opts.slots ?? DEFAULT_SLOTS;
    if (!Number.isInteger(slots) || slots < 1 || slots > 20) throw new RangeError(`MediaClock slots must be an integer from 1 to 20, not ${slots}`);
    this.slots = slots;
    this.slotCount = BigInt(slots);
    this.slotNs = FRAME_NS / this.slotCount;
    this.slotClients = Array.from({ length: slots }, () => new Set<ClockClient>());
    this.sampleSize = opts.latencySamples ?? 4096;
    this.onError = opts.onError ?? (() => undefined);
    this.stats = { ticks: 0, lateness: new Float64Array(this.sampleSize), latenessCount: 0, rebases: 0 };
  }

  get size(): number {
    return this.slotIndex.size;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  /** All clients, slot by slot. */
  get clients(): ClockClient[] {
    return this.slotClients.flatMap((s) => [...s]);
  }

  /** The slot (0..slots-1) a client was given, or undefined when it is not on this clock. */
  slotOf(c: ClockClient): number | undefined {
    return this.slotIndex.get(c);
  }

  add(c: ClockClient): void {
    if (this.slotIndex.has(c)) return;
    let best = 0;
    for (let s = 1; s < this.slots; s++) if (this.slotClients[s].size < this.slotClients[best].size) best = s;
    this.slotClients[best].add(c);
    this.slotIndex.set(c, best);
    if (!this.timer && !this.ticking) {
      this.start = process.hrtime.bigint();
      this.done = 0n;
      this.schedule();
    }
  }

  remove(c: ClockClient): void {
    const s = this.slotIndex.get(c);
    if (s === undefined) return;
    this.slotIndex.delete(c);
    this.slotClients[s].delete(c);
    if (this.slotIndex.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.nextDueMs = Infinity;
    }
  }

  /** Stop the clock (all clients are dropped). */
  stop(): void {
    for (const s of this.slotClients) s.clear();
    this.slotIndex.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.nextDueMs = Infinity;
  }

  /** Clear the lateness samples (for benchmarks). */
  resetStats(): void {
    this.stats.ticks = 0;
    this.stats.latenessCount = 0;
    this.stats.rebases = 0;
  }

  private schedule(): void {
    // Wake for the next slot that has clients (a lone call does not wake the process 500 times a second).
    const slots = this.slotCount;
    let k = 1n;
    while (k < slots && this.slotClients[Number((this.done + k) % slots)].size === 0) k++;
    const next = this.start + (this.done + k) * this.slotNs;
    const wait = Number(next - process.hrtime.bigint()) / 1e6;
    this.nextDueMs = performance.now() + wait;
    this.timer = setTimeout(this.onTimer, wait > 0 ? Math.floor(wait) : 0);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.tick();
  };

  /**
   * Run the slot ticks that are due now, if any (cheap when none is: one performance.now()).
   * Called after each received packet; a no-op while a tick is running or the clock is stopped.
   */
  readonly poll = (): void => {
    if (this.ticking || performance.now() < this.nextDueMs) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.tick();
  };

  private tick(): void {
    this.ticking = true;
    try {
      this.runDue();
    } finally {
      this.ticking = false;
    }
    if (this.slotIndex.size > 0) this.schedule();
    else {
      this.timer = undefined;
      this.nextDueMs = Infinity;
    }
  }

  private runDue(): void {
    const slots = this.slotCount;
    const now = process.hrtime.bigint();
    let due = (now - this.start) / this.slotNs - this.done;
    if (due > BigInt(MAX_CATCHUP) * slots) {
      // Far behind (a stall): re-base on now rather than sending a burst. One whole period is
      // run at once (each client sends one frame now), then the schedule goes on from now with
      // every client in its place in the period.
      this.stats.rebases++;
      this.start = now - (this.done + slots) * this.slotNs;
      due = slots;
    }
    for (let i = 0n; i < due; i++) {
      this.done++;
      const set = this.slotClients[Number(this.done % slots)];
      if (set.size === 0) continue;
      const ideal = this.start + this.done * this.slotNs;
      this.ideal = ideal;
      const late = Number(process.hrtime.bigint() - ideal) / 1000;
      this.stats.lateness[this.stats.latenessCount++ % this.sampleSize] = late;
      this.stats.ticks++;
      for (const c of set) {
        try {
          c.rxTick();
        } catch (e) {
          this.onError(e); // a faulty stream must not stop the clock
        }
      }
      for (const c of set) {
        try {
          c.txTick();
        } catch (e) {
          this.onError(e);
        }
      }
    }
  }
}
