'use strict';
// Interop with sipp's own media: sipp (Debian sip-tester 3.6.1) calls the bundled ctserver (in
// this process) with the UAC scenario test/fixtures/interop/uac-g711a-dtmf.xml, which plays
// /usr/share/sip-tester/g711a.pcap (about 7 s of A-law speech in 30 ms packets, PT 8) and then
// dtmf_2833_1.pcap and dtmf_2833_2.pcap (RFC 4733 events, PT 101: the offer maps
// telephone-event to 101, and the server takes that payload type from the offer).
// A CtPort script on port 1 answers, records 8 s, then collects two keys and hangs up after
// sipp's BYE. The call runs once (before); the tests below judge its outcomes separately.
const should = require('should');
const fs = require('fs');
const os = require('os');
const path = require('path');
const dgram = require('dgram');
const { spawn, execFileSync } = require('child_process');
const { CtPort } = require('../dist/core');
const { readAudioFile } = require('../dist/server/media/audio-file');
const { startServer, freeUdpPort, once, delay } = require('./helpers');
const A = require('./audio-helpers');

const PCAPS = '/usr/share/sip-tester';
const SCENARIO = path.join(__dirname, 'fixtures', 'interop', 'uac-g711a-dtmf.xml');
const RECORD_SECONDS = 8;

function have(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'pipe' });
    return true;
  } catch (e) {
    return false;
  }
}

/** True when UDP `port` can be bound on `address` right now. */
function udpFree(port, address) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, address, () => s.close(() => resolve(true)));
  });
}

/**
 * Ports for sipp: SIP (-p), media (-mp: sipp binds mp and mp+2 on -mi) and control (-cp: sipp
 * binds it on 0.0.0.0; without -cp it would try the fixed 8888 and up).
 */
async function sippPorts() {
  for (let i = 0; i < 50; i++) {
    const sip = await freeUdpPort();
    const mp = 20000 + 4 * Math.floor(Math.random() * 7000);
    const cp = await freeUdpPort();
    const ports = [sip, mp, mp + 2, cp];
    if (new Set(ports).size !== ports.length) continue;
    if (!(await udpFree(mp, '127.0.0.1')) || !(await udpFree(mp + 2, '127.0.0.1')) || !(await udpFree(cp, '0.0.0.0'))) continue;
    return { sip, mp, cp };
  }
  throw new Error('no free ports for sipp');
}

/**
 * The RTP payloads of a pcap (Ethernet/IPv4/UDP/RTP, classic libpcap format), in file order:
 * [{pt, seq, ts, payload}]. A small reader written for the test.
 */
