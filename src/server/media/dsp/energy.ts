/**
 * Frame energy, voice activity ("grunt" detection) and the silence timer used by recording.
 *
 * Levels are dBFS: RMS relative to a full-scale square wave (32768), so a full-scale sine reads
 * -3 dBFS and a 0 dBm0 sine about -6.2 dBFS. A frame of digital silence reads DBFS_FLOOR.
 * Durations are counted in samples (8 kHz), so any frame length works.
 */
import { SAMPLE_RATE, msToSamples } from './levels';

/** What `frameDbfs` returns for an all-zero (or empty) frame. */
export const DBFS_FLOOR = -100;

/** Mean-square of `frame[0..n-1]` (n defaults to the whole frame). */
export function frameMeanSquare(frame: Int16Array, n: number = frame.length): number {
  if (n > frame.length) n = frame.length;
  if (n <= 0) return 0;
  let e = 0;
  for (let i = 0; i < n; i++) {
    const x = frame[i];
    e += x * x;
  }
  return e / n;
}

/** RMS level of a frame in dBFS (re full-scale square wave), floored at DBFS_FLOOR. */
export function frameDbfs(frame: Int16Array, n: number = frame.length): number {
  const ms = frameMeanSquare(frame, n);
  if (ms <= 0) return DBFS_FLOOR;
  const db = 10 * Math.log10(ms / (32768 * 32768));
  return db < DBFS_FLOOR ? DBFS_FLOOR : db;
}

/** Mean-square (re 32768^2) of a dBFS level. */
function dbfsToMs(dbfs: number): number {
  return 32768 * 32768 * Math.pow(10, dbfs / 10);
}

export interface VoiceActivityOptions {
  /** Level at or above which a frame counts as voice, dBFS (default -35). */
  onDbfs?: number;
  /** Level below which a frame counts as quiet, dBFS (default -45). Between the two: hysteresis. */
  offDbfs?: number;
  /** Voice needed before 'start' is reported, ms (default 40). */
  attackMs?: number;
  /** Quiet needed before 'stop' is reported, ms (default 300). */
  hangMs?: number;
}

/**
 * Voice activity by energy with hysteresis ("grunt" detection): reports 'start' after `attackMs`
 * of consecutive frames at or above `onDbfs`, and 'stop' after `hangMs` of consecutive frames
 * below `offDbfs`. Frames between the two thresholds keep the current state (and reset both
 * counters). Allocation-free.
 */
export class VoiceActivity {
  private readonly onMs: number;
  private readonly offMs: number;
  private readonly attack: number;
  private readonly hang: number;
  private voice = false;
  private loud = 0;
  private quiet = 0;

  constructor(opts: VoiceActivityOptions = {}) {
    const on = opts.onDbfs ?? -35;
    const off = opts.offDbfs ?? -45;
    if (off > on) throw new RangeError('VoiceActivity: offDbfs must not exceed onDbfs');
    this.onMs = dbfsToMs(on);
    this.offMs = dbfsToMs(off);
    this.attack = msToSamples(opts.attackMs ?? 40);
    this.hang = msToSamples(opts.hangMs ?? 300);
  }

  /** True between a 'start' and the following 'stop'. */
  get active(): boolean {
    return this.voice;
  }

  reset(): void {
    this.voice = false;
    this.loud = 0;
    this.quiet = 0;
  }

  /** Feed one frame; returns 'start' or 'stop' on a change of state, else null. */
  process(frame: Int16Array): 'start' | 'stop' | null {
    const n = frame.length;
    if (n === 0) return null;
    const ms = frameMeanSquare(frame);
    if (ms >= this.onMs) {
      this.quiet = 0;
      if (!this.voice) {
        this.loud += n;
        if (this.loud >= this.attack) {
          this.voice = true;
          this.loud = 0;
          return 'start';
        }
      }
    } else if (ms < this.offMs) {
      this.loud = 0;
      if (this.voice) {
        this.quiet += n;
        if (this.quiet >= this.hang) {
          this.voice = false;
          this.quiet = 0;
          return 'stop';
        }
      }
    } else {
      this.loud = 0;
      this.quiet = 0;
    }
    return null;
  }
}

/**
 * Silence timer for recording: `process(frame)` returns true once there has been `seconds` of
 * continuous silence (every frame below `thresholdDbfs`); any louder frame restarts the count.
 * It keeps returning true while the silence goes on. Allocation-free.
 */
export class SilenceTimer {
  private readonly need: number;
  private readonly thresholdMs: number;
  private quiet = 0;

  constructor(seconds: number, thresholdDbfs = -40) {
    if (!(seconds >= 0)) throw new RangeError('SilenceTimer: seconds must be >= 0');
    this.need = Math.round(seconds * SAMPLE_RATE);
    this.thresholdMs = dbfsToMs(thresholdDbfs);
  }

  /** Continuous silence so far, ms. */
  get silentMs(): number {
    return (this.quiet * 1000) / SAMPLE_RATE;
  }

  reset(): void {
    this.quiet = 0;
  }

  process(frame: Int16Array): boolean {
    if (frame.length > 0) {
      if (frameMeanSquare(frame) < this.thresholdMs) this.quiet += frame.length;
      else this.quiet = 0;
    }
    return this.quiet >= this.need && this.quiet > 0;
  }
}
