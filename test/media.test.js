'use strict';
const should = require('should');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { CtPort, CtManager } = require('../dist/core');
const { SipCaller } = require('../dist/server');
const { readAudioFile } = require('../dist/server/media/audio-file');
const { startServer, once, delay } = require('./helpers');
const A = require('./audio-helpers');

describe('media: RTP audio through the bundled ctserver', function () {
  this.timeout(30000);
  let env;
  let dir;
  const stops = [];
  async function client(n) {
    const c = new CtPort({ port: n, basePort: env.basePort, resolveAudio: false });
    stops.push(() => c.disconnect());
    await c.connect();
    return c;
  }
  async function caller(opts = {}) {
    const c = new SipCaller({ host: '127.0.0.1', port: 0, ...opts });
    stops.push(() => c.stop());
    await c.start();
    return c;
  }
  /** A caller calls port n; the port answers; resolves with both ends. */
  async function connected(n, opts = {}) {
    const ct = await client(n);
    const sip = await caller();
    const call = sip.call(`sip:${n}@127.0.0.1:${env.sipPort}`, opts);
    await once(ct, 'ring');
    (await ct.offHook()).status.should.equal('OK');
    await call.answered;
    await delay(60);
    return { ct, sip, call };
  }

  beforeEach(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-media-'));
    env = await startServer({ audioDirs: [dir], recordDir: dir });
  });
  afterEach(async function () {
    for (const s of stops.splice(0).reverse()) await s();
    if (env) await env.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('plays a prompt that the caller hears as the prompt: the right tones, in order, for the right time', async function () {
    const file = A.writeWav(path.join(dir, 'prompt.wav'), A.concat(A.tone(400, 500), A.tone(1000, 500)));
    const { ct, call } = await connected(1);
    const r = await ct.play(file);
    r.should.containEql({ status: 'OK', digits: '' });
    await delay(100);
    const heard = call.heard();
    const span = A.soundSpan(heard, 1000);
    should.exist(span, 'the caller heard nothing');
    const len = (span[1] - span[0]) / 8;
    len.should.be.within(960, 1060);
    const first = A.goertzel(heard, 400, span[0] + 400, span[0] + 3600);
    const second = A.goertzel(heard, 1000, span[0] + 4400, span[1] - 400);
    first.should.be.above(0.8);
    second.should.be.above(0.8);
    A.goertzel(heard, 1000, span[0] + 400, span[0] + 3600).should.be.below(0.05);
  });

  it('speaks the bundled vocabulary: play "1 2 3" resolves and plays three files', async function () {
    const { ct, call } = await connected(1);
    const c2 = new CtPort({ port: 2, basePort: env.basePort });
    stops.push(() => c2.disconnect());
    const r = await ct.play('1 2 3'.split(' ').map((d) => path.join(__dirname, '..', 'resources', 'vocabulary', `${d}.au`)));
    r.status.should.equal('OK');
    const span = A.soundSpan(call.heard(), 300);
    should.exist(span);
    ((span[1] - span[0]) / 8).should.be.above(600);
  });

  it('a key stops playback at once (barge-in), goes into the digit buffer and into the reply', async function () {
    const file = A.writeWav(path.join(dir, 'long.wav'), A.tone(500, 8000));
    const { ct, call } = await connected(1);
    const playing = ct.play(file);
    await delay(700);
    const t0 = Date.now();
    await call.sendDigits('5');
    const r = await playing;
    const took = Date.now() - t0;
    r.should.containEql({ status: 'EVENT', digits: '5', event: 'dtmf' });
    took.should.be.below(1500);
    await delay(200);
    const heard = call.heard();
    const span = A.soundSpan(heard, 1000);
    ((span[1] - span[0]) / 8).should.be.below(2500); // far less than the 8 s file
    (await ct.collect(1, 1)).digits.should.equal('5');
  });

  it('ignore_dtmf keeps playing through a key', async function () {
    const file = A.writeWav(path.join(dir, 'short.wav'), A.tone(500, 1200));
    const { ct, call } = await connected(1);
    const playing = ct.play(file, { ignoreDtmf: true });
    await delay(300);
    await call.sendDigits('7');
    const r = await playing;
    r.should.containEql({ status: 'OK', digits: '7' });
  });

  it('a hang-up during playback answers EVENT hangup', async function () {
    const file = A.writeWav(path.join(dir, 'long.wav'), A.tone(500, 8000));
    const { ct, call } = await connected(1);
    const playing = ct.play(file);
    await delay(300);
    call.hangup();
    (await playing).should.containEql({ status: 'EVENT', event: 'hangup' });
  });

  it('play_stop ends an async play; an unreadable file answers ERROR with the reason', async function () {
    const bad = path.join(dir, 'bad.wav');
    fs.writeFileSync(bad, 'this is not a wav file');
    const { ct } = await connected(1);
    const r = await ct.play(bad);
    r.status.should.equal('ERROR');
    r.reason.should.match(/bad\.wav/);
    const outside = await ct.play('/etc/hostname');
    outside.status.should.equal('ERROR');
    outside.reason.should.match(/outside|not allowed|EOUTSIDE|allowed/i);
  });

  it('records what the caller says into a valid 16-bit 8 kHz WAV, stopping after silence', async function () {
    const { ct, call } = await connected(1);
    const rec = ct.record(path.join(dir, 'msg.wav'), 10, '#', 1);
    await delay(100);
    await call.play(A.tone(1000, 1500, 10000));
    const r = await rec;
    r.should.containEql({ status: 'OK', event: 'silence' });
    const info = A.soxInfo(path.join(dir, 'msg.wav'));
    info.rate.should.equal(8000);
    info.channels.should.equal(1);
    info.encoding.should.match(/Signed Integer PCM/);
    const samples = await readAudioFile(path.join(dir, 'msg.wav'));
    samples.length.should.equal(info.samples);
    const span = A.soundSpan(samples, 1000);
    ((span[1] - span[0]) / 8).should.be.within(1400, 1620);
    A.goertzel(samples, 1000, span[0] + 160, span[1] - 160).should.be.above(0.9);
    A.rms(samples, span[0] + 160, span[1] - 160).should.be.within(10000 * 0.707 * 0.9, 10000 * 0.707 * 1.1);
  });

  it('stops recording on a terminating key, on max seconds and on record_stop, and writes .au too', async function () {
    const { ct, call } = await connected(1);
    let rec = ct.record(path.join(dir, 'a.wav'), 10, '#*');
    await delay(400);
    await call.sendDigits('#');
    (await rec).should.containEql({ status: 'EVENT', event: 'dtmf', digits: '#' });
    await ct.clear();
    rec = ct.record(path.join(dir, 'b.au'), 1);
    (await rec).should.containEql({ status: 'OK', event: 'timeout' });
    const info = A.soxInfo(path.join(dir, 'b.au'));
    info.samples.should.be.within(7800, 8200);
    rec = ct.record(path.join(dir, 'c.wav'), 10);
    await delay(300);
    (await ct.recordStop()).status.should.equal('OK');
    (await rec).should.containEql({ status: 'OK', event: 'record_stop' });
    rec = ct.record(path.join(dir, 'd.wav'), 10);
    await delay(300);
    const m = new CtManager({ managerPort: env.managerPort });
    stops.push(() => m.disconnect());
    await m.connect();
    await m.recordStop(1);
    (await rec).should.containEql({ status: 'OK', event: 'record_stop' });
  });

  it('a recording is complete and valid when the caller hangs up mid-way', async function () {
    const { ct, call } = await connected(1);
    const rec = ct.record(path.join(dir, 'hup.wav'), 30);
    await delay(100);
    await call.play(A.tone(700, 800));
    call.hangup();
    (await rec).should.containEql({ status: 'EVENT', event: 'hangup' });
    const info = A.soxInfo(path.join(dir, 'hup.wav'));
    const size = fs.statSync(path.join(dir, 'hup.wav')).size;
    size.should.equal(44 + info.samples * 2);
    (info.samples / 8000).should.be.within(0.7, 1.5);
  });

  it('a recording is complete and valid when the server shuts down mid-way', async function () {
    const { ct, call } = await connected(1);
    const rec = ct.record(path.join(dir, 'shut.wav'), 30);
    const settled = rec.then((r) => r, (e) => e);
    await delay(100);
    await call.play(A.tone(700, 600));
    await env.server.stop();
    await settled;
    const info = A.soxInfo(path.join(dir, 'shut.wav'));
    fs.statSync(path.join(dir, 'shut.wav')).size.should.equal(44 + info.samples * 2);
    (info.samples / 8000).should.be.within(0.5, 1.5);
  });

  it('collects digits sent as RFC 4733 and as in-band tones; returns at once when the buffer holds enough', async function () {
    const { ct, call } = await connected(1);
    let col = ct.collect(4, 10);
    await call.sendDigits('1234');
    (await col).should.containEql({ status: 'OK', digits: '1234' });
    col = ct.collect(3, 10);
    await call.sendDigits('*9#', { mode: 'inband' });
    (await col).should.containEql({ status: 'OK', digits: '*9#' });
    await call.sendDigits('56');
    await delay(200);
    const t0 = Date.now();
    (await ct.collect(2, 10)).digits.should.equal('56');
    (Date.now() - t0).should.be.below(500);
    col = ct.collect(5, 10, 1);
    await call.sendDigits('7');
    (await col).should.containEql({ status: 'OK', digits: '7', event: 'interdigit' });
  });

  it('sleep is cut short by a key', async function () {
    const { ct, call } = await connected(1);
    const s = ct.sleep(10);
    await delay(200);
    await call.sendDigits('3');
    (await s).should.containEql({ status: 'EVENT', event: 'dtmf' });
  });

  it('dials keys mid-call as RFC 4733 events (and in-band when asked); "," pauses', async function () {
    const { ct, call } = await connected(1);
    const t0 = Date.now();
    (await ct.dial('12,#')).status.should.equal('OK');
    (Date.now() - t0).should.be.above(1000);
    await delay(300);
    call.media.digits.should.equal('12#');
  });

  it('dials in-band tones with --dtmf-mode inband', async function () {
    await env.server.stop();
    env = await startServer({ audioDirs: [dir], recordDir: dir, dtmfMode: 'inband' });
    const { ct, call } = await connected(1);
    (await ct.dial('9*0')).status.should.equal('OK');
    await delay(300);
    call.media.digits.should.equal('9*0');
  });

  it('plays call-progress tones with the right frequencies and cadence; stop_tone gives toneend', async function () {
    const { ct, call } = await connected(1);
    (await ct.playTone('busy')).status.should.equal('OK');
    await delay(2200);
    const toneend = once(ct, 'toneend');
    await ct.stopTone();
    await toneend;
    const heard = call.heard();
    const span = A.soundSpan(heard, 300);
    should.exist(span);
    // busy: 480 + 620 Hz, 0.5 s on, 0.5 s off
    const on = span[0] + 800;
    A.goertzel(heard, 480, on, on + 2400).should.be.above(0.3);
    A.goertzel(heard, 620, on, on + 2400).should.be.above(0.3);
    A.rms(heard, span[0] + 4400, span[0] + 7600).should.be.below(100);
    A.rms(heard, span[0] + 8400, span[0] + 11600).should.be.above(1000);
  });

  it('emits grunt when the caller starts talking, with grunt detection on', async function () {
    const { ct, call } = await connected(1);
    await ct.gruntOn();
    const grunt = once(ct, 'grunt', 5000);
    await call.play(A.tone([300, 700, 1100], 600, 6000));
    await grunt;
    await ct.gruntOff();
  });

  it('bridges two ports both ways, transcoding PCMA to PCMU, and passes DTMF through', async function () {
    const a = await connected(1, { codecs: ['PCMA'] });
    const b = await connected(2, { codecs: ['PCMU'] });
    (await a.ct.bridge(2)).status.should.equal('OK');
    await Promise.all([a.call.play(A.tone(500, 1000)), b.call.play(A.tone(800, 1000))]);
    await delay(200);
    const ha = a.call.heard();
    const hb = b.call.heard();
    const sa = A.soundSpan(ha, 1000);
    const sb = A.soundSpan(hb, 1000);
    A.goertzel(hb, 500, sb[0] + 160, sb[1] - 160).should.be.above(0.8);
    A.goertzel(ha, 800, sa[0] + 160, sa[1] - 160).should.be.above(0.8);
    await a.call.sendDigits('4');
    await delay(300);
    b.call.media.digits.should.equal('4');
    (await a.ct.unbridge(2)).status.should.equal('OK');
  });

  it('joins a conference: each party hears everyone but itself', async function () {
    const parties = [await connected(1), await connected(2), await connected(3)];
    const freqs = [450, 900, 1400];
    for (let i = 0; i < 3; i++) (await parties[0].ct.joinConference(i + 1)).status.should.equal('OK');
    await Promise.all(parties.map((p, i) => p.call.play(A.tone(freqs[i], 1000, 9000))));
    await delay(200);
    parties.forEach((p, i) => {
      const h = p.call.heard();
      const s = A.soundSpan(h, 1000);
      const from = s[0] + 800;
      const to = from + 4000;
      for (let j = 0; j < 3; j++) {
        const g = A.goertzel(h, freqs[j], from, to);
        if (i === j) g.should.be.below(0.02, `party ${i + 1} hears itself`);
        else g.should.be.above(0.2, `party ${i + 1} does not hear party ${j + 1}`);
      }
      // loud parties summed must not clip
      let peak = 0;
      for (let k = from; k < to; k++) peak = Math.max(peak, Math.abs(h[k]));
      peak.should.be.below(32767);
    });
    (await parties[0].ct.leaveConference(3)).status.should.equal('OK');
  });

  it('wait_for_dial_tone returns at once when the port is off hook with no call', async function () {
    const ct = await client(1);
    await ct.offHook();
    (await ct.waitForDialTone()).status.should.equal('OK');
  });
});
