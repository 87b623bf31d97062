'use strict';
// DSP for the ctserver's 8 kHz lines: G.711 tables, DTMF receiver/generator (ITU-T Q.24),
// call-progress tones, energy/VAD/silence. Signals are synthesised here; speech comes from
// espeak-ng (resampled by sox, cached in os.tmpdir()).
const should = require('should');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');
const alawmulaw = require('alawmulaw');

const g711 = require('../dist/server/media/g711');
const dsp = require('../dist/server/media/dsp');
const { DtmfDetector, DtmfGenerator, dtmfSamples, DTMF_KEYS, DTMF_ROW_FREQS, DTMF_COL_FREQS, dbm0ToPeak } = dsp;

const RATE = 8000;
const FRAME = 160;

// ---------------------------------------------------------------- helpers

/** Deterministic PRNG (mulberry32) and a Gaussian from it (Box-Muller). */
function prng(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare = null;
  const gauss = () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = uniform();
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  return { uniform, gauss };
}

function toInt16(f) {
  const out = new Int16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const v = Math.round(f[i]);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

function concat(parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Float64Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A dual tone as floats: row/col frequency, levels in dBm0, duration, start phases. */
function dualTone(fRow, fCol, { lowDbm0 = -6, highDbm0 = -6, ms = 100, phRow = 0, phCol = 0 } = {}) {
  const n = Math.round((ms * RATE) / 1000);
  const ar = dbm0ToPeak(lowDbm0);
  const ac = dbm0ToPeak(highDbm0);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = ar * Math.sin((2 * Math.PI * fRow * i) / RATE + phRow) + ac * Math.sin((2 * Math.PI * fCol * i) / RATE + phCol);
  }
  return out;
}

function silence(ms) {
  return new Float64Array(Math.round((ms * RATE) / 1000));
}

function keyFreqs(key) {
  const i = DTMF_KEYS.indexOf(key);
  return [DTMF_ROW_FREQS[i >> 2], DTMF_COL_FREQS[i & 3]];
}

/** A sequence of keys (each tone `ms` then `gapMs` silence), as floats. */
function keySequence(keys, opts = {}) {
  const { ms = 100, gapMs = 60, rowFactor = 1, colFactor = 1, lowDbm0 = -6, highDbm0 = -6, leadMs = 30 } = opts;
  const parts = [silence(leadMs)];
  let k = 0;
  for (const key of keys) {
    const [fr, fc] = keyFreqs(key);
    parts.push(dualTone(fr * rowFactor, fc * colFactor, { lowDbm0, highDbm0, ms, phRow: 0.7 * k, phCol: 1.9 * k }));
    parts.push(silence(gapMs));
    k++;
  }
  return concat(parts);
}

/** Through a G.711 law and back. */
function viaLaw(samples, law) {
  const lin = samples instanceof Int16Array ? samples : toInt16(samples);
  const bytes = new Uint8Array(lin.length);
  const out = new Int16Array(lin.length);
  g711.encode(law === 'alaw' ? 8 : 0, lin, bytes);
  g711.decode(law === 'alaw' ? 8 : 0, bytes, out);
  return out;
}

/** Run a detector over samples in frames of `frame` samples; returns the keys as a string. */
function detect(samples, { frame = FRAME, det = new DtmfDetector() } = {}) {
  const s = samples instanceof Int16Array ? samples : toInt16(samples);
  let out = '';
  const buf = new Int16Array(frame);
  for (let i = 0; i < s.length; i += frame) {
    const n = Math.min(frame, s.length - i);
    if (n === frame) {
      buf.set(s.subarray(i, i + n));
      out += det.process(buf);
    } else {
      out += det.process(s.slice(i, i + n));
    }
  }
  return out;
}

function power(f) {
  let e = 0;
  for (let i = 0; i < f.length; i++) e += f[i] * f[i];
  return e / f.length;
}

function addNoise(f, snrDb, seed) {
  // SNR over the tone-on parts: noise power relative to the power of the tones themselves.
  let on = 0;
  let e = 0;
  for (let i = 0; i < f.length; i++) {
    if (f[i] !== 0) {
      on++;
      e += f[i] * f[i];
    }
  }
  const sigma = Math.sqrt(e / on / Math.pow(10, snrDb / 10));
  const g = prng(seed);
  const out = new Float64Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = f[i] + sigma * g.gauss();
  return out;
}

function haveTool(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch (e) {
    return false;
  }
}

/** Speech from espeak-ng as 8 kHz linear PCM (cached in os.tmpdir()). */
function speech({ voice, speed, pitch = 50, text, gainDb = -3 }) {
  const key = crypto.createHash('sha1').update(JSON.stringify({ v: 2, voice, speed, pitch, text, gainDb })).digest('hex').slice(0, 16);
  const raw = path.join(os.tmpdir(), `ctport-dsp-speech-${key}.s16`);
  if (!fs.existsSync(raw)) {
    const wav = path.join(os.tmpdir(), `ctport-dsp-speech-${key}.${process.pid}.wav`);
    execFileSync('espeak-ng', ['-v', voice, '-s', String(speed), '-p', String(pitch), '-w', wav, text], { stdio: 'ignore' });
    const tmp = `${raw}.${process.pid}`;
    // Normalised to a hot level (peaks at gainDb dBFS): worst case for talk-off.
    execFileSync('sox', [wav, '-t', 'raw', '-r', '8000', '-e', 'signed', '-b', '16', '-c', '1', tmp, 'gain', '-n', String(gainDb)], { stdio: 'ignore' });
    fs.renameSync(tmp, raw);
    fs.unlinkSync(wav);
  }
  const b = fs.readFileSync(raw);
  return new Int16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

/** Any audio file sox reads, as 8 kHz linear PCM. */
function soxRead(file) {
  const ext = path.extname(file).toLowerCase();
  const typeArgs = { '.ul': ['-t', 'ul', '-r', '8000', '-c', '1'], '.ulaw': ['-t', 'ul', '-r', '8000', '-c', '1'], '.al': ['-t', 'al', '-r', '8000', '-c', '1'], '.alaw': ['-t', 'al', '-r', '8000', '-c', '1'], '.raw': ['-t', 's16', '-r', '8000', '-c', '1'], '.sw': ['-t', 's16', '-r', '8000', '-c', '1'], '.pcm': ['-t', 's16', '-r', '8000', '-c', '1'] }[ext] || [];
  const b = execFileSync('sox', [...typeArgs, file, '-t', 'raw', '-r', '8000', '-e', 'signed', '-b', '16', '-c', '1', '-'], { maxBuffer: 1 << 28 });
  return new Int16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

// ---------------------------------------------------------------- G.711

describe('dsp: G.711 tables', function () {
  it('match alawmulaw sample by sample', function () {
    for (let c = 0; c < 256; c++) {
      g711.ULAW_TO_LINEAR[c].should.equal(alawmulaw.mulaw.decodeSample(c) | 0);
      g711.ALAW_TO_LINEAR[c].should.equal(alawmulaw.alaw.decodeSample(c) | 0);
    }
    for (let s = -32768; s < 32768; s += 7) {
      g711.LINEAR_TO_ULAW[s & 0xffff].should.equal(alawmulaw.mulaw.encodeSample(s) & 0xff);
      g711.LINEAR_TO_ALAW[s & 0xffff].should.equal(alawmulaw.alaw.encodeSample(s) & 0xff);
    }
    g711.LINEAR_TO_ULAW.length.should.equal(65536);
    g711.LINEAR_TO_ALAW.length.should.equal(65536);
  });

  it('has the right silence codes and round-trips every code', function () {
    g711.ULAW_TO_LINEAR[g711.ULAW_SILENCE].should.equal(0);
    g711.LINEAR_TO_ULAW[0].should.equal(0xff);
    g711.LINEAR_TO_ALAW[0].should.equal(0xd5);
    Math.abs(g711.ALAW_TO_LINEAR[g711.ALAW_SILENCE]).should.equal(8);
    for (let c = 0; c < 256; c++) {
      g711.LINEAR_TO_ALAW[g711.ALAW_TO_LINEAR[c] & 0xffff].should.equal(c);
      // mu-law has two zeros (0x7f and 0xff): both decode to 0, which encodes as 0xff.
      if (c !== 0x7f) g711.LINEAR_TO_ULAW[g711.ULAW_TO_LINEAR[c] & 0xffff].should.equal(c);
    }
  });

  it('encodes and decodes buffers (with n and the pt dispatchers)', function () {
    const lin = Int16Array.from([0, 1000, -1000, 32767, -32768, 12345]);
    const u = new Uint8Array(6);
    const a = new Uint8Array(6);
    g711.encodeUlaw(lin, u).should.equal(6);
    g711.encode(8, lin, a).should.equal(6);
    Array.from(u).should.eql(Array.from(alawmulaw.mulaw.encode(lin)));
    Array.from(a).should.eql(Array.from(alawmulaw.alaw.encode(lin)));
    const back = new Int16Array(6);
    g711.decode(0, u, back, 3).should.equal(3);
    back[3].should.equal(0);
    Array.from(back.subarray(0, 3)).should.eql(Array.from(alawmulaw.mulaw.decode(u)).slice(0, 3));
    g711.decodeAlaw(a, back).should.equal(6);
    Array.from(back).should.eql(Array.from(alawmulaw.alaw.decode(a)));
  });

  it('transcodes ulaw <-> alaw within one step', function () {
    const u = new Uint8Array(256).map((_, i) => i);
    const a = new Uint8Array(256);
    g711.ulawToAlaw(u, a);
    const u2 = new Uint8Array(256);
    g711.alawToUlaw(a, u2);
    for (let c = 0; c < 256; c++) {
      const x = g711.ULAW_TO_LINEAR[c];
      const y = g711.ULAW_TO_LINEAR[u2[c]];
      // One A-law/mu-law quantisation step at that level.
      Math.abs(x - y).should.be.belowOrEqual(Math.max(16, Math.abs(x) / 16));
      Math.abs(g711.ALAW_TO_LINEAR[a[c]] - x).should.be.belowOrEqual(Math.max(16, Math.abs(x) / 16));
    }
  });
});

// ---------------------------------------------------------------- DTMF

describe('dsp: DTMF receiver (Q.24)', function () {
  const ALL = DTMF_KEYS; // '123A456B789C*0#D'

  it('detects all 16 keys from the generator, through mu-law and A-law, at any frame size', function () {
    const s = dtmfSamples(ALL);
    detect(s).should.equal(ALL);
    detect(viaLaw(s, 'ulaw')).should.equal(ALL);
    detect(viaLaw(s, 'alaw')).should.equal(ALL);
    for (const frame of [1, 7, 80, 102, 240, 1000, s.length]) detect(viaLaw(s, 'ulaw'), { frame }).should.equal(ALL);
  });

  it('calls onDigit, returns "" between keys, reports the held key, and reset() forgets', function () {
    const got = [];
    const det = new DtmfDetector({ onDigit: (k) => got.push(k) });
    const s = viaLaw(dtmfSamples('5#', { toneMs: 100, gapMs: 100 }), 'ulaw');
    let empties = 0;
    let sawHold = false;
    for (let i = 0; i + FRAME <= s.length; i += FRAME) {
      const r = det.process(s.subarray(i, i + FRAME));
      if (r === '') empties++;
      if (det.holding === '5') sawHold = true;
    }
    got.should.eql(['5', '#']);
    sawHold.should.be.true();
    empties.should.equal(s.length / FRAME - 2);
    det.process(s.subarray(0, 400)); // half a tone
    det.reset();
    det.holding.should.equal('');
    detect(s, { det }).should.equal('5#');
  });

  it('detects tones from -25 dBm0 up to 0 dBm0 per tone, not at -36 dBm0', function () {
    for (const lvl of [-25, -15, 0]) detect(viaLaw(keySequence(ALL, { lowDbm0: lvl, highDbm0: lvl }), 'ulaw')).should.equal(ALL, `level ${lvl}`);
    detect(viaLaw(keySequence(ALL, { lowDbm0: -36, highDbm0: -36 }), 'ulaw')).should.equal('');
  });

  describe('frequency deviation: +-1.5 % accepted, +-3.5 % rejected', function () {
    const cases = [
      ['row', 1, 0],
      ['column', 0, 1],
      ['both', 1, 1],
      ['opposite', 1, -1],
    ];
    for (const [name, rs, cs] of cases) {
      for (const sign of [1, -1]) {
        it(`${name} ${sign > 0 ? '+' : '-'}`, function () {
          for (const [pct, want] of [[1.5, ALL], [3.5, '']]) {
            const d = (sign * pct) / 100;
            const s = keySequence(ALL, { rowFactor: 1 + rs * d, colFactor: 1 + cs * d });
            detect(viaLaw(s, 'ulaw')).should.equal(want, `${pct} %`);
            detect(viaLaw(s, 'alaw')).should.equal(want, `${pct} % (A-law)`);
          }
        });
      }
    }
  });

  describe('twist', function () {
    it('normal twist (high group weaker) of 8 dB accepted, 10 dB rejected', function () {
      detect(viaLaw(keySequence(ALL, { lowDbm0: -4, highDbm0: -12 }), 'ulaw')).should.equal(ALL);
      detect(viaLaw(keySequence(ALL, { lowDbm0: -20, highDbm0: -28 }), 'alaw')).should.equal(ALL);
      detect(viaLaw(keySequence(ALL, { lowDbm0: -4, highDbm0: -14 }), 'ulaw')).should.equal('');
    });
    it('reverse twist (high group stronger) of 4 dB accepted, 6 dB rejected', function () {
      detect(viaLaw(keySequence(ALL, { lowDbm0: -8, highDbm0: -4 }), 'ulaw')).should.equal(ALL);
      detect(viaLaw(keySequence(ALL, { lowDbm0: -24, highDbm0: -20 }), 'alaw')).should.equal(ALL);
      detect(viaLaw(keySequence(ALL, { lowDbm0: -10, highDbm0: -4 }), 'ulaw')).should.equal('');
    });
  });

  describe('duration', function () {
    // Every alignment of the tone against the 102-sample analysis blocks (step 3 samples).
    it('a 40 ms tone is accepted at every alignment', function () {
      for (let lead = 0; lead < 102; lead += 3) {
        detect(viaLaw(keySequence(ALL, { ms: 40, gapMs: 40, leadMs: lead / 8 }), 'ulaw')).should.equal(ALL, `lead ${lead}`);
      }
    });
    it('a 20 ms tone is rejected at every alignment', function () {
      for (let lead = 0; lead < 102; lead += 3) {
        detect(viaLaw(keySequence(ALL, { ms: 20, gapMs: 60, leadMs: lead / 8 }), 'ulaw')).should.equal('', `lead ${lead}`);
      }
    });
    it('a long key is one key; a short break inside it does not split it, a 40 ms pause does', function () {
      const [fr, fc] = keyFreqs('8');
      const tone = (ms) => dualTone(fr, fc, { ms });
      detect(viaLaw(concat([silence(20), tone(2000), silence(60)]), 'ulaw')).should.equal('8');
      detect(viaLaw(concat([silence(20), tone(200), silence(10), tone(200), silence(60)]), 'ulaw')).should.equal('8');
      detect(viaLaw(concat([silence(20), tone(200), silence(40), tone(200), silence(60)]), 'ulaw')).should.equal('88');
    });
  });

  it('white noise at 15 dB S/N: every key, no extra key (3 seeds)', function () {
    for (const seed of [1, 2, 3]) {
      const s = addNoise(keySequence(ALL + ALL, { ms: 60, gapMs: 60 }), 15, seed);
      detect(viaLaw(s, 'ulaw')).should.equal(ALL + ALL, `seed ${seed}`);
    }
  });

  it('no key in 30 s of white noise alone', function () {
    const g = prng(42);
    const f = new Float64Array(30 * RATE);
    for (let i = 0; i < f.length; i++) f[i] = 3000 * g.gauss();
    detect(viaLaw(f, 'ulaw')).should.equal('');
  });

  describe('talk-off: no key on speech', function () {
    const hasEspeak = haveTool('espeak-ng', ['--version']) && haveTool('sox', ['--version']);
    const TEXTS = [
      'Thank you for calling. Please enter your account number, followed by the hash key. ' +
        'Your balance is 1,234 dollars and 56 cents, due on the 17th of March 2025. ' +
        'For sales press 1, for support press 2, to speak to an operator press 0. ' +
        'Our office at 4,500 Elm Street, suite 300, is open 9 to 5, Monday to Friday.',
      'The quick brown fox jumps over the lazy dog while 7 eager engineers count 8, 9, 10. ' +
        'Call me back on 0 2 9 8 7 6 5 4 3 2 before 11:45, or after 6 in the evening. ' +
        'Seventy three thousand, six hundred and twelve is larger than fifty nine. ' +
        'She sells sea shells by the sea shore; whistling, humming and singing are welcome.',
      'Good morning! Today is Tuesday, the 3rd of October. The temperature is 21 degrees, ' +
        'with a high of 27 and a low of 14. Flight 815 to Sydney departs from gate 42 at 7:30. ' +
        'Eeeeeeee, ooooooooh, aaaaaaah, mmmmmmm. Beep. Boop. One, two, three, four, five, six.',
    ];
    const VOICES = [
      { voice: 'en-us', speed: 175, pitch: 50 },
      { voice: 'en', speed: 140, pitch: 70 },
      { voice: 'en-us+f3', speed: 210, pitch: 60 },
      { voice: 'en+m3', speed: 120, pitch: 35 },
      { voice: 'en-us+f5', speed: 160, pitch: 90 },
      { voice: 'de', speed: 170, pitch: 50 },
      { voice: 'fr', speed: 190, pitch: 55 },
      { voice: 'en+klatt', speed: 150, pitch: 60 },
    ];
    let clips = [];

    before(function () {
      if (!hasEspeak) throw new Error('espeak-ng and sox are required for the speech talk-off tests (apt-get install espeak-ng sox)');
      this.timeout(300000);
      clips = [];
      for (const v of VOICES) for (const text of TEXTS) clips.push({ name: `${v.voice}@${v.speed}`, pcm: speech({ ...v, text }) });
    });

    it('at least 3 minutes of espeak-ng speech (8 voices/speeds, with numbers) through mu-law and A-law; no dial tone either', function () {
      let total = 0;
      const found = [];
      for (const c of clips) {
        total += c.pcm.length;
        const keys = detect(viaLaw(c.pcm, 'ulaw'));
        if (keys) found.push(`${c.name}: ${keys}`);
        // And at a lower, more typical level (-12 dB) through A-law.
        const quiet = new Int16Array(c.pcm.length);
        for (let i = 0; i < quiet.length; i++) quiet[i] = Math.round(c.pcm[i] / 4);
        const k2 = detect(viaLaw(quiet, 'alaw'));
        if (k2) found.push(`${c.name} (-12 dB, A-law): ${k2}`);
        // Nor is speech taken for dial tone.
        const dial = new dsp.ToneDetector(dsp.TONE_TABLES.us.dial);
        const eu = new dsp.ToneDetector(dsp.TONE_TABLES.eu.dial);
        for (let i = 0; i + FRAME <= c.pcm.length; i += FRAME) {
          const f = c.pcm.subarray(i, i + FRAME);
          if (dial.process(f) || eu.process(f)) {
            found.push(`${c.name}: dial tone at ${i / RATE} s`);
            break;
          }
        }
      }
      (total / RATE).should.be.aboveOrEqual(180);
      found.should.eql([]);
    });

    it('the vocabulary files (resources/vocabulary), or espeak words when that folder is absent', function () {
      const dir = path.join(__dirname, '..', 'resources', 'vocabulary');
      const found = [];
      let checked = 0;
      if (fs.existsSync(dir)) {
        const files = fs.readdirSync(dir).filter((f) => /\.(au|wav|ul|ulaw|al|alaw|raw|sw|pcm)$/i.test(f));
        files.length.should.be.above(0, `no audio files in ${dir}`);
        for (const f of files) {
          const keys = detect(viaLaw(soxRead(path.join(dir, f)), 'ulaw'));
          if (keys) found.push(`${f}: ${keys}`);
          checked++;
        }
      } else {
        console.warn(`      ${dir} is absent: checking espeak-ng words instead`);
        const words = 'zero one two three four five six seven eight nine ten eleven twelve hundred thousand ' +
          'please press enter hash star pound goodbye hello thank you your call is important to us';
        for (const v of VOICES.slice(0, 4)) {
          for (const w of words.split(' ')) {
            const keys = detect(viaLaw(speech({ ...v, text: w }), 'ulaw'));
            if (keys) found.push(`${v.voice} "${w}": ${keys}`);
            checked++;
          }
        }
      }
      checked.should.be.above(0);
      found.should.eql([]);
    });
  });
});

describe('dsp: DTMF generator', function () {
  it('makes the right frequencies at the right level, phase-continuous across frames', function () {
    const gen = new DtmfGenerator();
    gen.start('9', 100, 0);
    const frame = new Int16Array(FRAME);
    const all = [];
    for (let i = 0; i < 5; i++) {
      gen.fill(frame).should.be.true(); // 5 frames = 800 samples = 100 ms
      all.push(...frame);
    }
    gen.active.should.be.false();
    gen.fill(frame).should.be.false();
    frame.every((x) => x === 0).should.be.true();
    const s = Int16Array.from(all.slice(0, 800));
    const [fr, fc] = keyFreqs('9');
    dsp.goertzelFrequency(s, fr, 0, 400).should.be.approximately(fr, 1);
    dsp.goertzelFrequency(s, fc, 0, 400).should.be.approximately(fc, 1);
    dsp.peakToDbm0(dsp.goertzelAmplitude(s, fr)).should.be.approximately(-6, 0.2);
    dsp.peakToDbm0(dsp.goertzelAmplitude(s, fc)).should.be.approximately(-6, 0.2);
    // Phase continuity: no jump at frame edges (max sample-to-sample step of the dual tone).
    let maxStep = 0;
    for (let i = 1; i < 800; i++) maxStep = Math.max(maxStep, Math.abs(s[i] - s[i - 1]));
    const bound = 2 * Math.PI * (fr + fc) * dbm0ToPeak(-6) / RATE;
    maxStep.should.be.below(bound * 1.01);
  });

  it('plays a key string with gaps (dtmfSamples) and applies twist', function () {
    const s = dtmfSamples('12', { toneMs: 50, gapMs: 30, level: -10, twistDb: 3 });
    s.length.should.equal(2 * 640);
    for (let i = 400; i < 640; i++) s[i].should.equal(0);
    dsp.peakToDbm0(dsp.goertzelAmplitude(s, 697, 0, 400)).should.be.approximately(-10, 0.2);
    dsp.peakToDbm0(dsp.goertzelAmplitude(s, 1209, 0, 400)).should.be.approximately(-13, 0.2);
    dsp.goertzelAmplitude(s, 1336, 0, 400).should.be.below(dbm0ToPeak(-40));
    (() => new DtmfGenerator().start('1X')).should.throw(/not a DTMF key/);
  });
});

// ---------------------------------------------------------------- tones

describe('dsp: call-progress tones', function () {
  const { TONE_TABLES, ToneGenerator, ToneDetector } = dsp;

  function generate(spec, ms, durationMs) {
    const gen = new ToneGenerator();
    gen.start(spec, durationMs);
    const out = new Int16Array(Math.round((ms * RATE) / 1000));
    const frame = new Int16Array(FRAME);
    let ended = -1;
    for (let i = 0; i < out.length; i += FRAME) {
      const on = gen.fill(frame);
      if (!on && ended < 0) ended = i;
      out.set(frame.subarray(0, Math.min(FRAME, out.length - i)), i);
    }
    return { out, ended };
  }

  /** On/off pattern in 10 ms steps (on when the 10 ms RMS is above -40 dBFS). */
  function cadence(s) {
    const segs = [];
    let cur = null;
    let len = 0;
    for (let i = 0; i + 80 <= s.length; i += 80) {
      const on = dsp.frameDbfs(s.subarray(i, i + 80)) > -40;
      if (on === cur) len += 10;
      else {
        if (cur !== null) segs.push(len);
        cur = on;
        len = 10;
      }
    }
    segs.push(len);
    return segs;
  }

  it('tables have the standard frequencies and cadences', function () {
    TONE_TABLES.us.dial.freqs.should.eql([350, 440]);
    TONE_TABLES.us.dial.cadence.should.eql([]);
    TONE_TABLES.us.ringback.freqs.should.eql([440, 480]);
    TONE_TABLES.us.ringback.cadence.should.eql([2000, 4000]);
    TONE_TABLES.us.busy.freqs.should.eql([480, 620]);
    TONE_TABLES.us.busy.cadence.should.eql([500, 500]);
    TONE_TABLES.us.dialx.cadence.length.should.equal(20);
    TONE_TABLES.us.dialx.repeat.should.be.false();
    TONE_TABLES.uk.ringback.freqs.should.eql([400, 450]);
    TONE_TABLES.uk.ringback.cadence.should.eql([400, 200, 400, 2000]);
    TONE_TABLES.uk.busy.freqs.should.eql([400]);
    TONE_TABLES.uk.busy.cadence.should.eql([375, 375]);
    for (const t of ['dial', 'busy', 'ringback']) TONE_TABLES.eu[t].freqs.should.eql([425]);
    TONE_TABLES.eu.ringback.cadence.should.eql([1000, 4000]);
    TONE_TABLES.eu.busy.cadence.should.eql([500, 500]);
  });

  it('generates the measured frequencies at -13 dBm0 each', function () {
    for (const [region, name] of [['us', 'dial'], ['us', 'busy'], ['us', 'ringback'], ['uk', 'ringback'], ['uk', 'busy'], ['eu', 'dial']]) {
      const spec = TONE_TABLES[region][name];
      const { out } = generate(spec, 300);
      const s = out.subarray(0, 1600); // 200 ms, inside the first on-segment of every tone
      for (const f of spec.freqs) {
        dsp.goertzelFrequency(s, f, 0, 800).should.be.approximately(f, 0.5, `${region} ${name} ${f}`);
        dsp.peakToDbm0(dsp.goertzelAmplitude(s, f)).should.be.approximately(-13, 0.3, `${region} ${name} ${f}`);
      }
    }
  });

  it('follows the cadences', function () {
    cadence(generate(TONE_TABLES.us.busy, 3000).out).should.eql([500, 500, 500, 500, 500, 500]);
    cadence(generate(TONE_TABLES.us.ringback, 12000).out).should.eql([2000, 4000, 2000, 4000]);
    cadence(generate(TONE_TABLES.uk.ringback, 3000).out).should.eql([400, 200, 400, 2000]);
    cadence(generate(TONE_TABLES.uk.busy, 1500).out).should.eql([380, 370, 380, 370]); // 375 ms in 10 ms steps
    cadence(generate(TONE_TABLES.eu.ringback, 5000).out).should.eql([1000, 4000]);
    // Stutter: 10 x (0.1 s on, 0.1 s off), then steady.
    const stutter = cadence(generate(TONE_TABLES.us.dialx, 4000).out);
    stutter.length.should.equal(21);
    stutter.slice(0, 20).every((x) => x === 100).should.be.true();
    stutter[20].should.equal(4000 - 2000);
    cadence(generate(TONE_TABLES.us.dial, 2000).out).should.eql([2000]);
  });

  it('stops after durationMs (fill returns false) and is phase-continuous across frames', function () {
    const { out, ended } = generate(TONE_TABLES.us.dial, 1000, 250);
    ended.should.equal(2080); // 250 ms = 2000 samples end inside frame 12; frame 13 returns false
    out.subarray(2000).every((x) => x === 0).should.be.true();
    let maxStep = 0;
    for (let i = 1; i < 2000; i++) maxStep = Math.max(maxStep, Math.abs(out[i] - out[i - 1]));
    maxStep.should.be.below(((2 * Math.PI * (350 + 440) * dbm0ToPeak(-13)) / RATE) * 1.01);
  });

  it('ToneDetector: detects dial tone after 300 ms, not busy tone nor ringback nor speech-like noise', function () {
    const { out: dial } = generate(TONE_TABLES.us.dial, 1000);
    const { out: busy } = generate(TONE_TABLES.us.busy, 5000);
    const { out: ring } = generate(TONE_TABLES.us.ringback, 5000);
    const run = (s, det, law = 'ulaw') => {
      const x = viaLaw(s, law);
      let first = -1;
      for (let i = 0; i + FRAME <= x.length; i += FRAME) if (det.process(x.subarray(i, i + FRAME)) && first < 0) first = i;
      return first;
    };
    const dialSpec = TONE_TABLES.us.dial;
    const t = run(dial, new ToneDetector(dialSpec));
    t.should.be.within(280 * 8, 320 * 8);
    run(busy, new ToneDetector(dialSpec)).should.equal(-1);
    run(ring, new ToneDetector(dialSpec)).should.equal(-1);
    // With noise at 10 dB S/N it still detects; with 10 dB S/N noise alone it does not.
    run(toInt16(addNoise(Float64Array.from(dial), 10, 7)), new ToneDetector(dialSpec)).should.be.above(0);
    const g = prng(9);
    const noise = new Float64Array(8000).map(() => 2000 * g.gauss());
    run(noise, new ToneDetector(dialSpec)).should.equal(-1);
    // 425 Hz: dial tone yes; busy (0.5 s on) is refused when minMs is above its on-time.
    const { out: euDial } = generate(TONE_TABLES.eu.dial, 2000);
    const { out: euBusy } = generate(TONE_TABLES.eu.busy, 5000);
    run(euDial, new ToneDetector(TONE_TABLES.eu.dial, { minMs: 1500 }), 'alaw').should.be.within(1480 * 8, 1520 * 8);
    run(euBusy, new ToneDetector(TONE_TABLES.eu.dial, { minMs: 1500 }), 'alaw').should.equal(-1);
    // A bare frequency list works too, and reset() starts over.
    const det = new ToneDetector([350, 440], { minMs: 100 });
    det.process(viaLaw(dial.subarray(0, 1600), 'ulaw')).should.be.true();
    det.reset();
    det.present.should.be.false();
  });
});

// ---------------------------------------------------------------- energy

describe('dsp: energy, voice activity, silence timer', function () {
  const { frameDbfs, VoiceActivity, SilenceTimer, DBFS_FLOOR } = dsp;

  function sine(dbfs, n = FRAME, f = 1000) {
    const a = dsp.dbfsToPeak(dbfs);
    return Int16Array.from({ length: n }, (_, i) => Math.round(a * Math.sin((2 * Math.PI * f * i) / RATE)));
  }

  it('frameDbfs measures RMS re full scale', function () {
    frameDbfs(new Int16Array(FRAME)).should.equal(DBFS_FLOOR);
    frameDbfs(new Int16Array(0)).should.equal(DBFS_FLOOR);
    frameDbfs(sine(-20)).should.be.approximately(-20, 0.05);
    frameDbfs(new Int16Array(FRAME).fill(-32768)).should.be.approximately(0, 0.001);
    frameDbfs(sine(-3.01, 160)).should.be.approximately(-3.01, 0.05);
  });

  it('VoiceActivity: start after the attack, hysteresis between thresholds, stop after the hang time', function () {
    const vad = new VoiceActivity({ onDbfs: -30, offDbfs: -40, attackMs: 40, hangMs: 200 });
    const events = [];
    const feed = (frame, count) => {
      for (let i = 0; i < count; i++) {
        const e = vad.process(frame);
        events.push(e);
      }
    };
    feed(sine(-50), 10);
    feed(sine(-20), 1); // 20 ms loud: not yet
    feed(sine(-50), 1); // broken
    feed(sine(-20), 2); // 40 ms: start on the 2nd frame
    feed(sine(-35), 50); // between thresholds: stays on
    vad.active.should.be.true();
    feed(sine(-50), 9); // 180 ms quiet
    feed(sine(-35), 1); // in the middle band: resets the hang count
    feed(sine(-50), 10); // 200 ms: stop on the 10th frame
    const idx = (ev) => events.map((e, i) => (e === ev ? i : -1)).filter((i) => i >= 0);
    idx('start').should.eql([13]);
    idx('stop').should.eql([events.length - 1]);
    vad.active.should.be.false();
    (() => new VoiceActivity({ onDbfs: -40, offDbfs: -30 })).should.throw();
  });

  it('SilenceTimer: true after N seconds of continuous silence; any louder frame restarts it', function () {
    const t = new SilenceTimer(1, -40);
    const quiet = sine(-50);
    const loud = sine(-30);
    let n = 0;
    while (!t.process(quiet)) n++;
    n.should.equal(49); // the 50th 20 ms frame completes 1 s
    t.process(quiet).should.be.true();
    t.process(loud).should.be.false();
    t.silentMs.should.equal(0);
    for (let i = 0; i < 49; i++) t.process(quiet).should.be.false();
    t.process(quiet).should.be.true();
    // Other frame sizes count in samples.
    const t2 = new SilenceTimer(0.1);
    t2.process(new Int16Array(799)).should.be.false();
    t2.process(new Int16Array(1)).should.be.true();
  });
});
