/**
 * Supervisor: starts ctserver as a child process, waits for its `Started!` line, restarts it with
 * backoff after a crash, and stops it (SIGTERM, then SIGKILL after a grace period).
 *
 * It only ever signals the ChildProcess object it spawned itself: never a process found by name,
 * never a pid it did not spawn. Nothing here blocks the event loop (the binary's first line is
 * read with fs.promises to decide whether to run it with node).
 *
 * Events:
 *  - 'started'                    the child printed `Started!` (first start and every restart)
 *  - 'stdout' (line), 'stderr' (line)
 *  - 'exit' (code, signal)        the child exited (for whatever reason)
 *  - 'restarting' (attempt, delayMs)  a crash will be followed by a restart after delayMs
 *  - 'crashed' (SupervisorError 'ECRASHLOOP')  too many crashes in the window; no more restarts
 *  - 'error' (SupervisorError)    a restart attempt failed to start (only emitted when someone
 *                                 listens, so a missing listener never throws)
 */
import { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { SupervisorError } from './errors';

/** The bundled ctserver (`<package root>/bin/ctserver`; this file runs from `<root>/dist/core`). */
export const DEFAULT_CTSERVER_BINARY = path.resolve(__dirname, '..', '..', 'bin', 'ctserver');

/** Number of output lines kept (for error messages and `lastOutput`). */
const HISTORY_LINES = 50;
/** Longest line kept; longer output without a newline is cut into pieces of this size. */
const MAX_LINE_CHARS = 8192;
/** After 'exit', how long to wait for the stdio pipes to close before giving up on them. */
const CLOSE_WAIT_MS = 500;

export interface SupervisorOptions {
  /** ctserver to run (default: the bundled bin/ctserver). A node script (shebang naming node, or
   *  a .js/.cjs/.mjs file) is run as `process.execPath binary ...args`; anything else is executed
   *  directly; a bare name without a slash is looked up in PATH. */
  binary?: string;
  /** Arguments for the binary. */
  args?: string[];
  /** Extra environment, merged over process.env. */
  env?: NodeJS.ProcessEnv;
  /** Working directory of the child. */
  cwd?: string;
  /** How long to wait for `Started!` (default 10000 ms). */
  startTimeoutMs?: number;
  /** Restart after a crash (default true). */
  restart?: boolean;
  /** Restarts allowed within restartWindowMs before giving up with 'crashed' (default 5). */
  maxRestarts?: number;
  /** The crash-counting window (default 60000 ms). */
  restartWindowMs?: number;
  /** First restart delay (default 500 ms), doubled for each further restart in the window. */
  backoffMs?: number;
  /** Largest restart delay (default 10000 ms). */
  maxBackoffMs?: number;
  /** Time between SIGTERM and SIGKILL (default 3000 ms). */
  stopGraceMs?: number;
}

type FailKind = 'timeout' | 'addrinuse' | 'stopped';

interface Run {
  child: ChildProcess;
  started: boolean;
  finished: boolean;
  exited: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  fail?: FailKind;
  spawnError?: Error;
  lines: string[];
  startTimer?: NodeJS.Timeout;
  killTimer?: NodeJS.Timeout;
  closeTimer?: NodeJS.Timeout;
  done: Promise<void>;
  finish: () => void;
}

function num(v: number | undefined, def: number, name: string, min = 0): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw new SupervisorError('EINVAL', `option ${name} must be a number >= ${min}, got ${String(v)}`);
  }
  return v;
}

export class Supervisor extends EventEmitter {
  readonly binary: string;
  readonly args: string[];
  private readonly env: NodeJS.ProcessEnv;
  private readonly cwd?: string;
  private readonly startTimeoutMs: number;
  private readonly restartEnabled: boolean;
  private readonly maxRestarts: number;
  private readonly restartWindowMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly stopGraceMs: number;

  private run: Run | null = null;
  private history: string[] = [];
  /** True between start() and stop() (and until a start failure / crash loop). */
  private wanted = false;
  private startPromise: Promise<void> | null = null;
  private stopPromise: Promise<void> | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private restartTimes: number[] = [];

