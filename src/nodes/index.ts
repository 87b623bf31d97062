/**
 * Node-RED glue: the ct-server config node and the trigger and action nodes. Thin: the work is
 * in CtServerController (controller.ts) and in the core client.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { CtEvent } from '../core/client';
import { CommandResult, commandByEvent, getCommand, TONE_TYPES } from '../core/catalog';
import { ValidationError } from '../core/errors';
import { CallInfo, CtServerController, ControllerState, configFromNode } from './controller';
import { StatusState, clearStatus, setStatus as setStatusWith } from './status';

type Msg = NodeMessage & { call?: CallInfo; [k: string]: unknown };
type Send = (msg: Msg | (Msg | null)[]) => void;
type Done = (err?: Error) => void;
type Props = NodeDef & Record<string, unknown>;

interface ServerNode extends Node {
  controller?: CtServerController;
}

const STATE_LOOK: Record<ControllerState, StatusState> = {
  idle: 'idle',
  connecting: 'connecting',
  connected: 'connected',
  disconnected: 'disconnected',
  error: 'error',
};

/** Commands handled by their own nodes; `ct command` offers the rest. */
const DEDICATED = new Set(['off_hook', 'on_hook', 'play', 'play_async', 'record', 'collect', 'dial', 'play_tone', 'stop_tone', 'join', 'bridge', 'unbridge', 'join_conference', 'leave_conference']);

