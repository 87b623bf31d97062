/**
 * CtPort: a non-blocking client for one ctserver port (TCP base+N), and CtManager for the
 * manager connection (TCP 1198). Promise and event API; works from plain Node.js.
 *
 * Ordering: commands are sent in the order they were called. A blocking command (play, record,
 * collect, ...) holds every later command until its reply, exactly as the Perl module's users
 * expected when they posted a sequence. Non-blocking commands are pipelined. "Urgent" commands
 * (play_stop, record_stop) skip the queue, so they can stop a blocking command.
 * Nothing is ever dropped: every command resolves with its reply or rejects with a typed error.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { LineSplitter, MANAGER_HANDLE, MAX_REPLY_BYTES, ParsedMessage, encodeRequest, parseLine, unescapeTextLenient } from './codec';
import {
  ArgValue,
  CommandResult,
  CommandSpec,
  EVENTS,
  commandByWire,
  encodeCommand,
  getCommand,
  interpretReply,
} from './catalog';
import { ConnectionError, CtError, DisconnectedError, LineTooLongError, NotConnectedError, PortBusyError, ProtocolError, ValidationError } from './errors';
import { resolvePlayFiles, resolveRecordPath } from './audio-paths';

export const DEFAULT_BASE_PORT = 1199;
export const DEFAULT_MANAGER_PORT = 1198;

export interface ConnectionOptions {
  /** ctserver host (default 127.0.0.1). */
  host?: string;
  /** Reconnect after an unexpected disconnect (default true). */
  reconnect?: boolean;
  /** First reconnect delay in ms (default 250), doubled up to reconnectMaxMs. */
  reconnectDelayMs?: number;
  /** Largest reconnect delay (default 10000). */
  reconnectMaxMs?: number;
  /** connect() rejects when no connection was made within this time (default 10000). */
  connectTimeoutMs?: number;
}

export interface CtPortOptions extends ConnectionOptions {
  /** Port number, 1-based (default 1). */
  port?: number;
  /** TCP base port: port N listens on base+N (default 1199). */
  basePort?: number;
  /** Search paths for play. */
  paths?: string[];
  /** Default extension for play (default '.au'). */
  defaultExt?: string;
  /** Initial ignore_dtmf setting for play (default false). */
  ignoreDtmf?: boolean;
  /** Current directory used for play search and relative record names (default process.cwd()). */
  cwd?: string;
  /** Folder for relative record names. When unset, relative names are sent as they are and the server puts them in its --record-dir. */
  recordDir?: string;
  /** Vocabulary folder (default: the bundled one). */
  vocabularyDir?: string;
  /** Let play and record paths leave their allowed folders (default false). */
  allowOutside?: boolean;
  /** Resolve play file names on this machine (default true). Turn off for a ctserver on another host. */
  resolveAudio?: boolean;
}

export interface CtEvent {
  /** Event name: ring, dtmf, hangup, ... or the text of a send_event message. */
  event: string;
  /** 1-based port the event is about. */
  port: number;
  args: string[];
  raw: string;
  /** dtmf: the key. */
  digit?: string;
  /** ring: how many rings so far. */
  rings?: number;
  /** ring, cid: caller ID. */
  cid?: { number: string; name: string };
  /** busy, failed: SIP status of the outbound call. */
  status?: number;
  /** true for send_event messages (not a telephony event). */
  user?: boolean;
  /** send_event messages: the sending port, or 'manager'. */
  from?: number | 'manager';
}

interface Pending {
  wire: string;
  cmd: CommandSpec | undefined;
  resolve: (r: CommandResult) => void;
  reject: (e: Error) => void;
}

type Step = { cmd: CommandSpec | undefined; wire: string; dst: number; args: string[]; raw?: string };

interface QueueEntry {
  label: string;
  /** Produces the lines to send, in order; may be async (path resolution). */
  prepare: () => Promise<Step[]> | Step[];
  /** Stop sending further steps when a reply is not OK (play lists). */
  stopOnNotOk: boolean;
  resolve: (r: CommandResult) => void;
  reject: (e: Error) => void;
}

const KNOWN_EVENTS = new Set<string>(EVENTS);

