/**
 * The bundled ctserver: speaks the ctserver line protocol over TCP (one listener per port at
 * base+N, a manager listener), and drives each port as a SIP line.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { LineSplitter, MANAGER_HANDLE, ParsedMessage, encodeReply, escapeText, parseLine } from '../core/codec';
import { CommandSpec, commandByWire, decodeArgs } from '../core/catalog';
import { CtError } from '../core/errors';
import { Blocker, DROPPED_TIMEOUT_MS, Port } from './port';
import { RtpPortPool, RtpReservation } from './rtp-ports';
import { SipUA, InboundCall, OutboundCall, buildAudioSdp, ParsedAudioSdp } from './sip';
import { resolvePlayFiles, resolveRecordPath } from '../core/audio-paths';
import { MediaClock } from './media/clock';
import { RtpStream, PT_PCMA, PT_PCMU } from './media/rtp';
import { Conference, DtmfMode, PortMedia, RecordEnd } from './media/port-media';
import { AudioCache } from './media/audio-file';
import { Recorder } from './media/recorder';
import { TONE_TABLES, ToneRegion } from './media/dsp/tones';

export const SERVER_VERSION = 'ctport-ctserver-' + readPackageVersion();

function readPackageVersion(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return String(require('../../package.json').version);
  } catch {
    return '0.0.0';
  }
}

export interface CtServerOptions {
  ports?: number;
  host?: string;
  basePort?: number;
  managerPort?: number;
  sipHost?: string;
  sipPort?: number;
  rtpPorts?: [number, number];
  audioDirs?: string[];
  recordDir?: string;
  ringInterval?: number;
  /** Where dialled numbers go: sip:host[:port] */
  trunk?: string;
  log?: string;
  /** Digest passwords for station phones that REGISTER, by extension (port number). */
  sipAuth?: Record<string, string>;
  /** Also print log lines to this function. */
  onLog?: (line: string) => void;
  /** Let play and record paths leave --audio-dir, the vocabulary and --record-dir. */
  allowAnyPath?: boolean;
  /** Call-progress tone region (default us). */
  toneRegion?: ToneRegion;
  /** How ctdial sends keys mid-call (default auto: RFC 4733 when negotiated, else in-band). */
  dtmfMode?: DtmfMode;
}

export interface BoundAddresses {
  host: string;
  manager: number;
  ports: { port: number; tcp: number }[];
  sip: { host: string; port: number };
  rtp: [number, number];
}

/** Thrown when a listener cannot bind. */
export class BindError extends CtError {
  constructor(what: string, err: NodeJS.ErrnoException) {
    super(err.code === 'EADDRINUSE' ? 'EADDRINUSE' : 'EBIND', err.code === 'EADDRINUSE' ? `Address already in use: ${what}` : `cannot listen on ${what}: ${err.message}`);
  }
}


interface CallLeg {
  kind: 'in' | 'out' | 'station';
  call: InboundCall | OutboundCall;
  rtp?: RtpReservation;
  ringOnce?: NodeJS.Timeout;
  media?: PortMedia;
}

/** One TCP client of a port, or of the manager. Runs its commands one after another. */
class Session {
  readonly queue: ParsedMessage[] = [];
  busy = false;
  closed = false;
  constructor(
    readonly socket: net.Socket,
    readonly port: Port | undefined,
  ) {}
  send(line: string): void {
    if (!this.closed && this.socket.writable) this.socket.write(line);
  }
}

export class CtServer extends EventEmitter {
  readonly opts: Required<Omit<CtServerOptions, 'trunk' | 'log' | 'sipAuth' | 'onLog'>> & Pick<CtServerOptions, 'trunk' | 'log' | 'sipAuth' | 'onLog'>;
  /** The one media clock that drives every RTP stream of this server. */
  readonly clock: MediaClock;
  private readonly conference: Conference;
  private readonly audio = new AudioCache();
  private readonly recordings = new Set<Promise<unknown>>();
  readonly ports: Port[] = [];
  private readonly tcpServers: net.Server[] = [];
  private readonly sessions = new Set<Session>();
  private readonly owner = new Map<Port, Session>();
  private readonly legs = new Map<Port, CallLeg>();
  private sip: SipUA | undefined;
  private rtp: RtpPortPool;
  private logStream: fs.WriteStream | undefined;
  private stopping: Promise<void> | undefined;
  private bound: BoundAddresses | undefined;

  constructor(options: CtServerOptions = {}) {
    super();
    const ports = options.ports ?? 4;
    if (!Number.isInteger(ports) || ports < 1 || ports > 1024) throw new CtError('EINVAL', `--ports must be 1 to 1024, got ${ports}`);
    this.opts = {
      ports,
      host: options.host ?? '127.0.0.1',
      basePort: options.basePort ?? 1199,
      managerPort: options.managerPort ?? 1198,
      sipHost: options.sipHost ?? '127.0.0.1',
      sipPort: options.sipPort ?? 5060,
      rtpPorts: options.rtpPorts ?? [10000, 20000],
      audioDirs: options.audioDirs ?? [],
      recordDir: options.recordDir ?? process.cwd(),
      ringInterval: options.ringInterval ?? 6,
      trunk: options.trunk,
      log: options.log,
      sipAuth: options.sipAuth,
      onLog: options.onLog,
      allowAnyPath: options.allowAnyPath ?? false,
      toneRegion: options.toneRegion ?? 'us',
      dtmfMode: options.dtmfMode ?? 'auto',
    };
    if (!TONE_TABLES[this.opts.toneRegion]) throw new CtError('EINVAL', `tone region must be one of ${Object.keys(TONE_TABLES).join(', ')}, got ${this.opts.toneRegion}`);
    this.clock = new MediaClock({ onError: (e) => this.log(`media error: ${(e as Error).stack ?? e}`) });
    this.conference = new Conference(this.clock);
    for (let n = 1; n <= ports; n++) this.ports.push(new Port(n, (p, name, args) => this.deliverEvent(p, name, args)));
    this.rtp = new RtpPortPool(this.opts.sipHost, this.opts.rtpPorts[0], this.opts.rtpPorts[1]);
  }

