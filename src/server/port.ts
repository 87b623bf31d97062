/**
 * One telephony port of the bundled ctserver: its state machine, digit buffer, event queue,
 * timer and the blocking command running on it. SIP and the protocol session are wired in by
 * CtServer; this class holds no sockets of its own.
 *
 * States:
 *   idle ──INVITE──▶ ringing ──ctanswer──▶ connected ──BYE/cthangup──▶ idle
 *   idle ──ctanswer──▶ offhook ──ctdial──▶ dialing ──200──▶ connected
 *                                          dialing ──4xx-6xx──▶ offhook (busy/failed event)
 *   idle ──ctstartringasync──▶ station ──phone answers──▶ connected (pickup event)
 *   ringing/connected ──far end hangs up (client connected)──▶ dropped ──cthangup──▶ idle
 * `dropped` is a loop drop: the far end is gone but the port's program has not hung up yet. The
 * port is not hunted and ctanswer fails, so a program that answers a ring that has just been
 * cancelled cannot take the line off hook by mistake. It returns to idle after cthangup, when
 * the client disconnects, or after DROPPED_TIMEOUT_MS.
 */
export const DROPPED_TIMEOUT_MS = 30000;
export type PortState = 'idle' | 'ringing' | 'offhook' | 'dialing' | 'station' | 'connected' | 'dropped';

export interface Blocker {
  wire: string;
  /** Called for every event on the port; return true when the command is finished. */
  onEvent?(name: string, args: string[]): boolean;
  /** End the command now with the given reply arguments. */
  finish(args: string[]): void;
  /**
   * Asked before endBlocking() finishes the command (hang-up, reset, shutdown). Return true when
   * the command ends itself once its work is safe (a recording closing its file).
   */
  onEnd?(args: string[]): boolean;
}

const EVENT_QUEUE_LIMIT = 64;

export class Port {
  readonly number: number;
  readonly handle: number;
  state: PortState = 'idle';
  script = '';
  digits = '';
  events: { name: string; args: string[] }[] = [];
  rings = 0;
  cid = { number: '', name: '' };
  /** Caller ID sent when this port rings its station phone (send_cid). */
  outCid = { number: '', name: '' };
  timer: NodeJS.Timeout | undefined;
  ringTimer: NodeJS.Timeout | undefined;
  droppedTimer: NodeJS.Timeout | undefined;
  /** When the port last became idle (least recently used ports are hunted first). */
  idleSince = 0;
  blocker: Blocker | undefined;

  constructor(n: number, private readonly deliver: (port: Port, name: string, args: string[]) => void) {
    this.number = n;
    this.handle = n - 1;
  }

  get hook(): 'on' | 'off' {
    return this.state === 'idle' || this.state === 'ringing' || this.state === 'station' ? 'on' : 'off';
  }

  /** Raise an event: sent to the port's client, offered to the blocking command, queued for wait_for_event. */
  event(name: string, args: string[] = []): void {
    this.deliver(this, name, args);
    const b = this.blocker;
    if (b?.onEvent && b.onEvent(name, args)) return;
    this.events.push({ name, args });
    if (this.events.length > EVENT_QUEUE_LIMIT) this.events.shift();
  }

  /** End the running blocking command (if any) with these reply args. */
  endBlocking(args: string[]): void {
    const b = this.blocker;
    if (!b) return;
    if (b.onEnd && b.onEnd(args)) return;
    b.finish(args);
  }

  stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  stopRingTimer(): void {
    if (this.ringTimer) clearTimeout(this.ringTimer);
    this.ringTimer = undefined;
  }

  /** Clear every timer (used on reset and shutdown). */
  clearTimers(): void {
    this.stopTimer();
    this.stopRingTimer();
    if (this.droppedTimer) clearTimeout(this.droppedTimer);
    this.droppedTimer = undefined;
  }

  /** Back to idle (and to the end of the hunt order). */
  toIdle(): void {
    if (this.droppedTimer) clearTimeout(this.droppedTimer);
    this.droppedTimer = undefined;
    this.state = 'idle';
    this.rings = 0;
    this.idleSince = performance.now();
  }
}
