'use strict';
// What a newcomer runs first: `npm run call` (scripts/call.js) and `npm start` (scripts/start.js),
// as real processes on free ports.
require('should');
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const dgram = require('dgram');
const http = require('http');
const { spawn } = require('child_process');
const { CtPort } = require('../dist/core');
const { SipCaller } = require('../dist/server');
const { startServer, freePort, freeUdpPort, delay } = require('./helpers');

const ROOT = path.join(__dirname, '..');
const CALL = path.join(ROOT, 'scripts', 'call.js');
const START = path.join(ROOT, 'scripts', 'start.js');

/** Run a script to its end: { code, out }. */
function run(script, args, { env, timeoutMs = 40000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(script)} ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

function canBindTcp(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function canBindUdp(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

const getJson = (url) => get(url, { Accept: 'application/json' });

function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      })
      .on('error', reject);
  });
}

describe('newcomer: npm run call (scripts/call.js)', function () {
  this.timeout(60000);
  let s;
  let ct;
  const collected = [];

  before(async function () {
    s = await startServer();
    ct = new CtPort({ port: 1, basePort: s.basePort });
    ct.on('ring', async (e) => {
      if (e.rings !== 1) return;
      await ct.offHook();
      await ct.play('welcome');
      const r = await ct.collect(2, 5, 2);
      collected.push(r.digits);
      await ct.play(r.digits === '42' ? '4 2' : 'goodbye');
      await ct.onHook();
    });
    ct.on('hangup', () => ct.onHook().catch(() => undefined));
    await ct.connect();
  });
  after(async function () {
    if (ct) await ct.disconnect();
    if (s) await s.server.stop();
  });

  it('reports ringing, the answer and codec, each prompt, the keys sent and who hung up; exit 0', async function () {
    const { code, out } = await run(CALL, ['1', '--dtmf', '42', '--port', String(s.sipPort), '--from', '5551234']);
    code.should.equal(0, out);
    collected.should.eql(['42']);
    out.should.match(new RegExp(`Calling sip:1@127\\.0\\.0\\.1:${s.sipPort}`));
    out.should.match(/ringing \(180 Ringing\)/);
    out.should.match(/answered: PCMU\/8000, keys as RFC 4733/);
    // "welcome" (about 0.7 s), then the keys, then "4 2"
    const prompts = [...out.matchAll(/prompt (\d) ended: ([\d.]+) s long/g)].map((m) => Number(m[2]));
    prompts.length.should.equal(2, out);
    prompts[0].should.be.within(0.3, 1.5);
    prompts[1].should.be.within(0.4, 2);
    const lines = out.split('\n');
    const idx = (re) => lines.findIndex((l) => re.test(l));
    idx(/sending keys 42 \(the first prompt ended\)/).should.be.above(idx(/prompt 1 ended/));
    idx(/prompt 2 starts/).should.be.above(idx(/sending keys 42/));
    out.should.match(/the server hung up \(remote bye\) after [\d.]+ s in the call/);
    out.should.match(/OK: answered \(PCMU\), heard 2 prompts, sent 42, hung up by the server/);
  });

  it('hangs up itself after --hold seconds; exit 0', async function () {
    const { code, out } = await run(CALL, ['1', '--port', String(s.sipPort), '--hold', '1.5']);
    code.should.equal(0, out);
    out.should.match(/hanging up \(--hold 1\.5\)/);
    out.should.match(/we hung up after 1\.\d\d s in the call/);
    out.should.match(/hung up by us/);
  });

  it('a rejected call: exit 1 with the SIP status', async function () {
    const far = new SipCaller({ port: 0, autoReject: 486 });
    await far.start();
    try {
      const { code, out } = await run(CALL, ['9', '--port', String(far.address().port)]);
      code.should.equal(1, out);
      out.should.match(/call failed: SIP 486 Busy Here/);
      out.should.match(/FAILED \(SIP 486\)/);
    } finally {
      await far.stop();
    }
  });

  it('nobody at the address: exit 1 within a few seconds, saying so', async function () {
    const port = await freeUdpPort();
    const t0 = Date.now();
    const { code, out } = await run(CALL, ['1', '--port', String(port)]);
    code.should.equal(1, out);
    out.should.match(/FAILED \(no SIP response\)/);
    (Date.now() - t0).should.be.below(10000);
  });

  it('a bad command line: exit 2 with the usage', async function () {
    const { code, out } = await run(CALL, []);
    code.should.equal(2);
    out.should.match(/Usage: npm run call -- <ext>/);
  });
});

