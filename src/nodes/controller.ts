/**
 * The controller behind a ct-server config node: it owns the ctserver process (through the
 * Supervisor), one CtPort connection per port and a CtManager, tracks the call on each port,
 * and counts its users (nodes register and deregister, as with the MQTT broker node): it
 * connects when the first user arrives and disconnects after the last one leaves.
 * It holds no Node-RED object, so it is tested without the runtime.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { CtEvent, CtManager, CtPort, CtPortOptions } from '../core/client';
import { ParsedMessage } from '../core/codec';
import { Supervisor } from '../core/supervisor';
import { CtError, NotConnectedError, ValidationError } from '../core/errors';

export interface ServerConfig {
  mode: 'bundled' | 'binary' | 'none';
  binary?: string;
  host: string;
  ports: number;
  basePort: number;
  managerPort: number;
  sipHost: string;
  sipPort: number;
  rtpPorts: string;
  trunk?: string;
  audioDirs: string[];
  recordDir: string;
  ringInterval: number;
  paths: string[];
  defaultExt: string;
  ignoreDtmf: boolean;
  reconnectDelay: number;
}

export interface CallInfo {
  /** The config node's id. */
  server: string;
  port: number;
  id: string;
  cid: { number: string; name: string };
  direction: 'in' | 'out';
}

export type ControllerState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'error';

/** A call that has ended, or that this server never had. */
export class CallEndedError extends CtError {
  constructor(message: string) {
    super('ECALLENDED', message);
  }
}

export class CtServerController extends EventEmitter {
  readonly id: string;
  readonly cfg: ServerConfig;
  private readonly users = new Set<object>();
  private supervisor: Supervisor | undefined;
  private clients = new Map<number, CtPort>();
  private manager: CtManager | undefined;
  private readonly calls = new Map<number, CallInfo>();
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private _state: ControllerState = 'idle';
  /** Bumped by close(): a connect() under way sees it changed and stops before starting more. */
  private gen = 0;
  private _error = '';
  private readonly log: (level: 'info' | 'warn' | 'error', msg: string) => void;

  constructor(id: string, cfg: ServerConfig, log?: (level: 'info' | 'warn' | 'error', msg: string) => void) {
    super();
    this.setMaxListeners(0);
    this.id = id;
    this.cfg = cfg;
    this.log = log ?? (() => undefined);
    if (!Number.isInteger(cfg.ports) || cfg.ports < 1 || cfg.ports > 256) throw new ValidationError(`ports must be 1 to 256, got ${cfg.ports}`);
    if (cfg.mode === 'binary' && !cfg.binary) throw new ValidationError('mode "binary" needs the path of a ctserver binary');
  }

  get state(): ControllerState {
    return this._state;
  }

  get lastError(): string {
    return this._error;
  }

  get userCount(): number {
    return this.users.size;
  }

  /** The ctserver process id, when this controller spawned one. */
  get pid(): number | undefined {
    return this.supervisor?.pid;
  }

  private setState(s: ControllerState, detail = ''): void {
    this._state = s;
    if (s === 'error') this._error = detail;
    this.emit('state', s, detail);
  }

  /** A node starts using this server. The first user connects it. */
  register(user: object): void {
    this.users.add(user);
    if (this.users.size === 1 && !this.starting && this._state !== 'connected') {
      this.starting = this.connect()
        .catch((e: Error) => {
          this.log('error', e.message);
          this.setState('error', e.message);
        })
        .finally(() => (this.starting = undefined));
    }
  }

  /** A node stops using this server. After the last one leaves, it disconnects. */
  async deregister(user: object): Promise<void> {
    this.users.delete(user);
    if (this.users.size === 0) await this.close();
  }

