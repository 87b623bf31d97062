'use strict';
const should = require('should');
const net = require('net');
const { CtPort, CtManager } = require('../dist/core');
const { startServer, once, delay } = require('./helpers');

describe('CtPort against the bundled ctserver (TCP)', function () {
  let env;
  const clients = [];
  function port(n, extra = {}) {
    const c = new CtPort({ port: n, basePort: env.basePort, reconnectDelayMs: 50, resolveAudio: false, ...extra });
    clients.push(c);
    return c;
  }
  beforeEach(async function () {
    env = await startServer();
  });
  afterEach(async function () {
    await Promise.all(clients.splice(0).map((c) => c.disconnect()));
    await env.server.stop();
  });

  function raw(n) {
    return new Promise((resolve, reject) => {
      const s = net.connect(env.basePort + n, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
  }
  function readLine(sock) {
    return new Promise((resolve) => {
      let buf = '';
      const on = (d) => {
        buf += d;
        const i = buf.indexOf('\n');
        if (i !== -1) {
          sock.removeListener('data', on);
          resolve(buf.slice(0, i));
        }
      };
      sock.on('data', on);
    });
  }

  it('connects to port N on TCP base+N and gets replies', async function () {
    const c = port(2);
    c.tcpPort.should.equal(env.basePort + 2);
    const connected = once(c, 'connected');
    await c.connect();
    (await connected).port.should.equal(env.basePort + 2);
    const r = await c.serVersion();
    r.status.should.equal('OK');
    r.version.should.match(/^ctport-ctserver-\d+\.\d+\.\d+$/);
    (await c.offHook()).status.should.equal('OK');
    const st = await c.portStatus(2);
    st.ports.should.eql([{ port: 2, state: 'offhook', hook: 'off', script: '' }]);
  });

  it('emits input for every line, parsed and raw, like the seed\'s ct_input', async function () {
    const c = port(1);
    await c.connect();
    const input = once(c, 'input');
    await c.offHook();
    const [parsed, rawLine] = await input;
    parsed.should.containEql({ rly: 'ctanswer', src: 0, dst: 0, argc: 1, args: ['OK'] });
    rawLine.should.equal('rly=ctanswer src=0 dst=0 arg1=OK argc=1');
  });

  it('holds later commands until a blocking command replies, and keeps the order', async function () {
    const c = port(1);
    await c.connect();
    const order = [];
    const t0 = Date.now();
    const a = c.sleep(1).then((r) => order.push(['sleep', r.status, Date.now() - t0]));
    const b = c.setScriptName('after_sleep').then((r) => order.push(['script', r.status, Date.now() - t0]));
    const d = c.clear().then((r) => order.push(['clear', r.status, Date.now() - t0]));
    await Promise.all([a, b, d]);
    order.map((o) => o[0]).should.eql(['sleep', 'script', 'clear']);
    order[0][2].should.be.aboveOrEqual(950);
    order[1][2].should.be.aboveOrEqual(order[0][2]);
    (await c.portStatus(1)).ports[0].script.should.equal('after_sleep');
  });

  it('delivers send_event messages, timers and wait_for_event', async function () {
    const c1 = port(1);
    const c2 = port(2);
    await Promise.all([c1.connect(), c2.connect()]);
    const msg = once(c1, 'message');
    (await c2.sendEvent(1, 'HELLO_1')).status.should.equal('OK');
    const ev = await msg;
    ev.should.containEql({ event: 'HELLO_1', port: 1, user: true });
    (await c1.waitForEvent()).event.should.equal('HELLO_1');
    const timer = once(c1, 'timer');
    await c1.startTimer(1);
    (await timer).event.should.equal('timer');
    await c1.clearEvents();
    const waiting = c1.waitForEvent();
    await delay(50);
    await c2.sendEvent(1, 'WAKE');
    (await waiting).should.containEql({ status: 'OK', event: 'WAKE' });
  });

  it('stop_timer stops a timer', async function () {
    const c = port(1);
    await c.connect();
    let fired = false;
    c.on('timer', () => (fired = true));
    await c.startTimer(1);
    await c.stopTimer();
    await delay(1200);
    fired.should.be.false();
  });

  it('refuses a second connection to a busy port with one clear line; the first keeps working', async function () {
    const c = port(1);
    await c.connect();
    const s = await raw(1);
    const line = await readLine(s);
    line.should.match(/^rly=error src=-1 dst=0 arg1=ERROR arg2=port%201%20is%20already%20in%20use/);
    await once(s, 'close');
    (await c.clear()).status.should.equal('OK');
    const c2 = port(1, { reconnect: false });
    const busy = once(c2, 'socket_error', 3000, (e) => e.code === 'EPORTBUSY');
    await c2.connect().catch(() => undefined);
    (await busy).message.should.match(/already in use/);
  });

  it('answers unknown commands, bad arguments and malformed lines with ERROR and keeps working', async function () {
    const s = await raw(3);
    const cases = [
      ['cmd=ctbogus src=2 dst=2 argc=0', /^rly=ctbogus src=2 dst=2 arg1=ERROR arg2=unknown%20command%20"ctbogus" argc=2$/],
      ['cmd=ctsleep src=2 dst=2 argc=0', /^rly=ctsleep .*arg1=ERROR arg2=ctsleep:%20takes%201%20argument\(s\),%20got%200/],
      ['cmd=ctsleep src=2 dst=2 arg1=soon argc=1', /^rly=ctsleep .*arg1=ERROR arg2=.*must%20be%20whole%20seconds/],
      ['cmd=ctplaytoneasync src=2 dst=2 arg1=beep argc=1', /arg1=ERROR arg2=.*must%20be%20one%20of%20busy/],
      ['cmd=ctsetscript src=2 dst=2 arg1=a argc=3', /^rly=ctsetscript .*arg1=ERROR arg2=argc=3|^rly=ctsetscript .*arg1=ERROR arg2=argc%3D3/],
      ['garbage', /^rly=error src=2 dst=2 arg1=ERROR arg2=token%20"garbage"%20is%20not%20key%3Dvalue/],
      ['x'.repeat(9000), /^rly=error .*arg1=ERROR arg2=line%20longer%20than%208192%20bytes/],
      ['cmd=ctclear src=2 dst=2 argc=0', /^rly=ctclear src=2 dst=2 arg1=OK argc=1$/],
    ];
    for (const [line, re] of cases) {
      const reply = readLine(s);
      s.write(line + '\r\n');
      (await reply).should.match(re);
    }
    s.destroy();
  });

  it('answers media commands on a port with no call with a clear error', async function () {
    const c = port(1);
    await c.connect();
    const r = await c.play(require('path').join(__dirname, '..', 'resources', 'vocabulary', 'beep.au'));
    r.should.containEql({ status: 'ERROR', reason: 'port 1 has no call with audio (it is idle)' });
    (await c.gruntOn()).reason.should.equal('port 1 has no call with audio (it is idle)');
  });

  it('validates before sending: nothing goes out for a bad argument', async function () {
    const c = port(1);
    await c.connect();
    let lines = 0;
    c.on('input', () => lines++);
    await c.sleep('soon').should.be.rejectedWith({ code: 'EINVAL', message: /sleep \(seconds\)/ });
    await c.playTone('beep').should.be.rejectedWith(/must be one of busy, dialx, dial, ringback/);
    await c.dial('555-1234').should.be.rejectedWith(/may hold only 0-9/);
    await c.command('no_such_thing').should.be.rejectedWith({ code: 'EUNKNOWNCMD' });
    await c.sendRaw('cmd=ctclear src=0 dst=0 argc=0\ncmd=shutdown src=-2 dst=-2 argc=0\n').should.be.rejectedWith(/exactly one command/);
    await c.sendRaw('cmd=ctsetscript src=0 dst=0 arg1=a b argc=1').should.be.rejectedWith(/not key=value/);
    lines.should.equal(0);
  });

  it('takes the seed\'s own wire lines', async function () {
    const c = port(4);
    await c.connect();
    (await c.sendRaw('cmd=ctanswer src=3 dst=3 argc=0 \n')).raw.should.equal('rly=ctanswer src=3 dst=3 arg1=OK argc=1');
    (await c.sendRaw('cmd=cthangup src=3 dst=3 argc=0 ')).status.should.equal('OK');
  });

  it('fails every pending and queued command when the connection drops; none hangs', async function () {
    const c = port(1, { reconnect: false });
    await c.connect();
    const p1 = c.sleep(30);
    const p2 = c.clear();
    const p3 = c.setScriptName('never');
    const settled = Promise.allSettled([p1, p2, p3]);
    await delay(100);
    const disconnected = once(c, 'disconnected');
    await env.server.stop();
    await disconnected;
    const results = await settled;
    // the blocking sleep is ended by the shutdown (EVENT) or fails with the disconnect; the queued ones fail
    results.slice(1).forEach((r) => {
      r.status.should.equal('rejected');
      r.reason.code.should.equal('EDISCONNECTED');
      r.reason.message.should.match(/disconnected before "(clear|set_script_name)" was answered/);
    });
    if (results[0].status === 'fulfilled') results[0].value.should.containEql({ status: 'EVENT', event: 'shutdown' });
    else results[0].reason.code.should.equal('EDISCONNECTED');
    await c.clear().should.be.rejectedWith({ code: 'ENOTCONN' });
  });

  it('client disconnect fails its pending commands', async function () {
    const c = port(1);
    await c.connect();
    const p = c.sleep(30);
    const failed = p.should.be.rejectedWith({ code: 'EDISCONNECTED' });
    await delay(50);
    await c.disconnect();
    await failed;
  });

  it('reconnects with backoff after the server restarts', async function () {
    const c = port(1);
    await c.connect();
    const down = once(c, 'disconnected');
    await env.server.stop();
    await down;
    const retrying = once(c, 'reconnecting');
    (await retrying).attempt.should.be.aboveOrEqual(1);
    await delay(300);
    const { CtServer } = require('../dist/server');
    const again = new CtServer({ ports: 4, basePort: env.basePort, managerPort: env.managerPort, sipPort: 0, rtpPorts: [env.addr.rtp[0], env.addr.rtp[1]] });
    const up = once(c, 'connected', 8000);
    await again.start();
    env.server = again;
    await up;
    (await c.clear()).status.should.equal('OK');
  });

  it('connect() rejects clearly when nothing listens and reconnect is off', async function () {
    const c = port(9, { reconnect: false });
    await c.connect().should.be.rejectedWith({ code: 'ECONNREFUSED', message: new RegExp(`ctserver port 9: could not connect to 127.0.0.1:${env.basePort + 9}`) });
  });

  describe('CtManager', function () {
    it('addresses the server and any port', async function () {
      const m = new CtManager({ managerPort: env.managerPort });
      clients.push(m);
      const c = port(2);
      await Promise.all([m.connect(), c.connect()]);
      (await m.serVersion()).version.should.match(/ctport-ctserver/);
      await c.setScriptName('ivr_main');
      const st = await m.portStatus();
      st.ports.length.should.equal(4);
      st.ports[1].should.eql({ port: 2, state: 'idle', hook: 'on', script: 'ivr_main' });
      const ev = once(c, 'message');
      await m.recordStop(2);
      (await ev).should.containEql({ event: 'RECORD_STOP', port: 2 });
      (await m.portReset(2)).status.should.equal('OK');
      (await m.portStatus(2)).ports[0].script.should.equal('');
      (await m.rollLog()).status.should.equal('OK');
      await m.command('off_hook').should.be.rejectedWith(/acts on a port/);
    });

    it('answers port_status of a 700-port server in full (a reply line over 8 KiB)', async function () {
      const big = await startServer({ ports: 700 });
      const m = new CtManager({ managerPort: big.managerPort });
      clients.push(m);
      try {
        await m.connect();
        const st = await m.portStatus();
        st.raw.length.should.be.above(8192);
        st.ports.length.should.equal(700);
        st.ports[699].should.eql({ port: 700, state: 'idle', hook: 'on', script: '' });
      } finally {
        await m.disconnect();
        await big.server.stop();
      }
    });

    it('fails a command whose reply is too long even for the client (ELINETOOLONG), and keeps the connection', async function () {
      // A misbehaving server: its port_status reply is a 2 MiB line.
      const peer = net.createServer((sock) => {
        sock.on('data', (d) => {
          if (String(d).startsWith('cmd=portstatus')) sock.write(`rly=portstatus src=-2 dst=-2 arg1=OK arg2=${'x'.repeat(2 << 20)} argc=2\n`);
        });
      });
      await new Promise((r) => peer.listen(0, '127.0.0.1', r));
      const m = new CtManager({ managerPort: peer.address().port, reconnect: false });
      clients.push(m);
      const protocolErrors = [];
      m.on('protocol_error', (e) => protocolErrors.push(e.code));
      try {
        await m.connect();
        await m.portStatus().should.be.rejectedWith({ code: 'ELINETOOLONG', head: /^rly=portstatus src=-2/ });
        protocolErrors.should.eql(['ELINETOOLONG']);
        m.isConnected.should.be.true();
      } finally {
        await m.disconnect();
        peer.close();
      }
    });
  });
});
