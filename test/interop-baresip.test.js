'use strict';
// Interop with a real softphone: baresip 1.0.0 (Debian), fully headless, calls the bundled
// ctserver (in this process) over SIP/UDP on 127.0.0.1. Nothing is mocked: baresip's microphone
// is a speech WAV made with espeak-ng, its keys are RFC 4733 events sent with `sndcode`, and its
// sndfile module writes what it sent and what it heard, which the test then analyses.
//
// The baresip config folder (written into a temporary folder per run; see writeBaresipConfig):
//   sip_listen        127.0.0.1:<P>    baresip binds UDP P, TCP P and TCP P+1 (TLS): all three
//                                      must be free, and a clash makes it retry with new ports
//   audio_source      aufile,<mic.wav> 8 kHz 16-bit mono speech; the call hangs up when the file
//                                      ends, so the speech is padded with 8 s of silence
//   audio_player      alsa,null        no sound card needed; what is heard goes to sndfile
//   audio_alert       alsa,null        (ringback while the call is ringing)
//   snd_path          <dir>            sndfile: dump-<time>-enc.wav (sent) and -dec.wav (heard)
//   ctrl_tcp_listen   127.0.0.1:<C>    netstring-framed JSON {command, params, token}; commands
//                                      dial, sndcode, hangup, quit; events CALL_ESTABLISHED,
//                                      CALL_CLOSED, ... (a clash here is only logged, so retry)
//   modules           g711 aufile alsa sndfile (module), account (module_tmp), menu ctrl_tcp
//                     (module_app). Not stdio: it fails without a tty.
//   accounts          <sip:baresip@127.0.0.1:<P>>;regint=0;answermode=auto;audio_codecs=PCMU
// baresip is started as `baresip -f <cfg> -n 127.0.0.1 -t 60` (-t: it quits by itself after 60 s
// should the after hook not run; `-n lo` fails).
const should = require('should');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const { EventEmitter } = require('events');
const { CtPort } = require('../dist/core');
const { readAudioFile } = require('../dist/server/media/audio-file');
const { startServer, freePort, freeUdpPort, once, delay } = require('./helpers');
const A = require('./audio-helpers');

function have(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'pipe' });
    return true;
  } catch (e) {
    return false;
  }
}