/** The shared connection machinery of CtPort and CtManager. */
export abstract class CtConnection extends EventEmitter {
  protected socket: net.Socket | undefined;
  protected readonly host: string;
  private readonly reconnectEnabled: boolean;
  private readonly reconnectDelayMs: number;
  private readonly reconnectMaxMs: number;
  private readonly connectTimeoutMs: number;
  private wantConnected = false;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private connectWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private pending: Pending[] = [];
  private queue: QueueEntry[] = [];
  private pumping = false;
  private connected = false;
  private closeWaiters: (() => void)[] = [];

  protected constructor(opts: ConnectionOptions) {
    super();
    this.host = opts.host ?? '127.0.0.1';
    this.reconnectEnabled = opts.reconnect ?? true;
    this.reconnectDelayMs = opts.reconnectDelayMs ?? 250;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 10000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10000;
  }

  /** Handle this connection uses as src. */
  protected abstract readonly handle: number;
  /** TCP port to connect to. */
  abstract get tcpPort(): number;
  /** Name used in error messages. */
  abstract get label(): string;

  get isConnected(): boolean {
    return this.connected;
  }

  /** Connect; resolves once connected. With reconnect on, failed attempts are retried until connectTimeoutMs. */
  connect(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.connectWaiters.push({ resolve, reject });
      if (this.wantConnected) return; // an attempt is already under way
      this.wantConnected = true;
      this.attempts = 0;
      if (this.connectTimeoutMs > 0) {
        this.connectTimer = setTimeout(() => {
          this.connectTimer = undefined;
          if (this.connected) return;
          this.stopReconnecting();
          this.settleConnect(new ConnectionError('ETIMEDOUT', `${this.label}: could not connect to ${this.host}:${this.tcpPort} within ${this.connectTimeoutMs} ms`));
        }, this.connectTimeoutMs);
      }
      this.open();
    });
  }

  /** Disconnect. Pending commands fail with DisconnectedError. Does not stop a running play or record on the server. */
  disconnect(): Promise<void> {
    this.stopReconnecting();
    this.settleConnect(new DisconnectedError(this.label));
    const s = this.socket;
    if (!s) {
      this.failAll(new DisconnectedError(this.label));
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.closeWaiters.push(resolve);
      s.end();
      s.destroySoon();
      setImmediate(() => s.destroy());
    });
  }

  private stopReconnecting(): void {
    this.wantConnected = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  private settleConnect(err?: Error): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) (err ? w.reject(err) : w.resolve());
  }

  private open(): void {
    const socket = net.connect({ host: this.host, port: this.tcpPort });
    socket.setNoDelay(true);
    this.socket = socket;
    const splitter = new LineSplitter(
      (line) => this.onLine(line),
      (err) => this.onLineTooLong(err),
      MAX_REPLY_BYTES,
    );
    let wasConnected = false;
    socket.on('connect', () => {
      wasConnected = true;
      this.connected = true;
      this.attempts = 0;
      this.settleConnect();
      this.emit('connected', { host: this.host, port: this.tcpPort });
      this.pump();
    });
    socket.on('data', (chunk) => splitter.push(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.emit('socket_error', new ConnectionError(err.code ?? 'ESOCKET', `${this.label} (${this.host}:${this.tcpPort}): ${err.message}`));
    });
    socket.on('close', () => {
      if (this.socket === socket) this.socket = undefined;
      this.connected = false;
      this.failAll(new DisconnectedError(this.label));
      if (wasConnected) this.emit('disconnected', { host: this.host, port: this.tcpPort });
      const waiters = this.closeWaiters;
      this.closeWaiters = [];
      waiters.forEach((w) => w());
      if (this.wantConnected) {
        if (!this.reconnectEnabled) {
          this.wantConnected = false;
          this.settleConnect(new ConnectionError('ECONNREFUSED', `${this.label}: could not connect to ${this.host}:${this.tcpPort}`));
          return;
        }
        const delay = Math.min(this.reconnectMaxMs, this.reconnectDelayMs * 2 ** Math.min(this.attempts, 16));
        this.attempts++;
        this.emit('reconnecting', { attempt: this.attempts, delayMs: delay });
        this.reconnectTimer = setTimeout(() => {
          this.reconnectTimer = undefined;
          if (this.wantConnected) this.open();
        }, delay);
      }
    });
  }

  /**
   * A reply too long to keep was dropped: the command it answered must not wait for ever. Its
   * name is read from the start of the line; that command fails with the error.
   */
  private onLineTooLong(err: LineTooLongError): void {
    this.emit('protocol_error', err);
    const m = /^\s*rly=(\S+)/.exec(err.head);
    if (!m) return;
    const idx = this.pending.findIndex((p) => p.wire === m[1]);
    if (idx === -1) return;
    const [p] = this.pending.splice(idx, 1);
    p.reject(err);
  }

  private onLine(line: string): void {
    let msg: ParsedMessage;
    try {
      msg = parseLine(line);
    } catch (e) {
      this.emit('protocol_error', e);
      return;
    }
    this.emit('input', msg, line);
    if (msg.kind !== 'rly') {
      this.emit('protocol_error', new ProtocolError('server sent a command line; only rly= lines are expected', line));
      return;
    }
    if (msg.name === 'error' && msg.src !== -1) {
      this.emit('protocol_error', new ProtocolError(`server: ${unescapeTextLenient(msg.args[1] ?? 'error')}`, line));
      return;
    }
    if (msg.name === 'error' && msg.src === -1) {
      // The server refuses this connection (the port is held by another client).
      const reason = unescapeTextLenient(msg.args[1] ?? 'refused by server');
      this.emit('socket_error', new PortBusyError(`${this.label}: ${reason}`));
      return;
    }
    const idx = this.pending.findIndex((p) => p.wire === msg.name);
    if (idx !== -1) {
      const [p] = this.pending.splice(idx, 1);
      p.resolve(interpretReply(p.cmd, msg.args, msg.raw));
      return;
    }
    this.emitEvent(msg);
  }

  private emitEvent(msg: ParsedMessage): void {
    const name = msg.name;
    const ev: CtEvent = { event: name, port: msg.dst + 1, args: msg.args, raw: msg.raw };
    if (name === 'dtmf') ev.digit = msg.args[0];
    else if (name === 'ring') {
      ev.rings = Number(msg.args[1] ?? 1);
      ev.cid = { number: msg.args[2] ?? '', name: unescapeTextLenient(msg.args[3] ?? '') };
    } else if (name === 'cid') {
      ev.cid = { number: msg.args[1] ?? '', name: unescapeTextLenient(msg.args[2] ?? '') };
    } else if (name === 'busy' || name === 'failed') {
      ev.status = Number(msg.args[1] ?? 0);
    }
    if (KNOWN_EVENTS.has(name)) {
      this.emit('event', ev);
      this.emit(name, ev);
    } else if (commandByWire(name)) {
      // A reply to a command we no longer wait for (e.g. after a reconnect).
      this.emit('protocol_error', new ProtocolError(`unexpected reply "${name}" with no command waiting`, msg.raw));
    } else {
      ev.user = true;
      ev.from = msg.src === MANAGER_HANDLE ? 'manager' : msg.src + 1;
      this.emit('event', ev);
      this.emit('message', ev);
    }
  }

  private failAll(err: DisconnectedError): void {
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p.reject(new DisconnectedError(this.label, p.cmd?.event ?? p.wire));
    const queue = this.queue;
    this.queue = [];
    for (const q of queue) q.reject(new DisconnectedError(this.label, q.label));
    void err;
  }

  /** Send one line now and return the promise of its reply. */
  private transmit(step: Step): Promise<CommandResult> {
    const socket = this.socket;
    if (!socket || !this.connected) return Promise.reject(new NotConnectedError(this.label));
    const line = step.raw ?? encodeRequest(step.wire, this.handle, step.dst, step.args);
    return new Promise<CommandResult>((resolve, reject) => {
      this.pending.push({ wire: step.wire, cmd: step.cmd, resolve, reject });
      socket.write(line);
    });
  }

  /** Queue an entry; returns the promise of its (last) reply. */
  protected enqueue(label: string, prepare: QueueEntry['prepare'], opts: { urgent?: boolean; stopOnNotOk?: boolean } = {}): Promise<CommandResult> {
    if (!this.connected) return Promise.reject(new NotConnectedError(this.label));
    if (opts.urgent) {
      return Promise.resolve(prepare()).then(async (steps) => {
        let last: CommandResult | undefined;
        for (const s of steps) last = await this.transmit(s);
        return last!;
      });
    }
    return new Promise<CommandResult>((resolve, reject) => {
      this.queue.push({ label, prepare, stopOnNotOk: !!opts.stopOnNotOk, resolve, reject });
      this.pump();
    });
  }

  /** Runs queued entries in order; a blocking step holds the queue until its reply. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && this.connected) {
        const entry = this.queue[0];
        let steps: Step[];
        try {
          steps = await entry.prepare();
        } catch (e) {
          if (this.queue[0] === entry) this.queue.shift();
          entry.reject(e as Error);
          continue;
        }
        if (this.queue[0] !== entry) continue; // failed by a disconnect meanwhile
        this.queue.shift();
        if (steps.length === 0) {
          entry.reject(new ValidationError('nothing to send', entry.label));
          continue;
        }
        if (!steps.some((s) => s.cmd?.blocking)) {
          // Pipeline: send everything, do not wait.
          const promises = steps.map((s) => this.transmit(s));
          promises[promises.length - 1].then(entry.resolve, entry.reject);
          promises.slice(0, -1).forEach((p) => p.catch(() => undefined));
          continue;
        }
        try {
          let last: CommandResult | undefined;
          for (const s of steps) {
            const p = this.transmit(s);
            if (!s.cmd?.blocking) {
              p.catch(() => undefined);
              last = undefined;
              continue;
            }
            last = await p;
            if (entry.stopOnNotOk && last.status !== 'OK') break;
          }
          entry.resolve(last!);
        } catch (e) {
          entry.reject(e as Error);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Send any catalog command by its seed name (`off_hook`) or wire name (`ctanswer`), with
   * positional arguments as the seed took them. Validation errors reject before anything is sent.
   */
  command(name: string, ...values: ArgValue[]): Promise<CommandResult> {
    let cmd: CommandSpec;
    let enc: { dst: number; args: string[] };
    try {
      cmd = getCommand(name);
      enc = encodeCommand(cmd, values, this.handle);
      this.checkAddressing(cmd, enc.dst);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.enqueue(cmd.event, () => [{ cmd, wire: cmd.wire, dst: enc.dst, args: enc.args }], { urgent: cmd.urgent });
  }

  /** Hook for subclasses to refuse commands they cannot address. */
  protected checkAddressing(_cmd: CommandSpec, _dst: number): void {}

  /**
   * Send a raw protocol line as the seed would have written it (`cmd=ctanswer src=0 dst=0 argc=0 `).
   * It is parsed and checked first: a line with a second command, bad fields or an unknown
   * command is refused and nothing is sent.
   */
  sendRaw(line: string): Promise<CommandResult> {
    let msg: ParsedMessage;
    try {
      if (typeof line !== 'string') throw new ValidationError('a raw line must be a string');
      if (/[\r\n\0]/.test(line.replace(/ *\r?\n$/, ''))) {
        throw new ValidationError('a raw line must hold exactly one command (found a line break or NUL inside)');
      }
      msg = parseLine(line.replace(/\r?\n$/, ''));
      if (msg.kind !== 'cmd') throw new ValidationError(`a raw line must start with cmd=, got ${JSON.stringify(line.slice(0, 40))}`);
    } catch (e) {
      return Promise.reject(e instanceof CtError ? e : new ValidationError(String(e)));
    }
    const cmd = commandByWire(msg.name);
    if (!cmd) return Promise.reject(new ValidationError(`unknown command "${msg.name}"`));
    const raw = msg.raw + ' \n';
    return this.enqueue(cmd.event, () => [{ cmd, wire: cmd.wire, dst: msg.dst, args: msg.args, raw }], { urgent: cmd.urgent });
  }

  /** Send a message to a port; it arrives there as an event (`message`). */
  sendEvent(port: number, message: string): Promise<CommandResult> {
    return this.command('send_event', port, message);
  }
  /** Status of one port, or of every port. */
  portStatus(port?: number): Promise<CommandResult> {
    return this.command('port_status', port);
  }
  rollLog(): Promise<CommandResult> {
    return this.command('roll_log');
  }
  serVersion(): Promise<CommandResult> {
    return this.command('ser_version');
  }
  /** Shut the server down gracefully. */
  shutdown(): Promise<CommandResult> {
    return this.command('shutdown');
  }
}