  /** Wait (at most waitMs) until connected; throws a clear error otherwise. */
  async ready(waitMs = 5000): Promise<void> {
    if (this._state === 'connecting' && this.starting) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.starting, new Promise<void>((r) => (t = setTimeout(r, waitMs)))]);
      if (t) clearTimeout(t);
    }
    if (this._state !== 'connected') throw new NotConnectedError(`ct-server (${this._state}${this._error ? `: ${this._error}` : ''})`);
  }

  supervisorArgs(): string[] {
    const c = this.cfg;
    const args = ['--ports', String(c.ports), '--host', c.host, '--base-port', String(c.basePort), '--manager-port', String(c.managerPort), '--quiet'];
    if (c.mode === 'bundled') {
      args.push('--sip-host', c.sipHost, '--sip-port', String(c.sipPort), '--rtp-ports', c.rtpPorts, '--ring-interval', String(c.ringInterval), '--record-dir', c.recordDir);
      for (const d of c.audioDirs) args.push('--audio-dir', d);
      if (c.trunk) args.push('--trunk', c.trunk);
    }
    return args;
  }

  private async connect(): Promise<void> {
    const gen = this.gen;
    this.setState('connecting');
    const c = this.cfg;
    if (c.mode !== 'none') {
      const fs = await import('node:fs');
      await fs.promises.mkdir(c.recordDir, { recursive: true });
      if (gen !== this.gen) return; // closed meanwhile: start nothing
      const sup = new Supervisor({ binary: c.mode === 'binary' ? c.binary : undefined, args: this.supervisorArgs(), startTimeoutMs: 15000 });
      sup.on('stderr', (l: string) => this.log('warn', `ctserver: ${l}`));
      sup.on('crashed', (e: Error) => this.setState('error', e.message));
      sup.on('restarting', () => this.setState('connecting'));
      this.supervisor = sup;
      await sup.start();
      if (gen !== this.gen) return;
    }
    const portOpts: CtPortOptions = {
      host: c.host,
      basePort: c.basePort,
      // Prompts, then the recordings folder (so a flow can play back what it recorded).
      paths: [...c.audioDirs, ...c.paths, c.recordDir],
      defaultExt: c.defaultExt,
      ignoreDtmf: c.ignoreDtmf,
      recordDir: c.recordDir,
      reconnectDelayMs: c.reconnectDelay,
      // A ctserver we do not start may come up later: keep trying (with backoff) until it does.
      connectTimeoutMs: c.mode === 'none' ? 0 : 15000,
    };
    const connects: Promise<void>[] = [];
    for (let n = 1; n <= c.ports; n++) {
      const ct = new CtPort({ ...portOpts, port: n });
      this.clients.set(n, ct);
      this.wire(n, ct);
      connects.push(ct.connect());
    }
    this.manager = new CtManager({ host: c.host, managerPort: c.managerPort, reconnectDelayMs: c.reconnectDelay, connectTimeoutMs: c.mode === 'none' ? 0 : 15000 });
    this.manager.on('socket_error', () => undefined);
    connects.push(this.manager.connect());
    await Promise.all(connects);
    if (gen !== this.gen) return;
    this.setState('connected');
    this._error = '';
  }

  private wire(n: number, ct: CtPort): void {
    ct.on('socket_error', (e: Error & { code?: string }) => {
      this.log('warn', e.message);
      // Not up yet (mode none: the ctserver may start later): say so, and keep trying.
      if (this._state === 'connecting' && e.code !== 'EPORTBUSY') this.setState('error', `could not connect to ${this.cfg.host}:${ct.tcpPort} (${e.code ?? 'error'}); retrying`);
    });
    ct.on('protocol_error', (e: Error) => this.log('warn', e.message));
    ct.on('disconnected', () => {
      if (this._state === 'connected') this.setState('disconnected');
      this.endCall(n, 'disconnected');
    });
    ct.on('connected', () => {
      if (this._state === 'disconnected' && [...this.clients.values()].every((c) => c.isConnected)) this.setState('connected');
    });
    ct.on('input', (parsed: ParsedMessage, raw: string) => this.emit('input', n, parsed, raw));
    ct.on('ring', (ev: CtEvent) => {
      let call = this.calls.get(n);
      if (!call || ev.rings === 1) {
        call = { server: this.id, port: n, id: randomUUID(), cid: ev.cid ?? { number: '', name: '' }, direction: 'in' };
        this.calls.set(n, call);
      }
      this.emit('ring', call, ev);
    });
    ct.on('dtmf', (ev: CtEvent) => this.emit('dtmf', this.calls.get(n), ev));
    ct.on('hangup', (ev: CtEvent) => {
      const call = this.calls.get(n);
      this.calls.delete(n);
      this.emit('hangup', call, ev);
      // The far end has gone: put the port back on hook so it can take the next call.
      ct.onHook().catch(() => undefined);
    });
    ct.on('event', (ev: CtEvent) => {
      if (ev.event === 'ring' || ev.event === 'dtmf' || ev.event === 'hangup') return;
      this.emit('event', this.calls.get(n), ev);
    });
  }

  private endCall(n: number, reason: string): void {
    const call = this.calls.get(n);
    if (!call) return;
    this.calls.delete(n);
    this.emit('hangup', call, { event: 'hangup', port: n, args: [reason], raw: '' } as CtEvent);
  }

  /** The client of port n. Throws a clear error when out of range or not connected. */
  port(n: number): CtPort {
    if (!Number.isInteger(n) || n < 1 || n > this.cfg.ports) throw new ValidationError(`port must be 1 to ${this.cfg.ports}, got ${JSON.stringify(n)}`);
    const ct = this.clients.get(n);
    if (!ct || !ct.isConnected) throw new NotConnectedError(`ct-server port ${n}`);
    return ct;
  }

  get managerClient(): CtManager {
    if (!this.manager || !this.manager.isConnected) throw new NotConnectedError('ct-server manager');
    return this.manager;
  }

  /** The call on port n now, if any. */
  callOn(n: number): CallInfo | undefined {
    return this.calls.get(n);
  }

  /** Throw unless `call` is this server's current call on its port. */
  checkCall(call: Partial<CallInfo>): CallInfo {
    if (!call || typeof call !== 'object' || typeof call.port !== 'number' || typeof call.id !== 'string') throw new ValidationError('msg.call must be { server, port, id } as set by a trigger node');
    if (call.server !== undefined && call.server !== this.id) throw new CallEndedError(`msg.call belongs to another ct-server (${call.server})`);
    const now = this.calls.get(call.port);
    if (!now || now.id !== call.id) throw new CallEndedError(`the call ${call.id} on port ${call.port} has ended`);
    return now;
  }

  /** Record an outbound call on a port (ct dial). */
  startOutbound(n: number, number: string): CallInfo {
    const call: CallInfo = { server: this.id, port: n, id: randomUUID(), cid: { number, name: '' }, direction: 'out' };
    this.calls.set(n, call);
    return call;
  }

  /** Forget a call (an outbound call that failed). */
  dropCall(call: CallInfo): void {
    if (this.calls.get(call.port)?.id === call.id) this.calls.delete(call.port);
  }

  /** Disconnect everything and stop the process. Resolves within a few seconds. Idempotent until done. */
  close(): Promise<void> {
    if (!this.stopping) {
      this.stopping = this.doClose().finally(() => {
        this.stopping = undefined;
      });
    }
    return this.stopping;
  }

  private async doClose(): Promise<void> {
    this.gen++;
    const clients = [...this.clients.values()];
    this.clients.clear();
    const mgr = this.manager;
    this.manager = undefined;
    await Promise.all([...clients.map((c) => c.disconnect()), mgr?.disconnect()]);
    for (const c of clients) c.removeAllListeners();
    mgr?.removeAllListeners();
    const calls = [...this.calls.keys()];
    this.calls.clear();
    void calls;
    const sup = this.supervisor;
    this.supervisor = undefined;
    if (sup) {
      await sup.stop();
      sup.removeAllListeners();
    }
    // A connect() that was under way has now failed or returned; nothing more can start.
    if (this.starting) await this.starting.catch(() => undefined);
    this.setState('idle');
  }
}

