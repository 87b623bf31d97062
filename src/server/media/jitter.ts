/**
 * A small jitter buffer for one RTP stream: a ring of fixed slots indexed by sequence number.
 * It reorders, drops late and duplicate packets, fills a lost frame with silence, and holds
 * `depth` frames (default 2, 40 ms) before playing out. No allocation after construction.
 */
const SLOTS = 16;

export class JitterBuffer {
  private readonly payloads: Uint8Array[];
  private readonly seqs = new Int32Array(SLOTS).fill(-1);
  private readonly lens = new Uint16Array(SLOTS);
  private next = -1;
  private buffered = 0;
  private primed = false;
  lost = 0;
  late = 0;
  duplicate = 0;
  received = 0;

  constructor(
    private readonly depth = 2,
    frameBytes = 160,
  ) {
    this.payloads = Array.from({ length: SLOTS }, () => new Uint8Array(frameBytes));
  }

  reset(): void {
    this.seqs.fill(-1);
    this.next = -1;
    this.buffered = 0;
    this.primed = false;
  }

  /** Store a packet's payload. */
  push(seq: number, data: Uint8Array, offset: number, length: number): void {
    this.received++;
    if (this.next < 0) this.next = seq;
    let d = (seq - this.next) & 0xffff;
    if (d >= 0x8000) d -= 0x10000;
    if (d < 0) {
      if (!this.primed && this.buffered === 0) {
        this.next = seq; // a new start before playout began
        d = 0;
      } else {
        this.late++;
        return;
      }
    }
    if (d >= SLOTS) {
      // Far ahead (a gap or a new stream): restart on this packet.
      if (this.primed) this.lost += d - this.buffered;
      this.reset();
      this.next = seq;
      d = 0;
    }
    const slot = seq % SLOTS;
    if (this.seqs[slot] === seq) {
      this.duplicate++;
      return;
    }
    const n = Math.min(length, this.payloads[slot].length);
    this.payloads[slot].set(data.subarray(offset, offset + n));
    this.lens[slot] = n;
    if (this.seqs[slot] === -1) this.buffered++;
    this.seqs[slot] = seq;
    if (!this.primed && this.buffered >= this.depth) this.primed = true;
  }

  /**
   * Take the next frame's payload into `out`. Returns the number of bytes, or 0 when there is
   * nothing to play (not primed yet, underrun, or a lost packet: counted in `lost`).
   */
  pull(out: Uint8Array): number {
    if (!this.primed) return 0;
    if (this.buffered === 0) {
      this.primed = false; // underrun: the stream paused or ended; prime again
      return 0;
    }
    const seq = this.next;
    this.next = (this.next + 1) & 0xffff;
    const slot = seq % SLOTS;
    if (this.seqs[slot] !== seq) {
      this.lost++;
      return 0;
    }
    const n = this.lens[slot];
    out.set(this.payloads[slot].subarray(0, n));
    this.seqs[slot] = -1;
    this.buffered--;
    return n;
  }
}
