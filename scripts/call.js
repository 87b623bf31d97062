#!/usr/bin/env node
// `npm run call -- <ext> [--dtmf 123] [--host 127.0.0.1] [--port 5060] [--hold 10] [--from 1000]`
//
// Places one SIP call to sip:<ext>@host:port with the package's SipCaller (real RTP) and tells
// what happens, step by step: ringing, answered (codec), each prompt heard (when it starts and
// how long it is), the keys sent, and who hung up when. Exit code 0 for a call that was
// answered, 1 when it failed (with the SIP status) or was never answered.
'use strict';
const path = require('path');

const USAGE = `Usage: npm run call -- <ext> [options]
   or: node scripts/call.js <ext> [options]

Calls sip:<ext>@<host>:<port> and reports what it hears.

Options:
  --dtmf KEYS   keys to press (0-9 * # A-D) once the first prompt has ended
                (or after 1 s when nothing is heard)
  --host ADDR   SIP server address (default 127.0.0.1)
  --port P      SIP server UDP port (default 5060)
  --hold S      hang up after S seconds in the call if the server has not (default 10)
  --ring S      give up when the call is not answered in S seconds (default 30)
  --from NUM    our calling number (default 1000)
  --name NAME   our display name (default "ctport call")
  --help        this text

Exit code: 0 when the call was answered, 1 when it failed.`;