function readPcapRtp(file) {
  const b = fs.readFileSync(file);
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${file}: not a pcap`);
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const link = u32(20);
  const out = [];
  for (let o = 24; o + 16 <= b.length;) {
    const incl = u32(o + 8);
    const p = b.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    let off = link === 1 ? 14 : link === 113 ? 16 : 0;
    if (link === 1 && p.readUInt16BE(12) === 0x8100) off += 4;
    if (p[off + 9] !== 17) continue; // UDP only
    const rtp = p.subarray(off + (p[off] & 15) * 4 + 8);
    if (rtp.length < 12 || rtp[0] >> 6 !== 2) continue;
    const cc = rtp[0] & 15;
    out.push({ pt: rtp[1] & 0x7f, seq: rtp.readUInt16BE(2), ts: rtp.readUInt32BE(4), payload: rtp.subarray(12 + cc * 4) });
  }
  return out;
}

function run(cmd, args, opts) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => {
    child.on('error', (e) => resolve({ code: -1, out: out + String(e) }));
    child.on('exit', (code) => resolve({ code, out }));
  });
  return { child, exited, output: () => out };
}

const readIf = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');

describe('interop: sipp plays its A-law speech and RFC 4733 pcaps into a call to the bundled ctserver', function () {
  this.timeout(60000);
  let dir;
  let env;
  let ct;
  let sipp;
  let reference; // the g711a.pcap audio, decoded by sox
  let call; // what happened

  function diagnostics() {
    return [
      `sipp exit: ${call && call.sipp ? call.sipp.code : 'n/a'}`,
      `sipp output:\n${call && call.sipp ? call.sipp.out : sipp ? sipp.output() : ''}`,
      `screen:\n${readIf(path.join(dir, 'screen.log'))}`,
      `errors:\n${readIf(path.join(dir, 'errors.log'))}`,
      `script: ${JSON.stringify(call && call.log)}`,
    ].join('\n');
  }

  before(async function () {
    for (const tool of ['sipp', 'sox']) {
      if (!have(tool)) {
        throw new Error(`${tool} is required for this test (apt-get install baresip sip-tester sox espeak-ng)`);
      }
    }
    for (const f of ['g711a.pcap', 'dtmf_2833_1.pcap', 'dtmf_2833_2.pcap']) {
      if (!fs.existsSync(path.join(PCAPS, f))) {
        throw new Error(`${PCAPS}/${f} is missing (it comes with the Debian sip-tester package)`);
      }
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-sipp-media-'));

    // The reference: the pcap's A-law payloads, decoded by sox.
    const rtp = readPcapRtp(path.join(PCAPS, 'g711a.pcap')).filter((p) => p.pt === 8);
    fs.writeFileSync(path.join(dir, 'g711a.al'), Buffer.concat(rtp.map((p) => p.payload)));
    execFileSync('sox', ['-t', 'al', '-r', '8000', '-c', '1', path.join(dir, 'g711a.al'), '-b', '16', '-e', 'signed-integer', path.join(dir, 'g711a.wav')]);
    reference = { packets: rtp.length, packetBytes: rtp[0].payload.length, samples: await readAudioFile(path.join(dir, 'g711a.wav')) };
    // The key pcaps carry telephone-event as PT 101, which is what the scenario offers.
    for (const k of ['1', '2']) {
      const pts = new Set(readPcapRtp(path.join(PCAPS, `dtmf_2833_${k}.pcap`)).map((p) => p.pt));
      [...pts].should.eql([101], `dtmf_2833_${k}.pcap payload types`);
    }

    env = await startServer({ recordDir: dir, audioDirs: [dir] });
    ct = new CtPort({ port: 1, basePort: env.basePort, resolveAudio: false });
    await ct.connect();

    call = { log: [] };
    const t0 = Date.now();
    const note = (what, r) => call.log.push(`${Date.now() - t0} ms ${what}${r ? ` ${r.raw}` : ''}`);

    // sipp calls port 1; a clash on one of its ports before the call starts means a retry.
    let ring;
    for (let attempt = 0; attempt < 3 && !ring; attempt++) {
      const ports = await sippPorts();
      sipp = run('sipp', [
        '-sf', SCENARIO, '-s', '1', `127.0.0.1:${env.sipPort}`,
        '-i', '127.0.0.1', '-mi', '127.0.0.1', '-p', String(ports.sip), '-mp', String(ports.mp), '-cp', String(ports.cp),
        '-m', '1', '-l', '1', '-nostdin', '-timeout', '40', '-timeout_error',
        '-trace_err', '-error_file', path.join(dir, 'errors.log'),
        '-trace_screen', '-screen_file', path.join(dir, 'screen.log'),
      ], { cwd: dir });
      const winner = await Promise.race([once(ct, 'ring', 10000).then((r) => ({ ring: r }), (e) => ({ error: e })), sipp.exited.then((r) => ({ exited: r }))]);
      if (winner.ring) ring = winner.ring;
      else if (winner.exited && /bind|in use/i.test(winner.exited.out) && attempt < 2) continue;
      else throw new Error(`no ring from sipp (${winner.error ? winner.error.message : `sipp exited ${winner.exited.code}`})\n${diagnostics()}`);
    }
    note('ring');

    // The script: answer, record, collect two keys, and on sipp's BYE go on hook.
    const hangup = once(ct, 'hangup', 30000);
    hangup.catch(() => undefined);
    call.answer = await ct.offHook();
    note('answered', call.answer);
    call.record = await ct.record(path.join(dir, 'speech.wav'), RECORD_SECONDS);
    note('recorded', call.record);
    call.collect = await ct.collect(2, 20);
    note('collected', call.collect);
    await hangup.then(() => note('hangup'), (e) => note(e.message));
    call.onHook = await ct.onHook();
    note('on hook', call.onHook);
    const t = setTimeout(() => sipp.child.kill('SIGTERM'), 15000);
    call.sipp = await sipp.exited;
    clearTimeout(t);
    call.screen = readIf(path.join(dir, 'screen.log'));
    call.recorded = await readAudioFile(path.join(dir, 'speech.wav'));
  });

  after(async function () {
    if (sipp && sipp.child.exitCode === null && sipp.child.signalCode === null) {
      sipp.child.kill('SIGTERM');
      await Promise.race([sipp.exited, delay(3000)]);
      if (sipp.child.exitCode === null && sipp.child.signalCode === null) sipp.child.kill('SIGKILL');
    }
    if (ct) await ct.disconnect().catch(() => undefined);
    if (env) await env.server.stop();
    if (!dir) return;
    const failed = this.test.parent.tests.some((t) => t.state === 'failed');
    if (failed) console.log(`      (files kept for diagnosis in ${dir})`);
    else fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sipp completes its call: exit code 0, one successful call, no failed call, no unexpected message', function () {
    call.sipp.code.should.equal(0, diagnostics());
    const success = /Successful call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(call.screen);
    const failed = /Failed call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(call.screen);
    should.exist(success, diagnostics());
    Number(success[1]).should.equal(1, diagnostics());
    Number(failed[1]).should.equal(0, diagnostics());
    readIf(path.join(dir, 'errors.log')).trim().should.equal('', diagnostics());
    call.answer.status.should.equal('OK');
    call.onHook.status.should.equal('OK');
  });

  it('collect(2, 20) returns the keys of dtmf_2833_1.pcap and dtmf_2833_2.pcap: "12"', function () {
    call.collect.should.containEql({ status: 'OK', digits: '12', event: '' }, diagnostics());
  });

  it('the recording is a valid 8 kHz 16-bit WAV holding the pcap\'s speech for about its 7 s', function () {
    const file = path.join(dir, 'speech.wav');
    call.record.should.containEql({ status: 'OK', event: 'timeout' });
    const info = A.soxInfo(file);
    info.rate.should.equal(8000);
    info.channels.should.equal(1);
    info.encoding.should.match(/Signed Integer PCM/);
    fs.statSync(file).size.should.equal(44 + info.samples * 2);
    (info.samples / 8000).should.be.within(RECORD_SECONDS - 0.1, RECORD_SECONDS + 0.3);
    const rec = call.recorded;
    const span = A.soundSpan(rec, 300);
    should.exist(span, 'the recording is silent');
    const refSpan = A.soundSpan(reference.samples, 300);
    const seconds = (span[1] - span[0]) / 8000;
    const refSeconds = (refSpan[1] - refSpan[0]) / 8000;
    seconds.should.be.within(refSeconds - 0.5, refSeconds + 0.5, `speech for ${seconds} s, the pcap's for ${refSeconds} s`);
    A.rms(rec, span[0], span[1]).should.be.above(A.rms(reference.samples, refSpan[0], refSpan[1]) * 0.5);
  });

  it('the recording holds all of the pcap\'s audio (30 ms packets): no 20 ms frame of it is lost, and it matches the pcap', function () {
    const rec = call.recorded;
    const span = A.soundSpan(rec, 300);
    should.exist(span, 'the recording is silent');
    // A-law has no code for 0, so a 20 ms frame of digital silence inside the speech is a
    // frame the server did not receive or did not decode.
    let zero = 0;
    let frames = 0;
    for (let i = span[0]; i + 160 <= span[1]; i += 160, frames++) {
      let all = true;
      for (let j = i; j < i + 160 && all; j++) if (rec[j] !== 0) all = false;
      if (all) zero++;
    }
    const heardSamples = (frames - zero) * 160;
    const msg = `${zero} of ${frames} 20 ms frames inside the speech are digital silence; ${(heardSamples / 8000).toFixed(2)} s of audio recorded of the pcap's ${(reference.samples.length / 8000).toFixed(2)} s (${reference.packets} packets of ${reference.packetBytes} bytes)`;
    zero.should.be.below(3, msg);
    // One second from the middle of the pcap's speech is in the recording, sample for sample.
    const refSpan = A.soundSpan(reference.samples, 300);
    const mid = Math.floor((refSpan[0] + refSpan[1]) / 2) - 4000;
    const chunk = reference.samples.subarray(mid, mid + 8000);
    const m = bestMatch(chunk, rec);
    m.r.should.be.above(0.95, `best normalised correlation with the pcap's speech ${m.r.toFixed(3)}; ${msg}`);
  });
});

/** Best normalised cross-correlation of `template` inside `signal`: {lag, r}. */
function bestMatch(template, signal) {
  const n = template.length;
  let tt = 0;
  for (let i = 0; i < n; i++) tt += template[i] * template[i];
  let ss = 0;
  for (let i = 0; i < n && i < signal.length; i++) ss += signal[i] * signal[i];
  let best = { lag: -1, r: -Infinity };
  for (let lag = 0; lag + n <= signal.length; lag++) {
    if (lag > 0) ss += signal[lag + n - 1] * signal[lag + n - 1] - signal[lag - 1] * signal[lag - 1];
    let dot = 0;
    for (let i = 0; i < n; i++) dot += template[i] * signal[lag + i];
    const r = dot / Math.sqrt(tt * Math.max(ss, 1e-9));
    if (r > best.r) best = { lag, r };
  }
  return best;
}
