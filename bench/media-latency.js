'use strict';
// Media latency through the bundled ctserver (a separate process, --ports 2, --quiet):
//  (a) play -> first sound: from CtPort.play() being called to the first RTP packet of the prompt
//      (the first one whose audio is not silence) arriving at the caller's socket, and to
//      PeerMedia.firstSoundAt (that packet after the caller's own 2-frame jitter buffer and 20 ms
//      clock tick), over --reps plays of a 300 ms tone that starts at its first sample;
//  (b) key -> barge-in reply: a key sent by the caller (RFC 4733, then in-band tones) during a
//      blocking play of a long prompt, to the play reply (EVENT dtmf) arriving at the CtPort
//      client. Timed from the moment the first packet of the key went to the caller's socket
//      (sendDigits waits for the caller's next 20 ms tick, which is not the server's doing) and,
//      for reference, from the sendDigits() call. The dtmf event line is timed too.
//   node bench/media-latency.js [--reps 50] [--keys 50] [--modes inband,rfc4733,inband]
// (b) runs in-band keys on the fresh call, then RFC 4733 keys, then in-band keys again: each RFC
// 4733 key leaves a gap in the audio sequence numbers that the server's jitter buffer may keep.
// The caller is a SipCaller in this process (its own MediaClock); the CtPort client is here too.
// Between repetitions a random 0-40 ms pause spreads the start over the 20 ms frame phase.
const fs = require('fs');
const path = require('path');
const { CtPort } = require('../dist/core');
const { SipCaller } = require('../dist/server');
const { decodeUlaw, decodeAlaw } = require('../dist/server/media/g711');
const L = require('./lib');

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : def; };
const REPS = opt('reps', 50);
const KEYS = opt('keys', 50);
// Phases of (b), in order on the same call. In-band runs twice: on the fresh call, and again after
// the RFC 4733 keys (each RFC 4733 key leaves a gap in the audio sequence numbers at the server).
const MODES = String(argv.includes('--modes') ? argv[argv.indexOf('--modes') + 1] : 'inband,rfc4733,inband').split(',');
const WARMUP = 3;

function tone(hz, ms, amplitude) {
  const n = Math.round(ms * 8);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(Math.sin((2 * Math.PI * hz * i) / 8000) * amplitude);
  return out;
}

function writeWav(file, samples) {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + samples.length * 2, 4); h.write('WAVEfmt ', 8); h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(8000, 24); h.writeUInt32LE(16000, 28);
  h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34); h.write('data', 36); h.writeUInt32LE(samples.length * 2, 40);
  fs.writeFileSync(file, Buffer.concat([h, Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength)]));
  return file;
}

const f2 = (v) => (Number.isFinite(v) ? v.toFixed(2) : '-');