/** Client for one port of a ctserver. */
export class CtPort extends CtConnection {
  readonly port: number;
  protected readonly handle: number;
  private readonly basePort: number;
  private readonly opts: CtPortOptions;
  private defaultExt: string;
  private ignoreDtmf: boolean;

  constructor(opts: CtPortOptions = {}) {
    super(opts);
    const port = opts.port ?? 1;
    if (!Number.isInteger(port) || port < 1 || port > 1024) throw new ValidationError(`port must be a whole number from 1 to 1024, got ${JSON.stringify(port)}`);
    this.port = port;
    this.handle = port - 1;
    this.basePort = opts.basePort ?? DEFAULT_BASE_PORT;
    this.opts = opts;
    this.defaultExt = normaliseExt(opts.defaultExt ?? '.au');
    this.ignoreDtmf = !!opts.ignoreDtmf;
  }

  get tcpPort(): number {
    return this.basePort + this.port;
  }

  get label(): string {
    return `ctserver port ${this.port}`;
  }

  /** The seed's default_ext. */
  setDefaultExt(ext: string): void {
    this.defaultExt = normaliseExt(ext);
  }

  /** The seed's ignore_dtmf. */
  setIgnoreDtmf(on: boolean): void {
    this.ignoreDtmf = !!on;
  }