  constructor(opts: SupervisorOptions = {}) {
    super();
    const bin = opts.binary ?? DEFAULT_CTSERVER_BINARY;
    if (typeof bin !== 'string' || bin.length === 0 || bin.includes('\0')) {
      throw new SupervisorError('EINVAL', 'option binary must be a non-empty path');
    }
    // A bare name is looked up in PATH by spawn; anything with a slash is made absolute.
    this.binary = bin.includes('/') || bin.includes(path.sep) ? path.resolve(bin) : bin;
    this.args = (opts.args ?? []).map(String);
    this.env = { ...process.env, ...(opts.env ?? {}) };
    this.cwd = opts.cwd;
    this.startTimeoutMs = num(opts.startTimeoutMs, 10000, 'startTimeoutMs', 1);
    this.restartEnabled = opts.restart !== false;
    this.maxRestarts = num(opts.maxRestarts, 5, 'maxRestarts');
    this.restartWindowMs = num(opts.restartWindowMs, 60000, 'restartWindowMs', 1);
    this.backoffMs = num(opts.backoffMs, 500, 'backoffMs');
    this.maxBackoffMs = num(opts.maxBackoffMs, 10000, 'maxBackoffMs');
    this.stopGraceMs = num(opts.stopGraceMs, 3000, 'stopGraceMs');
  }

  /** Pid of the child while it exists. */
  get pid(): number | undefined {
    const r = this.run;
    return r && !r.exited ? r.child.pid : undefined;
  }

  /** True while a child has printed `Started!` and not exited. */
  get running(): boolean {
    const r = this.run;
    return !!r && r.started && !r.exited;
  }

  /** The last output lines (stdout and stderr, stderr prefixed with `[stderr] `). */
  get lastOutput(): string[] {
    return this.history.slice();
  }

  /**
   * Start ctserver; resolves once it printed `Started!`. Rejects with SupervisorError:
   * 'ESPAWN' (binary missing / not executable), 'ESTARTTIMEOUT' (no `Started!` in time; the child
   * is killed), 'EADDRINUSE' (it could not bind), 'EEARLYEXIT' (it exited before `Started!`),
   * 'ESTOPPED' (stop() was called meanwhile). The child is dead before any rejection.
   */
  async start(): Promise<void> {
    if (this.stopPromise) await this.stopPromise;
    if (this.running) return;
    if (this.startPromise) return this.startPromise;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    this.wanted = true;
    this.restartTimes = [];
    const p = this.spawnOnce();
    this.startPromise = p;
    try {
      await p;
    } catch (err) {
      this.wanted = false;
      throw err;
    } finally {
      if (this.startPromise === p) this.startPromise = null;
    }
  }

  /**
   * Stop ctserver: cancel a pending restart, SIGTERM the child, SIGKILL it after stopGraceMs,
   * resolve once it exited. Idempotent; safe when nothing runs.
   */
  stop(): Promise<void> {
    this.wanted = false;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    if (this.stopPromise) return this.stopPromise;
    const run = this.run;
    if (!run || run.finished) return Promise.resolve();
    if (!run.started && !run.fail) run.fail = 'stopped';
    this.kill(run);
    const p = run.done.then(() => {
      if (this.stopPromise === p) this.stopPromise = null;
    });
    this.stopPromise = p;
    return p;
  }

  // ---------------------------------------------------------------------------------------------

  private describe(): string {
    return `ctserver (${this.binary})`;
  }