async function main() {
  L.header(`media latency: play -> first RTP of the prompt (${REPS} plays), key -> barge-in reply (${KEYS} keys per mode)`);
  const dir = L.tmpDir('bench-media-latency-');
  L.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  writeWav(path.join(dir, 'beep.wav'), tone(1000, 300, 8000));
  writeWav(path.join(dir, 'long.wav'), tone(440, 30000, 3000));

  const srv = await L.startCtServer({ ports: 2, args: ['--audio-dir', dir] });
  const ct = new CtPort({ port: 1, basePort: srv.basePort, reconnect: false, resolveAudio: false });
  ct.on('error', () => undefined);
  await ct.connect();
  L.onCleanup(() => ct.disconnect().catch(() => undefined));
  const caller = new SipCaller({ host: '127.0.0.1', port: 0, keepAudio: false });
  L.onCleanup(() => caller.stop());
  await caller.start();

  ct.once('ring', () => { ct.offHook().catch(() => undefined); });
  const call = caller.call(`sip:1@127.0.0.1:${srv.sipPort}`);
  await call.answered;
  const media = call.media;
  if (!media) throw new Error('the call has no media');
  const socket = media.stream.socket;
  console.log(`ctserver pid ${srv.pid}, SIP ${srv.sipPort}; call up, payload type ${media.stream.payloadType}, telephone-event ${media.stream.telephoneEvent}`);

  // First non-silent audio packet after arming: arrival time at the caller's socket.
  const pcm = new Int16Array(160);
  let watchSound = false;
  let soundAt;
  socket.on('message', (buf) => {
    if (!watchSound || buf.length < 12 + 160) return;
    const pt = buf[1] & 0x7f;
    if (pt !== 0 && pt !== 8) return;
    const now = performance.now();
    const payload = buf.subarray(12 + (buf[0] & 0x0f) * 4);
    (pt === 8 ? decodeAlaw : decodeUlaw)(payload, pcm, Math.min(160, payload.length));
    for (let i = 0; i < 160; i++) {
      if (pcm[i] > 300 || pcm[i] < -300) {
        soundAt = now;
        watchSound = false;
        return;
      }
    }
  });
  // First packet the caller sends after arming: the moment a key goes on the wire.
  let watchSend = false;
  let sentAt;
  const origSend = socket.send;
  socket.send = function send(...args) {
    if (watchSend) {
      sentAt = performance.now();
      watchSend = false;
    }
    return origSend.apply(this, args);
  };
  let dtmfAt;
  ct.on('dtmf', () => { if (dtmfAt === undefined) dtmfAt = performance.now(); });

  await L.delay(300);

  // ---- (a) play -> first sound ----------------------------------------------------------------
  const wire = [];
  const heard = [];
  const replyMs = [];
  let cold;
  let notOk = 0;
  for (let i = 0; i < WARMUP + REPS; i++) {
    await L.delay(Math.random() * 40);
    media.firstSoundAt = undefined;
    soundAt = undefined;
    watchSound = true;
    const t0 = performance.now();
    const r = await ct.play('beep.wav');
    const tDone = performance.now();
    if (r.status !== 'OK') notOk++;
    await L.delay(60); // the caller's jitter buffer and tick catch up
    watchSound = false;
    const w = soundAt - t0;
    const h = media.firstSoundAt - t0;
    if (i === 0) cold = { wire: w, heard: h };
    if (i < WARMUP) continue;
    wire.push(w);
    heard.push(h);
    replyMs.push(tDone - t0);
  }
  const sw = L.summary(wire);
  const sh = L.summary(heard);
  const sr = L.summary(replyMs);

  // ---- (b) key -> barge-in reply --------------------------------------------------------------
  const barge = {};
  const labels = [];
  let rfcSoFar = 0;
  for (const mode of MODES) {
    const label = mode === 'inband' && rfcSoFar > 0 ? `inband after ${rfcSoFar} RFC 4733 keys` : mode;
    labels.push(label);
    const fromWire = [];
    const fromCall = [];
    const eventFromWire = [];
    const bad = {};
    for (let i = 0; i < WARMUP + KEYS; i++) {
      const playing = ct.play('long.wav');
      let replyAt;
      playing.then(() => { replyAt = performance.now(); }, () => undefined);
      await L.delay(250 + Math.random() * 40);
      const key = '0123456789*#'[i % 12];
      dtmfAt = undefined;
      sentAt = undefined;
      watchSend = true;
      const t0 = performance.now();
      const sending = media.sendDigits(key, { mode });
      const r = await Promise.race([playing, L.delay(3000).then(() => null)]);
      await sending;
      if (!r || r.status !== 'EVENT' || r.event !== 'dtmf' || r.digits !== key) {
        const k = r ? `${r.status} ${r.event || ''} ${JSON.stringify(r.digits)} (sent ${key})` : 'no reply in 3 s';
        bad[k] = (bad[k] || 0) + 1;
        if (!r) { await ct.playStop().catch(() => undefined); await playing.catch(() => undefined); }
      } else if (i >= WARMUP) {
        fromWire.push(replyAt - sentAt);
        fromCall.push(replyAt - t0);
        if (dtmfAt !== undefined) eventFromWire.push(dtmfAt - sentAt);
      }
      await ct.clear();
      await L.delay(120); // key tone over, detector and event state reset
    }
    if (mode === 'rfc4733') rfcSoFar += WARMUP + KEYS;
    barge[label] = { fromWire: L.summary(fromWire), fromCall: L.summary(fromCall), event: L.summary(eventFromWire), bad };
  }

  call.hangup();
  await Promise.race([call.ended, L.delay(3000)]);
  await ct.disconnect();
  await caller.stop();
  await L.stopCtServer(srv);

  console.log(`\n(a) play -> first sound of the prompt at the caller (ms), ${REPS} plays after ${WARMUP} warm-up (the first, cold: wire ${f2(cold.wire)}, heard ${f2(cold.heard)}):`);
  L.table([
    ['measured to', 'n', 'min', 'p50', 'p90', 'p99', 'max'],
    ['first sound packet at the caller socket', String(sw.n), f2(sw.min), f2(sw.p50), f2(sw.p90), f2(sw.p99), f2(sw.max)],
    ['PeerMedia.firstSoundAt (+ jitter buffer, tick)', String(sh.n), f2(sh.min), f2(sh.p50), f2(sh.p90), f2(sh.p99), f2(sh.max)],
    ['play reply (300 ms prompt played out)', String(sr.n), f2(sr.min), f2(sr.p50), f2(sr.p90), f2(sr.p99), f2(sr.max)],
  ]);
  if (notOk) console.log(`  ${notOk} plays did not answer OK`);
  console.log(`\n(b) key -> barge-in: the play reply (EVENT dtmf) at the CtPort client (ms), ${KEYS} keys per mode after ${WARMUP} warm-up:`);
  L.table([
    ['key sent as', 'from', 'n', 'min', 'p50', 'p90', 'p99', 'max'],
    ...labels.flatMap((m) => [
      [m, 'first key packet sent -> reply', String(barge[m].fromWire.n), f2(barge[m].fromWire.min), f2(barge[m].fromWire.p50), f2(barge[m].fromWire.p90), f2(barge[m].fromWire.p99), f2(barge[m].fromWire.max)],
      [m, 'first key packet sent -> dtmf event', String(barge[m].event.n), f2(barge[m].event.min), f2(barge[m].event.p50), f2(barge[m].event.p90), f2(barge[m].event.p99), f2(barge[m].event.max)],
      [m, 'sendDigits() call -> reply', String(barge[m].fromCall.n), f2(barge[m].fromCall.min), f2(barge[m].fromCall.p50), f2(barge[m].fromCall.p90), f2(barge[m].fromCall.p99), f2(barge[m].fromCall.max)],
    ]),
  ]);
  for (const m of labels) if (Object.keys(barge[m].bad).length) console.log(`  ${m}: not a clean barge-in: ${JSON.stringify(barge[m].bad)}`);
  console.log('  in-band keys: 100 ms tones, 60 ms gap, -6 dBm0 per tone (PeerMedia defaults); RFC 4733: 100 ms events');
  const strip = (s) => ({ n: s.n, min: s.min, p50: s.p50, p90: s.p90, p99: s.p99, max: s.max });
  console.log(`\nRESULT media-latency ${JSON.stringify({ play: { cold, wire: strip(sw), heard: strip(sh), reply: strip(sr), notOk }, barge: Object.fromEntries(Object.entries(barge).map(([k, v]) => [k, { fromWire: strip(v.fromWire), event: strip(v.event), fromCall: strip(v.fromCall), bad: v.bad }])) })}`);
}

L.runMain(main);