describe('newcomer: npm start (scripts/start.js) runs Node-RED with the demo IVR', function () {
  this.timeout(120000);
  let child;
  let out = '';
  let ports;
  let userDir;
  const userDirs = [];

  after(async function () {
    // Only when a test failed half-way: stop what this test started.
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      const t0 = Date.now();
      while (child.exitCode === null && child.signalCode === null && Date.now() - t0 < 20000) await delay(100);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const d of userDirs) fs.rmSync(d, { recursive: true, force: true });
  });

  /** Start start.js on free ports; resolves at its ready line. Retries when a port was taken meanwhile. */
  async function start() {
    for (let attempt = 0; attempt < 3; attempt++) {
      userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-start-'));
      userDirs.push(userDir);
      const base = 20000 + Math.floor(Math.random() * 25000);
      const rtpLo = 46000 + 2 * Math.floor(Math.random() * 4000);
      ports = { editor: await freePort(), sip: await freeUdpPort(), base, manager: base, rtp: `${rtpLo}-${rtpLo + 100}` };
      out = '';
      child = spawn(process.execPath, [START], {
        cwd: ROOT,
        env: { ...process.env, PORT: String(ports.editor), CTPORT_SIP_PORT: String(ports.sip), CTPORT_BASE_PORT: String(ports.base), CTPORT_MANAGER_PORT: String(ports.manager), CTPORT_RTP_PORTS: ports.rtp, CTPORT_USERDIR: userDir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const t0 = Date.now();
      while (Date.now() - t0 < 45000 && child.exitCode === null && !/ ready: /.test(out) && !/does not answer SIP/.test(out)) await delay(100);
      if (/ ready: /.test(out)) return;
      // Not ready: stop it and try other ports.
      if (child.exitCode === null) {
        child.kill('SIGINT');
        await new Promise((r) => child.once('exit', r));
      }
    }
    throw new Error(`start.js never got ready:\n${out}`);
  }

  it('gets ready, answers a call to the IVR, and Ctrl-C stops Node-RED and the ctserver', async function () {
    await start();
    // The ready banner: editor, SIP address, how to call, pids.
    out.should.containEql(`Node-RED editor   http://127.0.0.1:${ports.editor}`);
    out.should.containEql(`sip:1@127.0.0.1:${ports.sip}`);
    out.should.containEql(`npm run call -- 1 --dtmf 1 --port ${ports.sip}`);
    const pids = /pids\s+Node-RED (\d+), ctserver (\d+)/.exec(out);
    (pids !== null).should.be.true(out);
    const redPid = Number(pids[1]);
    const ctserverPid = Number(pids[2]);
    alive(redPid).should.be.true();
    alive(ctserverPid).should.be.true();
    out.should.not.match(/\[error\]/);

    // The user folder it made.
    fs.existsSync(path.join(userDir, 'settings.js')).should.be.true();
    fs.realpathSync(path.join(userDir, 'node_modules', 'node-red-contrib-ctport')).should.equal(fs.realpathSync(ROOT));
    const settings = fs.readFileSync(path.join(userDir, 'settings.js'), 'utf8');
    settings.should.match(/uiHost: '127\.0\.0\.1'/).and.match(/tours: false/).and.match(/catalogues: \[\]/).and.match(/telemetry: \{ enabled: false/);

    // The editor answers, with the demo IVR deployed on our ports.
    (await get(`http://127.0.0.1:${ports.editor}/`)).status.should.equal(200);
    const flows = JSON.parse((await get(`http://127.0.0.1:${ports.editor}/flows`)).body);
    const srv = flows.find((n) => n.type === 'ct-server');
    srv.should.containEql({ sipPort: ports.sip, basePort: ports.base, managerPort: ports.manager, rtpPorts: ports.rtp });
    flows.filter((n) => n.type === 'ct collect').length.should.equal(1);
    // The palette has the nodes, and Import > Examples lists the five examples.
    const sets = JSON.parse((await getJson(`http://127.0.0.1:${ports.editor}/nodes`)).body);
    const ours = sets.find((x) => x.module === 'node-red-contrib-ctport');
    (ours !== undefined).should.be.true('node-red-contrib-ctport is not loaded');
    ours.enabled.should.be.true();
    ours.types.length.should.equal(13);
    const examples = JSON.parse((await get(`http://127.0.0.1:${ports.editor}/library/examples/flows/node-red-contrib-ctport`)).body);
    examples.filter((e) => e.fn).map((e) => e.fn).should.eql([
      "01 - Record and play back (the seed's SYNOPSIS)",
      '02 - IVR menu',
      '03 - Voicemail to MQTT',
      '04 - Outbound call from HTTP',
      '05 - Conference bridge',
    ]);

    // A call: the IVR answers, plays its menu, takes 1, says "1 2 3" and "goodbye", hangs up.
    const call = await run(CALL, ['1', '--dtmf', '1', '--port', String(ports.sip)], { timeoutMs: 30000 });
    call.code.should.equal(0, call.out);
    call.out.should.match(/answered: PCMU/);
    const menu = /prompt 1 ended: ([\d.]+) s long/.exec(call.out);
    (menu !== null).should.be.true(call.out);
    Number(menu[1]).should.be.above(2); // "welcome to the main menu please press 1 or 2 or 3"
    call.out.should.match(/sending keys 1 \(the first prompt ended\)/);
    call.out.should.match(/prompt 2 starts/);
    call.out.should.match(/the server hung up/);

    // Ctrl-C: start.js stops Node-RED, which stops the ctserver; everything exits.
    const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
    child.kill('SIGINT');
    const { code } = await exited;
    code.should.equal(0, out);
    out.should.match(/the ctserver \(pid \d+\) has stopped/);
    out.should.match(/Node-RED has stopped \(exit code 0\)/);
    for (let i = 0; i < 50 && (alive(redPid) || alive(ctserverPid)); i++) await delay(100);
    alive(redPid).should.be.false('Node-RED is still running');
    alive(ctserverPid).should.be.false('the ctserver is still running');
    // Its ports are free again: the editor, the TCP protocol ports, the manager and SIP.
    (await canBindTcp(ports.editor)).should.be.true();
    (await canBindTcp(ports.base + 1)).should.be.true();
    (await canBindTcp(ports.manager)).should.be.true();
    (await canBindUdp(ports.sip)).should.be.true();
  });
});
