/**
 * `ctserver` command line. Flag names are a contract (see README and docs/DESIGN.md).
 */
import path from 'node:path';
import { BindError, CtServer, CtServerOptions, SERVER_VERSION } from './server';

export const USAGE = `Usage: ctserver [options]

The bundled ctserver: the ctserver line protocol over TCP, with every port a SIP/RTP line.

Options:
  --ports N              number of ports (default 4, at most 1024)
  --host ADDR            address for the protocol listeners (default 127.0.0.1)
  --base-port P          port N listens on TCP P+N (default 1199; 0 = any free port)
  --manager-port P       manager listener (default 1198; 0 = any free port)
  --sip-host ADDR        SIP and RTP address, advertised in SDP (default 127.0.0.1)
  --sip-port P           SIP UDP port (default 5060; 0 = any free port)
  --rtp-ports LO-HI      RTP port range (default 10000-20000)
  --audio-dir DIR        folder of prompts that play may use (repeatable)
  --record-dir DIR       folder for recordings (default: the current folder)
  --ring-interval S      seconds between ring events while a call is unanswered (default 6)
  --trunk sip:HOST[:P]   where dialled numbers are sent
  --sip-auth EXT:PASS    require digest auth for a phone registering as EXT (repeatable)
  --tone-region R        call-progress tones: us (default), uk or eu
  --dtmf-mode M          how dial sends keys in a call: auto (default: RFC 4733 when the
                         peer negotiated telephone-event, else in-band), rfc4733 or inband
  --allow-any-path       let play and record use files outside --audio-dir, the bundled
                         vocabulary and --record-dir
  --log FILE             append a log to FILE (roll it with the rolllog command)
  --quiet                do not echo the log to stderr
  --version              print the version
  --help                 this text

It prints the bound addresses, then "Started!" once every socket listens.
It exits 1 with "Address already in use" when a port is taken, and 2 on a bad flag.
SIGTERM or SIGINT (or the shutdown command) stops it gracefully: calls are hung up, exit 0.`;

export class UsageError extends Error {}

function intFlag(name: string, v: string | undefined, lo: number, hi: number): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) < lo || Number(v) > hi) throw new UsageError(`${name} needs a whole number from ${lo} to ${hi}, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  return Number(v);
}

export function parseArgs(argv: string[]): (CtServerOptions & { quiet?: boolean; help?: boolean; version?: boolean }) {
  const o: CtServerOptions & { quiet?: boolean; help?: boolean; version?: boolean } = {};
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value: string | undefined;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    }
    const next = (): string | undefined => (value !== undefined ? value : argv[++i]);
    switch (flag) {
      case '--ports': o.ports = intFlag(flag, next(), 1, 1024); break;
      case '--host': o.host = need(flag, next()); break;
      case '--base-port': o.basePort = intFlag(flag, next(), 0, 65000); break;
      case '--manager-port': o.managerPort = intFlag(flag, next(), 0, 65535); break;
      case '--sip-host': o.sipHost = need(flag, next()); break;
      case '--sip-port': o.sipPort = intFlag(flag, next(), 0, 65535); break;
      case '--rtp-ports': {
        const v = need(flag, next());
        const m = /^(\d+)-(\d+)$/.exec(v);
        if (!m || Number(m[1]) < 1024 || Number(m[2]) > 65535 || Number(m[1]) >= Number(m[2])) throw new UsageError(`--rtp-ports needs LO-HI with 1024 <= LO < HI <= 65535, got ${JSON.stringify(v)}`);
        o.rtpPorts = [Number(m[1]), Number(m[2])];
        break;
      }
      case '--audio-dir': (o.audioDirs ??= []).push(path.resolve(need(flag, next()))); break;
      case '--record-dir': o.recordDir = path.resolve(need(flag, next())); break;
      case '--ring-interval': o.ringInterval = intFlag(flag, next(), 1, 3600); break;
      case '--trunk': {
        const v = need(flag, next());
        if (!/^sips?:[A-Za-z0-9.\-[\]:]+$/.test(v)) throw new UsageError(`--trunk needs sip:host[:port], got ${JSON.stringify(v)}`);
        o.trunk = v;
        break;
      }
      case '--sip-auth': {
        const v = need(flag, next());
        const m = /^([^:]+):(.+)$/.exec(v);
        if (!m) throw new UsageError(`--sip-auth needs EXT:PASSWORD, got ${JSON.stringify(v)}`);
        (o.sipAuth ??= {})[m[1]] = m[2];
        break;
      }
      case '--log': o.log = path.resolve(need(flag, next())); break;
      case '--tone-region': {
        const v = need(flag, next());
        if (!['us', 'uk', 'eu'].includes(v)) throw new UsageError(`--tone-region must be us, uk or eu, got ${JSON.stringify(v)}`);
        o.toneRegion = v as CtServerOptions['toneRegion'];
        break;
      }
      case '--dtmf-mode': {
        const v = need(flag, next());
        if (!['auto', 'rfc4733', 'inband'].includes(v)) throw new UsageError(`--dtmf-mode must be auto, rfc4733 or inband, got ${JSON.stringify(v)}`);
        o.dtmfMode = v as CtServerOptions['dtmfMode'];
        break;
      }
      case '--allow-any-path': o.allowAnyPath = true; break;
      case '--quiet': o.quiet = true; break;
      case '--help': case '-h': o.help = true; break;
      case '--version': o.version = true; break;
      default: throw new UsageError(`unknown option ${JSON.stringify(argv[i])}`);
    }
  }
  return o;
}

function need(flag: string, v: string | undefined): string {
  if (v === undefined || v === '' || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
  return v;
}

export async function main(argv: string[]): Promise<void> {
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`ctserver: ${(e as Error).message}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (opts.version) {
    process.stdout.write(SERVER_VERSION + '\n');
    return;
  }
  const quiet = opts.quiet;
  const server = new CtServer({ ...opts, onLog: quiet ? undefined : (l) => process.stderr.write(l + '\n') });
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`ctserver: ${why}, shutting down\n`);
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    void server.stop().then(() => {
      process.exitCode = 0;
      process.stdout.write('Stopped.\n');
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  server.on('shutdown-requested', () => stop('shutdown command'));
  try {
    const a = await server.start();
    const lines = [
      `ctserver ${SERVER_VERSION}`,
      `manager: tcp ${a.host}:${a.manager}`,
      ...a.ports.map((p) => `port ${p.port}: tcp ${a.host}:${p.tcp}`),
      `sip: udp ${a.sip.host}:${a.sip.port}`,
      `rtp: ${a.rtp[0]}-${a.rtp[1]}`,
      'Started!',
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } catch (e) {
    if (e instanceof BindError && e.code === 'EADDRINUSE') {
      process.stdout.write(`Address already in use Giving up: ${e.message.replace(/^Address already in use: /, '')}\n`);
      process.stderr.write(`ctserver: ${e.message}\n`);
    } else process.stderr.write(`ctserver: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
