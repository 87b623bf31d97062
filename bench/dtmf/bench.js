#!/usr/bin/env node
'use strict';
/*
 * DTMF receiver cost: our DtmfDetector against spandsp's dtmf_rx (the system libspandsp,
 * Debian libspandsp-dev), on the same input, per 20 ms frame (160 samples).
 *
 *   npm run build && node bench/dtmf/bench.js [--seconds 60] [--rounds 7]
 *
 * The input is synthetic and deterministic: "speech-like" noise (noise through two gliding
 * formant resonators, syllable-rate amplitude modulation and pauses) with a DTMF key every
 * 1.5 s (80 ms tones at -10 dBm0 per tone, with speech-like noise under them at -20 dB), passed
 * through mu-law. It is written to os.tmpdir(); the C harness (bench/dtmf/spandsp_dtmf.c) is
 * built there with `cc`. Ours and spandsp run alternately for several rounds, in one run; the
 * medians are reported. Without a C compiler or libspandsp the script says why, reports our
 * figure alone and exits 0.
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');

const root = path.join(__dirname, '..', '..');
let dsp;
let g711;
try {
  dsp = require(path.join(root, 'dist/server/media/dsp'));
  g711 = require(path.join(root, 'dist/server/media/g711'));
} catch (e) {
  console.error('dist/ is missing or stale: run `npm run build` first.', e.message);
  process.exit(1);
}

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : def;
}
const SECONDS = arg('seconds', 60);
const ROUNDS = Math.max(1, arg('rounds', 7));
const FRAME = 160;
const RATE = 8000;

// ------------------------------------------------------------------ input

function prng(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => {
    let u = 0;
    while (u === 0) u = uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, gauss };
}

/** Speech-like noise plus keys; returns { samples: Int16Array (mu-law round trip), keys }. */
function makeInput(seconds) {
  const n = Math.floor((seconds * RATE) / FRAME) * FRAME;
  const g = prng(12345);
  const x = new Float64Array(n);
  // Two resonators (formants) whose centre frequencies glide, excited by noise plus a pulse
  // train (voicing, 100-220 Hz), with a 4 Hz syllabic envelope and pauses.
  let y1a = 0, y2a = 0, y1b = 0, y2b = 0;
  let f1 = 500, f2 = 1500, t1 = 500, t2 = 1500, pitch = 140, phase = 0;
  let env = 0;
  let talk = true;
  let segLeft = 0;
  for (let i = 0; i < n; i++) {
    if (segLeft-- <= 0) {
      talk = g.uniform() < 0.75;
      segLeft = Math.floor((0.3 + g.uniform() * 1.2) * RATE);
    }
    if (i % 400 === 0) {
      t1 = 300 + g.uniform() * 600;
      t2 = 900 + g.uniform() * 1600;
      pitch = 100 + g.uniform() * 120;
    }
    f1 += (t1 - f1) * 0.002;
    f2 += (t2 - f2) * 0.002;
    phase += pitch / RATE;
    let exc = 0.3 * g.gauss();
    if (phase >= 1) {
      phase -= 1;
      exc += 6;
    }
    const syl = 0.5 + 0.5 * Math.sin((2 * Math.PI * 4 * i) / RATE);
    env += ((talk ? syl : 0) - env) * 0.005;
    const r = 0.97;
    const c1 = 2 * r * Math.cos((2 * Math.PI * f1) / RATE);
    const c2 = 2 * r * Math.cos((2 * Math.PI * f2) / RATE);
    const a = exc + c1 * y1a - r * r * y2a;
    y2a = y1a;
    y1a = a;
    const b = exc + c2 * y1b - r * r * y2b;
    y2b = y1b;
    y1b = b;
    x[i] = env * (a + 0.5 * b);
  }
  // Normalise the speech to about -20 dBFS RMS while talking.
  let e = 0;
  let cnt = 0;
  for (let i = 0; i < n; i++) {
    if (x[i] !== 0) {
      e += x[i] * x[i];
      cnt++;
    }
  }
  const gain = dsp.dbfsToPeak(-20) / Math.SQRT2 / Math.sqrt(e / Math.max(1, cnt));
  for (let i = 0; i < n; i++) x[i] *= gain;
  // A key every 1.5 s; the speech under it attenuated to -20 dB relative.
  const keys = [];
  const A = dsp.dbm0ToPeak(-10);
  const toneLen = 80 * 8;
  for (let k = 0, at = RATE; at + toneLen < n; k++, at += 1.5 * RATE) {
    const key = dsp.DTMF_KEYS[k % 16];
    keys.push(key);
    const { row, col } = dsp.dtmfFrequencies(key);
    for (let i = 0; i < toneLen; i++) {
      const p = at + i;
      x[p] = 0.1 * x[p] + A * (Math.sin((2 * Math.PI * row * i) / RATE) + Math.sin((2 * Math.PI * col * i) / RATE));
    }
  }
  const lin = new Int16Array(n);
  for (let i = 0; i < n; i++) lin[i] = Math.max(-32768, Math.min(32767, Math.round(x[i])));
  const mu = new Uint8Array(n);
  g711.encodeUlaw(lin, mu);
  g711.decodeUlaw(mu, lin);
  return { samples: lin, keys: keys.join('') };
}