/** True when `port` can be bound on 127.0.0.1 right now (TCP). */
function tcpFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Ports for baresip: SIP P (UDP and TCP free), P+1 (TCP free, baresip's TLS listener), control C. */
async function baresipPorts() {
  for (let i = 0; i < 50; i++) {
    const sip = await freeUdpPort();
    if (sip >= 65535 || !(await tcpFree(sip)) || !(await tcpFree(sip + 1))) continue;
    const ctrl = await freePort();
    if (ctrl === sip || ctrl === sip + 1) continue;
    return { sip, ctrl };
  }
  throw new Error('no free ports for baresip');
}

function writeBaresipConfig(cfgDir, { sip, ctrl, mic, sndDir }) {
  fs.mkdirSync(cfgDir, { recursive: true });
  const config = [
    'poll_method\t\tepoll',
    `sip_listen\t\t127.0.0.1:${sip}`,
    'call_local_timeout\t30',
    `audio_source\t\taufile,${mic}`,
    'audio_player\t\talsa,null',
    'audio_alert\t\talsa,null',
    'ringback_disabled\tyes',
    'module_path\t\t/usr/lib/baresip/modules',
    'module\t\t\tg711.so',
    'module\t\t\taufile.so',
    'module\t\t\talsa.so',
    'module\t\t\tsndfile.so',
    'module_tmp\t\taccount.so',
    'module_app\t\tmenu.so',
    'module_app\t\tctrl_tcp.so',
    `snd_path\t\t${sndDir}`,
    `ctrl_tcp_listen\t\t127.0.0.1:${ctrl}`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(cfgDir, 'config'), config);
  fs.writeFileSync(path.join(cfgDir, 'accounts'), `<sip:baresip@127.0.0.1:${sip}>;regint=0;answermode=auto;audio_codecs=PCMU\n`);
}

/** A baresip process and its ctrl_tcp connection. */
class Baresip extends EventEmitter {
  constructor(child, ports) {
    super();
    this.child = child;
    this.ports = ports;
    this.out = '';
    this.events = [];
    this.pending = new Map();
    this.seq = 0;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const keep = (d) => {
      // baresip redraws a status line with \r many times a second: keep the log readable
      this.out += String(d).replace(/\[\d+:\d+:\d+\] audio=[^\r\n]*\r?/g, '');
      this.emit('output');
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
  }

  static async start({ cfgDir, mic, sndDir }) {
    let last = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const ports = await baresipPorts();
      writeBaresipConfig(cfgDir, { ...ports, mic, sndDir });
      const child = spawn('baresip', ['-f', cfgDir, '-n', '127.0.0.1', '-t', '60'], { cwd: cfgDir, stdio: ['ignore', 'pipe', 'pipe'] });
      const b = new Baresip(child, ports);
      const ready = await new Promise((resolve) => {
        const t = setTimeout(() => done(false), 10000);
        function check() {
          if (/in use|failed to listen|could not/i.test(b.out)) done(false);
          else if (/baresip is ready/.test(b.out)) done(true);
        }
        function done(ok) {
          clearTimeout(t);
          b.removeListener('output', check);
          resolve(ok);
        }
        b.on('output', check);
        b.exited.then(() => done(false));
        check();
      });
      if (ready) {
        await b.connectCtrl();
        return b;
      }
      last = b.out;
      await b.stop();
    }
    throw new Error(`baresip did not start:\n${last}`);
  }

  connectCtrl() {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.ports.ctrl, '127.0.0.1');
      this.sock = sock;
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.removeListener('error', reject);
        sock.on('error', () => undefined);
        resolve();
      });
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        // netstrings: <length>:<bytes>,
        for (;;) {
          const colon = buf.indexOf(':');
          if (colon < 0) break;
          const len = Number(buf.subarray(0, colon).toString());
          if (buf.length < colon + 1 + len + 1) break;
          const json = JSON.parse(buf.subarray(colon + 1, colon + 1 + len).toString());
          buf = buf.subarray(colon + 1 + len + 1);
          if (json.response) {
            const p = this.pending.get(json.token);
            if (p) {
              this.pending.delete(json.token);
              p(json);
            }
          } else if (json.event) {
            this.events.push(json);
            this.emit('event', json);
          }
        }
      });
    });
  }

  /** Send a ctrl_tcp command; resolves with baresip's response. */
  command(command, params) {
    const token = `t${++this.seq}`;
    const body = JSON.stringify(params === undefined ? { command, token } : { command, params, token });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(token);
        reject(new Error(`baresip did not answer ${command} ${params || ''}\n${this.out}`));
      }, 5000);
      this.pending.set(token, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.sock.write(`${Buffer.byteLength(body)}:${body},`);
    });
  }

  /** An event of `type` (one already seen counts). */
  event(type, ms = 10000) {
    const seen = this.events.find((e) => e.type === type);
    if (seen) return Promise.resolve(seen);
    return once(this, 'event', ms, (e) => e.type === type).catch((e) => {
      throw new Error(`${e.message} (baresip event ${type}); events: ${this.events.map((x) => x.type).join(' ')}\n${this.out}`);
    });
  }

  async stop() {
    if (this.sock) this.sock.destroy();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      await this.exited;
      clearTimeout(t);
    }
  }
}

/** Samples as floats (for correlation). */
function toFloat(s, from = 0, to = s.length) {
  const f = new Float64Array(to - from);
  for (let i = from; i < to; i++) f[i - from] = s[i];
  return f;
}

/**
 * Where `template` best matches inside `signal`: the lag and the normalised cross-correlation
 * there (1 = the same waveform, up to a gain). Written for the test, independent of the product.
 */
function bestMatch(template, signal, lagFrom = 0, lagTo = signal.length - template.length) {
  const t = toFloat(template);
  const s = toFloat(signal);
  let tt = 0;
  for (let i = 0; i < t.length; i++) tt += t[i] * t[i];
  let best = { lag: -1, r: -Infinity };
  const hi = Math.min(lagTo, s.length - t.length);
  // running energy of the signal window
  let ss = 0;
  for (let i = 0; i < t.length; i++) ss += s[Math.max(0, lagFrom) + i] ** 2;
  for (let lag = Math.max(0, lagFrom); lag <= hi; lag++) {
    if (lag > Math.max(0, lagFrom)) ss += s[lag + t.length - 1] ** 2 - s[lag - 1] ** 2;
    let dot = 0;
    for (let i = 0; i < t.length; i++) dot += t[i] * s[lag + i];
    const den = Math.sqrt(tt * Math.max(ss, 1e-9));
    const r = dot / den;
    if (r > best.r) best = { lag, r };
  }
  return best;
}