  offHook(): Promise<CommandResult> {
    return this.command('off_hook');
  }
  onHook(): Promise<CommandResult> {
    return this.command('on_hook');
  }
  waitForRing(rings?: number, ird?: number): Promise<CommandResult> {
    return this.command('wait_for_ring', rings, ird);
  }
  waitForDialTone(): Promise<CommandResult> {
    return this.command('wait_for_dial_tone');
  }
  playTone(type: string): Promise<CommandResult> {
    return this.command('play_tone', type);
  }
  stopTone(): Promise<CommandResult> {
    return this.command('stop_tone');
  }
  playStop(): Promise<CommandResult> {
    return this.command('play_stop');
  }
  recordStop(): Promise<CommandResult> {
    return this.command('record_stop');
  }

  /**
   * Play one or more files (a space-separated string or an array), in order, one ctplay line per
   * file. Playback of the list stops at the first file that does not finish with OK (a key was
   * pressed, the caller hung up, or an error). Resolves with the last reply.
   */
  play(files: string | string[], opts: { ignoreDtmf?: boolean; async?: boolean } = {}): Promise<CommandResult> {
    const cmd = getCommand(opts.async ? 'play_async' : 'play');
    const ignore = opts.ignoreDtmf ?? this.ignoreDtmf;
    const prepare = async (): Promise<Step[]> => {
      let names: string[];
      if (this.opts.resolveAudio === false) {
        names = (Array.isArray(files) ? files : String(files).split(' ')).filter((f) => f.length > 0).map((f) => withExt(f, this.defaultExt));
      } else {
        names = await resolvePlayFiles(files, {
          paths: this.opts.paths,
          cwd: this.opts.cwd,
          defaultExt: this.defaultExt,
          vocabularyDir: this.opts.vocabularyDir,
          allowOutside: this.opts.allowOutside,
        });
      }
      return names.map((n) => ({ cmd, wire: cmd.wire, dst: this.handle, args: encodeCommand(cmd, ignore ? [n, true] : [n], this.handle).args }));
    };
    if (!this.isConnected) return Promise.reject(new NotConnectedError(this.label));
    return this.enqueue(cmd.event, prepare, { stopOnNotOk: true });
  }