// ------------------------------------------------------------------ runners

function runOurs(frames) {
  const det = new dsp.DtmfDetector();
  let digits = '';
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < frames.length; i++) {
    const k = det.process(frames[i]);
    if (k !== '') digits += k;
  }
  const t1 = process.hrtime.bigint();
  return { nsPerFrame: Number(t1 - t0) / frames.length, digits };
}

function buildHarness() {
  const src = path.join(__dirname, 'spandsp_dtmf.c');
  const exe = path.join(os.tmpdir(), `ctport-spandsp-dtmf-${process.getuid ? process.getuid() : 0}`);
  const cc = spawnSync('cc', ['-O2', '-o', exe, src, '-lspandsp', '-lm'], { encoding: 'utf8' });
  if (cc.error) return { error: `no C compiler (cc): ${cc.error.code || cc.error.message}` };
  if (cc.status !== 0) {
    const msg = (cc.stderr || '').trim().split('\n').slice(0, 3).join(' | ');
    const hint = /spandsp/.test(msg) ? ' (install libspandsp-dev)' : '';
    return { error: `cannot build the spandsp harness${hint}: ${msg}` };
  }
  return { exe };
}

function runSpandsp(exe, file) {
  const out = execFileSync(exe, [file, '1'], { encoding: 'utf8' });
  const ns = /ns_per_frame=([\d.]+)/.exec(out);
  const dg = /digits=(.*)/.exec(out);
  return { nsPerFrame: ns ? Number(ns[1]) : NaN, digits: dg ? dg[1].trim() : '' };
}

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// ------------------------------------------------------------------ main

const { samples, keys } = makeInput(SECONDS);
const file = path.join(os.tmpdir(), `ctport-dtmf-bench-${SECONDS}s.s16`);
fs.writeFileSync(file, Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength));
const frames = [];
for (let i = 0; i + FRAME <= samples.length; i += FRAME) frames.push(samples.subarray(i, i + FRAME));

console.log(`input: ${SECONDS} s, ${frames.length} frames of ${FRAME} samples (mu-law), ${keys.length} keys in speech-like noise`);
console.log(`expected keys: ${keys}`);

const harness = buildHarness();
if (harness.error) console.log(`spandsp: skipped: ${harness.error}`);

runOurs(frames); // warm-up (JIT)
runOurs(frames);
const ours = [];
const theirs = [];
let ourDigits = '';
let theirDigits = '';
for (let r = 0; r < ROUNDS; r++) {
  const o = runOurs(frames);
  ours.push(o.nsPerFrame);
  ourDigits = o.digits;
  if (harness.exe) {
    const s = runSpandsp(harness.exe, file);
    theirs.push(s.nsPerFrame);
    theirDigits = s.digits;
  }
}

const om = median(ours);
console.log(`ours:    ${om.toFixed(0)} ns per 20 ms frame (median of ${ROUNDS}; ${((om / 20e6) * 100).toFixed(4)} % of a core per line); keys: ${ourDigits}${ourDigits === keys ? ' (all, no extra)' : ' (DIFFERS)'}`);
if (harness.exe) {
  const sm = median(theirs);
  console.log(`spandsp: ${sm.toFixed(0)} ns per 20 ms frame (median of ${ROUNDS}); keys: ${theirDigits}${theirDigits === keys ? ' (all, no extra)' : ' (DIFFERS)'}`);
  console.log(`ratio ours/spandsp: ${(om / sm).toFixed(2)}x (aim: within 3x)`);
}
