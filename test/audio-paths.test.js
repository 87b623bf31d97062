'use strict';
/* Audio path resolution: real temp folders and files, no mocks. */
const fs = require('fs');
const fsp = fs.promises;
const os = require('os');
const path = require('path');
const should = require('should');
const {
  resolvePlayFiles,
  resolveRecordPath,
  splitFileList,
  withDefaultExt,
  normalizeExt,
  DEFAULT_VOCABULARY_DIR,
} = require('../dist/core/audio-paths');
const { AudioPathError } = require('../dist/core/errors');

const VOCAB_FIXTURE = path.join(__dirname, 'fixtures', 'audio', 'vocabulary');

async function touch(file, content = 'x') {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, content);
  return fs.realpathSync(file);
}

async function rejection(p) {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('audio-paths', function () {
  let root; // realpath of a fresh temp folder
  let cwd; // root/cwd
  let conf1; // root/conf1
  let conf2; // root/conf2
  let vocab; // root/vocab
  let outside; // root/outside (never an allowed root)

  beforeEach(async () => {
    root = fs.realpathSync(await fsp.mkdtemp(path.join(os.tmpdir(), 'ctport-audio-')));
    cwd = path.join(root, 'cwd');
    conf1 = path.join(root, 'conf1');
    conf2 = path.join(root, 'conf2');
    vocab = path.join(root, 'vocab');
    outside = path.join(root, 'outside');
    for (const d of [cwd, conf1, conf2, vocab, outside]) await fsp.mkdir(d, { recursive: true });
  });
  afterEach(async () => {
    await fsp.rm(root, { recursive: true, force: true });
  });

  const opts = (extra) => ({ paths: [conf1, conf2], cwd, vocabularyDir: vocab, ...extra });

  describe('splitFileList / withDefaultExt / normalizeExt', () => {
    it('splits a string on spaces and copies arrays as they are', () => {
      splitFileList('1 2 3').should.eql(['1', '2', '3']);
      splitFileList('  hello   world ').should.eql(['hello', 'world']);
      splitFileList('').should.eql([]);
      splitFileList(['hello', 'my file']).should.eql(['hello', 'my file']);
      (() => splitFileList([1])).should.throw(AudioPathError, { code: 'EBADNAME' });
      (() => splitFileList(42)).should.throw(AudioPathError, { code: 'EBADNAME' });
    });

    it('adds the default extension only when the name has none', () => {
      withDefaultExt('beep', '.au').should.equal('beep.au');
      withDefaultExt('beep', 'wav').should.equal('beep.wav');
      withDefaultExt('beep', '.wav').should.equal('beep.wav');
      withDefaultExt('hello.wav', '.au').should.equal('hello.wav');
      withDefaultExt('dir.v2/hello', '.au').should.equal('dir.v2/hello.au');
      withDefaultExt('beep', '').should.equal('beep');
      normalizeExt('wav').should.equal('.wav');
      normalizeExt('.au').should.equal('.au');
      (() => normalizeExt('a/b')).should.throw(AudioPathError, { code: 'EBADEXT' });
    });

    it('the default vocabulary folder is <package root>/resources/vocabulary', () => {
      DEFAULT_VOCABULARY_DIR.should.equal(path.resolve(__dirname, '..', 'resources', 'vocabulary'));
    });
  });

  describe('resolvePlayFiles', () => {
    it('search order: configured paths in order, then cwd, then cwd/prompts, then the vocabulary', async () => {
      const names = ['a', 'b', 'c', 'd', 'e'];
      // a: everywhere; b: conf2 and later; c: cwd and later; d: prompts and vocab; e: vocab only
      const where = { a: [conf1, conf2, cwd, path.join(cwd, 'prompts'), vocab] };
      where.b = where.a.slice(1);
      where.c = where.a.slice(2);
      where.d = where.a.slice(3);
      where.e = where.a.slice(4);
      for (const n of names) for (const d of where[n]) await touch(path.join(d, `${n}.au`));
      const got = await resolvePlayFiles(names, opts());
      got.should.eql([
        path.join(conf1, 'a.au'),
        path.join(conf2, 'b.au'),
        path.join(cwd, 'c.au'),
        path.join(cwd, 'prompts', 'd.au'),
        path.join(vocab, 'e.au'),
      ]);
    });

    it('a configured path wins over cwd', async () => {
      await touch(path.join(cwd, 'beep.au'));
      const inConf = await touch(path.join(conf2, 'beep.au'));
      (await resolvePlayFiles('beep', opts())).should.eql([inConf]);
    });

    it('uses the default extension .au, accepts "wav" and ".wav", keeps an explicit extension', async () => {
      const au = await touch(path.join(cwd, 'hello.au'));
      const wav = await touch(path.join(cwd, 'hello.wav'));
      (await resolvePlayFiles('hello', { cwd, vocabularyDir: vocab })).should.eql([au]);
      (await resolvePlayFiles('hello', { cwd, vocabularyDir: vocab, defaultExt: 'wav' })).should.eql([wav]);
      (await resolvePlayFiles('hello', { cwd, vocabularyDir: vocab, defaultExt: '.wav' })).should.eql([wav]);
      (await resolvePlayFiles('hello.wav', { cwd, vocabularyDir: vocab })).should.eql([wav]);
    });

    it('plays a space-separated list and an array, in order, with repeats', async () => {
      const h = await touch(path.join(cwd, 'hello.au'));
      const w = await touch(path.join(cwd, 'world.au'));
      (await resolvePlayFiles('hello world hello', opts())).should.eql([h, w, h]);
      (await resolvePlayFiles(['world', 'hello'], opts())).should.eql([w, h]);
    });

    it('array items may contain spaces', async () => {
      const f = await touch(path.join(cwd, 'my file.au'));
      (await resolvePlayFiles(['my file'], opts())).should.eql([f]);
    });

    it('finds names with sub folders inside a root', async () => {
      const f = await touch(path.join(conf1, 'en', 'greeting.au'));
      (await resolvePlayFiles('en/greeting', opts())).should.eql([f]);
    });

    it('uses cwd/prompts', async () => {
      const f = await touch(path.join(cwd, 'prompts', 'menu.au'));
      (await resolvePlayFiles('menu', { cwd, vocabularyDir: vocab })).should.eql([f]);
    });

    it('defaults cwd to process.cwd()', async () => {
      const f = await touch(path.join(cwd, 'here.au'));
      const saved = process.cwd();
      process.chdir(cwd);
      try {
        (await resolvePlayFiles('here', { vocabularyDir: vocab })).should.eql([f]);
      } finally {
        process.chdir(saved);
      }
    });

    it('speaks from the vocabulary: play "1 2 3"', async () => {
      const got = await resolvePlayFiles('1 2 3', { cwd, vocabularyDir: VOCAB_FIXTURE });
      got.should.eql(['1', '2', '3'].map((n) => fs.realpathSync(path.join(VOCAB_FIXTURE, `${n}.au`))));
    });

    it('accepts an absolute name inside an allowed root', async () => {
      const f = await touch(path.join(conf1, 'abs.wav'));
      (await resolvePlayFiles(f, opts())).should.eql([f]);
      (await resolvePlayFiles(path.join(conf1, 'abs'), opts({ defaultExt: 'wav' }))).should.eql([f]);
    });

    it('refuses an absolute name outside the roots with EOUTSIDE naming the file and the folders', async () => {
      const f = await touch(path.join(outside, 'secret.au'));
      const err = await rejection(resolvePlayFiles(f, opts()));
      should(err).be.instanceOf(AudioPathError);
      err.code.should.equal('EOUTSIDE');
      err.message.should.containEql(f);
      for (const d of [conf1, conf2, cwd, vocab]) err.message.should.containEql(d);
    });

    it('allowOutside: true permits an absolute name anywhere', async () => {
      const f = await touch(path.join(outside, 'secret.au'));
      (await resolvePlayFiles(f, opts({ allowOutside: true }))).should.eql([f]);
    });

    it('a miss throws ENOAUDIO naming the file and listing every place tried, in order', async () => {
      const err = await rejection(resolvePlayFiles('nothere', opts()));
      should(err).be.instanceOf(AudioPathError);
      err.code.should.equal('ENOAUDIO');
      const tried = [conf1, conf2, cwd, path.join(cwd, 'prompts'), vocab].map((d) => path.join(d, 'nothere.au'));
      err.tried.should.eql(tried);
      err.message.should.containEql('nothere.au');
      for (const t of tried) err.message.should.containEql(t);
    });

    it('a missing absolute name lists just itself', async () => {
      const f = path.join(cwd, 'gone.au');
      const err = await rejection(resolvePlayFiles(f, opts()));
      err.code.should.equal('ENOAUDIO');
      err.tried.should.eql([f]);
    });

    it('one missing file in a list fails the whole list', async () => {
      await touch(path.join(cwd, 'hello.au'));
      const err = await rejection(resolvePlayFiles('hello nope', opts()));
      err.code.should.equal('ENOAUDIO');
      err.message.should.containEql('nope.au');
    });

    it('folders are not files', async () => {
      await fsp.mkdir(path.join(cwd, 'dir.au'));
      const err = await rejection(resolvePlayFiles('dir', opts()));
      err.code.should.equal('ENOAUDIO');
    });

    it('refuses a ".." escape (EOUTSIDE), unless allowOutside', async () => {
      const secret = await touch(path.join(outside, 'secret.au'));
      const err = await rejection(resolvePlayFiles('../outside/secret', { cwd, vocabularyDir: vocab }));
      should(err).be.instanceOf(AudioPathError);
      err.code.should.equal('EOUTSIDE');
      err.message.should.containEql('../outside/secret.au');
      (await resolvePlayFiles('../outside/secret', { cwd, vocabularyDir: vocab, allowOutside: true })).should.eql([secret]);
    });

    it('allows ".." that stays inside the roots', async () => {
      const f = await touch(path.join(cwd, 'beep.au'));
      (await resolvePlayFiles('sub/../beep', opts())).should.eql([f]);
    });

    it('refuses a symlink pointing outside (EOUTSIDE), unless allowOutside', async () => {
      const secret = await touch(path.join(outside, 'secret.au'));
      await fsp.symlink(secret, path.join(cwd, 'link.au'));
      const err = await rejection(resolvePlayFiles('link', opts()));
      err.code.should.equal('EOUTSIDE');
      err.message.should.containEql(secret);
      (await resolvePlayFiles('link', opts({ allowOutside: true }))).should.eql([secret]);
    });

    it('refuses a symlinked folder pointing outside', async () => {
      await touch(path.join(outside, 'secret.au'));
      await fsp.symlink(outside, path.join(conf1, 'escape'));
      const err = await rejection(resolvePlayFiles('escape/secret', opts()));
      err.code.should.equal('EOUTSIDE');
    });

    it('allows a symlink between allowed roots, and a configured path that is itself a symlink', async () => {
      const inVocab = await touch(path.join(vocab, 'beep.au'));
      await fsp.symlink(inVocab, path.join(cwd, 'alias.au'));
      (await resolvePlayFiles('alias', opts())).should.eql([inVocab]);
      const linkedConf = path.join(root, 'linked-conf');
      await fsp.symlink(outside, linkedConf);
      const f = await touch(path.join(outside, 'ok.au'));
      (await resolvePlayFiles('ok', { paths: [linkedConf], cwd, vocabularyDir: vocab })).should.eql([f]);
    });

    it('relative configured paths are taken from cwd', async () => {
      const f = await touch(path.join(cwd, 'sounds', 'x.au'));
      (await resolvePlayFiles('x', { paths: ['sounds'], cwd, vocabularyDir: vocab })).should.eql([f]);
    });

    it('refuses empty names, NUL bytes and an empty list with EBADNAME', async () => {
      for (const bad of ['', '   ', [], [''], ['ok', ' '], 'a\0b', ['a\0b']]) {
        const err = await rejection(resolvePlayFiles(bad, opts()));
        should(err).be.instanceOf(AudioPathError);
        err.code.should.equal('EBADNAME');
      }
      const err = await rejection(resolvePlayFiles('a\0b', opts()));
      err.message.should.match(/NUL/);
    });
  });

  describe('resolveRecordPath', () => {
    let recordDir;
    beforeEach(() => {
      recordDir = path.join(root, 'recordings');
    });

    it('puts a relative name into recordDir (created when missing) with the default .wav', async () => {
      fs.existsSync(recordDir).should.be.false();
      const got = await resolveRecordPath('prompt', { recordDir });
      got.should.equal(path.join(recordDir, 'prompt.wav'));
      fs.statSync(recordDir).isDirectory().should.be.true();
      fs.existsSync(got).should.be.false(); // only the folder is created
    });

    it('keeps .wav and .au, honours defaultExt', async () => {
      (await resolveRecordPath('a.wav', { recordDir })).should.equal(path.join(recordDir, 'a.wav'));
      (await resolveRecordPath('b.au', { recordDir })).should.equal(path.join(recordDir, 'b.au'));
      (await resolveRecordPath('c', { recordDir, defaultExt: 'au' })).should.equal(path.join(recordDir, 'c.au'));
      (await resolveRecordPath('D.WAV', { recordDir })).should.equal(path.join(recordDir, 'D.WAV'));
    });

    it('refuses other extensions with EBADEXT', async () => {
      for (const name of ['x.mp3', 'x.txt', 'x.wav.sh']) {
        const err = await rejection(resolveRecordPath(name, { recordDir }));
        should(err).be.instanceOf(AudioPathError);
        err.code.should.equal('EBADEXT');
        err.message.should.containEql(name);
      }
      const err = await rejection(resolveRecordPath('x', { recordDir, defaultExt: 'mp3' }));
      err.code.should.equal('EBADEXT');
    });

    it('creates sub folders inside recordDir', async () => {
      const got = await resolveRecordPath('2024/call1', { recordDir });
      got.should.equal(path.join(recordDir, '2024', 'call1.wav'));
      fs.statSync(path.join(recordDir, '2024')).isDirectory().should.be.true();
    });

    it('accepts an absolute name inside recordDir, refuses one outside (EOUTSIDE) unless allowOutside', async () => {
      await fsp.mkdir(recordDir);
      const inside = path.join(recordDir, 'in.wav');
      (await resolveRecordPath(inside, { recordDir })).should.equal(inside);
      const out = path.join(outside, 'out.wav');
      const err = await rejection(resolveRecordPath(out, { recordDir }));
      err.code.should.equal('EOUTSIDE');
      err.message.should.containEql(recordDir);
      (await resolveRecordPath(out, { recordDir, allowOutside: true })).should.equal(out);
    });

    it('refuses ".." escapes, without creating anything outside', async () => {
      const err = await rejection(resolveRecordPath('../outside/newdir/x', { recordDir }));
      err.code.should.equal('EOUTSIDE');
      fs.existsSync(path.join(outside, 'newdir')).should.be.false();
      (await resolveRecordPath('a/../b', { recordDir })).should.equal(path.join(recordDir, 'b.wav'));
    });

    it('refuses a symlinked parent folder pointing outside, without creating anything there', async () => {
      await fsp.mkdir(recordDir);
      await fsp.symlink(outside, path.join(recordDir, 'link'));
      let err = await rejection(resolveRecordPath('link/x', { recordDir }));
      err.code.should.equal('EOUTSIDE');
      err.message.should.containEql(outside);
      err = await rejection(resolveRecordPath('link/deeper/x', { recordDir }));
      err.code.should.equal('EOUTSIDE');
      fs.existsSync(path.join(outside, 'deeper')).should.be.false();
      (await resolveRecordPath('link/x', { recordDir, allowOutside: true })).should.equal(path.join(outside, 'x.wav'));
    });

    it('refuses an existing file symlink (or dangling symlink) pointing outside', async () => {
      await fsp.mkdir(recordDir);
      const victim = await touch(path.join(outside, 'victim.wav'));
      await fsp.symlink(victim, path.join(recordDir, 'evil.wav'));
      await fsp.symlink(path.join(outside, 'nothing.wav'), path.join(recordDir, 'dangling.wav'));
      (await rejection(resolveRecordPath('evil', { recordDir }))).code.should.equal('EOUTSIDE');
      (await rejection(resolveRecordPath('dangling', { recordDir }))).code.should.equal('EOUTSIDE');
    });

    it('works when recordDir itself is a symlink', async () => {
      const real = path.join(root, 'real-rec');
      await fsp.mkdir(real);
      await fsp.symlink(real, recordDir);
      (await resolveRecordPath('x', { recordDir })).should.equal(path.join(real, 'x.wav'));
    });

    it('refuses empty names, NUL bytes, folder names', async () => {
      for (const bad of ['', '  ', 'a\0b', 'dir/']) {
        const err = await rejection(resolveRecordPath(bad, { recordDir }));
        err.code.should.equal('EBADNAME');
      }
      await fsp.mkdir(path.join(recordDir, 'd.wav'), { recursive: true });
      (await rejection(resolveRecordPath('d', { recordDir }))).code.should.equal('EISDIR');
      (await rejection(resolveRecordPath('x', {}))).code.should.equal('EBADNAME');
    });
  });
});
