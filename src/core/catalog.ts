/**
 * The command catalog: every command of the seed's SENDING EVENTS, with its wire name, argument
 * schema, validation, addressing, whether it blocks the port, and the shape of its reply.
 * The client, the bundled server and the Node-RED nodes all read this one table.
 */
import { checkToken, escapeText, unescapeText, unescapeTextLenient } from './codec';
import { UnknownCommandError, ValidationError } from './errors';

export const TONE_TYPES = ['busy', 'dialx', 'dial', 'ringback'] as const;
export type ToneType = (typeof TONE_TYPES)[number];

/** DTMF keys, including the A-D column. */
export const DTMF_KEYS = '0123456789*#ABCD';
/** Characters accepted by dial: DTMF keys, `,` (1 s pause) and `&` (hook flash). */
export const DIAL_RE = /^[0-9*#A-Da-d,&]+$/;
/** Largest port number accepted on the wire (the server checks against its own --ports). */
export const MAX_PORTS = 1024;

/** Telephony events the server sends unsolicited. User messages from send_event come on top. */
export const EVENTS = ['ring', 'dtmf', 'hangup', 'loopdrop', 'pickup', 'timer', 'cid', 'flash', 'toneend', 'grunt', 'busy', 'failed'] as const;
export type EventName = (typeof EVENTS)[number];

export type ArgType =
  | 'seconds' // digits only, 0..86400
  | 'count' // digits only, small positive integer
  | 'port' // 1..MAX_PORTS
  | 'tone'
  | 'dial'
  | 'keys' // a set of DTMF keys (may be empty)
  | 'file' // escaped with escapeText on the wire
  | 'text' // a single token, no escaping
  | 'flag'; // the literal word `ignore_dtmf`

export interface ArgSpec {
  name: string;
  type: ArgType;
  optional?: boolean;
  /** Value used by the client when the argument is omitted (and a later one is given). */
  default?: string;
}

/**
 * Reply shapes:
 *  - status: arg1 OK|ERROR (arg2 reason on ERROR)
 *  - digits-event: arg1 OK|ERROR|EVENT, arg2 digits, arg3 event
 *  - event: arg1 OK|ERROR|EVENT, arg2 event
 *  - cid: arg1 OK|ERROR|EVENT, arg2 caller number, arg3 event, arg4 caller name (escaped)
 *  - status-list: arg1 OK, arg2.. one `port:state:hook:script` token per port
 *  - version: arg1 OK, arg2 version
 */
export type ReplyShape = 'status' | 'digits-event' | 'event' | 'cid' | 'status-list' | 'version';

/** Where the command is addressed: the connection's own port, a port named by an argument, or the server. */
export type Addressing = 'self' | 'target' | 'server' | 'server-or-target';

export interface CommandSpec {
  /** The seed's event name, e.g. `off_hook`. */
  event: string;
  /** The wire name, e.g. `ctanswer`. */
  wire: string;
  args: ArgSpec[];
  /** The port takes its next command only after the reply. */
  blocking: boolean;
  /** Sent (and served) at once, even while a blocking command is running (stops). */
  urgent?: boolean;
  reply: ReplyShape;
  addressing: Addressing;
  /** Needs RTP media on the bundled server. */
  media?: boolean;
  /** One-line description, used by docs, help text and the Node-RED command node. */
  summary: string;
}

const C = (s: CommandSpec): CommandSpec => s;

export const COMMANDS: readonly CommandSpec[] = [
  C({ event: 'off_hook', wire: 'ctanswer', args: [], blocking: false, reply: 'status', addressing: 'self', summary: 'Take the port off hook (answer a ringing call, or get a line to dial).' }),
  C({ event: 'on_hook', wire: 'cthangup', args: [], blocking: false, reply: 'status', addressing: 'self', summary: 'Put the port on hook (hang up, or reject a ringing call).' }),
  C({ event: 'wait_for_ring', wire: 'ctwaitforring', args: [{ name: 'rings', type: 'count', optional: true, default: '2' }, { name: 'ird', type: 'seconds', optional: true }], blocking: true, reply: 'cid', addressing: 'self', summary: 'Wait for the given number of rings; returns the caller ID.' }),
  C({ event: 'wait_for_dial_tone', wire: 'ctwaitfordial', args: [], blocking: true, reply: 'status', addressing: 'self', media: true, summary: 'Wait (at most 10 s) until the line gives dial tone.' }),
  C({ event: 'play_tone', wire: 'ctplaytoneasync', args: [{ name: 'type', type: 'tone' }], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Play a call-progress tone: busy, dialx, dial or ringback.' }),
  C({ event: 'stop_tone', wire: 'ctstoptone', args: [], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Stop the tone being played.' }),
  C({ event: 'play_stop', wire: 'ctplay_stop', args: [], blocking: false, urgent: true, reply: 'status', addressing: 'self', media: true, summary: 'Stop the current playback.' }),
  C({ event: 'play', wire: 'ctplay', args: [{ name: 'file', type: 'file' }, { name: 'ignore_dtmf', type: 'flag', optional: true }], blocking: true, reply: 'digits-event', addressing: 'self', media: true, summary: 'Play an audio file; a DTMF key stops it unless ignore_dtmf.' }),
  C({ event: 'play_async', wire: 'ctplayasync', args: [{ name: 'file', type: 'file' }, { name: 'ignore_dtmf', type: 'flag', optional: true }], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Start playing an audio file and return at once.' }),
  C({ event: 'record', wire: 'ctrecord', args: [{ name: 'file', type: 'file' }, { name: 'seconds', type: 'seconds' }, { name: 'digits', type: 'keys', optional: true, default: '' }, { name: 'silence', type: 'seconds', optional: true, default: '0' }], blocking: true, reply: 'digits-event', addressing: 'self', media: true, summary: 'Record to a file for up to N seconds, until a stop key, or after N seconds of silence.' }),
  C({ event: 'record_stop', wire: 'ctrecord_stop', args: [], blocking: false, urgent: true, reply: 'status', addressing: 'self', media: true, summary: 'Stop the current recording (also accepted as a RECORD_STOP message).' }),
  C({ event: 'sleep', wire: 'ctsleep', args: [{ name: 'seconds', type: 'seconds' }], blocking: true, reply: 'digits-event', addressing: 'self', summary: 'Wait N seconds; a DTMF key ends the wait at once.' }),
  C({ event: 'clear', wire: 'ctclear', args: [], blocking: false, reply: 'status', addressing: 'self', summary: 'Empty the DTMF digit buffer.' }),
  C({ event: 'clear_events', wire: 'ctclearevents', args: [], blocking: false, reply: 'status', addressing: 'self', summary: 'Empty the event queue.' }),
  C({ event: 'collect', wire: 'ctcollect', args: [{ name: 'max_digits', type: 'count' }, { name: 'max_seconds', type: 'seconds' }, { name: 'inter_digit', type: 'seconds', optional: true }], blocking: true, reply: 'digits-event', addressing: 'self', media: true, summary: 'Collect up to N digits within N seconds (optional inter-digit timeout).' }),
  C({ event: 'dial', wire: 'ctdial', args: [{ name: 'number', type: 'dial' }], blocking: true, reply: 'event', addressing: 'self', summary: 'Dial a string: 0-9 * # A-D, "," pauses 1 s, "&" flashes the hook.' }),
  C({ event: 'wait_for_event', wire: 'ctwaitforevent', args: [], blocking: true, reply: 'event', addressing: 'self', summary: 'Wait until an event arrives and return it.' }),
  C({ event: 'send_event', wire: 'ctsendevent', args: [{ name: 'port', type: 'port' }, { name: 'message', type: 'text' }], blocking: false, reply: 'status', addressing: 'target', summary: 'Send a message to another port; it arrives there as an event.' }),
  C({ event: 'start_timer', wire: 'ctstarttimerasync', args: [{ name: 'seconds', type: 'seconds' }], blocking: false, reply: 'status', addressing: 'self', summary: 'Start a timer; a timer event arrives when it fires.' }),
  C({ event: 'stop_timer', wire: 'ctstoptimer', args: [], blocking: false, reply: 'status', addressing: 'self', summary: 'Stop the timer.' }),
  C({ event: 'join', wire: 'ctjoin', args: [{ name: 'port1', type: 'port' }, { name: 'port2', type: 'port' }], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Bridge two ports together.' }),
  C({ event: 'bridge', wire: 'ctbridge', args: [{ name: 'port', type: 'port' }], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Bridge this port to another port.' }),
  C({ event: 'unbridge', wire: 'ctunbridge', args: [{ name: 'port', type: 'port' }], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Undo a bridge between this port and another.' }),
  C({ event: 'join_conference', wire: 'ctjoinconference', args: [{ name: 'port', type: 'port' }], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Put a port into the conference.' }),
  C({ event: 'leave_conference', wire: 'ctleaveconference', args: [{ name: 'port', type: 'port' }], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Take a port out of the conference.' }),
  C({ event: 'start_ring', wire: 'ctstartringasync', args: [], blocking: false, reply: 'status', addressing: 'self', summary: 'Ring the phone registered on this port until answered or stopped.' }),
  C({ event: 'stop_ring', wire: 'ctstopring', args: [], blocking: false, reply: 'status', addressing: 'self', summary: 'Stop ringing the phone on this port.' }),
  C({ event: 'ring_once', wire: 'ctstartringonceasync', args: [], blocking: false, reply: 'status', addressing: 'self', summary: 'Ring the phone on this port once.' }),
  C({ event: 'grunt_on', wire: 'ctgrunton', args: [], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Turn voice-activity (grunt) events on.' }),
  C({ event: 'grunt_off', wire: 'ctgruntoff', args: [], blocking: false, reply: 'status', addressing: 'self', media: true, summary: 'Turn voice-activity (grunt) events off.' }),
  C({ event: 'set_script_name', wire: 'ctsetscript', args: [{ name: 'name', type: 'text' }], blocking: false, reply: 'status', addressing: 'self', summary: 'Name the script on this port (shown by port_status).' }),
  C({ event: 'send_cid', wire: 'ctsendcid', args: [{ name: 'number', type: 'text' }, { name: 'name', type: 'file', optional: true, default: '' }], blocking: false, reply: 'status', addressing: 'self', summary: 'Set the caller ID sent when this port rings its phone.' }),
  C({ event: 'listen_for_cid_jp', wire: 'ctlistenforjpcid', args: [], blocking: false, reply: 'cid', addressing: 'self', summary: 'Start listening for (Japanese) caller ID.' }),
  C({ event: 'listen_for_cid', wire: 'ctlistenforcid', args: [], blocking: false, reply: 'cid', addressing: 'self', summary: 'Start listening for caller ID.' }),
  C({ event: 'read_cid', wire: 'ctreadcid', args: [], blocking: false, reply: 'cid', addressing: 'self', summary: 'Read the caller ID of the current call.' }),
  C({ event: 'port_reset', wire: 'portreset', args: [{ name: 'port', type: 'port' }], blocking: false, reply: 'status', addressing: 'target', summary: 'Reset a port: hang up, stop everything, clear buffers.' }),
  C({ event: 'port_status', wire: 'portstatus', args: [{ name: 'port', type: 'port', optional: true }], blocking: false, reply: 'status-list', addressing: 'server-or-target', summary: 'Status of one port, or of all ports.' }),
  C({ event: 'roll_log', wire: 'rolllog', args: [], blocking: false, reply: 'status', addressing: 'server', summary: 'Close the log file and open a new one.' }),
  C({ event: 'ser_version', wire: 'serversion', args: [], blocking: false, reply: 'version', addressing: 'server', summary: 'The server version.' }),
  C({ event: 'shutdown', wire: 'shutdown', args: [], blocking: false, reply: 'status', addressing: 'server', summary: 'Shut the server down gracefully.' }),
];

const byEvent = new Map(COMMANDS.map((c) => [c.event, c]));
const byWire = new Map(COMMANDS.map((c) => [c.wire, c]));

export function commandByEvent(event: string): CommandSpec | undefined {
  return byEvent.get(event);
}

export function commandByWire(wire: string): CommandSpec | undefined {
  return byWire.get(wire);
}

/** Look up by seed event name or wire name. Throws UnknownCommandError. */
export function getCommand(name: string): CommandSpec {
  const c = byEvent.get(name) ?? byWire.get(name);
  if (!c) throw new UnknownCommandError(name);
  return c;
}

export type ArgValue = string | number | boolean | undefined | null;

/** Validate one argument and return its wire form (already escaped for `file`). */
export function encodeArg(cmd: CommandSpec, spec: ArgSpec, value: ArgValue): string {
  const bad = (why: string): never => {
    throw new ValidationError(why, cmd.event, spec.name);
  };
  if (value === undefined || value === null) bad('is required');
  const s = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
  switch (spec.type) {
    case 'seconds':
      if (!/^\d{1,6}$/.test(s) || Number(s) > 86400) bad(`must be whole seconds (digits only, 0-86400), got ${JSON.stringify(s)}`);
      return String(Number(s));
    case 'count':
      if (!/^\d{1,4}$/.test(s) || Number(s) < 1 || Number(s) > 1000) bad(`must be a whole number from 1 to 1000, got ${JSON.stringify(s)}`);
      return String(Number(s));
    case 'port':
      if (!/^\d{1,4}$/.test(s) || Number(s) < 1 || Number(s) > MAX_PORTS) bad(`must be a port number from 1 to ${MAX_PORTS}, got ${JSON.stringify(s)}`);
      return String(Number(s));
    case 'tone':
      if (!(TONE_TYPES as readonly string[]).includes(s)) bad(`must be one of ${TONE_TYPES.join(', ')}, got ${JSON.stringify(s)}`);
      return s;
    case 'dial':
      if (!DIAL_RE.test(s)) bad(`may hold only 0-9 * # A-D , and &, got ${JSON.stringify(s)}`);
      return s.toUpperCase();
    case 'keys':
      if (!/^[0-9*#A-Da-d]*$/.test(s)) bad(`may hold only the DTMF keys 0-9 * # A-D, got ${JSON.stringify(s)}`);
      return s.toUpperCase();
    case 'file':
      if (s.length === 0 && !spec.optional) bad('must not be empty');
      return escapeText(s);
    case 'text':
      if (s.length === 0) bad('must not be empty');
      try {
        return checkToken(s, spec.name);
      } catch (e) {
        return bad((e as Error).message.replace(/^[^:]*: /, ''));
      }
    case 'flag':
      if (value === true || s === 'ignore_dtmf' || s === '1') return 'ignore_dtmf';
      bad(`must be true or "ignore_dtmf", got ${JSON.stringify(s)}`);
  }
  return bad('has an unknown type');
}

/**
 * Validate a whole argument list and return its wire form. Trailing optional arguments that
 * are omitted are not sent; an omitted optional argument followed by a given one takes its default.
 */
export function encodeArgs(cmd: CommandSpec, values: readonly ArgValue[]): string[] {
  if (values.length > cmd.args.length) {
    throw new ValidationError(`takes at most ${cmd.args.length} argument(s), got ${values.length}`, cmd.event);
  }
  let last = -1;
  values.forEach((v, i) => {
    if (v !== undefined && v !== null && !(cmd.args[i].type === 'flag' && v === false)) last = i;
  });
  const out: string[] = [];
  cmd.args.forEach((spec, i) => {
    const v = values[i];
    const given = v !== undefined && v !== null && !(spec.type === 'flag' && v === false);
    if (i > last) {
      if (!spec.optional) encodeArg(cmd, spec, undefined);
      return;
    }
    if (!given) {
      if (!spec.optional) encodeArg(cmd, spec, undefined);
      if (spec.default === undefined) throw new ValidationError(`must be given when a later argument is`, cmd.event, spec.name);
      out.push(encodeArg(cmd, spec, spec.default));
      return;
    }
    out.push(encodeArg(cmd, spec, v));
  });
  return out;
}

/** The argument specs that travel as argN (for target addressing, the port travels as dst). */
export function wireArgSpecs(cmd: CommandSpec): ArgSpec[] {
  return cmd.addressing === 'target' || cmd.addressing === 'server-or-target' ? cmd.args.slice(1) : cmd.args;
}

/**
 * Server side: check wire arguments against the schema. Returns decoded values
 * (file names unescaped) or throws ValidationError with the reason to send back.
 */
export function decodeArgs(cmd: CommandSpec, wireArgs: readonly string[]): string[] {
  const specs = wireArgSpecs(cmd);
  const required = specs.filter((a) => !a.optional).length;
  if (wireArgs.length < required || wireArgs.length > specs.length) {
    const want = required === specs.length ? `${required}` : `${required} to ${specs.length}`;
    throw new ValidationError(`takes ${want} argument(s), got ${wireArgs.length}`, cmd.wire);
  }
  return wireArgs.map((raw, i) => {
    const spec = specs[i];
    if (spec.type === 'file') {
      let v: string;
      try {
        v = unescapeText(raw);
      } catch (e) {
        throw new ValidationError((e as Error).message, cmd.wire, spec.name);
      }
      if (v.length === 0 && !spec.optional) throw new ValidationError('must not be empty', cmd.wire, spec.name);
      return v;
    }
    if (spec.type === 'flag' && raw !== 'ignore_dtmf') {
      throw new ValidationError(`must be "ignore_dtmf", got ${JSON.stringify(raw)}`, cmd.wire, spec.name);
    }
    const enc = encodeArg({ ...cmd, event: cmd.wire }, spec, raw);
    return spec.type === 'dial' || spec.type === 'keys' ? enc : raw;
  });
}

export type ReplyStatus = 'OK' | 'ERROR' | 'EVENT';

export interface CommandResult {
  status: ReplyStatus;
  /** Digits collected (digits-event replies), or '' */
  digits: string;
  /** The event that ended the command (EVENT replies), or '' */
  event: string;
  /** Reason given with an ERROR reply, decoded, or '' */
  reason: string;
  /** Caller ID (cid replies) */
  cid?: { number: string; name: string };
  /** Version string (ser_version) */
  version?: string;
  /** One entry per port (port_status) */
  ports?: PortStatus[];
  args: string[];
  raw: string;
}

export interface PortStatus {
  port: number;
  state: string;
  hook: string;
  script: string;
}

/** Interpret the arguments of a reply according to the command's reply shape. */
export function interpretReply(cmd: CommandSpec | undefined, args: readonly string[], raw: string): CommandResult {
  const first = args[0] ?? '';
  const status: ReplyStatus = first === 'OK' || first === 'ERROR' || first === 'EVENT' ? first : 'ERROR';
  const r: CommandResult = { status, digits: '', event: '', reason: '', args: [...args], raw };
  if (status === 'ERROR') {
    r.reason = first === 'ERROR' ? unescapeTextLenient(args[1] ?? 'unspecified error') : `unexpected reply status ${JSON.stringify(first)}`;
    return r;
  }
  switch (cmd?.reply) {
    case 'digits-event':
      r.digits = args[1] ?? '';
      r.event = args[2] ?? '';
      break;
    case 'event':
      r.event = args[1] ?? '';
      break;
    case 'cid':
      r.cid = { number: args[1] ?? '', name: unescapeTextLenient(args[3] ?? '') };
      r.event = args[2] ?? '';
      break;
    case 'version':
      r.version = unescapeTextLenient(args[1] ?? '');
      break;
    case 'status-list':
      r.ports = args.slice(1).map((t) => {
        const [port, state, hook, ...script] = t.split(':');
        return { port: Number(port), state: state ?? '', hook: hook ?? '', script: unescapeTextLenient(script.join(':')) };
      });
      break;
    default:
      break;
  }
  return r;
}


/** Client side: validate values and work out dst and the wire arguments. */
export function encodeCommand(cmd: CommandSpec, values: readonly ArgValue[], ownHandle: number): { dst: number; args: string[] } {
  const enc = encodeArgs(cmd, values);
  switch (cmd.addressing) {
    case 'self':
      return { dst: ownHandle, args: enc };
    case 'server':
      return { dst: -2, args: enc };
    case 'target':
      return { dst: Number(enc[0]) - 1, args: enc.slice(1) };
    case 'server-or-target':
      return enc.length === 0 ? { dst: -2, args: [] } : { dst: Number(enc[0]) - 1, args: enc.slice(1) };
  }
}