  /** Start playing and return at once (ctplayasync). */
  playAsync(files: string | string[], opts: { ignoreDtmf?: boolean } = {}): Promise<CommandResult> {
    return this.play(files, { ...opts, async: true });
  }

  /**
   * Record to a file: for `seconds`, or until one of `digits` is pressed, or after `silence`
   * seconds of silence. Relative names go into recordDir (when set) or the server's --record-dir.
   */
  record(file: string, seconds: number, digits = '', silence = 0): Promise<CommandResult> {
    const cmd = getCommand('record');
    try {
      encodeCommand(cmd, ['x', seconds, digits, silence], this.handle); // validate before queueing
    } catch (e) {
      return Promise.reject(e);
    }
    const prepare = async (): Promise<Step[]> => {
      let name = file;
      if (typeof name !== 'string' || name.length === 0) throw new ValidationError('must be a non-empty file name', 'record', 'file');
      if (this.opts.recordDir) {
        name = await resolveRecordPath(name, { recordDir: this.opts.recordDir, allowOutside: this.opts.allowOutside });
      } else if (path.isAbsolute(name) === false && this.opts.cwd) {
        name = path.resolve(this.opts.cwd, name);
      }
      const wire = encodeCommand(cmd, [name, seconds, digits, silence], this.handle).args;
      return [{ cmd, wire: cmd.wire, dst: this.handle, args: wire }];
    };
    return this.enqueue(cmd.event, prepare);
  }

