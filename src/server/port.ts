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
 */
export type PortState = 'idle' | 'ringing' | 'offhook' | 'dialing' | 'station' | 'connected';

export interface Blocker {
  wire: string;
  /** Called for every event on the port; return true when the command is finished. */
  onEvent?(name: string, args: string[]): boolean;
  /** End the command now with the given reply arguments. */
  finish(args: string[]): void;
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
    if (b) b.finish(args);
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
  }
}