function parseArgs(argv) {
  const o = { host: '127.0.0.1', port: 5060, hold: 10, ring: 30, dtmf: '', from: '1000', name: 'ctport call' };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = () => {
      if (a.startsWith('--') && eq > 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case '--dtmf':
        o.dtmf = value();
        if (!/^[0-9*#A-Da-d]*$/.test(o.dtmf)) throw new Error(`--dtmf may hold only 0-9 * # A-D, got ${JSON.stringify(o.dtmf)}`);
        o.dtmf = o.dtmf.toUpperCase();
        break;
      case '--host':
        o.host = value();
        break;
      case '--port':
        o.port = Number(value());
        if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error('--port needs a UDP port number');
        break;
      case '--hold':
        o.hold = Number(value());
        if (!(o.hold > 0)) throw new Error('--hold needs a number of seconds above 0');
        break;
      case '--ring':
        o.ring = Number(value());
        if (!(o.ring > 0)) throw new Error('--ring needs a number of seconds above 0');
        break;
      case '--from':
        o.from = value();
        break;
      case '--name':
        o.name = value();
        break;
      case '--help':
      case '-h':
        o.help = true;
        break;
      default:
        if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
        rest.push(a);
    }
  }
  if (!o.help) {
    if (rest.length !== 1) throw new Error(rest.length === 0 ? 'which extension? e.g. npm run call -- 1' : `one extension only, got ${rest.join(' ')}`);
    o.ext = rest[0];
    if (!/^[A-Za-z0-9_.+*#-]+$/.test(o.ext)) throw new Error(`bad extension ${JSON.stringify(o.ext)}`);
  }
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`call: ${e.message}\n\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}

let SipCaller;
try {
  ({ SipCaller } = require(path.join(__dirname, '..', 'dist', 'server')));
} catch (e) {
  console.error(`call: the build output is missing; run \`npm run build\` first (${e.message})`);
  process.exit(1);
}

const RATE = 8000;
const BLOCK = 160; // 20 ms
const THRESHOLD = 400; // RMS of a 20 ms block that counts as sound
const GAP_MS = 300; // silence that ends a prompt
const NO_RESPONSE_MS = 4000;

const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(2).padStart(6)} s`;
const say = (what) => console.log(`${stamp()}  ${what}`);
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

/**
 * Follows what the call hears, 20 ms at a time, and reports each span of sound (a prompt) when
 * it starts and once GAP_MS of silence has ended it.
 */
class PromptWatcher {
  constructor(call, onEnd) {
    this.call = call;
    this.onEnd = onEnd;
    this.pos = 0;
    this.cur = undefined; // { start, lastLoud } in samples
    this.prompts = [];
  }
  poll() {
    const h = this.call.heard();
    for (; this.pos + BLOCK <= h.length; this.pos += BLOCK) {
      let e = 0;
      for (let j = this.pos; j < this.pos + BLOCK; j++) e += h[j] * h[j];
      const loud = Math.sqrt(e / BLOCK) > THRESHOLD;
      if (loud) {
        if (!this.cur) {
          this.cur = { start: this.pos, lastLoud: this.pos + BLOCK };
          say(`prompt ${this.prompts.length + 1} starts (${secs((this.pos * 1000) / RATE)} into the call)`);
        } else this.cur.lastLoud = this.pos + BLOCK;
      } else if (this.cur && this.pos + BLOCK - this.cur.lastLoud >= (GAP_MS * RATE) / 1000) this.close();
    }
  }
  close(cut = false) {
    if (!this.cur) return;
    const p = { start: this.cur.start / RATE, length: (this.cur.lastLoud - this.cur.start) / RATE };
    this.cur = undefined;
    this.prompts.push(p);
    say(`prompt ${this.prompts.length} ${cut ? 'cut off by our hang-up' : 'ended'}: ${p.length.toFixed(2)} s long`);
    this.onEnd(p);
  }
}

async function main() {
  const caller = new SipCaller({ host: '127.0.0.1', port: 0, user: opts.from, name: opts.name });
  const me = await caller.start();
  const uri = `sip:${opts.ext}@${opts.host}:${opts.port}`;
  console.log(`Calling ${uri} from sip:${opts.from}@${me.host}:${me.port}`);
  const call = caller.call(uri, { from: opts.from, name: opts.name });
  say('sent INVITE');

  let responded = false;
  call.call.on('progress', (status, reason) => {
    responded = true;
    if (status === 180 || status === 183) say(`ringing (${status} ${reason})`);
    else say(`${status} ${reason}`);
  });
  // Nothing at all from the server (not even 100 Trying): it is not there; do not wait 32 s for
  // the INVITE transaction to time out.
  let giveUp;
  const noResponse = new Promise((resolve) => (giveUp = resolve));
  const noResponseTimer = setTimeout(() => {
    if (!responded) giveUp();
  }, NO_RESPONSE_MS);
  const noAnswer = setTimeout(() => {
    say(`no answer in ${opts.ring} s (--ring): cancelling`);
    call.cancel();
  }, opts.ring * 1000);

  let sdp;
  try {
    sdp = await Promise.race([call.answered, noResponse]);
  } catch (e) {
    clearTimeout(noResponseTimer);
    clearTimeout(noAnswer);
    const status = e.status || call.status;
    say(status ? `call failed: SIP ${status} ${e.reason || ''}`.trim() : `call failed: ${e.message}`);
    console.log(`\nFAILED${status ? ` (SIP ${status})` : ''}: the call to ${uri} was not answered.`);
    await caller.stop();
    return 1;
  }
  if (!sdp) {
    clearTimeout(noAnswer);
    say(`no response from ${opts.host}:${opts.port} in ${NO_RESPONSE_MS / 1000} s`);
    console.log(`\nFAILED (no SIP response): nothing answers SIP at ${opts.host}:${opts.port}. Is the server running (npm start)?`);
    await caller.stop();
    return 1;
  }
  clearTimeout(noResponseTimer);
  clearTimeout(noAnswer);
  const pt = sdp.payloads.find((x) => x === 0 || x === 8);
  const codec = (sdp.codecs.find((c) => c.pt === pt) || { name: pt === 8 ? 'PCMA' : 'PCMU' }).name;
  say(`answered: ${codec}/8000${sdp.telephoneEvent !== undefined ? `, keys as RFC 4733 telephone-event (${sdp.telephoneEvent})` : ', keys in-band'}, media to ${sdp.address}:${sdp.port}`);
  const answeredAt = Date.now();

  let keysSent = false;
  const sendKeys = (why) => {
    if (keysSent || !opts.dtmf) return;
    keysSent = true;
    say(`sending keys ${opts.dtmf} (${why})`);
    call.sendDigits(opts.dtmf).then(
      () => say(`sent keys ${opts.dtmf}`),
      (e) => say(`could not send keys: ${e.message}`),
    );
  };
  const watcher = new PromptWatcher(call, (p) => {
    if (watcher.prompts.length === 1) sendKeys('the first prompt ended');
  });
  const poll = setInterval(() => watcher.poll(), 50);
  const quiet = setTimeout(() => {
    if (watcher.prompts.length === 0 && !watcher.cur) sendKeys('nothing heard in 1 s');
  }, 1000);
  const hold = setTimeout(() => {
    say(`hanging up (--hold ${opts.hold})`);
    call.hangup();
  }, opts.hold * 1000);
  const onSignal = () => {
    say('interrupted: hanging up');
    call.hangup();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const end = await call.ended;
  clearInterval(poll);
  clearTimeout(quiet);
  clearTimeout(hold);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  watcher.poll();
  watcher.close(end.by !== 'remote');
  const inCall = secs(Date.now() - answeredAt);
  say(end.by === 'remote' ? `the server hung up (${end.reason}) after ${inCall} in the call` : `we hung up after ${inCall} in the call`);
  const media = call.media;
  const heardKeys = media && media.digits ? `; keys heard: ${media.digits}` : '';
  console.log(
    `\nOK: answered (${codec}), heard ${watcher.prompts.length} prompt${watcher.prompts.length === 1 ? '' : 's'}` +
      `${opts.dtmf ? `, sent ${keysSent ? opts.dtmf : 'no keys'}` : ''}, hung up by ${end.by === 'remote' ? 'the server' : 'us'} after ${inCall}` +
      `${media ? ` (${media.rxFrames} audio frames received)` : ''}${heardKeys}.`,
  );
  await caller.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`call: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