/** Build a config from the node's editor properties, with defaults and checks. */
export function configFromNode(n: Record<string, unknown>, userDir: string): ServerConfig {
  const num = (v: unknown, d: number): number => (v === undefined || v === '' || v === null ? d : Number(v));
  const list = (v: unknown): string[] =>
    String(v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => path.resolve(userDir, s));
  const mode = (n.mode as ServerConfig['mode']) || 'bundled';
  if (!['bundled', 'binary', 'none'].includes(mode)) throw new ValidationError(`mode must be bundled, binary or none, got ${JSON.stringify(mode)}`);
  return {
    mode,
    binary: n.binary ? path.resolve(userDir, String(n.binary)) : undefined,
    host: String(n.host || '127.0.0.1'),
    ports: num(n.ports, 4),
    basePort: num(n.basePort, 1199),
    managerPort: num(n.managerPort, 1198),
    sipHost: String(n.sipHost || '127.0.0.1'),
    sipPort: num(n.sipPort, 5060),
    rtpPorts: String(n.rtpPorts || '10000-20000'),
    trunk: n.trunk ? String(n.trunk) : undefined,
    audioDirs: list(n.audioDirs),
    recordDir: n.recordDir ? path.resolve(userDir, String(n.recordDir)) : path.join(userDir, 'recordings'),
    ringInterval: num(n.ringInterval, 6),
    paths: list(n.paths),
    defaultExt: String(n.defaultExt || '.au'),
    ignoreDtmf: n.ignoreDtmf === true || n.ignoreDtmf === 'true',
    reconnectDelay: num(n.reconnectDelay, 1000),
  };
}
