/**
 * The ctserver line protocol: `cmd=<name> src=<h> dst=<h> arg1=<a> ... argc=N` and
 * `rly=<name> src=<h> dst=<h> arg1=<a> ... argc=N`.
 * See ../../docs/PROTOCOL.md (and ../shared/ctserver-protocol.md) for the contract.
 */
import { StringDecoder } from 'node:string_decoder';
import { LineTooLongError, ProtocolError, ValidationError } from './errors';

export type MessageKind = 'cmd' | 'rly';

export interface ParsedMessage {
  kind: MessageKind;
  /** The command or reply/event name (value of `cmd=` or `rly=`). */
  name: string;
  src: number;
  dst: number;
  argc: number;
  args: string[];
  /** The line as received, without its line ending, NULs or trailing spaces. */
  raw: string;
  /** Seed-compatible view: exactly one of these is set, like the Perl module's ct_input ARG0. */
  cmd?: string;
  rly?: string;
}

/** Handle the manager connection uses. */
export const MANAGER_HANDLE = -2;
/** Largest line accepted by LineSplitter. */
export const MAX_LINE_BYTES = 8192;
/**
 * The longest reply line a client accepts. Requests stay within MAX_LINE_BYTES, but a reply may
 * be long: `port_status` of a 1024-port server is about 16 KiB.
 */
export const MAX_REPLY_BYTES = 1 << 20;

