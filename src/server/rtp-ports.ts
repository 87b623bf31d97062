/**
 * Reserves RTP ports from the --rtp-ports range: a UDP socket is bound on an even port (RTP)
 * and held for the life of the call, so the port advertised in SDP is really ours.
 */
import dgram from 'node:dgram';
import { createRtpSocket } from './media/udp';

export interface RtpReservation {
  port: number;
  socket: dgram.Socket;
  release(): void;
}

export class RtpPortPool {
  private next: number;
  private readonly inUse = new Set<number>();

  constructor(
    private readonly host: string,
    private readonly lo: number,
    private readonly hi: number,
  ) {
    if (!(lo > 0 && hi <= 65535 && lo < hi)) throw new Error(`--rtp-ports: bad range ${lo}-${hi}`);
    this.next = lo % 2 === 0 ? lo : lo + 1;
  }

  get active(): number {
    return this.inUse.size;
  }

  /** Bind the next free even port in the range. Rejects when the range is exhausted. */
  async reserve(): Promise<RtpReservation> {
    const span = Math.floor((this.hi - this.lo + 1) / 2);
    for (let tries = 0; tries < span; tries++) {
      const port = this.next;
      this.next += 2;
      if (this.next > this.hi) this.next = this.lo % 2 === 0 ? this.lo : this.lo + 1;
      if (this.inUse.has(port)) continue;
      const socket = createRtpSocket();
      const ok = await new Promise<boolean>((resolve) => {
        socket.once('error', () => resolve(false));
        socket.bind(port, this.host, () => resolve(true));
      });
      if (!ok) {
        socket.close();
        continue;
      }
      socket.on('error', () => undefined);
      this.inUse.add(port);
      let released = false;
      return {
        port,
        socket,
        release: () => {
          if (released) return;
          released = true;
          this.inUse.delete(port);
          socket.close();
        },
      };
    }
    throw new Error(`no free RTP port in ${this.lo}-${this.hi}`);
  }
}