  sleep(seconds: number): Promise<CommandResult> {
    return this.command('sleep', seconds);
  }
  clear(): Promise<CommandResult> {
    return this.command('clear');
  }
  clearEvents(): Promise<CommandResult> {
    return this.command('clear_events');
  }
  collect(maxDigits: number, maxSeconds: number, interDigit?: number): Promise<CommandResult> {
    return this.command('collect', maxDigits, maxSeconds, interDigit);
  }
  dial(number: string): Promise<CommandResult> {
    return this.command('dial', number);
  }
  waitForEvent(): Promise<CommandResult> {
    return this.command('wait_for_event');
  }
  startTimer(seconds: number): Promise<CommandResult> {
    return this.command('start_timer', seconds);
  }
  stopTimer(): Promise<CommandResult> {
    return this.command('stop_timer');
  }
  join(port1: number, port2: number): Promise<CommandResult> {
    return this.command('join', port1, port2);
  }
  bridge(port: number): Promise<CommandResult> {
    return this.command('bridge', port);
  }
  unbridge(port: number): Promise<CommandResult> {
    return this.command('unbridge', port);
  }
  joinConference(port: number): Promise<CommandResult> {
    return this.command('join_conference', port);
  }
  leaveConference(port: number): Promise<CommandResult> {
    return this.command('leave_conference', port);
  }
  startRing(): Promise<CommandResult> {
    return this.command('start_ring');
  }
  stopRing(): Promise<CommandResult> {
    return this.command('stop_ring');
  }
  ringOnce(): Promise<CommandResult> {
    return this.command('ring_once');
  }
  gruntOn(): Promise<CommandResult> {
    return this.command('grunt_on');
  }
  gruntOff(): Promise<CommandResult> {
    return this.command('grunt_off');
  }
  setScriptName(name: string): Promise<CommandResult> {
    return this.command('set_script_name', name);
  }
  sendCid(number: string, name = ''): Promise<CommandResult> {
    return this.command('send_cid', number, name);
  }
  listenForCidJp(): Promise<CommandResult> {
    return this.command('listen_for_cid_jp');
  }
  listenForCid(): Promise<CommandResult> {
    return this.command('listen_for_cid');
  }
  readCid(): Promise<CommandResult> {
    return this.command('read_cid');
  }
  portReset(port?: number): Promise<CommandResult> {
    return this.command('port_reset', port ?? this.port);
  }
}

export interface CtManagerOptions extends ConnectionOptions {
  /** Manager TCP port (default 1198). */
  managerPort?: number;
}

/** Client for the manager connection (TCP 1198), which addresses the server (dst=-2) or any port. */
export class CtManager extends CtConnection {
  protected readonly handle = MANAGER_HANDLE;
  private readonly managerPort: number;

  constructor(opts: CtManagerOptions = {}) {
    super(opts);
    this.managerPort = opts.managerPort ?? DEFAULT_MANAGER_PORT;
  }

  get tcpPort(): number {
    return this.managerPort;
  }

  get label(): string {
    return 'ctserver manager';
  }

  protected override checkAddressing(cmd: CommandSpec, dst: number): void {
    if (cmd.addressing === 'self' && dst === MANAGER_HANDLE) {
      throw new ValidationError(`"${cmd.event}" acts on a port; send it on a CtPort connection`, cmd.event);
    }
  }

  /** Stop a recording on a port, the seed's way: a RECORD_STOP message sent to that port. */
  recordStop(port: number): Promise<CommandResult> {
    return this.command('send_event', port, 'RECORD_STOP');
  }
  portReset(port: number): Promise<CommandResult> {
    return this.command('port_reset', port);
  }
}

function normaliseExt(ext: string): string {
  if (typeof ext !== 'string' || !/^\.?[A-Za-z0-9]{1,8}$/.test(ext)) throw new ValidationError(`default extension must look like ".wav", got ${JSON.stringify(ext)}`);
  return ext.startsWith('.') ? ext : '.' + ext;
}

function withExt(name: string, ext: string): string {
  return path.extname(name) ? name : name + ext;
}