export = function register(RED: NodeAPI): void {
  const translate = (key: string): string => (RED as unknown as { _: (k: string) => string })._(key);
  const setStatus = (node: Node, state: StatusState, detail?: string): void => setStatusWith(node, state, detail, translate);
  // ------------------------------------------------------------------ config node
  function CtServerNode(this: ServerNode, n: Props): void {
    RED.nodes.createNode(this, n);
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir ?? process.cwd();
    try {
      this.controller = new CtServerController(this.id, configFromNode(n, userDir), (level, m) => (level === 'info' ? this.log(m) : this[level](m)));
    } catch (e) {
      this.error((e as Error).message);
    }
    this.on('close', (_removed: boolean, done: () => void) => {
      let called = false;
      const finish = (): void => {
        if (called) return;
        called = true;
        clearTimeout(timer);
        done();
      };
      const timer = setTimeout(finish, 4500);
      if (!this.controller) return finish();
      this.controller.close().then(finish, (e: Error) => {
        this.warn(e.message);
        finish();
      });
    });
  }
  RED.nodes.registerType('ct-server', CtServerNode as unknown as Parameters<NodeAPI['nodes']['registerType']>[1]);

  /** Attach a node to its config node: register, follow its state, clean up on close. */
  function attach(node: Node, n: Props): { ctl: CtServerController; on: (ev: string, fn: (...a: any[]) => void) => void } | undefined {
    const server = RED.nodes.getNode(String(n.server ?? '')) as ServerNode | null;
    if (!server || !server.controller) {
      setStatus(node, 'error', 'no ct-server');
      node.on('input', (_msg: Msg, _send: Send, done: Done) => done(new ValidationError('no ct-server configured for this node')));
      return undefined;
    }
    const ctl = server.controller;
    const subs: (() => void)[] = [];
    const on = (ev: string, fn: (...a: any[]) => void): void => {
      ctl.on(ev, fn);
      subs.push(() => ctl.removeListener(ev, fn));
    };
    on('state', (s: ControllerState) => setStatus(node, STATE_LOOK[s]));
    setStatus(node, STATE_LOOK[ctl.state]);
    ctl.register(node);
    node.on('close', (_removed: boolean, done: () => void) => {
      subs.forEach((f) => f());
      clearStatus(node);
      ctl.deregister(node).then(
        () => done(),
        () => done(),
      );
    });
    return { ctl, on };
  }

  const portMatches = (setting: unknown, port: number): boolean => !setting || setting === 'any' || Number(setting) === port;

  // ------------------------------------------------------------------ triggers
  function CtRingNode(this: Node, n: Props): void {
    RED.nodes.createNode(this, n);
    const a = attach(this, n);
    if (!a) return;
    a.on('ring', (call: CallInfo, ev: CtEvent) => {
      if (ev.rings !== 1 || !portMatches(n.port, call.port)) return;
      setStatus(this, 'ringing', `port ${call.port}`);
      this.send({ topic: 'ring', payload: { port: call.port, rings: ev.rings, cid: call.cid }, call: { ...call } } as Msg);
    });
    a.on('hangup', (call: CallInfo | undefined) => {
      if (call && portMatches(n.port, call.port)) setStatus(this, 'connected');
    });
  }
  RED.nodes.registerType('ct ring', CtRingNode as any);

  function CtDtmfNode(this: Node, n: Props): void {
    RED.nodes.createNode(this, n);
    const a = attach(this, n);
    if (!a) return;
    const mode = n.mode === 'string' ? 'string' : 'key';
    const term = String(n.terminator ?? '#');
    const timeoutMs = Math.max(0, Number(n.timeout ?? 3)) * 1000;
    const pending = new Map<number, { keys: string; call?: CallInfo; timer?: NodeJS.Timeout }>();
    const flush = (port: number): void => {
      const p = pending.get(port);
      if (!p) return;
      pending.delete(port);
      if (p.timer) clearTimeout(p.timer);
      if (p.keys) this.send({ topic: 'dtmf', payload: p.keys, call: p.call ? { ...p.call } : undefined } as Msg);
    };
    a.on('dtmf', (call: CallInfo | undefined, ev: CtEvent) => {
      if (!portMatches(n.port, ev.port) || !ev.digit) return;
      if (mode === 'key') {
        this.send({ topic: 'dtmf', payload: ev.digit, call: call ? { ...call } : undefined } as Msg);
        return;
      }
      const p = pending.get(ev.port) ?? { keys: '', call };
      pending.set(ev.port, p);
      if (term && term.includes(ev.digit)) return flush(ev.port);
      p.keys += ev.digit;
      if (p.timer) clearTimeout(p.timer);
      if (timeoutMs > 0) p.timer = setTimeout(() => flush(ev.port), timeoutMs);
    });
    a.on('hangup', (call: CallInfo | undefined) => call && flush(call.port));
    this.on('close', () => {
      for (const p of pending.values()) if (p.timer) clearTimeout(p.timer);
      pending.clear();
    });
  }
  RED.nodes.registerType('ct dtmf', CtDtmfNode as any);

  function CtHangupNode(this: Node, n: Props): void {
    RED.nodes.createNode(this, n);
    const a = attach(this, n);
    if (!a) return;
    a.on('hangup', (call: CallInfo | undefined, ev: CtEvent) => {
      if (!call || !portMatches(n.port, call.port)) return;
      this.send({ topic: 'hangup', payload: { port: call.port, reason: ev.args?.[0] === 'hangup' || !ev.args?.[0] ? 'hangup' : ev.args[0] }, call: { ...call } } as Msg);
    });
  }
  RED.nodes.registerType('ct hangup', CtHangupNode as any);

  function CtEventNode(this: Node, n: Props): void {
    RED.nodes.createNode(this, n);
    const a = attach(this, n);
    if (!a) return;
    const filter = String(n.events ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    a.on('event', (call: CallInfo | undefined, ev: CtEvent) => {
      if (!portMatches(n.port, ev.port)) return;
      if (filter.length && !filter.includes(ev.event)) return;
      this.send({ topic: ev.event, payload: { event: ev.event, port: ev.port, args: ev.args, user: !!ev.user }, call: call ? { ...call } : undefined } as Msg);
    });
    if (n.raw === true || n.raw === 'true') {
      a.on('input', (port: number, parsed: unknown, raw: string) => {
        if (!portMatches(n.port, port)) return;
        this.send({ topic: 'input', payload: parsed, raw, port } as Msg);
      });
    }
  }
  RED.nodes.registerType('ct event', CtEventNode as any);

  // ------------------------------------------------------------------ actions
  interface Ctx {
    ctl: CtServerController;
    node: Node;
    msg: Msg;
    port: number;
    call: CallInfo | undefined;
  }

  /**
   * The one input pattern: every path ends in done(). The run function returns 'done' or
   * 'hangup' (which output the message leaves by).
   */
  function action(type: string, run: (ctx: Ctx, n: Props) => Promise<'done' | 'hangup'>, opts: { needsCall?: boolean } = {}): void {
    function ActionNode(this: Node, n: Props): void {
      RED.nodes.createNode(this, n);
      const a = attach(this, n);
      if (!a) return;
      const node = this;
      a.on('hangup', () => {
        if (a.ctl.state === 'connected') setStatus(node, 'connected');
      });
      this.on('input', async (msg: Msg, send: Send, done: Done) => {
        try {
          const ctl = a.ctl;
          await ctl.ready();
          let call: CallInfo | undefined;
          let port: number;
          if (msg.call !== undefined && msg.call !== null) {
            call = ctl.checkCall(msg.call);
            port = call.port;
          } else {
            if (!n.port || n.port === 'any') throw new ValidationError(`${type}: no msg.call, and no port set on the node`);
            port = Number(n.port);
            call = ctl.callOn(port);
            if (opts.needsCall && !call) throw new ValidationError(`${type}: port ${port} has no call`);
          }
          const out = await run({ ctl, node, msg, port, call }, n);
          if (ctl.state === 'connected') setStatus(node, ctl.callOn(port) ? 'incall' : 'connected', `port ${port}`);
          send(out === 'done' ? [msg, null] : [null, msg]);
          done();
        } catch (e) {
          setStatus(node, 'error', (e as Error).message.slice(0, 40));
          done(e as Error);
        }
      });
    }
    RED.nodes.registerType(type, ActionNode as any);
  }

  /** Throw a clear error for an ERROR reply. */
  const ok = (r: CommandResult, what: string): CommandResult => {
    if (r.status === 'ERROR') throw new Error(`${what}: ${r.reason}`);
    return r;
  };
  const ended = (r: CommandResult): boolean => r.status === 'EVENT' && r.event === 'hangup';
  const value = (nodeValue: unknown, msgValue: unknown): unknown => (nodeValue !== undefined && nodeValue !== null && nodeValue !== '' ? nodeValue : msgValue);

  action('ct hook', async ({ ctl, msg, port, call }, n) => {
    const what = String(value(n.action === 'msg' ? '' : n.action, msg.payload) ?? '');
    if (what === 'answer' || what === 'off') {
      if (!call) throw new ValidationError(`ct hook: port ${port} has no call to answer`);
      ok(await ctl.port(port).offHook(), 'answer');
      return 'done';
    }
    if (what === 'hangup' || what === 'on') {
      ok(await ctl.port(port).onHook(), 'hang up');
      if (call) ctl.dropCall(call);
      return 'done';
    }
    throw new ValidationError(`ct hook: action must be "answer" or "hangup", got ${JSON.stringify(what)}`);
  });

  action('ct play', async ({ ctl, node, msg, port }, n) => {
    const files = value(n.files, msg.payload);
    if (!files || (typeof files !== 'string' && !Array.isArray(files))) throw new ValidationError('ct play: no files: set them on the node or send msg.payload as a string or an array');
    setStatus(node, 'playing', `port ${port}`);
    const r = ok(await ctl.port(port).play(files as string | string[], { ignoreDtmf: n.ignoreDtmf === true || undefined }), 'play');
    msg.payload = r.digits;
    return ended(r) ? 'hangup' : 'done';
  });

  action('ct record', async ({ ctl, node, msg, port, call }, n) => {
    const template = String(value(n.file, typeof msg.payload === 'string' ? msg.payload : '') || 'msg-{port}-{time}.wav');
    const now = new Date();
    const pad = (x: number): string => String(x).padStart(2, '0');
    const time = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
    const file = template
      .replace(/\{port\}/g, String(port))
      .replace(/\{time\}/g, time)
      .replace(/\{caller\}/g, (call?.cid.number || 'unknown').replace(/[^A-Za-z0-9+_-]/g, '_'))
      .replace(/\{id\}/g, call?.id ?? 'nocall');
    const seconds = Number(value(n.seconds, msg.seconds) ?? 60);
    // Stop keys: set on the node (an emptied field means none), else msg.digits, else '#'.
    const digits = typeof n.digits === 'string' && n.digits !== '' ? n.digits : msg.digits !== undefined ? String(msg.digits) : n.digits === '' ? '' : '#';
    const silence = Number(value(n.silence, msg.silence) ?? 3);
    setStatus(node, 'recording', `port ${port}`);
    const t0 = Date.now();
    const r = ok(await ctl.port(port).record(file, seconds, digits, silence), 'record');
    const path = await import('node:path');
    msg.payload = { file: path.resolve(ctl.cfg.recordDir, file), seconds: Math.round((Date.now() - t0) / 100) / 10, digits: r.digits, reason: r.event || 'timeout' };
    return ended(r) ? 'hangup' : 'done';
  });

  action('ct collect', async ({ ctl, node, msg, port }, n) => {
    const ct = ctl.port(port);
    const min = Number(n.minDigits ?? 1);
    const max = Number(n.maxDigits ?? 4);
    const tries = Math.max(1, Number(n.tries ?? 3));
    const terms = String(n.terminators ?? '#');
    const timeout = Number(n.timeout ?? 5);
    const inter = Number(n.interDigit ?? 3);
    const prompt = value(n.prompt, msg.prompt) as string | string[] | undefined;
    const invalid = value(n.invalidPrompt, msg.invalidPrompt) as string | string[] | undefined;
    setStatus(node, 'collecting', `port ${port}`);
    for (let attempt = 1; attempt <= tries; attempt++) {
      if (attempt > 1) await ct.clear();
      if (prompt) {
        const p = ok(await ct.play(prompt), 'collect prompt');
        if (ended(p)) return 'hangup';
      }
      // One key at a time, so that a terminator ends the entry at once: the first key may take
      // `timeout` seconds, each later one `interDigit` seconds (or `timeout` when that is 0).
      let digits = '';
      let hungUp = false;
      while (digits.length < max) {
        const r = ok(await ct.collect(1, digits.length === 0 ? timeout : inter > 0 ? inter : timeout), 'collect');
        if (ended(r)) {
          hungUp = true;
          break;
        }
        if (r.digits === '') break; // timed out
        if (terms.includes(r.digits)) break;
        digits += r.digits;
      }
      if (hungUp) return 'hangup';
      if (digits.length >= min && digits.length <= max) {
        msg.payload = digits;
        msg.timeout = false;
        return 'done';
      }
      if (invalid && attempt < tries) {
        const p = ok(await ct.play(invalid), 'collect invalid prompt');
        if (ended(p)) return 'hangup';
      }
    }
    msg.payload = '';
    msg.timeout = true;
    return 'done';
  });

  action('ct dial', async ({ ctl, node, msg, port, call }, n) => {
    const number = String(value(n.number, msg.payload) ?? '');
    if (!/^[0-9*#A-Da-d,&]+$/.test(number)) throw new ValidationError(`ct dial: the number may hold only 0-9 * # A-D , and &, got ${JSON.stringify(number)}`);
    const ct = ctl.port(port);
    if (call) {
      // A call is up: send the keys into it.
      const r = ok(await ct.dial(number), 'dial');
      return r.status === 'EVENT' ? 'hangup' : 'done';
    }
    const timeoutMs = Number(n.timeout ?? 30) * 1000;
    setStatus(node, 'dialling', number);
    ok(await ct.offHook(), 'off hook');
    const out = ctl.startOutbound(port, number);
    let cleanup!: () => void;
    const outcomeCleanup = new Promise<void>((r) => (cleanup = r));
    const outcome = new Promise<{ reason: string; status?: number }>((resolve) => {
      const handlers: [string, (e: CtEvent) => void][] = [
        ['pickup', () => resolve({ reason: 'answered' })],
        ['busy', (e) => resolve({ reason: 'busy', status: e.status })],
        ['failed', (e) => resolve({ reason: 'failed', status: e.status })],
      ];
      const t = setTimeout(() => resolve({ reason: 'noanswer' }), timeoutMs);
      for (const [ev, fn] of handlers) ct.once(ev, fn);
      void outcomeCleanup.then(() => {
        clearTimeout(t);
        for (const [ev, fn] of handlers) ct.removeListener(ev, fn);
      });
    });
    try {
      ok(await ct.dial(number), 'dial');
      const res = await outcome;
      if (res.reason === 'answered') {
        msg.call = { ...out };
        return 'done';
      }
      ctl.dropCall(out);
      await ct.onHook().catch(() => undefined);
      msg.payload = res;
      return 'hangup';
    } catch (e) {
      ctl.dropCall(out);
      await ct.onHook().catch(() => undefined);
      throw e;
    } finally {
      cleanup();
    }
  });

  action('ct tone', async ({ ctl, msg, port }, n) => {
    const ct = ctl.port(port);
    if (n.action === 'stop' || msg.payload === 'stop') {
      ok(await ct.stopTone(), 'stop tone');
      return 'done';
    }
    const tone = String(value(n.tone, msg.payload) ?? '');
    if (!(TONE_TYPES as readonly string[]).includes(tone)) throw new ValidationError(`ct tone: tone must be one of ${TONE_TYPES.join(', ')}, got ${JSON.stringify(tone)}`);
    ok(await ct.playTone(tone), 'play tone');
    return 'done';
  });

  action('ct bridge', async ({ ctl, node, msg, port }, n) => {
    const ct = ctl.port(port);
    const act = String(value(n.action, msg.action) ?? 'bridge');
    const otherCall = msg.other as Partial<CallInfo> | undefined;
    const other = Number(value(n.other, otherCall && typeof otherCall === 'object' ? ctl.checkCall(otherCall).port : msg.payload));
    const needOther = (): number => {
      if (!Number.isInteger(other) || other < 1) throw new ValidationError(`ct bridge: ${act} needs the other port (on the node, in msg.other, or in msg.payload)`);
      return other;
    };
    switch (act) {
      case 'bridge':
        ok(await ct.bridge(needOther()), 'bridge');
        setStatus(node, 'bridged', `${port}-${other}`);
        break;
      case 'unbridge':
        ok(await ct.unbridge(needOther()), 'unbridge');
        break;
      case 'join':
        ok(await ct.join(port, needOther()), 'join');
        break;
      case 'conference-join':
        ok(await ct.joinConference(port), 'join conference');
        break;
      case 'conference-leave':
        ok(await ct.leaveConference(port), 'leave conference');
        break;
      default:
        throw new ValidationError(`ct bridge: unknown action ${JSON.stringify(act)}`);
    }
    return 'done';
  });

  action('ct command', async ({ ctl, msg, port }, n) => {
    const name = String(n.command && n.command !== 'msg' ? n.command : (msg.command ?? ''));
    const spec = commandByEvent(name) ?? getCommand(name);
    if (DEDICATED.has(spec.event)) throw new ValidationError(`ct command: use the dedicated node for "${spec.event}"`);
    const raw = value(n.args, msg.payload);
    const args: (string | number | undefined)[] = Array.isArray(raw) ? raw : raw === undefined || raw === null || raw === '' ? [] : String(raw).split(' ').filter(Boolean);
    const ct = ctl.port(port);
    const r = await ct.command(spec.event, ...args);
    if (r.status === 'ERROR') throw new Error(`${spec.event}: ${r.reason}`);
    msg.payload = { status: r.status, digits: r.digits, event: r.event, reason: r.reason, cid: r.cid, version: r.version, ports: r.ports, args: r.args };
    return ended(r) ? 'hangup' : 'done';
  });
};