  /** How to run the binary: node scripts with process.execPath, the rest directly. */
  private async command(): Promise<{ file: string; args: string[] }> {
    const bin = this.binary;
    if (!path.isAbsolute(bin)) return { file: bin, args: this.args }; // PATH lookup by spawn
    let header = '';
    let fh: import('node:fs/promises').FileHandle | undefined;
    try {
      fh = await fsp.open(bin, 'r');
      const buf = Buffer.alloc(256);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      header = buf.toString('utf8', 0, bytesRead);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new SupervisorError('ESPAWN', `cannot start ${this.describe()}: ${bin} does not exist`);
      }
      if (code === 'EISDIR') throw new SupervisorError('ESPAWN', `cannot start ${this.describe()}: ${bin} is a folder`);
      // Unreadable (EACCES...): let spawn try it directly and report.
    } finally {
      await fh?.close().catch(() => undefined);
    }
    const firstLine = header.split('\n', 1)[0];
    if (/\.(c|m)?js$/i.test(bin) || /^#!.*\bnode(\s|$)/.test(firstLine)) {
      return { file: process.execPath, args: [bin, ...this.args] };
    }
    return { file: bin, args: this.args };
  }

  private remember(run: Run, line: string): void {
    run.lines.push(line);
    if (run.lines.length > HISTORY_LINES) run.lines.shift();
    this.history.push(line);
    if (this.history.length > HISTORY_LINES) this.history.shift();
  }

  private tail(run: Run, n = 20): string {
    const lines = run.lines.slice(-n);
    return lines.length ? `; last output:\n  ${lines.join('\n  ')}` : '; it printed nothing';
  }

  /** Spawn one child; resolve on `Started!`, reject (after the child is gone) otherwise. */
  private async spawnOnce(): Promise<void> {
    const cmd = await this.command();
    if (!this.wanted) throw new SupervisorError('ESTOPPED', `stop() was called before ${this.describe()} started`);

    let child: ChildProcess;
    try {
      child = spawn(cmd.file, cmd.args, {
        cwd: this.cwd,
        env: this.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      throw new SupervisorError('ESPAWN', `cannot start ${this.describe()}: ${(err as Error).message}`);
    }

    return new Promise<void>((resolve, reject) => {
      let finish!: () => void;
      const done = new Promise<void>((r) => (finish = r));
      const run: Run = {
        child,
        started: false,
        finished: false,
        exited: false,
        code: null,
        signal: null,
        lines: [],
        done,
        finish,
      };
      this.run = run;

      const onLine = (stream: 'stdout' | 'stderr', line: string): void => {
        this.remember(run, stream === 'stderr' ? `[stderr] ${line}` : line);
        this.emitSafe(stream, line);
        if (run.started || run.fail || run.finished) return;
        if (/address already in use/i.test(line)) {
          run.fail = 'addrinuse';
          this.kill(run);
        } else if (stream === 'stdout' && line.includes('Started!')) {
          run.started = true;
          if (run.startTimer) clearTimeout(run.startTimer);
          run.startTimer = undefined;
          resolve();
          this.emitSafe('started');
        }
      };
      const splitter = (stream: 'stdout' | 'stderr') => {
        let buf = '';
        return {
          data: (chunk: string) => {
            buf += chunk;
            let i: number;
            while ((i = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, i).replace(/\r$/, '').replace(/\0/g, '');
              buf = buf.slice(i + 1);
              onLine(stream, line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) : line);
            }
            while (buf.length > MAX_LINE_CHARS) {
              onLine(stream, buf.slice(0, MAX_LINE_CHARS));
              buf = buf.slice(MAX_LINE_CHARS);
            }
          },
          flush: () => {
            const rest = buf.replace(/\r$/, '').replace(/\0/g, '');
            buf = '';
            if (rest.length) onLine(stream, rest);
          },
        };
      };
      const out = splitter('stdout');
      const err = splitter('stderr');
      child.stdout?.setEncoding('utf8');
      child.stderr?.setEncoding('utf8');

      const onError = (e: Error): void => {
        if (child.pid === undefined) {
          // Never ran: no 'exit' will follow.
          run.spawnError = e;
          finalize();
        } else {
          this.emitError(new SupervisorError('ESIGNAL', `${this.describe()} (pid ${child.pid}): ${e.message}`));
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        run.exited = true;
        run.code = code;
        run.signal = signal;
        // Give the pipes a moment to drain; a grandchild holding them must not hold us.
        if (!run.closeTimer) run.closeTimer = setTimeout(finalize, CLOSE_WAIT_MS);
      };
      const onClose = (): void => {
        run.exited = true;
        if (run.code === null && run.signal === null) {
          run.code = child.exitCode;
          run.signal = child.signalCode;
        }
        finalize();
      };

      const finalize = (): void => {
        if (run.finished) return;
        run.finished = true;
        for (const t of [run.startTimer, run.killTimer, run.closeTimer]) if (t) clearTimeout(t);
        run.startTimer = run.killTimer = run.closeTimer = undefined;
        out.flush();
        err.flush();
        child.off('error', onError);
        child.off('exit', onExit);
        child.off('close', onClose);
        child.stdout?.off('data', out.data);
        child.stderr?.off('data', err.data);
        child.stdout?.destroy();
        child.stderr?.destroy();
        if (this.run === run) this.run = null;

        const spawned = !run.spawnError;
        if (spawned) this.emitSafe('exit', run.code, run.signal);

        if (!run.started) {
          reject(this.startFailure(run));
        } else if (this.wanted) {
          this.onCrash(run);
        }
        run.finish();
      };

      child.on('error', onError);
      child.on('exit', onExit);
      child.on('close', onClose);
      child.stdout?.on('data', out.data);
      child.stderr?.on('data', err.data);

      if (child.pid !== undefined) {
        run.startTimer = setTimeout(() => {
          run.startTimer = undefined;
          if (run.started || run.fail || run.finished) return;
          run.fail = 'timeout';
          this.kill(run);
        }, this.startTimeoutMs);
      }
    });
  }

  private startFailure(run: Run): SupervisorError {
    const d = this.describe();
    if (run.spawnError) {
      const code = (run.spawnError as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? `${this.binary} was not found` : code === 'EACCES' ? `${this.binary} is not executable` : run.spawnError.message;
      return new SupervisorError('ESPAWN', `cannot start ${d}: ${why}`);
    }
    const how = run.signal ? `signal ${run.signal}` : `code ${run.code}`;
    switch (run.fail) {
      case 'timeout':
        return new SupervisorError('ESTARTTIMEOUT', `${d} did not print "Started!" within ${this.startTimeoutMs} ms and was killed${this.tail(run)}`);
      case 'addrinuse':
        return new SupervisorError('EADDRINUSE', `${d} could not listen: address already in use (another ctserver running?)${this.tail(run)}`);
      case 'stopped':
        return new SupervisorError('ESTOPPED', `stop() was called before ${d} started`);
      default:
        return new SupervisorError('EEARLYEXIT', `${d} exited (${how}) before printing "Started!"${this.tail(run)}`);
    }
  }

  /** SIGTERM now, SIGKILL after stopGraceMs. Only ever signals our own ChildProcess. */
  private kill(run: Run): void {
    if (run.finished || run.exited || run.killTimer) return;
    const child = run.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      child.kill('SIGTERM');
    } catch {
      /* already gone */
    }
    run.killTimer = setTimeout(() => {
      run.killTimer = undefined;
      if (run.finished || run.exited || child.exitCode !== null || child.signalCode !== null) return;
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }, this.stopGraceMs);
  }

  /** An unexpected exit after `Started!` (or a failed restart). */
  private onCrash(run: Run | null, failure?: SupervisorError): void {
    if (!this.wanted) return;
    if (!this.restartEnabled) {
      this.wanted = false;
      return;
    }
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((t) => now - t < this.restartWindowMs);
    if (this.restartTimes.length >= this.maxRestarts) {
      this.wanted = false;
      const last = run
        ? `last exit: ${run.signal ? `signal ${run.signal}` : `code ${run.code}`}${this.tail(run, 10)}`
        : `last failure: ${failure?.message ?? 'unknown'}`;
      this.emitSafe(
        'crashed',
        new SupervisorError(
          'ECRASHLOOP',
          `${this.describe()} failed ${this.restartTimes.length + 1} times within ${this.restartWindowMs} ms; not restarting (${last})`,
        ),
      );
      return;
    }
    this.restartTimes.push(now);
    const attempt = this.restartTimes.length;
    const delay = Math.min(this.backoffMs * 2 ** (attempt - 1), this.maxBackoffMs);
    this.emitSafe('restarting', attempt, delay);
    if (!this.wanted) return; // a listener called stop()
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.wanted || this.startPromise) return;
      const p = this.spawnOnce();
      this.startPromise = p;
      p.then(
        () => {
          if (this.startPromise === p) this.startPromise = null;
        },
        (e: SupervisorError) => {
          if (this.startPromise === p) this.startPromise = null;
          if (e.code === 'ESTOPPED' || !this.wanted) return;
          this.emitError(e);
          this.onCrash(null, e);
        },
      );
    }, delay);
  }

  /** Emit, without letting a throwing listener break the supervisor. */
  private emitSafe(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (e) {
      if (event !== 'error') this.emitError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private emitError(err: Error): void {
    if (this.listenerCount('error') > 0) {
      try {
        this.emit('error', err);
      } catch {
        /* a throwing error listener is not our problem */
      }
    }
  }
}