const FORBIDDEN = /[ \r\n\0=\t]/;
const NAME_RE = /^[A-Za-z0-9_.:+\-#*]+$/;

/** Throws unless `value` can travel as one protocol token. Empty values are allowed. */
export function checkToken(value: string, what = 'value'): string {
  if (typeof value !== 'string') throw new ValidationError(`${what} must be a string, got ${typeof value}`);
  const m = FORBIDDEN.exec(value);
  if (m) {
    const ch = ({ ' ': 'a space', '\r': 'a carriage return', '\n': 'a newline', '\0': 'a NUL byte', '=': 'an "="', '\t': 'a tab' } as Record<string, string>)[m[0]];
    throw new ValidationError(`${what} ${JSON.stringify(value)} contains ${ch}, which the ctserver protocol cannot carry`);
  }
  return value;
}

/**
 * The one documented escape, used for file names (and for free text in replies, such as
 * error reasons and caller names): percent-encoding of `%`, space, `=`, tab, CR, LF and NUL
 * as `%XX` (upper-case hex). Everything else is sent as it is.
 */
export function escapeText(s: string): string {
  return s.replace(/[% =\t\r\n\0]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

/** Reverse of escapeText. A `%` not followed by two hex digits is an error. */
export function unescapeText(s: string): string {
  return s.replace(/%(..)?/gs, (whole, hex: string | undefined) => {
    if (!hex || !/^[0-9A-Fa-f]{2}$/.test(hex)) {
      throw new ProtocolError(`bad escape in ${JSON.stringify(s)}: "%" must be followed by two hex digits`);
    }
    return String.fromCharCode(parseInt(hex, 16));
  });
}

/** Decode escaped text leniently (for display): bad escapes are left as they are. */
export function unescapeTextLenient(s: string): string {
  try {
    return unescapeText(s);
  } catch {
    return s;
  }
}

export interface EncodeOptions {
  /** Append one space before the newline, as the Perl client did. Default true. */
  trailingSpace?: boolean;
}

function encode(kind: MessageKind, name: string, src: number, dst: number, args: readonly string[], opts: EncodeOptions = {}): string {
  if (!NAME_RE.test(name)) throw new ValidationError(`bad ${kind === 'cmd' ? 'command' : 'reply'} name ${JSON.stringify(name)}`);
  for (const [what, h] of [['src', src], ['dst', dst]] as const) {
    if (!Number.isInteger(h)) throw new ValidationError(`${what} handle must be an integer, got ${JSON.stringify(h)}`, name);
  }
  let line = `${kind}=${name} src=${src} dst=${dst}`;
  args.forEach((a, i) => {
    checkToken(a, `argument ${i + 1}`);
    line += ` arg${i + 1}=${a}`;
  });
  line += ` argc=${args.length}`;
  return line + (opts.trailingSpace === false ? '' : ' ') + '\n';
}

/** Encode a request line (ends with a newline). Throws ValidationError on a value that cannot travel. */
export function encodeRequest(name: string, src: number, dst: number, args: readonly string[] = [], opts?: EncodeOptions): string {
  return encode('cmd', name, src, dst, args, opts);
}

/** Encode a reply or event line (ends with a newline, no trailing space by default). */
export function encodeReply(name: string, src: number, dst: number, args: readonly string[] = [], opts: EncodeOptions = { trailingSpace: false }): string {
  return encode('rly', name, src, dst, args, opts);
}

function parseHandle(v: string, what: string, line: string): number {
  if (!/^-?\d{1,6}$/.test(v)) throw new ProtocolError(`${what} must be an integer, got ${JSON.stringify(v)}`, line);
  return Number(v);
}

/**
 * Parse one line (without its newline). Accepts a trailing `\r`, trailing spaces and NULs.
 * Throws ProtocolError naming what was wrong.
 */
export function parseLine(input: string): ParsedMessage {
  const line = input.replace(/\0/g, '').replace(/\r$/, '').replace(/ +$/, '');
  if (line.length === 0) throw new ProtocolError('empty line', input);
  const tokens = line.split(' ');
  let kind: MessageKind | undefined;
  let name = '';
  let src: number | undefined;
  let dst: number | undefined;
  let argc: number | undefined;
  const args: string[] = [];
  tokens.forEach((tok, i) => {
    if (tok === '') throw new ProtocolError('empty token (two spaces in a row)', line);
    const eq = tok.indexOf('=');
    if (eq <= 0) throw new ProtocolError(`token ${JSON.stringify(tok)} is not key=value`, line);
    const key = tok.slice(0, eq);
    const value = tok.slice(eq + 1);
    if (i === 0) {
      if (key !== 'cmd' && key !== 'rly') throw new ProtocolError(`line must start with cmd= or rly=, not ${JSON.stringify(key + '=')}`, line);
      if (!NAME_RE.test(value)) throw new ProtocolError(`bad name ${JSON.stringify(value)}`, line);
      kind = key;
      name = value;
      return;
    }
    if (key === 'src') src = parseHandle(value, 'src', line);
    else if (key === 'dst') dst = parseHandle(value, 'dst', line);
    else if (key === 'argc') {
      if (!/^\d{1,4}$/.test(value)) throw new ProtocolError(`argc must be a count, got ${JSON.stringify(value)}`, line);
      argc = Number(value);
    } else if (/^arg[1-9]\d{0,3}$/.test(key)) {
      const n = Number(key.slice(3));
      if (args[n - 1] !== undefined) throw new ProtocolError(`${key} given twice`, line);
      args[n - 1] = value;
    } else throw new ProtocolError(`unknown field ${JSON.stringify(key)}`, line);
  });
  if (src === undefined) throw new ProtocolError('missing src=', line);
  if (dst === undefined) throw new ProtocolError('missing dst=', line);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === undefined) throw new ProtocolError(`arg${i + 1} is missing but arg${args.length} is present`, line);
  }
  if (argc === undefined) argc = args.length;
  else if (argc !== args.length) throw new ProtocolError(`argc=${argc} but ${args.length} argument(s) given`, line);
  const msg: ParsedMessage = { kind: kind!, name, src, dst, argc, args, raw: line };
  if (kind === 'cmd') msg.cmd = name;
  else msg.rly = name;
  return msg;
}

/**
 * Splits a byte stream into lines. Handles `\n` and `\r\n`, NUL bytes (the C ctserver sent one
 * after each reply), trailing spaces, lines split across chunks, multi-byte UTF-8 split across
 * chunks, and lines longer than `maxLineBytes` (reported through `onError`, then skipped up to the
 * next newline; the stream carries on).
 */
export class LineSplitter {
  private buf = '';
  private bufBytes = 0;
  private discarding = false;
  private discarded = 0;
  private head = '';
  private readonly decoder = new StringDecoder('utf8');

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onError: (err: LineTooLongError) => void,
    private readonly maxLineBytes = MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let start = 0;
    while (start <= text.length) {
      const nl = text.indexOf('\n', start);
      const piece = nl === -1 ? text.slice(start) : text.slice(start, nl);
      if (this.discarding) {
        this.discarded += Buffer.byteLength(piece);
      } else {
        this.buf += piece;
        this.bufBytes += Buffer.byteLength(piece);
        if (this.bufBytes > this.maxLineBytes) {
          this.discarding = true;
          this.discarded = this.bufBytes;
          this.head = this.buf.slice(0, 80);
          this.buf = '';
          this.bufBytes = 0;
        }
      }
      if (nl === -1) break;
      if (this.discarding) {
        const n = this.discarded;
        this.discarding = false;
        this.discarded = 0;
        const head = this.head;
        this.head = '';
        this.onError(new LineTooLongError(this.maxLineBytes, n, head));
      } else {
        const line = this.buf.replace(/\0/g, '').replace(/\r$/, '').replace(/ +$/, '');
        this.buf = '';
        this.bufBytes = 0;
        if (line.length > 0) this.onLine(line);
      }
      start = nl + 1;
    }
  }

  /** Bytes held for an unfinished line. */
  get pending(): number {
    return this.bufBytes;
  }
}
