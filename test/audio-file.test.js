'use strict';
// readAudioFile (every supported format, made with sox at test time), the resampler, AudioCache
// and Recorder (files checked by sox and read back, crash safety with a killed child process).
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
require('should');
const { readAudioFile, AudioFileError, AudioCache, resampleTo8k } = require('../dist/server/media/audio-file');
const { Recorder } = require('../dist/server/media/recorder');

const RATE = 8000;
const FULL = 32768;

function haveSox() {
  try {
    execFileSync('sox', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function sox(args) {
  execFileSync('sox', ['-R', '-D', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `sox --i <flag> file`, trimmed. */
function soxInfo(file, flag) {
  return execFileSync('sox', ['--i', flag, file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function rms(x, start = 0, end = x.length) {
  let e = 0;
  for (let i = start; i < end; i++) e += x[i] * x[i];
  return end > start ? Math.sqrt(e / (end - start)) : 0;
}

function db(ratio) {
  return 20 * Math.log10(ratio);
}

/** Frequency from the count of rising zero crossings between start and end. */
function zeroCrossingHz(x, start = 0, end = x.length) {
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = start + 1; i < end; i++) {
    if (x[i - 1] < 0 && x[i] >= 0) {
      if (first < 0) first = i;
      else count++;
      last = i;
    }
  }
  return count > 0 ? (count * RATE) / (last - first) : 0;
}

/** Relative power at `freq` (Goertzel, normalised by block energy; ~1 for a pure tone). */
function goertzel(x, freq, start = 0, end = x.length) {
  const k = 2 * Math.cos((2 * Math.PI * freq) / RATE);
  let s1 = 0;
  let s2 = 0;
  let energy = 0;
  for (let i = start; i < end; i++) {
    energy += x[i] * x[i];
    const s0 = x[i] + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const n = end - start;
  return energy === 0 ? 0 : (2 * (s1 * s1 + s2 * s2 - k * s1 * s2)) / (n * energy);
}

function tone(freq, seconds, amplitude = 10000, rate = RATE) {
  const n = Math.round(seconds * rate);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate));
  return out;
}

/** A WAV file built by hand (for WAVE_FORMAT_EXTENSIBLE and odd headers). */
function buildWav({ format, bits, channels, rate, data, extensible = false }) {
  const blockAlign = (bits / 8) * channels;
  const fmt = Buffer.alloc(extensible ? 40 : 16);
  fmt.writeUInt16LE(extensible ? 0xfffe : format, 0);
  fmt.writeUInt16LE(channels, 2);
  fmt.writeUInt32LE(rate, 4);
  fmt.writeUInt32LE(rate * blockAlign, 8);
  fmt.writeUInt16LE(blockAlign, 12);
  fmt.writeUInt16LE(bits, 14);
  if (extensible) {
    fmt.writeUInt16LE(22, 16);
    fmt.writeUInt16LE(bits, 18);
    fmt.writeUInt32LE(channels === 1 ? 4 : 3, 20);
    fmt.writeUInt32LE(format, 24);
    Buffer.from([0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]).copy(fmt, 28);
  }
  const chunk = (id, body) => {
    const h = Buffer.alloc(8);
    h.write(id, 0, 'latin1');
    h.writeUInt32LE(body.length, 4);
    return Buffer.concat([h, body, body.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0)]);
  };
  const body = Buffer.concat([Buffer.from('WAVE'), chunk('fmt ', fmt), chunk('data', data)]);
  const head = Buffer.alloc(8);
  head.write('RIFF', 0, 'latin1');
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

function sunHeader({ encoding, rate = RATE, channels = 1, size, offset = 24 }) {
  const h = Buffer.alloc(offset);
  h.writeUInt32BE(0x2e736e64, 0);
  h.writeUInt32BE(offset, 4);
  h.writeUInt32BE(size, 8);
  h.writeUInt32BE(encoding, 12);
  h.writeUInt32BE(rate, 16);
  h.writeUInt32BE(channels, 20);
  return h;
}

const SOX = haveSox();

describe('readAudioFile', function () {
  this.timeout(60000);
  let dir;

  before(function () {
    if (!SOX) throw new Error('sox is required for these tests (apt-get install sox)');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-audiofile-'));
  });

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Make `name` with sox: a sine of `freq` Hz, half full scale, `seconds` long. */
  function make(name, outArgs, { freq = 1000, seconds = 1, rate = RATE, channels = 1 } = {}) {
    const file = path.join(dir, name);
    sox(['-n', '-r', String(rate), '-c', String(channels), ...outArgs, file, 'synth', String(seconds), 'sine', String(freq), 'vol', '0.5']);
    return file;
  }

  /** The checks every format gets: duration, frequency and level. */
  async function check(file, { freq = 1000, seconds = 1, levelDb = 0.5, amplitude = 0.5 } = {}) {
    const x = await readAudioFile(file);
    x.should.be.instanceOf(Int16Array);
    Math.abs(x.length - seconds * RATE).should.be.belowOrEqual(2, `${path.basename(file)}: ${x.length} samples`);
    const a = Math.round(x.length * 0.1);
    const b = Math.round(x.length * 0.9);
    zeroCrossingHz(x, a, b).should.be.within(freq * 0.995, freq * 1.005);
    goertzel(x, freq, a, b).should.be.above(0.95);
    const expected = (amplitude * FULL) / Math.SQRT2;
    Math.abs(db(rms(x, a, b) / expected)).should.be.below(levelDb, `${path.basename(file)}: level ${db(rms(x, a, b) / expected).toFixed(2)} dB off`);
    return x;
  }

  describe('Sun .au', function () {
    it('reads mu-law, A-law, 16-bit and 8-bit linear', async function () {
      await check(make('ulaw.au', ['-e', 'mu-law', '-b', '8', '-t', 'au'], { freq: 1000 }), { freq: 1000 });
      await check(make('alaw.au', ['-e', 'a-law', '-b', '8', '-t', 'au'], { freq: 697 }), { freq: 697 });
      await check(make('s16.au', ['-e', 'signed', '-b', '16', '-t', 'au'], { freq: 1336 }), { freq: 1336 });
      await check(make('s8.au', ['-e', 'signed', '-b', '8', '-t', 'au'], { freq: 440 }), { freq: 440 });
    });

    it('reads .snd, other rates and stereo', async function () {
      await check(make('tone.snd', ['-e', 'mu-law', '-b', '8', '-t', 'au'], { freq: 852 }), { freq: 852 });
      await check(make('s16-16k-stereo.au', ['-e', 'signed', '-b', '16', '-t', 'au'], { freq: 1209, rate: 16000, channels: 2 }), { freq: 1209 });
      await check(make('ulaw-11k.au', ['-e', 'mu-law', '-b', '8', '-t', 'au'], { freq: 500, rate: 11025, seconds: 2 }), { freq: 500, seconds: 2 });
    });

    it('reads to the end when the data size is unknown (0xffffffff) or too large', async function () {
      const data = Buffer.alloc(8000);
      const src = tone(1000, 1);
      for (let i = 0; i < 4000; i++) data.writeInt16BE(src[i], i * 2);
      for (const size of [0xffffffff, 1e6]) {
        const file = path.join(dir, `unknown-${size}.au`);
        fs.writeFileSync(file, Buffer.concat([sunHeader({ encoding: 3, size }), data]));
        const x = await readAudioFile(file);
        x.length.should.equal(4000);
        x[1].should.equal(src[1]);
      }
    });

    it('rejects a bad magic and unsupported encodings, naming the file', async function () {
      const bad = path.join(dir, 'bad.au');
      fs.writeFileSync(bad, 'this is not a Sun audio file at all');
      let e = await readAudioFile(bad).should.be.rejectedWith(AudioFileError);
      e.code.should.equal('EAUDIOFORMAT');
      e.message.should.containEql(bad).and.match(/not a Sun \.au file \(bad magic\)/);
      e.file.should.equal(bad);

      const g721 = path.join(dir, 'g721.au');
      fs.writeFileSync(g721, Buffer.concat([sunHeader({ encoding: 23, size: 100 }), Buffer.alloc(100)]));
      e = await readAudioFile(g721).should.be.rejectedWith(AudioFileError);
      e.message.should.containEql(g721).and.match(/unsupported Sun \.au encoding: G\.721 ADPCM \(encoding 23\)/);

      const short = path.join(dir, 'short.au');
      fs.writeFileSync(short, '.snd');
      e = await readAudioFile(short).should.be.rejectedWith({ code: 'EAUDIOFORMAT' });
      e.message.should.containEql(short);

      const rate = path.join(dir, 'rate0.au');
      fs.writeFileSync(rate, Buffer.concat([sunHeader({ encoding: 1, size: 10, rate: 0 }), Buffer.alloc(10)]));
      e = await readAudioFile(rate).should.be.rejectedWith({ code: 'EAUDIOFORMAT' });
      e.message.should.match(/sample rate \(0 Hz/);
    });
  });

  describe('WAV', function () {
    it('reads 8-bit unsigned, 16-bit, mu-law and A-law', async function () {
      await check(make('u8.wav', ['-e', 'unsigned', '-b', '8', '-t', 'wav'], { freq: 1000 }), { freq: 1000 });
      await check(make('s16.wav', ['-e', 'signed', '-b', '16', '-t', 'wav'], { freq: 770 }), { freq: 770 });
      await check(make('ulaw.wav', ['-e', 'mu-law', '-t', 'wav'], { freq: 941 }), { freq: 941 });
      await check(make('alaw.wav', ['-e', 'a-law', '-t', 'wav'], { freq: 1477 }), { freq: 1477 });
    });

    it('reads WAVE_FORMAT_EXTENSIBLE (sox 24-bit, hand-made 16-bit and mu-law), 32-bit float', async function () {
      await check(make('s24.wav', ['-e', 'signed', '-b', '24', '-t', 'wav'], { freq: 1633 }), { freq: 1633 });
      await check(make('f32.wav', ['-e', 'floating-point', '-b', '32', '-t', 'wav'], { freq: 600 }), { freq: 600 });

      const pcm = path.join(dir, 'pcm.raw16');
      sox(['-n', '-r', '8000', '-c', '1', '-e', 'signed', '-b', '16', '-L', '-t', 'raw', pcm, 'synth', '1', 'sine', '1100', 'vol', '0.5']);
      const ext16 = path.join(dir, 'ext16.wav');
      fs.writeFileSync(ext16, buildWav({ format: 1, bits: 16, channels: 1, rate: 8000, data: fs.readFileSync(pcm), extensible: true }));
      soxInfo(ext16, '-e').should.match(/Signed Integer PCM/); // sox agrees it is valid
      await check(ext16, { freq: 1100 });

      const ul = path.join(dir, 'tone.ul');
      sox(['-n', '-r', '8000', '-c', '1', '-t', 'ul', ul, 'synth', '1', 'sine', '900', 'vol', '0.5']);
      const extUlaw = path.join(dir, 'extulaw.wav');
      fs.writeFileSync(extUlaw, buildWav({ format: 7, bits: 8, channels: 1, rate: 8000, data: fs.readFileSync(ul), extensible: true }));
      await check(extUlaw, { freq: 900 });
    });

    it('reads 44.1 kHz stereo, 16 kHz, 11.025 kHz and 6 kHz mono', async function () {
      await check(make('cd.wav', ['-e', 'signed', '-b', '16', '-t', 'wav'], { freq: 1000, rate: 44100, channels: 2, seconds: 2 }), { freq: 1000, seconds: 2 });
      await check(make('wide.wav', ['-e', 'signed', '-b', '16', '-t', 'wav'], { freq: 2000, rate: 16000 }), { freq: 2000 });
      await check(make('11k.wav', ['-e', 'signed', '-b', '16', '-t', 'wav'], { freq: 3000, rate: 11025 }), { freq: 3000 });
      await check(make('6k.wav', ['-e', 'signed', '-b', '16', '-t', 'wav'], { freq: 1000, rate: 6000 }), { freq: 1000 });
    });

    it('averages the channels of a stereo file', async function () {
      const file = path.join(dir, 'left-only.wav');
      sox(['-n', '-r', '8000', '-c', '2', '-e', 'signed', '-b', '16', file, 'synth', '1', 'sine', '1000', 'sine', '1000', 'remix', '1', '0']);
      await check(file, { amplitude: 0.5 * 0.5 * 2 }); // full-scale synth (1.0) halved by the mix
    });

    it('rejects unsupported encodings and non-WAV data, naming the file', async function () {
      const adpcm = make('adpcm.wav', ['-e', 'ima-adpcm', '-t', 'wav']);
      let e = await readAudioFile(adpcm).should.be.rejectedWith(AudioFileError);
      e.code.should.equal('EAUDIOFORMAT');
      e.message.should.containEql(adpcm).and.containEql('unsupported WAV encoding: IMA ADPCM (format 17)');

      const gsm = make('gsm.wav', ['-e', 'gsm-full-rate', '-t', 'wav']);
      e = await readAudioFile(gsm).should.be.rejectedWith({ code: 'EAUDIOFORMAT' });
      e.message.should.containEql('GSM 6.10 (format 49)');

      const text = path.join(dir, 'text.wav');
      fs.writeFileSync(text, 'not a wav file, just some text');
      e = await readAudioFile(text).should.be.rejectedWith({ code: 'EAUDIOFORMAT' });
      e.message.should.containEql(text).and.match(/not a WAV file/);

      const nodata = path.join(dir, 'nodata.wav');
      fs.writeFileSync(nodata, buildWav({ format: 1, bits: 16, channels: 1, rate: 8000, data: Buffer.alloc(0) }).subarray(0, 36));
      e = await readAudioFile(nodata).should.be.rejectedWith({ code: 'EAUDIOFORMAT' });
      e.message.should.containEql(nodata);
    });
  });

  describe('headerless files', function () {
    it('reads .ul .ulaw .mu (mu-law), .al .alaw (A-law), .sln .raw (16-bit little-endian), all 8 kHz', async function () {
      const cases = [
        ['tone.ul', ['-t', 'ul'], 1000],
        ['tone.ulaw', ['-t', 'ul'], 1209],
        ['tone.mu', ['-t', 'ul'], 1336],
        ['tone.al', ['-t', 'al'], 1477],
        ['tone.alaw', ['-t', 'al'], 697],
        ['tone.sln', ['-t', 'raw', '-e', 'signed', '-b', '16', '-L'], 770],
        ['tone.raw', ['-t', 'raw', '-e', 'signed', '-b', '16', '-L'], 852],
      ];
      for (const [name, args, freq] of cases) await check(make(name, args, { freq }), { freq });
    });

    it('is exact for 16-bit linear at 8 kHz', async function () {
      const src = tone(1234, 0.5, 12345);
      const file = path.join(dir, 'exact.sln');
      fs.writeFileSync(file, Buffer.from(src.buffer));
      const x = await readAudioFile(file);
      Array.from(x).should.eql(Array.from(src));
    });
  });

  describe('resampling', function () {
    it('attenuates a 6 kHz tone in a 44.1 kHz file by at least 40 dB (and 4.5 kHz in 16 kHz)', async function () {
      for (const [rate, freq] of [[44100, 6000], [16000, 4500], [48000, 7000], [22050, 5000]]) {
        const file = make(`hf-${rate}.wav`, ['-e', 'signed', '-b', '16', '-t', 'wav'], { freq, rate });
        const x = await readAudioFile(file);
        const att = db(rms(x) / ((0.5 * FULL) / Math.SQRT2));
        att.should.be.below(-40, `${freq} Hz at ${rate} Hz: ${att.toFixed(1)} dB`);
      }
    });

    it('keeps the pass band (300 to 3400 Hz) flat within 0.5 dB', async function () {
      for (const freq of [300, 1000, 2500, 3400]) {
        const file = make(`pass-${freq}.wav`, ['-e', 'signed', '-b', '16', '-t', 'wav'], { freq, rate: 44100 });
        const x = await readAudioFile(file);
        const a = 400;
        const b = x.length - 400;
        Math.abs(db(rms(x, a, b) / ((0.5 * FULL) / Math.SQRT2))).should.be.below(0.5, `${freq} Hz`);
      }
    });

    it('converts 30 s of 44.1 kHz stereo to 30 s at 8 kHz with the tone intact (its speed is in bench/)', async function () {
      const file = make('long.wav', ['-e', 'signed', '-b', '16', '-t', 'wav'], { freq: 440, rate: 44100, channels: 2, seconds: 30 });
      const x = await readAudioFile(file);
      x.length.should.equal(240000);
      Math.abs(db(rms(x, 8000, 232000) / ((0.5 * FULL) / Math.SQRT2))).should.be.below(0.5);
    });

    it('resampleTo8k handles empty input and rare rates', function () {
      resampleTo8k(new Float32Array(0), 44100).length.should.equal(0);
      const x = new Float32Array(7919).fill(1000); // 1 s at a prime rate
      const y = resampleTo8k(x, 7919);
      y.length.should.equal(8000);
      y[4000].should.be.within(999, 1001);
    });
  });

  describe('errors', function () {
    it('a missing file, a folder, an unknown extension, a file too large', async function () {
      const missing = path.join(dir, 'nope.wav');
      let e = await readAudioFile(missing).should.be.rejectedWith(AudioFileError);
      e.should.be.instanceOf(Error);
      e.code.should.equal('EAUDIOREAD');
      e.message.should.containEql(missing).and.containEql('no such file');

      const folder = path.join(dir, 'folder.au');
      fs.mkdirSync(folder);
      e = await readAudioFile(folder).should.be.rejectedWith({ code: 'EAUDIOREAD' });
      e.message.should.containEql(folder).and.match(/folder/);

      e = await readAudioFile(path.join(dir, 'song.mp3')).should.be.rejectedWith({ code: 'EAUDIOFORMAT' });
      e.message.should.containEql('song.mp3').and.containEql('unknown audio extension ".mp3"');

      const big = make('big.wav', ['-e', 'signed', '-b', '16', '-t', 'wav']);
      e = await readAudioFile(big, { maxBytes: 1000 }).should.be.rejectedWith({ code: 'EAUDIOTOOBIG' });
      e.message.should.containEql(big);
    });
  });

  describe('AudioCache', function () {
    it('returns the cached samples until the file changes; evicts beyond its budget', async function () {
      const a = make('cache-a.au', ['-e', 'mu-law', '-b', '8', '-t', 'au'], { freq: 500 });
      const b = make('cache-b.au', ['-e', 'mu-law', '-b', '8', '-t', 'au'], { freq: 700 });
      const cache = new AudioCache({ maxBytes: 20000 }); // one second (16000 bytes) fits, two do not
      const [x1, x2] = await Promise.all([cache.get(a), cache.get(a)]);
      x1.should.equal(x2); // one read shared
      (await cache.get(a)).should.equal(x1);
      cache.stats.should.containEql({ files: 1, hits: 1, misses: 1 });

      make('cache-a.au', ['-e', 'mu-law', '-b', '8', '-t', 'au'], { freq: 1500, seconds: 0.5 });
      const later = new Date(Date.now() + 5000);
      fs.utimesSync(a, later, later);
      const x3 = await cache.get(a);
      x3.should.not.equal(x1);
      x3.length.should.equal(4000);

      await cache.get(b);
      cache.stats.bytes.should.be.belowOrEqual(20000);
      cache.stats.files.should.equal(1); // a (8000 bytes) + b (16000 bytes) exceed the budget: a went

      await cache.get(path.join(dir, 'gone.au')).should.be.rejectedWith({ code: 'EAUDIOREAD' });
    });
  });
});

describe('Recorder', function () {
  this.timeout(60000);
  let dir;

  before(function () {
    if (!SOX) throw new Error('sox is required for these tests (apt-get install sox)');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-recorder-'));
  });

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Write `samples` in 160-sample frames, reusing one frame buffer (as the media clock does). */
  function feed(rec, samples) {
    const frame = new Int16Array(160);
    for (let i = 0; i < samples.length; i += 160) {
      const n = Math.min(160, samples.length - i);
      frame.set(samples.subarray(i, i + n));
      rec.write(frame, n).should.equal(n);
    }
  }

  for (const [ext, headerBytes, encoding] of [['wav', 44, /Signed Integer PCM/], ['au', 32, /Signed Integer PCM/]]) {
    it(`writes a .${ext} file that sox and readAudioFile read back exactly`, async function () {
      const file = path.join(dir, `rec.${ext}`);
      const src = tone(1000, 2, 10000);
      const rec = await Recorder.open(file);
      rec.format.should.equal(ext);
      feed(rec, src);
      rec.seconds.should.equal(2);
      const res = await rec.close();
      res.should.eql({ file, samples: 16000, seconds: 2, bytes: headerBytes + 32000 });
      fs.statSync(file).size.should.equal(res.bytes);
      soxInfo(file, '-s').should.equal('16000');
      soxInfo(file, '-r').should.equal('8000');
      soxInfo(file, '-c').should.equal('1');
      soxInfo(file, '-b').should.equal('16');
      soxInfo(file, '-e').should.match(encoding);
      const back = await readAudioFile(file);
      Array.from(back).should.eql(Array.from(src));
    });
  }

  it('keeps the header valid while recording (patched at every flush)', async function () {
    const file = path.join(dir, 'live.wav');
    const rec = await Recorder.open(file, { flushIntervalMs: 50 });
    soxInfo(file, '-s').should.equal('0'); // valid at once, for 0 samples
    feed(rec, tone(440, 1));
    await rec.flush();
    soxInfo(file, '-s').should.equal('8000');
    rec.samplesOnDisk.should.equal(8000);
    feed(rec, tone(440, 0.5));
    await new Promise((r) => setTimeout(r, 300)); // the timer flushes
    soxInfo(file, '-s').should.equal('12000');
    (await rec.close()).samples.should.equal(12000);
  });

  it('close() is idempotent, write() after it is ignored', async function () {
    const file = path.join(dir, 'twice.au');
    const rec = await Recorder.open(file);
    feed(rec, tone(440, 0.1));
    const p1 = rec.close();
    const p2 = rec.close();
    p1.should.equal(p2);
    (await p1).samples.should.equal(800);
    rec.write(new Int16Array(160)).should.equal(0);
    (await rec.abort()).samples.should.equal(800);
    rec.closed.should.be.true();
  });

  it('close() during pending writes and flushes writes everything', async function () {
    const file = path.join(dir, 'pending.wav');
    const src = tone(700, 3, 9000);
    const rec = await Recorder.open(file, { chunkBytes: 4096 });
    feed(rec, src.subarray(0, 8000));
    const f = rec.flush(); // in progress while more arrives
    feed(rec, src.subarray(8000, 20000));
    const c = rec.close();
    rec.write(src.subarray(20000)).should.equal(0); // too late: ignored
    await f;
    const res = await c;
    res.samples.should.equal(20000);
    soxInfo(file, '-s').should.equal('20000');
    Array.from(await readAudioFile(file)).should.eql(Array.from(src.subarray(0, 20000)));
  });

  it('abort() during a pending flush leaves a valid file with what reached the disk', async function () {
    const file = path.join(dir, 'abort.au');
    const src = tone(700, 2, 9000);
    const rec = await Recorder.open(file);
    feed(rec, src.subarray(0, 8000));
    const f = rec.flush();
    await Promise.resolve(); // let the flush take its snapshot
    await Promise.resolve();
    feed(rec, src.subarray(8000, 16000)); // still buffered when abort() comes
    const res = await rec.abort();
    await f;
    res.samples.should.equal(8000); // the flush in progress completed; the rest was dropped
    soxInfo(file, '-s').should.equal(String(res.samples));
    fs.statSync(file).size.should.equal(res.bytes);
    Array.from(await readAudioFile(file)).should.eql(Array.from(src.subarray(0, res.samples)));
  });

  it('rejects unknown extensions and unwritable places', async function () {
    let e = await Recorder.open(path.join(dir, 'x.mp3')).should.be.rejectedWith(AudioFileError);
    e.code.should.equal('EAUDIOFORMAT');
    e.message.should.containEql('x.mp3').and.containEql('".mp3"');
    const nowhere = path.join(dir, 'no', 'such', 'folder', 'x.wav');
    e = await Recorder.open(nowhere).should.be.rejectedWith({ code: 'EAUDIOWRITE' });
    e.message.should.containEql(nowhere);
  });

  /** Run `code` in a child node process that SIGKILLs itself; resolves with its stdout. */
  function runChild(code) {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', reject);
      child.on('exit', (status, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`child exited with ${status} ${signal}: ${err}`));
        else resolve(out);
      });
    });
  }

  const recorderModule = JSON.stringify(path.join(__dirname, '..', 'dist', 'server', 'media', 'recorder.js'));

  for (const ext of ['wav', 'au']) {
    it(`a process killed after a flush leaves a valid .${ext} file (3 s written, 0.5 s more unflushed)`, async function () {
      const file = path.join(dir, `killed.${ext}`);
      await runChild(`
        const { Recorder } = require(${recorderModule});
        (async () => {
          const rec = await Recorder.open(${JSON.stringify(file)});
          const frame = new Int16Array(160);
          for (let i = 0; i < 175; i++) {
            for (let j = 0; j < 160; j++) frame[j] = Math.round(8000 * Math.sin(2 * Math.PI * 1000 * (i * 160 + j) / 8000));
            rec.write(frame);
            if (i === 149) await rec.flush(); // 3 s on disk
          }
          process.kill(process.pid, 'SIGKILL');
        })();
      `);
      soxInfo(file, '-s').should.equal('24000');
      const x = await readAudioFile(file);
      x.length.should.equal(24000);
      zeroCrossingHz(x).should.be.within(995, 1005);
    });
  }

  it('a process killed at an arbitrary moment while recording in real time leaves a valid file', async function () {
    const file = path.join(dir, 'realtime.wav');
    const out = await runChild(`
      const fs = require('fs');
      const { Recorder } = require(${recorderModule});
      (async () => {
        const rec = await Recorder.open(${JSON.stringify(file)}, { flushIntervalMs: 200 });
        const frame = new Int16Array(160).fill(1000);
        const t0 = Date.now();
        const timer = setInterval(() => {
          for (let k = 0; k < 4; k++) rec.write(frame); // 4 frames per 20 ms: 4x real time
          if (Date.now() - t0 > 1530) {
            clearInterval(timer);
            fs.writeSync(1, String(rec.samples));
            process.kill(process.pid, 'SIGKILL');
          }
        }, 20);
      })();
    `);
    const written = Number(out);
    written.should.be.above(8000);
    const onDisk = Number(soxInfo(file, '-s'));
    onDisk.should.be.belowOrEqual(written);
    onDisk.should.be.above(written - 4 * 8000 * 0.5); // at most ~one flush interval (plus slack) missing
    fs.statSync(file).size.should.be.aboveOrEqual(44 + onDisk * 2);
    (await readAudioFile(file)).length.should.equal(onDisk);
  });
});
