'use strict';
/* Supervisor tests: real child processes (node fixture scripts), no mocks. */
const fs = require('fs');
const os = require('os');
const path = require('path');
const should = require('should');
const { Supervisor, DEFAULT_CTSERVER_BINARY } = require('../dist/core/supervisor');
const { SupervisorError } = require('../dist/core/errors');

const FIX = path.join(__dirname, 'fixtures', 'supervisor');
const fx = (name) => path.join(FIX, name);

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if (err.code === 'ESRCH') return false;
    throw err;
  }
}

function once(emitter, event, timeoutMs = 2500) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no '${event}' within ${timeoutMs} ms`));
    }, timeoutMs);
    function on(...args) {
      clearTimeout(t);
      resolve(args);
    }
    emitter.once(event, on);
  });
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, timeoutMs = 2000) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time');
    await delay(10);
  }
}

describe('Supervisor', function () {
  this.timeout(5000);
  const sups = [];
  let tmp;
  const make = (opts) => {
    const s = new Supervisor({ startTimeoutMs: 2500, stopGraceMs: 500, ...opts });
    sups.push(s);
    return s;
  };

  before(async () => {
    // The exec bit may be lost on checkout; the .sh fixture needs it.
    for (const f of fs.readdirSync(FIX)) fs.chmodSync(path.join(FIX, f), 0o755);
    tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'ctport-sup-'));
  });
  afterEach(async () => {
    await Promise.all(sups.splice(0).map((s) => s.stop()));
  });
  after(async () => {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  });

  it('defaults to the bundled bin/ctserver', () => {
    const s = new Supervisor();
    s.binary.should.equal(DEFAULT_CTSERVER_BINARY);
    DEFAULT_CTSERVER_BINARY.should.equal(path.resolve(__dirname, '..', 'bin', 'ctserver'));
  });

  it('start() resolves on "Started!", emits started/stdout/stderr, stop() ends the child', async () => {
    const s = make({ binary: fx('started.js') });
    const events = [];
    const stdout = [];
    const stderr = [];
    s.on('started', () => events.push('started'));
    s.on('stdout', (l) => stdout.push(l));
    s.on('stderr', (l) => stderr.push(l));
    s.on('exit', (code, signal) => events.push(`exit ${code} ${signal}`));
    s.running.should.be.false();
    should(s.pid).be.undefined();
    await s.start();
    s.running.should.be.true();
    const pid = s.pid;
    pid.should.be.a.Number();
    isAlive(pid).should.be.true();
    events.should.eql(['started']);
    stdout.should.containEql('Started!');
    await s.start(); // already running: no second child
    s.pid.should.equal(pid);
    await waitFor(() => stderr.length > 0);
    await s.stop();
    isAlive(pid).should.be.false();
    s.running.should.be.false();
    should(s.pid).be.undefined();
    events.should.eql(['started', 'exit null SIGTERM']);
    stderr.should.eql(['a line on stderr']);
    s.lastOutput.should.containEql('[stderr] a line on stderr');
    await s.stop(); // idempotent
    // no listeners of ours are left on anything we created
    s.listenerCount('started').should.equal(1);
  });

  it('runs a script without .js by its "#!/usr/bin/env node" shebang with process.execPath', async () => {
    const s = make({ binary: fx('started-noext') });
    await s.start();
    const pid = s.pid;
    // The child is node itself, not /usr/bin/env or a shell.
    const exe = fs.readlinkSync(`/proc/${pid}/exe`);
    fs.realpathSync(exe).should.equal(fs.realpathSync(process.execPath));
    await s.stop();
    isAlive(pid).should.be.false();
  });

  it('executes a non-node binary directly', async () => {
    const s = make({ binary: fx('started.sh') });
    await s.start();
    const pid = s.pid;
    isAlive(pid).should.be.true();
    await s.stop();
    isAlive(pid).should.be.false();
  });

  it('rejects with ESTARTTIMEOUT when Started! never comes, and the child is dead', async () => {
    const s = make({ binary: fx('never-started.js'), startTimeoutMs: 300 });
    let pid;
    s.once('stdout', () => {
      pid = s.pid;
    });
    const t0 = Date.now();
    const err = await s.start().then(() => null, (e) => e);
    should(err).be.instanceOf(SupervisorError);
    err.code.should.equal('ESTARTTIMEOUT');
    err.message.should.match(/300 ms/);
    err.message.should.match(/still initialising/);
    (Date.now() - t0).should.be.aboveOrEqual(290);
    pid.should.be.a.Number();
    isAlive(pid).should.be.false();
    s.running.should.be.false();
    should(s.pid).be.undefined();
  });

  it('rejects with EADDRINUSE when the child cannot bind, quoting its output', async () => {
    const s = make({ binary: fx('addr-in-use.js') });
    const err = await s.start().then(() => null, (e) => e);
    should(err).be.instanceOf(SupervisorError);
    err.code.should.equal('EADDRINUSE');
    err.message.should.match(/Address already in use Giving up/);
    err.message.should.match(/binding port 1200/);
    s.running.should.be.false();
  });

  it('rejects with EEARLYEXIT when the child exits before Started!', async () => {
    const s = make({ binary: fx('exit-early.js') });
    const err = await s.start().then(() => null, (e) => e);
    should(err).be.instanceOf(SupervisorError);
    err.code.should.equal('EEARLYEXIT');
    err.message.should.match(/code 3/);
    err.message.should.match(/fatal: no configuration/);
  });

  it('rejects with ESPAWN naming the path when the binary does not exist', async () => {
    const missing = path.join(tmp, 'no-such-ctserver');
    const s = make({ binary: missing });
    const err = await s.start().then(() => null, (e) => e);
    should(err).be.instanceOf(SupervisorError);
    err.code.should.equal('ESPAWN');
    err.message.should.containEql(missing);
  });

  it('rejects with ESPAWN when a bare name is not found in PATH', async () => {
    const s = make({ binary: 'ctport-no-such-binary-xyz' });
    const err = await s.start().then(() => null, (e) => e);
    should(err).be.instanceOf(SupervisorError);
    err.code.should.equal('ESPAWN');
    err.message.should.containEql('ctport-no-such-binary-xyz');
  });

  it('rejects with ESPAWN when the binary is not executable', async () => {
    const file = path.join(tmp, 'not-executable');
    fs.writeFileSync(file, '#!/bin/sh\necho Started!\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const s = make({ binary: file });
    const err = await s.start().then(() => null, (e) => e);
    should(err).be.instanceOf(SupervisorError);
    err.code.should.equal('ESPAWN');
    err.message.should.containEql(file);
  });

  it('SIGKILLs a child that ignores SIGTERM after stopGraceMs', async () => {
    const s = make({ binary: fx('ignore-sigterm.js'), stopGraceMs: 300 });
    await s.start();
    const pid = s.pid;
    const exits = [];
    s.on('exit', (code, signal) => exits.push(signal));
    const t0 = Date.now();
    const p1 = s.stop();
    const p2 = s.stop();
    p2.should.equal(p1); // idempotent while in progress
    await p1;
    const took = Date.now() - t0;
    took.should.be.aboveOrEqual(280);
    took.should.be.below(2000);
    exits.should.eql(['SIGKILL']);
    isAlive(pid).should.be.false();
    s.lastOutput.should.containEql('ignoring SIGTERM');
  });

  it('restarts after a crash and emits started again', async () => {
    const counter = path.join(tmp, 'crash-once');
    const s = make({
      binary: fx('crash-n.js'),
      env: { CRASH_COUNTER_FILE: counter, CRASH_TIMES: '1', CRASH_AFTER_MS: '50' },
      backoffMs: 100,
    });
    const log = [];
    s.on('exit', (code) => log.push(`exit ${code}`));
    s.on('restarting', (attempt, ms) => log.push(`restarting ${attempt} ${ms}`));
    s.on('started', () => log.push('started'));
    await s.start();
    const firstPid = s.pid;
    await once(s, 'started');
    log.should.eql(['started', 'exit 1', 'restarting 1 100', 'started']);
    s.running.should.be.true();
    s.pid.should.not.equal(firstPid);
    isAlive(firstPid).should.be.false();
    fs.readFileSync(counter, 'utf8').should.equal('2');
  });

  it('gives up with crashed (ECRASHLOOP) after maxRestarts within the window, doubling the delay', async () => {
    const counter = path.join(tmp, 'crash-loop');
    const s = make({
      binary: fx('crash-n.js'),
      env: { CRASH_COUNTER_FILE: counter, CRASH_TIMES: '100', CRASH_AFTER_MS: '20' },
      backoffMs: 20,
      maxRestarts: 3,
    });
    const delays = [];
    s.on('restarting', (attempt, ms) => delays.push([attempt, ms]));
    let started = 0;
    s.on('started', () => started++);
    await s.start();
    const [err] = await once(s, 'crashed', 2500);
    should(err).be.instanceOf(SupervisorError);
    err.code.should.equal('ECRASHLOOP');
    err.message.should.match(/4 times/);
    delays.should.eql([[1, 20], [2, 40], [3, 80]]);
    started.should.equal(4);
    s.running.should.be.false();
    await delay(150);
    fs.readFileSync(counter, 'utf8').should.equal('4'); // no further restarts
  });

  it('does not restart when restart is false', async () => {
    const counter = path.join(tmp, 'no-restart');
    const s = make({
      binary: fx('crash-n.js'),
      env: { CRASH_COUNTER_FILE: counter, CRASH_TIMES: '1', CRASH_AFTER_MS: '20' },
      restart: false,
      backoffMs: 10,
    });
    let restarting = 0;
    s.on('restarting', () => restarting++);
    await s.start();
    await once(s, 'exit');
    await delay(150);
    restarting.should.equal(0);
    s.running.should.be.false();
    fs.readFileSync(counter, 'utf8').should.equal('1');
  });

  it('stop() cancels a pending restart', async () => {
    const counter = path.join(tmp, 'cancel');
    const s = make({
      binary: fx('crash-n.js'),
      env: { CRASH_COUNTER_FILE: counter, CRASH_TIMES: '1', CRASH_AFTER_MS: '20' },
      backoffMs: 300,
    });
    let started = 0;
    s.on('started', () => started++);
    await s.start();
    await once(s, 'restarting');
    await s.stop();
    await delay(500);
    started.should.equal(1);
    fs.readFileSync(counter, 'utf8').should.equal('1');
    s.running.should.be.false();
    should(s.pid).be.undefined();
  });

  it('can be started again after stop()', async () => {
    const s = make({ binary: fx('started.js') });
    await s.start();
    const pid1 = s.pid;
    await s.stop();
    await s.start();
    s.running.should.be.true();
    s.pid.should.not.equal(pid1);
    await s.stop();
  });

  it('stop() during start rejects start with ESTOPPED and kills the child', async () => {
    const s = make({ binary: fx('never-started.js'), startTimeoutMs: 2000 });
    const p = s.start().then(() => null, (e) => e);
    await once(s, 'stdout');
    const pid = s.pid;
    await s.stop();
    const err = await p;
    err.code.should.equal('ESTOPPED');
    isAlive(pid).should.be.false();
  });
});