  get addresses(): BoundAddresses | undefined {
    return this.bound;
  }

  log(line: string): void {
    const text = `${new Date().toISOString()} ${line}`;
    this.logStream?.write(text + '\n');
    this.opts.onLog?.(text);
  }

  /** Bind every listener and the SIP socket. Rejects with BindError (and closes what was opened) on failure. */
  async start(): Promise<BoundAddresses> {
    if (this.opts.log) this.logStream = fs.createWriteStream(this.opts.log, { flags: 'a' });
    try {
      const manager = await this.listen(this.opts.managerPort, undefined);
      const ports: { port: number; tcp: number }[] = [];
      for (const p of this.ports) {
        const tcp = this.opts.basePort === 0 ? 0 : this.opts.basePort + p.number;
        ports.push({ port: p.number, tcp: await this.listen(tcp, p) });
      }
      this.sip = new SipUA({ host: this.opts.sipHost, port: this.opts.sipPort, auth: this.opts.sipAuth, log: (l: string) => this.log('sip ' + l) });
      this.sip.on('invite', (call: InboundCall) => this.onInvite(call));
      let sipAddr: { host: string; port: number };
      try {
        sipAddr = await this.sip.start();
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (/in use/i.test(err.message) || err.code === 'EADDRINUSE') throw new BindError(`UDP ${this.opts.sipHost}:${this.opts.sipPort} (SIP)`, { ...err, code: 'EADDRINUSE', message: err.message, name: 'Error' });
        throw e;
      }
      this.bound = { host: this.opts.host, manager, ports, sip: sipAddr, rtp: this.opts.rtpPorts };
      this.log(`started: manager ${manager}, ports ${ports.map((p) => p.tcp).join(',')}, sip ${sipAddr.host}:${sipAddr.port}`);
      return this.bound;
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private listen(tcpPort: number, port: Port | undefined): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((sock) => this.onConnection(sock, port));
      server.once('error', (err: NodeJS.ErrnoException) => reject(new BindError(`TCP ${this.opts.host}:${tcpPort}${port ? ` (port ${port.number})` : ' (manager)'}`, err)));
      server.listen({ port: tcpPort, host: this.opts.host, exclusive: true }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.log(`listener error: ${err.message}`));
        this.tcpServers.push(server);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Graceful stop: calls hung up, sockets closed, timers cleared. Idempotent. */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.log('stopping');
    for (const p of this.ports) {
      const media = this.legs.get(p)?.media;
      media?.close('shutdown'); // recordings end and are closed as complete files below
      p.endBlocking(['EVENT', '', 'shutdown']);
      p.clearTimers();
      this.dropCall(p, 'shutdown');
      p.state = 'idle';
    }
    await Promise.all([...this.recordings]);
    this.clock.stop();
    const closing = this.tcpServers.map((l) => new Promise<void>((r) => l.close(() => r())));
    // Let replies that ending the blocking commands produced reach their clients, then close.
    await new Promise<void>((r) => setImmediate(r));
    for (const s of this.sessions) {
      s.closed = true;
      s.socket.end();
      s.socket.destroySoon();
    }
    await new Promise<void>((r) => setTimeout(r, 10));
    for (const s of this.sessions) s.socket.destroy();
    this.sessions.clear();
    await Promise.all(closing);
    if (this.sip) await this.sip.stop();
    if (this.logStream) await new Promise<void>((r) => this.logStream!.end(() => r()));
    this.logStream = undefined;
    this.emit('stopped');
  }

  // ---------------------------------------------------------------- protocol sessions

  private onConnection(sock: net.Socket, port: Port | undefined): void {
    sock.setNoDelay(true);
    if (this.stopping) {
      sock.destroy();
      return;
    }
    if (port && this.owner.has(port)) {
      const reason = `port ${port.number} is already in use by another client; only one connection per port is allowed`;
      sock.end(encodeReply('error', -1, port.handle, ['ERROR', escapeText(reason)]));
      this.log(`refused second connection to port ${port.number} from ${sock.remoteAddress}:${sock.remotePort}`);
      return;
    }
    const session = new Session(sock, port);
    this.sessions.add(session);
    if (port) this.owner.set(port, session);
    this.log(`client connected to ${port ? `port ${port.number}` : 'manager'}`);
    const splitter = new LineSplitter(
      (line) => this.onLine(session, line),
      (err) => session.send(encodeReply('error', port ? port.handle : MANAGER_HANDLE, port ? port.handle : MANAGER_HANDLE, ['ERROR', escapeText(err.message)])),
    );
    sock.on('data', (d) => splitter.push(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      session.closed = true;
      session.queue.length = 0;
      this.sessions.delete(session);
      if (port && this.owner.get(port) === session) {
        this.owner.delete(port);
        if (port.state === 'dropped') port.toIdle();
      }
      this.log(`client left ${port ? `port ${port.number}` : 'manager'}`);
    });
  }

  private onLine(session: Session, line: string): void {
    const own = session.port ? session.port.handle : MANAGER_HANDLE;
    let msg: ParsedMessage;
    try {
      msg = parseLine(line);
      if (msg.kind !== 'cmd') throw new CtError('EPROTO', 'expected a cmd= line');
    } catch (e) {
      const m = /^cmd=([A-Za-z0-9_]+)(?: |$)/.exec(line);
      session.send(encodeReply(m ? m[1] : 'error', own, own, ['ERROR', escapeText((e as Error).message)]));
      return;
    }
    const spec = commandByWire(msg.name);
    if (spec?.urgent) {
      void this.execute(session, msg).then((args) => session.send(encodeReply(msg.name, this.replySrc(session, msg), msg.src, args)));
      return;
    }
    session.queue.push(msg);
    void this.drain(session);
  }

  private replySrc(session: Session, msg: ParsedMessage): number {
    return session.port ? session.port.handle : msg.dst;
  }

  private async drain(session: Session): Promise<void> {
    if (session.busy) return;
    session.busy = true;
    try {
      while (session.queue.length > 0 && !session.closed) {
        const msg = session.queue.shift()!;
        const args = await this.execute(session, msg);
        session.send(encodeReply(msg.name, this.replySrc(session, msg), msg.src, args));
      }
    } finally {
      session.busy = false;
    }
  }

  /** Run one command; resolves with the reply arguments. Never rejects. */
  private async execute(session: Session, msg: ParsedMessage): Promise<string[]> {
    const spec = commandByWire(msg.name);
    if (!spec) return err(`unknown command "${msg.name}"`);
    let args: string[];
    try {
      args = decodeArgs(spec, msg.args);
    } catch (e) {
      return err((e as Error).message);
    }
    let port: Port | undefined;
    if (spec.addressing === 'self') {
      port = session.port ?? this.portByHandle(msg.dst);
      if (!port) return err(`${spec.wire}: dst=${msg.dst} is not a port (1 to ${this.ports.length})`);
      if (!session.port && spec.blocking) return err(`${spec.wire} blocks a port; send it on that port's own connection`);
    } else if (spec.addressing === 'target' || (spec.addressing === 'server-or-target' && msg.dst !== MANAGER_HANDLE)) {
      port = this.portByHandle(msg.dst);
      if (!port) return err(`${spec.wire}: dst=${msg.dst} is not a port (handles 0 to ${this.ports.length - 1})`);
    }
    try {
      return await this.run(spec, args, port, session, msg);
    } catch (e) {
      this.log(`${spec.wire} failed: ${(e as Error).stack}`);
      return err((e as Error).message);
    }
  }

  private portByHandle(h: number): Port | undefined {
    return h >= 0 && h < this.ports.length ? this.ports[h] : undefined;
  }

  private async run(spec: CommandSpec, args: string[], port: Port | undefined, session: Session, msg: ParsedMessage): Promise<string[]> {
    switch (spec.wire) {
      case 'ctanswer':
        return this.answer(port!);
      case 'cthangup':
        return this.hangup(port!);
      case 'ctwaitforring':
        return this.waitForRing(port!, Number(args[0] ?? 2), args[1] === undefined ? 0 : Number(args[1]));
      case 'ctsleep':
        return this.sleep(port!, Number(args[0]));
      case 'ctclear':
        port!.digits = '';
        return OK;
      case 'ctclearevents':
        port!.events = [];
        return OK;
      case 'ctdial':
        return this.dial(port!, args[0]);
      case 'ctwaitforevent':
        return this.waitForEvent(port!);
      case 'ctsendevent': {
        const text = args[0];
        if (!/^[A-Za-z0-9_.:+\-#*]+$/.test(text)) return err(`message ${JSON.stringify(text)} may hold only letters, digits and _ . : + - # *`);
        const from = session.port ? session.port.handle : MANAGER_HANDLE;
        this.sendUserEvent(port!, text, from);
        return OK;
      }
      case 'ctstarttimerasync': {
        const p = port!;
        p.stopTimer();
        p.timer = setTimeout(() => {
          p.timer = undefined;
          p.event('timer', ['timer']);
        }, Number(args[0]) * 1000);
        return OK;
      }
      case 'ctstoptimer':
        port!.stopTimer();
        return OK;
      case 'ctstartringasync':
        return this.ringStation(port!, false);
      case 'ctstartringonceasync':
        return this.ringStation(port!, true);
      case 'ctstopring':
        return this.stopStation(port!);
      case 'ctplay':
        return this.play(port!, args[0], args[1] === 'ignore_dtmf', false);
      case 'ctplayasync':
        return this.play(port!, args[0], args[1] === 'ignore_dtmf', true);
      case 'ctplay_stop': {
        const m = this.legs.get(port!)?.media;
        m?.endPlayback('stopped');
        return OK;
      }
      case 'ctrecord':
        return this.record(port!, args[0], Number(args[1]), args[2] ?? '', Number(args[3] ?? 0));
      case 'ctrecord_stop':
        this.legs.get(port!)?.media?.endRecording('record_stop');
        return OK;
      case 'ctcollect':
        return this.collect(port!, Number(args[0]), Number(args[1]), args[2] === undefined ? 0 : Number(args[2]));
      case 'ctplaytoneasync':
        this.media(port!).startTone(TONE_TABLES[this.opts.toneRegion][args[0] as 'busy']);
        return OK;
      case 'ctstoptone':
        this.legs.get(port!)?.media?.stopTone();
        return OK;
      case 'ctwaitfordial': {
        const p = port!;
        if (p.state === 'offhook') return OK; // our own line: dial tone as soon as it is off hook
        const ok = await this.media(p).waitForDialTone(TONE_TABLES[this.opts.toneRegion].dial, 10000, this.opts.toneRegion === 'eu' ? 1500 : 300);
        return ok ? OK : err('no dial tone within 10 s');
      }
      case 'ctgrunton':
        this.media(port!).setGrunt(true);
        return OK;
      case 'ctgruntoff':
        this.legs.get(port!)?.media?.setGrunt(false);
        return OK;
      case 'ctjoin':
        return this.bridge(this.portArg(args[0]), this.portArg(args[1]));
      case 'ctbridge':
        return this.bridge(port!, this.portArg(args[0]));
      case 'ctunbridge': {
        const a = this.legs.get(port!)?.media;
        const b = this.legs.get(this.portArg(args[0]))?.media;
        if (a && b && a.partner === b) {
          a.partner = undefined;
          b.partner = undefined;
        }
        return OK;
      }
      case 'ctjoinconference':
        this.conference.join(this.media(this.portArg(args[0])));
        return OK;
      case 'ctleaveconference': {
        const m = this.legs.get(this.portArg(args[0]))?.media;
        if (m) this.conference.leave(m);
        return OK;
      }
      case 'ctsetscript':
        port!.script = args[0];
        return OK;
      case 'ctsendcid':
        port!.outCid = { number: args[0], name: args[1] ?? '' };
        return OK;
      case 'ctlistenforjpcid':
      case 'ctlistenforcid':
      case 'ctreadcid':
        return cidReply(port!);
      case 'portreset':
        this.reset(port!);
        return OK;
      case 'portstatus': {
        const list = port ? [port] : this.ports;
        return ['OK', ...list.map((p) => `${p.number}:${p.state}:${p.hook}:${escapeText(p.script)}`)];
      }
      case 'rolllog':
        return this.rollLog();
      case 'serversion':
        return ['OK', SERVER_VERSION];
      case 'shutdown':
        setImmediate(() => this.emit('shutdown-requested'));
        return OK;
      default:
        void msg;
        return err(`${spec.wire} is not implemented`);
    }
  }

  private portArg(v: string): Port {
    const n = Number(v);
    const p = this.ports[n - 1];
    if (!p) throw new CtError('EINVAL', `port ${v} does not exist (1 to ${this.ports.length})`);
    return p;
  }

  // ---------------------------------------------------------------- media commands

  private async play(p: Port, file: string, ignoreDtmf: boolean, async: boolean): Promise<string[]> {
    const media = this.media(p);
    const [resolved] = await resolvePlayFiles([file], {
      paths: [...this.opts.audioDirs, this.opts.recordDir],
      defaultExt: '.au',
      allowOutside: this.opts.allowAnyPath,
    });
    const samples = await this.audio.get(resolved);
    if (async) {
      void media.play(samples);
      return OK;
    }
    return this.block(p, 'ctplay', (finish) => {
      void media.play(samples).then((end) => {
        if (end === 'done') finish(['OK', p.digits, '']);
        else if (end === 'stopped') finish(['OK', p.digits, 'play_stop']);
        else finish(['EVENT', p.digits, end]);
      });
      return {
        onEvent: (name) => {
          if (name === 'dtmf' && !ignoreDtmf) media.endPlayback('dtmf');
          else if (name === 'hangup') media.endPlayback('hangup');
          return false;
        },
      };
    });
  }

  private async record(p: Port, file: string, seconds: number, termDigits: string, silence: number): Promise<string[]> {
    const media = this.media(p);
    const target = await resolveRecordPath(file, { recordDir: this.opts.recordDir, allowOutside: this.opts.allowAnyPath });
    const recorder = await Recorder.open(target);
    let end: RecordEnd = 'hangup';
    const done = (async () => {
      end = await new Promise<RecordEnd>((resolve) => {
        if (p.state !== 'connected' || this.legs.get(p)?.media !== media) resolve('hangup');
        else void media.record(recorder, { maxSeconds: seconds, termDigits, silenceSeconds: silence }).then(resolve);
      });
      return recorder.close();
    })();
    this.recordings.add(done);
    const blocked = this.block(p, 'ctrecord', (finish) => {
      void done.then(
        (info) => {
          this.log(`port ${p.number}: recorded ${info.file} (${info.seconds.toFixed(2)} s, ${end})`);
          const ok = end === 'timeout' || end === 'silence' || end === 'record_stop';
          finish([ok ? 'OK' : 'EVENT', p.digits, end]);
        },
        (e: Error) => finish(err(`recording ${target} failed: ${e.message}`)),
      );
      return {
        onEvent: (name) => {
          if (name === 'RECORD_STOP') media.endRecording('record_stop');
          return false;
        },
        // Hang-up, reset or shutdown: stop recording, and reply only once the file is closed.
        onEnd: (args) => {
          media.endRecording(args[2] === 'shutdown' ? 'shutdown' : 'hangup');
          return true;
        },
      };
    });
    void done.finally(() => this.recordings.delete(done)).catch(() => undefined);
    return blocked;
  }

  private collect(p: Port, max: number, seconds: number, inter: number): Promise<string[]> {
    const take = (n: number): string => {
      const d = p.digits.slice(0, n);
      p.digits = p.digits.slice(n);
      return d;
    };
    if (p.digits.length >= max) return Promise.resolve(['OK', take(max), '']);
    return this.block(p, 'ctcollect', (finish) => {
      const total = setTimeout(() => finish(['OK', take(max), 'timeout']), seconds * 1000);
      let gap: NodeJS.Timeout | undefined;
      return {
        onEvent: (name) => {
          if (name === 'dtmf') {
            if (p.digits.length >= max) finish(['OK', take(max), '']);
            else if (inter > 0) {
              if (gap) clearTimeout(gap);
              gap = setTimeout(() => finish(['OK', take(max), 'interdigit']), inter * 1000);
            }
          } else if (name === 'hangup') finish(['EVENT', take(max), 'hangup']);
          return false;
        },
        cleanup: () => {
          clearTimeout(total);
          if (gap) clearTimeout(gap);
        },
      };
    });
  }

  private bridge(a: Port, b: Port): string[] {
    if (a === b) return err(`cannot bridge port ${a.number} to itself`);
    const ma = this.media(a);
    const mb = this.media(b);
    for (const m of [ma, mb]) {
      if (m.partner && m.partner !== ma && m.partner !== mb) {
        m.partner.partner = undefined;
      }
      m.conference?.leave(m);
    }
    ma.partner = mb;
    mb.partner = ma;
    return OK;
  }

  // ---------------------------------------------------------------- events

  private deliverEvent(p: Port, name: string, args: string[], src = p.handle): void {
    const s = this.owner.get(p);
    this.log(`port ${p.number} event ${name} ${args.slice(1).join(' ')}`);
    if (s) s.send(encodeReply(name, src, p.handle, args));
  }

  private sendUserEvent(p: Port, text: string, from: number): void {
    if (text === 'RECORD_STOP') this.legs.get(p)?.media?.endRecording('record_stop');
    const s = this.owner.get(p);
    if (s) s.send(encodeReply(text, from, p.handle, [text]));
    const b = p.blocker;
    if (b?.onEvent && b.onEvent(text, [text])) return;
    p.events.push({ name: text, args: [text] });
  }

  /** Start a blocking command: resolves when finish() is called by the command, an event, hangup or reset. */
  private block(p: Port, wire: string, setup: (finish: (args: string[]) => void) => Pick<Blocker, 'onEvent' | 'onEnd'> & { cleanup?: () => void }): Promise<string[]> {
    if (p.blocker) return Promise.resolve(err(`port ${p.number} is busy with ${p.blocker.wire}`));
    return new Promise<string[]>((resolve) => {
      let done = false;
      let hooks: ReturnType<typeof setup> | undefined;
      const finish = (args: string[]): void => {
        if (done) return;
        done = true;
        if (p.blocker === blocker) p.blocker = undefined;
        hooks?.cleanup?.();
        resolve(args);
      };
      const blocker: Blocker = { wire, finish, onEvent: (n, a) => (hooks?.onEvent ? hooks.onEvent(n, a) : false), onEnd: (a) => (hooks?.onEnd ? hooks.onEnd(a) : false) };
      p.blocker = blocker;
      hooks = setup(finish);
    });
  }

  private sleep(p: Port, seconds: number): Promise<string[]> {
    return this.block(p, 'ctsleep', (finish) => {
      const t = setTimeout(() => finish(['OK', p.digits]), seconds * 1000);
      return {
        onEvent: (name) => {
          if (name === 'dtmf' || name === 'hangup') {
            finish(['EVENT', p.digits, name]);
            return false;
          }
          return false;
        },
        cleanup: () => clearTimeout(t),
      };
    });
  }

  private waitForRing(p: Port, rings: number, ird: number): Promise<string[]> {
    if (p.state === 'ringing' && p.rings >= rings) return Promise.resolve(cidReply(p));
    return this.block(p, 'ctwaitforring', (finish) => {
      let t: NodeJS.Timeout | undefined;
      const arm = (): void => {
        if (t) clearTimeout(t);
        if (ird > 0) t = setTimeout(() => finish(['EVENT', p.cid.number, 'timeout', escapeText(p.cid.name)]), ird * 1000);
      };
      return {
        onEvent: (name) => {
          if (name === 'ring') {
            arm();
            if (p.rings >= rings) finish(cidReply(p));
          } else if (name === 'hangup') finish(['EVENT', p.cid.number, 'hangup', escapeText(p.cid.name)]);
          return false;
        },
        cleanup: () => t && clearTimeout(t),
      };
    });
  }

  private waitForEvent(p: Port): Promise<string[]> {
    const next = p.events.shift();
    if (next) return Promise.resolve(['OK', next.name]);
    return this.block(p, 'ctwaitforevent', (finish) => ({
      onEvent: (name) => {
        finish(['OK', name]);
        return true;
      },
    }));
  }

  // ---------------------------------------------------------------- call control

  private onInvite(call: InboundCall): void {
    const user = call.to.user;
    let port: Port | undefined;
    if (/^\d+$/.test(user) && Number(user) >= 1 && Number(user) <= this.ports.length) {
      port = this.ports[Number(user) - 1];
      if (port.state !== 'idle') {
        this.log(`INVITE for busy port ${port.number}: 486`);
        call.reject(486, 'Busy Here');
        return;
      }
    } else {
      // Hunt: the idle port that has been idle longest.
      for (const p of this.ports) if (p.state === 'idle' && (!port || p.idleSince < port.idleSince)) port = p;
      if (!port) {
        this.log(`INVITE for ${user}: no free port, 486`);
        call.reject(486, 'Busy Here');
        return;
      }
    }
    const p = port;
    p.state = 'ringing';
    p.rings = 0;
    p.cid = { number: call.from.number, name: call.from.name };
    const leg: CallLeg = { kind: 'in', call };
    this.legs.set(p, leg);
    call.ringing();
    this.log(`port ${p.number}: incoming call from ${call.from.number} "${call.from.name}"`);
    const ring = (): void => {
      p.rings++;
      p.event('ring', ['ring', String(p.rings), p.cid.number, escapeText(p.cid.name)]);
      if (p.rings === 1) p.event('cid', ['cid', p.cid.number, escapeText(p.cid.name)]);
      p.ringTimer = setTimeout(ring, this.opts.ringInterval * 1000);
    };
    ring();
    this.watchCall(p, leg);
  }

  /** Remote-side endings and in-dialog requests for any call leg. */
  private watchCall(p: Port, leg: CallLeg): void {
    const call = leg.call as EventEmitter & { on: EventEmitter['on'] };
    call.on('info', (info: { contentType?: string; body?: string }) => this.onInfo(p, info));
    call.once('ended', (reason: string) => {
      if (this.legs.get(p) !== leg) return;
      this.legs.delete(p);
      this.releaseLeg(leg);
      p.stopRingTimer();
      if (reason === 'local') return;
      this.log(`port ${p.number}: call ended (${reason})`);
      const wasDialing = p.state === 'dialing';
      if (wasDialing) return; // handled by the 'failed' listener
      if (this.owner.has(p)) {
        // Loop drop: wait for the program to hang up (see Port).
        p.state = 'dropped';
        p.droppedTimer = setTimeout(() => {
          if (p.state === 'dropped') p.toIdle();
        }, DROPPED_TIMEOUT_MS);
      } else p.toIdle();
      if (leg.kind !== 'station') p.event('loopdrop', ['loopdrop']);
      p.event('hangup', ['hangup']);
      p.endBlocking(['EVENT', p.digits, 'hangup']);
    });
  }

  private onInfo(p: Port, info: { contentType?: string; body?: string }): void {
    const type = (info.contentType ?? '').toLowerCase();
    const body = info.body ?? '';
    let signal: string | undefined;
    if (type.startsWith('application/dtmf-relay')) signal = /signal\s*=\s*(1[0-6]|[0-9A-Da-d*#!])/i.exec(body)?.[1];
    else if (type.startsWith('application/dtmf')) signal = body.trim().slice(0, 2);
    else if (type.startsWith('application/hook-flash')) signal = '16';
    if (!signal) return;
    if (signal === '16' || signal === '!') {
      p.event('flash', ['flash']);
      return;
    }
    const key = ({ '10': '*', '11': '#', '12': 'A', '13': 'B', '14': 'C', '15': 'D' } as Record<string, string>)[signal] ?? signal.toUpperCase();
    if (!/^[0-9*#A-D]$/.test(key)) return;
    p.digits += key;
    p.event('dtmf', [key]);
  }

  private releaseLeg(leg: CallLeg): void {
    leg.media?.close();
    leg.media = undefined;
    leg.rtp?.release();
    leg.rtp = undefined;
    if (leg.ringOnce) clearTimeout(leg.ringOnce);
  }

  /** Hang up whatever call the port has, without raising events. */
  private dropCall(p: Port, why: string): void {
    const leg = this.legs.get(p);
    if (!leg) return;
    this.legs.delete(p);
    this.releaseLeg(leg);
    p.stopRingTimer();
    const call = leg.call;
    try {
      if (leg.kind === 'in' && call.state !== 'answered' && call.state !== 'confirmed') (call as InboundCall).reject(486, 'Busy Here');
      else call.hangup();
    } catch (e) {
      this.log(`port ${p.number}: ${why}: ${(e as Error).message}`);
    }
  }

  /** Start RTP for a connected call, with the payload type the two sides agreed on. */
  private startMedia(p: Port, leg: CallLeg, remote: ParsedAudioSdp, pt?: number): void {
    if (!leg.rtp || leg.media) return;
    const chosen = pt ?? remote.payloads.find((x) => x === PT_PCMU || x === PT_PCMA) ?? PT_PCMU;
    const stream = new RtpStream({
      socket: leg.rtp.socket,
      remote: remote.port > 0 ? { address: remote.address, port: remote.port } : undefined,
      payloadType: chosen,
      telephoneEvent: remote.telephoneEvent,
    });
    leg.media = new PortMedia({
      stream,
      clock: this.clock,
      dtmfMode: this.opts.dtmfMode,
      onDigit: (key) => {
        p.digits += key;
        p.event('dtmf', [key]);
      },
      onFlash: () => p.event('flash', ['flash']),
      onGrunt: (state) => {
        if (state === 'start') p.event('grunt', ['grunt']);
      },
      onToneEnd: () => p.event('toneend', ['toneend']),
    });
    this.log(`port ${p.number}: media ${chosen === PT_PCMA ? 'PCMA' : 'PCMU'} ${leg.rtp.port} <-> ${remote.address}:${remote.port}${remote.telephoneEvent !== undefined ? ` telephone-event/${remote.telephoneEvent}` : ''}`);
  }

  private media(p: Port): PortMedia {
    const m = this.legs.get(p)?.media;
    if (!m || p.state !== 'connected') throw new CtError('ENOCALL', `port ${p.number} has no call with audio (it is ${p.state})`);
    return m;
  }

  private async sdpFor(leg: CallLeg): Promise<string> {
    leg.rtp = await this.rtp.reserve();
    return buildAudioSdp({ address: this.opts.sipHost, port: leg.rtp.port });
  }

  private async answer(p: Port): Promise<string[]> {
    switch (p.state) {
      case 'ringing': {
        const leg = this.legs.get(p)!;
        const call = leg.call as InboundCall;
        p.stopRingTimer();
        const offer = call.remoteSdp;
        const pt = offer ? offer.payloads.find((x) => x === PT_PCMU || x === PT_PCMA) : PT_PCMU;
        if (pt === undefined) {
          this.dropCall(p, 'no codec');
          call.reject(488, 'Not Acceptable Here');
          p.state = 'idle';
          return err('the caller offers neither PCMU nor PCMA');
        }
        leg.rtp = await this.rtp.reserve();
        if (this.legs.get(p) !== leg) {
          this.releaseLeg(leg);
          return err('the caller hung up before the answer');
        }
        // Answer with every G.711 codec of the offer, in its order; we send the first.
        const codecs = offer ? offer.payloads.filter((x) => x === PT_PCMU || x === PT_PCMA).map((x) => (x === PT_PCMA ? 'PCMA' : 'PCMU') as 'PCMA' | 'PCMU') : undefined;
        const sdp = buildAudioSdp({
          address: this.opts.sipHost,
          port: leg.rtp.port,
          codecs,
          telephoneEvent: offer ? (offer.telephoneEvent ?? false) : 101,
        });
        call.answer(sdp);
        p.state = 'connected';
        if (offer) this.startMedia(p, leg, offer, pt);
        return OK;
      }
      case 'idle':
        p.state = 'offhook';
        p.digits = '';
        return OK;
      case 'station':
        return err(`port ${p.number} is ringing its phone; use ctstopring first`);
      case 'dropped':
        return err(`port ${p.number}: the far end has hung up; send cthangup`);
      default:
        return OK;
    }
  }

  private hangup(p: Port): string[] {
    this.dropCall(p, 'hangup');
    p.toIdle();
    return OK;
  }

  private reset(p: Port): void {
    p.endBlocking(['ERROR', escapeText('port reset')]);
    p.clearTimers();
    this.dropCall(p, 'reset');
    p.toIdle();
    p.digits = '';
    p.events = [];
    p.script = '';
  }

  /**
   * ctdial. With no call up (off hook, dial tone): the dialable characters form the number and an
   * INVITE goes to sip:<number>@<trunk>; each `,` waits one second first; `&` is ignored. The reply
   * comes once the INVITE is sent; the outcome arrives as a `pickup`, `busy` or `failed` event.
   * With a call up: `&` sends a hook flash as SIP INFO (application/dtmf-relay, Signal=16), `,`
   * pauses; digits need the media layer.
   */
  private dial(p: Port, dial: string): Promise<string[]> {
    const pauses = (dial.match(/,/g) ?? []).length;
    if (p.state === 'connected') {
      const leg = this.legs.get(p)!;
      const media = leg.media;
      return this.block(p, 'ctdial', (finish) => {
        if (dial.includes('&')) void (leg.call as OutboundCall).info('application/dtmf-relay', 'Signal=16\r\nDuration=500\r\n').catch(() => undefined);
        if (!media) {
          // No audio stream: only pauses and flashes can be honoured.
          if (/[0-9*#A-D]/.test(dial)) {
            finish(err('this call has no audio stream to send keys on'));
            return {};
          }
          const t = setTimeout(() => finish(['OK', '']), pauses * 1000);
          return { cleanup: () => clearTimeout(t) };
        }
        void media.sendDigits(dial).then(() => finish(['OK', '']));
        return { onEvent: (n) => (n === 'hangup' ? (finish(['EVENT', 'hangup']), false) : false) };
      });
    }
    if (p.state !== 'offhook') return Promise.resolve(err(`port ${p.number} must be off hook with no call to dial (it is ${p.state}); send ctanswer first`));
    const number = dial.replace(/[,&]/g, '');
    if (!number) {
      return this.block(p, 'ctdial', (finish) => {
        const t = setTimeout(() => finish(['OK', '']), pauses * 1000);
        return { cleanup: () => clearTimeout(t) };
      });
    }
    if (!this.opts.trunk) return Promise.resolve(err('no trunk configured: start ctserver with --trunk sip:host[:port]'));
    const trunk = this.opts.trunk.replace(/^sips?:/, '');
    return this.block(p, 'ctdial', (finish) => {
      const t = setTimeout(() => {
        void this.placeCall(p, `sip:${number}@${trunk}`).then(finish, (e: Error) => finish(err(e.message)));
      }, pauses * 1000);
      return { onEvent: () => false, cleanup: () => clearTimeout(t) };
    });
  }

  private async placeCall(p: Port, uri: string): Promise<string[]> {
    if (p.state !== 'offhook') return err(`port ${p.number} went ${p.state} while dialling`);
    p.state = 'dialing';
    const leg: CallLeg = { kind: 'out', call: undefined as unknown as OutboundCall };
    let sdp: string;
    try {
      sdp = await this.sdpFor(leg);
    } catch (e) {
      p.state = 'offhook';
      throw e;
    }
    if (p.state !== 'dialing') {
      this.releaseLeg(leg);
      return err('dialling was cancelled');
    }
    const from = p.outCid.number || String(p.number);
    const call = this.sip!.invite(uri, { from: { number: from, name: p.outCid.name || undefined }, sdp });
    leg.call = call;
    this.legs.set(p, leg);
    this.log(`port ${p.number}: dialling ${uri}`);
    call.on('answered', (remote: ParsedAudioSdp) => {
      if (this.legs.get(p) !== leg) return;
      p.state = 'connected';
      this.startMedia(p, leg, remote);
      p.event('pickup', ['pickup']);
    });
    call.on('failed', (status: number, reason: string) => {
      if (this.legs.get(p) !== leg) return;
      this.legs.delete(p);
      this.releaseLeg(leg);
      p.state = 'offhook';
      const busy = status === 486 || status === 600 || status === 603;
      this.log(`port ${p.number}: call to ${uri} failed: ${status} ${reason}`);
      p.event(busy ? 'busy' : 'failed', [busy ? 'busy' : 'failed', String(status), escapeText(reason || '')]);
    });
    this.watchCall(p, leg);
    return ['OK', ''];
  }

  private ringStation(p: Port, once: boolean): string[] {
    if (p.state !== 'idle') return err(`port ${p.number} is ${p.state}; it can ring its phone only when idle`);
    const binding = this.sip!.lookup(String(p.number));
    if (!binding) return err(`no phone is registered on port ${p.number} (REGISTER as sip:${p.number}@${this.bound?.sip.host}:${this.bound?.sip.port})`);
    const leg: CallLeg = { kind: 'station', call: undefined as unknown as OutboundCall };
    p.state = 'station';
    this.legs.set(p, leg);
    void this.sdpFor(leg).then(
      (sdp) => {
        if (this.legs.get(p) !== leg) return this.releaseLeg(leg);
        const from = { number: p.outCid.number || 'ctserver', name: p.outCid.name || undefined };
        const call = this.sip!.invite(binding.uri, { from, sdp });
        leg.call = call;
        call.on('answered', (remote: ParsedAudioSdp) => {
          if (this.legs.get(p) !== leg) return;
          if (leg.ringOnce) clearTimeout(leg.ringOnce);
          p.state = 'connected';
          this.startMedia(p, leg, remote);
          p.event('pickup', ['pickup']);
        });
        call.on('failed', (status: number) => {
          if (this.legs.get(p) !== leg) return;
          this.legs.delete(p);
          this.releaseLeg(leg);
          p.state = 'idle';
          this.log(`port ${p.number}: phone did not answer (${status})`);
        });
        this.watchCall(p, leg);
        if (once) leg.ringOnce = setTimeout(() => this.stopStation(p), 2000);
      },
      (e: Error) => {
        this.legs.delete(p);
        p.state = 'idle';
        this.log(`port ${p.number}: cannot ring phone: ${e.message}`);
      },
    );
    return OK;
  }

  private stopStation(p: Port): string[] {
    if (p.state !== 'station') return OK;
    this.dropCall(p, 'stop_ring');
    p.state = 'idle';
    return OK;
  }

  private async rollLog(): Promise<string[]> {
    const file = this.opts.log;
    if (!file) return ['OK'];
    const old = this.logStream;
    const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, '');
    await new Promise<void>((r) => (old ? old.end(() => r()) : r()));
    const dest = `${file}.${stamp}`;
    await fs.promises.rename(file, dest).catch(() => undefined);
    this.logStream = fs.createWriteStream(file, { flags: 'a' });
    this.log(`log rolled; previous log in ${path.basename(dest)}`);
    return ['OK'];
  }
}

const OK = ['OK'];

function err(reason: string): string[] {
  return ['ERROR', escapeText(reason)];
}

function cidReply(p: Port): string[] {
  return ['OK', p.cid.number, '', escapeText(p.cid.name)];
}
