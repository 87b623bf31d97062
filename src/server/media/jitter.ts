/**
 * A small jitter buffer for one RTP stream: a ring of slots indexed by sequence number. It
 * reorders, drops late and duplicate packets, fills a lost packet with silence, and holds about
 * `depth` frames (default 2, 40 ms) before playing out. Packets may carry any duration (10, 20,
 * 30 ms ...): pull() always takes exactly one frame of samples, spanning packets as needed.
 * No allocation after construction.
 */
const SLOTS = 32;
/** Largest payload kept per packet (160 ms of G.711). */
const MAX_PAYLOAD = 1280;

export class JitterBuffer {
  private readonly payloads: Uint8Array[];
  private readonly seqs = new Int32Array(SLOTS).fill(-1);
  private readonly lens = new Uint16Array(SLOTS);
  private next = -1;
  private buffered = 0;
  private bufferedBytes = 0;
  private primed = false;
  /** The packet being played out, and how far. */
  private cur = -1;
  private curPos = 0;
  private lastLen = 160;
  /** Byte that decodes to silence for the stream's codec (0xff mu-law, 0xd5 A-law). */
  silenceByte = 0xff;
  lost = 0;
  late = 0;
  duplicate = 0;
  received = 0;

  constructor(
    private readonly depth = 2,
    private readonly frameBytes = 160,
  ) {
    this.payloads = Array.from({ length: SLOTS }, () => new Uint8Array(MAX_PAYLOAD));
  }

  reset(): void {
    this.seqs.fill(-1);
    this.next = -1;
    this.buffered = 0;
    this.bufferedBytes = 0;
    this.primed = false;
    this.cur = -1;
    this.curPos = 0;
  }

  /** Store a packet's payload. */
  push(seq: number, data: Uint8Array, offset: number, length: number): void {
    this.received++;
    if (length <= 0) return;
    if (this.next < 0) this.next = seq;
    let d = (seq - this.next) & 0xffff;
    if (d >= 0x8000) d -= 0x10000;
    if (d < 0) {
      if (!this.primed && this.buffered === 0 && this.cur < 0) {
        this.next = seq; // a new start before playout began
        d = 0;
      } else {
        this.late++;
        return;
      }
    }
    if (d >= SLOTS) {
      // Far ahead (a long gap or a new stream): restart on this packet.
      if (this.primed) this.lost += Math.max(0, d - this.buffered);
      this.reset();
      this.next = seq;
      d = 0;
    }
    const slot = seq % SLOTS;
    if (this.seqs[slot] === seq) {
      this.duplicate++;
      return;
    }
    const n = Math.min(length, MAX_PAYLOAD);
    this.payloads[slot].set(data.subarray(offset, offset + n));
    if (this.seqs[slot] === -1) this.buffered++;
    else this.bufferedBytes -= this.lens[slot];
    this.lens[slot] = n;
    this.bufferedBytes += n;
    this.seqs[slot] = seq;
    this.lastLen = n;
    if (!this.primed && this.bufferedBytes >= this.depth * this.frameBytes) this.primed = true;
  }

  /**
   * Fill `out` with the next frame (frameBytes). Returns the number of bytes that came from
   * packets, or 0 when there is nothing to play (not primed yet, or an underrun). Bytes of a lost
   * packet are zero-filled by the caller's silence (counted in `lost`).
   */
  pull(out: Uint8Array): number {
    if (!this.primed) return 0;
    let filled = 0;
    let real = 0;
    while (filled < this.frameBytes) {
      if (this.cur < 0) {
        if (this.buffered === 0) {
          if (filled === 0) {
            this.primed = false; // underrun: the stream paused or ended; prime again
            return 0;
          }
          break;
        }
        const seq = this.next;
        this.next = (this.next + 1) & 0xffff;
        const slot = seq % SLOTS;
        if (this.seqs[slot] !== seq) {
          // Lost: play silence for one packet's worth.
          this.lost++;
          const gap = Math.min(this.lastLen, this.frameBytes - filled);
          out.fill(this.silenceByte, filled, filled + gap);
          filled += gap;
          continue;
        }
        this.cur = slot;
        this.curPos = 0;
      }
      const len = this.lens[this.cur];
      const take = Math.min(len - this.curPos, this.frameBytes - filled);
      out.set(this.payloads[this.cur].subarray(this.curPos, this.curPos + take), filled);
      filled += take;
      real += take;
      this.curPos += take;
      if (this.curPos >= len) {
        this.seqs[this.cur] = -1;
        this.buffered--;
        this.bufferedBytes -= len;
        this.cur = -1;
      }
    }
    if (filled < this.frameBytes) out.fill(this.silenceByte, filled);
    return real > 0 ? this.frameBytes : 0;
  }
}