describe('interop: baresip (a real softphone) calls the bundled ctserver', function () {
  this.timeout(60000);
  let dir;
  let env;
  let ct;
  let bs;

  before(function () {
    for (const tool of ['baresip', 'sox', 'espeak-ng']) {
      if (!have(tool)) {
        throw new Error(`${tool} is required for this test (apt-get install baresip sip-tester sox espeak-ng)`);
      }
    }
  });

  afterEach(async function () {
    if (ct) await ct.disconnect().catch(() => undefined);
    if (bs) await bs.stop();
    if (env) await env.server.stop();
    if (dir && this.currentTest.state === 'passed') fs.rmSync(dir, { recursive: true, force: true });
    else if (dir) console.log(`      (files kept for diagnosis in ${dir})`);
    ct = bs = env = dir = undefined;
  });

  it('a CtPort script answers baresip, plays a prompt baresip hears, collects its RFC 4733 keys "123" and records its speech until "#"', async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-baresip-'));
    const sndDir = path.join(dir, 'snd');
    fs.mkdirSync(sndDir);

    // Audio made with the real tools: a prompt for the server to play, and baresip's microphone.
    const sh = (args) => execFileSync(args[0], args.slice(1), { stdio: 'pipe' });
    sh(['espeak-ng', '-v', 'en', '-s', '140', '-w', path.join(dir, 'prompt-22k.wav'), 'welcome to the test']);
    const prompt = path.join(dir, 'prompt.wav');
    sh(['sox', path.join(dir, 'prompt-22k.wav'), '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed-integer', prompt]);
    sh(['espeak-ng', '-v', 'en', '-s', '140', '-w', path.join(dir, 'speech-22k.wav'), 'hello, this is baresip speaking. please record my message now.']);
    sh(['sox', path.join(dir, 'speech-22k.wav'), '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed-integer', path.join(dir, 'speech.wav')]);
    // The speech three times over (so that the caller is talking whenever the server records),
    // then 8 s of silence so that the aufile source does not end (and hang up) too soon.
    const mic = path.join(dir, 'mic.wav');
    sh(['sox', path.join(dir, 'speech.wav'), path.join(dir, 'speech.wav'), path.join(dir, 'speech.wav'), mic, 'pad', '0.5', '8']);
    const promptSamples = await readAudioFile(prompt);

    env = await startServer({ recordDir: dir, audioDirs: [dir] });
    ct = new CtPort({ port: 1, basePort: env.basePort, resolveAudio: false });
    await ct.connect();
    bs = await Baresip.start({ cfgDir: path.join(dir, 'baresip'), mic, sndDir });

    // baresip dials port 1; the script answers the ring.
    const ringing = once(ct, 'ring', 10000);
    (await bs.command('dial', `sip:1@127.0.0.1:${env.sipPort}`)).ok.should.equal(true);
    const ring = await ringing.catch((e) => {
      throw new Error(`${e.message}\n${bs.out}`);
    });
    ring.event.should.equal('ring');
    (await ct.offHook()).status.should.equal('OK');
    await bs.event('CALL_ESTABLISHED');

    // The script plays its prompt.
    const played = await ct.play(prompt);
    played.should.containEql({ status: 'OK', digits: '' });

    // It collects three keys, which baresip sends one by one as RFC 4733 events.
    const collecting = ct.collect(3, 10);
    for (const key of '123') {
      (await bs.command('sndcode', key)).ok.should.equal(true, `sndcode ${key}`);
      await delay(300);
    }
    const collected = await collecting;
    collected.should.containEql({ status: 'OK', digits: '123' });

    // It records (up to 6 s, ending on "#" or 3 s of silence) while baresip talks; baresip
    // presses "#" after about 3 s.
    const recFile = path.join(dir, 'message.wav');
    const recording = ct.record(recFile, 6, '#', 3);
    await delay(3000);
    (await bs.command('sndcode', '#')).ok.should.equal(true);
    const rec = await recording;
    rec.should.containEql({ status: 'EVENT', event: 'dtmf', digits: '#' });

    // The script hangs up; baresip sees the call close; then baresip quits, closing its files.
    (await ct.onHook()).status.should.equal('OK');
    const closed = await bs.event('CALL_CLOSED', 5000);
    closed.type.should.equal('CALL_CLOSED');
    await bs.command('quit').catch(() => undefined);
    const t = setTimeout(() => bs.child.kill('SIGTERM'), 5000);
    await bs.exited;
    clearTimeout(t);

    // The server's recording: a complete, valid 8 kHz 16-bit mono WAV of about 3 s holding speech.
    const info = A.soxInfo(recFile);
    info.rate.should.equal(8000);
    info.channels.should.equal(1);
    info.encoding.should.match(/Signed Integer PCM/);
    fs.statSync(recFile).size.should.equal(44 + info.samples * 2);
    (info.samples / 8000).should.be.within(2.5, 4.5);
    const recorded = await readAudioFile(recFile);
    const recSpan = A.soundSpan(recorded, 300);
    should.exist(recSpan, 'the recording is silent');
    ((recSpan[1] - recSpan[0]) / recorded.length).should.be.above(0.6, 'speech covers too little of the recording');
    A.rms(recorded, recSpan[0], recSpan[1]).should.be.above(1000);
    let loud = 0;
    let blocks = 0;
    for (let i = recSpan[0]; i + 1600 <= recSpan[1]; i += 1600, blocks++) if (A.rms(recorded, i, i + 1600) > 500) loud++;
    (loud / blocks).should.be.above(0.6, 'too few 200 ms blocks of the recording hold sound');

    // baresip's own dumps: what it sent (its microphone) and what it heard (decoded PCMU).
    const dumps = fs.readdirSync(sndDir);
    const enc = dumps.find((f) => /-enc\.wav$/.test(f));
    const dec = dumps.find((f) => /-dec\.wav$/.test(f));
    should.exist(enc, `no sndfile dump of the sent audio in ${sndDir}: ${dumps.join(' ')}`);
    should.exist(dec, `no sndfile dump of the heard audio in ${sndDir}: ${dumps.join(' ')}`);
    const sent = await readAudioFile(path.join(sndDir, enc));
    const heard = await readAudioFile(path.join(sndDir, dec));

    // The recording is baresip's speech: one second from its middle matches what baresip sent
    // (after a PCMU round trip) almost exactly.
    const mid = Math.floor((recSpan[0] + recSpan[1]) / 2) - 4000;
    const chunk = recorded.slice(mid, mid + 8000);
    A.rms(chunk).should.be.above(500);
    const m1 = bestMatch(chunk, sent);
    m1.r.should.be.above(0.9, `the recording does not match what baresip sent (best r=${m1.r.toFixed(3)})`);

    if (process.env.INTEROP_DEBUG) console.log({ recSeconds: info.samples / 8000, recSpan, loud, blocks, m1, sentSeconds: sent.length / 8000, heardSeconds: heard.length / 8000 });

    // baresip heard the prompt: its decoded stream holds sound, and the prompt itself is in there.
    const heardSpan = A.soundSpan(heard, 300);
    should.exist(heardSpan, 'baresip heard nothing');
    const pSpan = A.soundSpan(promptSamples, 300);
    const voiced = promptSamples.slice(pSpan[0], pSpan[1]);
    const m2 = bestMatch(voiced, heard);
    m2.r.should.be.above(0.9, `baresip did not hear the prompt (best r=${m2.r.toFixed(3)})`);
    A.rms(heard, m2.lag, m2.lag + voiced.length).should.be.within(A.rms(voiced) * 0.8, A.rms(voiced) * 1.25);
    // ... once, for as long as it lasts: nothing else loud was heard (the server sent silence
    // around it; baresip's keys travel as RFC 4733 events, not as tones).
    const afterPrompt = m2.lag + voiced.length + 800;
    if (process.env.INTEROP_DEBUG) console.log({ heardSpan, m2, promptRms: A.rms(voiced), heardRms: A.rms(heard, m2.lag, m2.lag + voiced.length), after: A.rms(heard, afterPrompt, heard.length) });
    if (afterPrompt < heard.length) A.rms(heard, afterPrompt, heard.length).should.be.below(100);
  });
});
