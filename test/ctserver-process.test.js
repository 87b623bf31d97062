'use strict';
const should = require('should');
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { spawn } = require('child_process');
const { Supervisor, CtPort, CtManager } = require('../dist/core');
const { SipCaller } = require('../dist/server');
const { startServerProcess, once, delay } = require('./helpers');

const BIN = path.join(__dirname, '..', 'bin', 'ctserver');

function runBin(args, ms = 10000) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('bin/ctserver as a process', function () {
  this.timeout(30000);
  let srv;
  const clients = [];
  afterEach(async function () {
    await Promise.all(clients.splice(0).map((c) => c.disconnect()));
    if (srv) await srv.sup.stop();
    srv = undefined;
  });

  it('--help lists the contract flags', async function () {
    const r = await runBin(['--help']);
    r.code.should.equal(0);
    for (const f of ['--ports', '--host', '--base-port', '--manager-port', '--sip-host', '--sip-port', '--rtp-ports', '--audio-dir', '--record-dir', '--ring-interval', '--trunk', '--log', '--help']) r.stdout.should.containEql(f);
  });

  it('a bad flag exits 2 with a message naming it', async function () {
    const r = await runBin(['--ports', 'many']);
    r.code.should.equal(2);
    r.stderr.should.match(/--ports needs a whole number from 1 to 1024, got "many"/);
    const r2 = await runBin(['--frobnicate']);
    r2.code.should.equal(2);
    r2.stderr.should.match(/unknown option "--frobnicate"/);
  });

  it('prints its bound addresses, then Started!, and listens on 127.0.0.1 by default', async function () {
    srv = await startServerProcess();
    const out = srv.sup.lastOutput.join('\n');
    out.should.match(new RegExp(`manager: tcp 127\\.0\\.0\\.1:${srv.managerPort}`));
    out.should.match(new RegExp(`port 1: tcp 127\\.0\\.0\\.1:${srv.basePort + 1}`));
    out.should.match(new RegExp(`sip: udp 127\\.0\\.0\\.1:${srv.sipPort}`));
    out.should.match(/Started!/);
    const c = new CtPort({ port: 1, basePort: srv.basePort });
    clients.push(c);
    await c.connect();
    (await c.serVersion()).status.should.equal('OK');
  });

  it('exits non-zero with "Address already in use" when a port is taken; the Supervisor reports EADDRINUSE', async function () {
    // Port 2 is taken by us; ports 1 and 3.. must be free, which another program on the machine
    // may spoil: then the server names that port instead, and we try again elsewhere.
    let blocker;
    let taken;
    let r;
    for (let attempt = 0; attempt < 8; attempt++) {
      blocker = net.createServer();
      await new Promise((ok) => blocker.listen(0, '127.0.0.1', ok));
      taken = blocker.address().port;
      r = await runBin(['--base-port', String(taken - 2), '--manager-port', '0', '--sip-port', '0', '--ports', '2']);
      const m = /Giving up: TCP 127\.0\.0\.1:(\d+)/.exec(r.stdout);
      if (!m || Number(m[1]) === taken) break;
      blocker.close();
    }
    try {
      r.code.should.equal(1);
      r.stdout.should.match(new RegExp(`Address already in use Giving up: TCP 127\\.0\\.0\\.1:${taken} \\(port 2\\)`));
      const sup = new Supervisor({ args: ['--manager-port', String(taken), '--base-port', '0', '--sip-port', '0'], restart: false });
      await sup.start().should.be.rejectedWith({ code: 'EADDRINUSE' });
      should(sup.running).be.false();
    } finally {
      blocker.close();
    }
  });

  it('serves 256 ports', async function () {
    srv = await startServerProcess([], 256);
    const c = new CtPort({ port: 256, basePort: srv.basePort });
    clients.push(c);
    await c.connect();
    const st = await c.portStatus();
    st.ports.length.should.equal(256);
    st.ports[255].port.should.equal(256);
  });

  it('shutdown hangs up calls, closes sockets and exits 0', async function () {
    srv = await startServerProcess();
    const pid = srv.sup.pid;
    const c = new CtPort({ port: 1, basePort: srv.basePort, reconnect: false });
    clients.push(c);
    await c.connect();
    const sip = new SipCaller({ host: '127.0.0.1', port: 0 });
    await sip.start();
    try {
      const call = sip.call(`sip:1@127.0.0.1:${srv.sipPort}`);
      await once(c, 'ring');
      await c.offHook();
      await call.answered;
      const exited = once(srv.sup, 'exit', 10000);
      const m = new CtManager({ managerPort: srv.managerPort, reconnect: false });
      await m.connect();
      (await m.shutdown()).status.should.equal('OK');
      const [code] = await exited;
      code.should.equal(0);
      (await call.ended).by.should.equal('remote');
      alive(pid).should.be.false();
      await m.disconnect();
    } finally {
      await sip.stop();
    }
  });

  it('SIGTERM stops it gracefully with exit 0', async function () {
    srv = await startServerProcess();
    const exited = once(srv.sup, 'exit', 10000);
    await srv.sup.stop();
    const [code, signal] = await exited;
    should(signal).be.null();
    code.should.equal(0);
  });

  it('writes --log and rolls it on rolllog', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctlog-'));
    const log = path.join(dir, 'ctserver.log');
    srv = await startServerProcess(['--log', log]);
    const m = new CtManager({ managerPort: srv.managerPort });
    clients.push(m);
    await m.connect();
    await delay(100);
    fs.readFileSync(log, 'utf8').should.match(/started: manager/);
    (await m.rollLog()).status.should.equal('OK');
    await delay(100);
    const files = fs.readdirSync(dir);
    files.length.should.equal(2);
    fs.readFileSync(log, 'utf8').should.match(/log rolled/);
  });
});
