'use strict';
// Test-side audio analysis, written independently of the product's DSP so that it can check it.
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const RATE = 8000;

/** A sine tone (or the sum of several) at 8 kHz. */
function tone(freqs, ms, amplitude = 8000) {
  const f = Array.isArray(freqs) ? freqs : [freqs];
  const n = Math.round((ms * RATE) / 1000);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (const hz of f) v += Math.sin((2 * Math.PI * hz * i) / RATE);
    out[i] = Math.round((v / f.length) * amplitude);
  }
  return out;
}

function silence(ms) {
  return new Int16Array(Math.round((ms * RATE) / 1000));
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Int16Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Relative power of `freq` in samples (Goertzel, normalised by the block energy): 0..~1. */
function goertzel(samples, freq, start = 0, end = samples.length) {
  const k = (2 * Math.cos((2 * Math.PI * freq) / RATE));
  let s1 = 0;
  let s2 = 0;
  let energy = 0;
  for (let i = start; i < end; i++) {
    const x = samples[i];
    energy += x * x;
    const s0 = x + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const n = end - start;
  if (energy === 0 || n === 0) return 0;
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  return (2 * power) / (n * energy);
}

function rms(samples, start = 0, end = samples.length) {
  let e = 0;
  for (let i = start; i < end; i++) e += samples[i] * samples[i];
  return end > start ? Math.sqrt(e / (end - start)) : 0;
}

/** [first, last] sample index of 20 ms blocks whose RMS is above `threshold`; undefined if none. */
function soundSpan(samples, threshold = 500) {
  let first;
  let last;
  for (let i = 0; i + 160 <= samples.length; i += 160) {
    if (rms(samples, i, i + 160) > threshold) {
      if (first === undefined) first = i;
      last = i + 160;
    }
  }
  return first === undefined ? undefined : [first, last];
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-audio-'));

/** Write 8 kHz 16-bit mono samples to a WAV with sox-free code (a plain RIFF header). */
function writeWav(file, samples, rate = RATE) {
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36);
  h.writeUInt32LE(data.length, 40);
  fs.writeFileSync(file, Buffer.concat([h, data]));
  return file;
}

/** Make a file with sox (the real tool): `$OUT` in args stands for the new file's path. */
function sox(name, args) {
  const file = path.join(tmpRoot, name);
  execFileSync('sox', args.map((a) => (a === '$OUT' ? file : a)), { stdio: 'pipe' });
  return file;
}

/** `sox --i` fields of a file. */
function soxInfo(file) {
  const out = execFileSync('sox', ['--i', file], { encoding: 'utf8' });
  const get = (k) => (new RegExp(`${k}\\s*:\\s*(.*)`).exec(out) || [])[1];
  const dur = /Duration\s*:\s*[\d:.]+\s*=\s*(\d+)\s*samples/.exec(out);
  return { raw: out, rate: Number(get('Sample Rate')), channels: Number(get('Channels')), samples: dur ? Number(dur[1]) : NaN, encoding: get('Sample Encoding') };
}

module.exports = { RATE, tone, silence, concat, goertzel, rms, soundSpan, writeWav, sox, soxInfo, tmpRoot };
