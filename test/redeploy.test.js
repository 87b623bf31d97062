'use strict';
// Stopping and redeploying flows that use a bundled ct-server: the close finishes in time, the
// ctserver child process is gone, its TCP and SIP ports are free again, nothing of ours is left
// running in this process, and a redeploy on the same ports starts a new ctserver that takes calls.
const should = require('should');
const fs = require('fs');
const helper = require('node-red-node-test-helper');
const ctportNodes = require('../nodes/ctport.js');
const A = require('./audio-helpers');
const E = require('./fixtures/nodes/env');

helper.init(require.resolve('node-red'));

const { delay, nextMsg, until } = E;

/** Handle types that our code (sockets, timers, child processes) could leave behind. */
const WATCHED = ['Timeout', 'TCPWRAP', 'TCPSERVERWRAP', 'UDPWRAP', 'ProcessWrap', 'PipeWrap', 'PIPEWRAP', 'FSReqCallback', 'Immediate', 'TTYWrap'];

function resourceCounts() {
  const counts = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] || 0) + 1;
  return counts;
}

/** Types (of WATCHED) with more live resources now than in `before`. */
function extra(before, now) {
  const out = {};
  for (const t of WATCHED) if ((now[t] || 0) > (before[t] || 0)) out[t] = (now[t] || 0) - (before[t] || 0);
  return out;
}

/** Records where each live Timeout / socket was created, to name the culprit when one is left. */
function tracker() {
  const ah = require('async_hooks');
  const live = new Map();
  const hook = ah
    .createHook({
      init(id, type) {
        if (type === 'Timeout' || type === 'TCPWRAP' || type === 'UDPWRAP' || type === 'PROCESSWRAP' || type === 'PIPEWRAP') {
          live.set(id, `${type}${new Error().stack.split('\n').slice(3, 9).join('\n')}`);
        }
      },
      destroy(id) {
        live.delete(id);
      },
    })
    .enable();
  return {
    stop: () => hook.disable(),
    report: () => [...live.values()].filter((st) => !/node_modules\/mocha|redeploy\.test\.js|env\.js/.test(st.split('\n')[1] ?? '')).join('\n---\n'),
  };
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if (e.code === 'ESRCH') return false;
    throw e;
  }
}

function flowFor(p, dir, variant = 0) {
  return [
    { id: 'f1', type: 'tab', label: `redeploy ${variant}` },
    E.serverNode('srv', p, { recordDir: dir, name: `server v${variant}`, ringInterval: 1 }),
    // Port 1: answer, play, hang up. Port 2: answer and leave the call to the test.
    { id: 'n_ring', z: 'f1', type: 'ct ring', server: 'srv', port: '1', name: '', wires: [['n_answer']] },
    { id: 'n_answer', z: 'f1', type: 'ct hook', server: 'srv', action: 'answer', name: '', wires: [['n_play'], []] },
    { id: 'n_ring2', z: 'f1', type: 'ct ring', server: 'srv', port: '2', name: '', wires: [['n_answer2']] },
    { id: 'n_answer2', z: 'f1', type: 'ct hook', server: 'srv', action: 'answer', name: '', wires: [['o_answered'], []] },
    // The prompt changes with each variant, so a redeploy really changes the flow.
    { id: 'n_play', z: 'f1', type: 'ct play', server: 'srv', files: ['1', '2', '3', '4'][variant % 4], name: `v${variant}`, wires: [['n_bye'], ['o_hup']] },
    { id: 'n_bye', z: 'f1', type: 'ct hook', server: 'srv', action: 'hangup', name: '', wires: [['o_done'], []] },
    { id: 'n_dtmf', z: 'f1', type: 'ct dtmf', server: 'srv', port: 'any', mode: 'string', terminator: '#', timeout: 30, name: '', wires: [['o_dtmf']] },
    { id: 'n_hangup', z: 'f1', type: 'ct hangup', server: 'srv', port: 'any', name: '', wires: [['o_hup']] },
    { id: 'n_event', z: 'f1', type: 'ct event', server: 'srv', port: 'any', events: '', raw: true, name: '', wires: [['o_event']] },
    { id: 'n_col', z: 'f1', type: 'ct collect', server: 'srv', port: '', prompt: '', minDigits: 1, maxDigits: 4, tries: 1, terminators: '#', timeout: 20, interDigit: 10, invalidPrompt: '', name: '', wires: [[], []] },
    { id: 'o_answered', z: 'f1', type: 'helper' },
    { id: 'o_done', z: 'f1', type: 'helper' },
    { id: 'o_hup', z: 'f1', type: 'helper' },
    { id: 'o_dtmf', z: 'f1', type: 'helper' },
    { id: 'o_event', z: 'f1', type: 'helper' },
  ];
}

describe('redeploy: stopping and redeploying flows with a bundled ct-server', function () {
  this.timeout(60000);
  const callers = new E.Callers();
  let dir;

  before(function (done) {
    helper.startServer(done);
  });
  after(function (done) {
    helper.stopServer(done);
  });
  beforeEach(function () {
    dir = E.tmpDir('ctredeploy-');
  });
  afterEach(async function () {
    if (this.currentTest.ctx.track) this.currentTest.ctx.track.stop();
    this.currentTest.ctx.track = undefined;
    // A controller whose ctserver leaked (the race these tests guard against): its own close() stops the child it spawned.
    if (this.currentTest.ctx.leak) await this.currentTest.ctx.leak.close();
    this.currentTest.ctx.leak = undefined;
    await callers.stopAll();
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One call through the flow: answered, hears the prompt, is hung up by the flow. */
  async function callWorks(sipPort, variant) {
    const sip = await callers.make();
    const done = nextMsg(helper.getNode('o_done'), 10000);
    const call = sip.call(`sip:1@127.0.0.1:${sipPort}`, { from: `100${variant}` });
    await call.answered;
    const m = await done;
    m.call.cid.number.should.equal(`100${variant}`);
    (await call.ended).by.should.equal('remote');
    should.exist(A.soundSpan(call.heard(), 1000), 'the caller heard no prompt');
    await sip.stop();
    callers.list.splice(callers.list.indexOf(sip), 1);
  }

  it('unload (stop/redeploy) with a call up: closes within 5 s, the ctserver exits, its ports are free, no handles are left', async function () {
    await delay(300);
    const before = resourceCounts();
    const track = tracker();
    this.test.ctx.track = track;
    const env = await E.loadFlow(helper, [ctportNodes], (p) => flowFor(p, dir), { ports: 2 });
    const pid = env.ctl.pid;
    should(pid).be.a.Number();
    isAlive(pid).should.equal(true);
    (await E.canBindTcp(env.basePort + 1)).should.equal(false, 'port 1 is not listening');
    (await E.canBindUdp(env.sipPort)).should.equal(false, 'SIP is not bound');
    // A complete call first, then one left up with a collect running (blocking, with timers).
    await callWorks(env.sipPort, 0);
    const sip = await callers.make();
    const answered = nextMsg(helper.getNode('o_answered'), 10000);
    const call = sip.call(`sip:2@127.0.0.1:${env.sipPort}`, { from: '2000' });
    const m = await answered;
    await call.answered;
    helper.getNode('n_col').receive({ call: m.call });
    await call.sendDigits('12');
    await delay(300);
    call.state.should.not.equal('ended');

    const t0 = Date.now();
    await helper.unload();
    const took = Date.now() - t0;
    took.should.be.below(5000, `closing the flow took ${took} ms`);

    isAlive(pid).should.equal(false, `ctserver pid ${pid} is still running after the close`);
    let timer;
    const ended = await Promise.race([call.ended, new Promise((r) => (timer = setTimeout(r, 3000)))]);
    clearTimeout(timer);
    should.exist(ended, 'the caller was not hung up when the flow stopped');
    ended.by.should.equal('remote');
    await callers.stopAll();
    for (let port = env.basePort; port <= env.basePort + 2; port++) (await E.canBindTcp(port)).should.equal(true, `TCP ${port} is still held`);
    (await E.canBindUdp(env.sipPort)).should.equal(true, `SIP UDP ${env.sipPort} is still held`);

    // Give closing sockets a moment, then compare with the snapshot taken before the load.
    let left;
    try {
      await until(() => {
        left = extra(before, resourceCounts());
        return Object.keys(left).length === 0;
      }, 2000, 'handles to close');
    } catch (e) {
      throw new Error(`resources left after unload: ${JSON.stringify(left)} (before ${JSON.stringify(before)}, now ${JSON.stringify(resourceCounts())}); created at:\n${track.report()}`);
    }
  });

  it('unload right after load (the ctserver still starting): no ctserver is left running, no port or handle held', async function () {
    await delay(300);
    const before = resourceCounts();
    const track = tracker();
    this.test.ctx.track = track;
    const p = { ports: 2, ...(await E.allocatePorts(2)) };
    await helper.load([ctportNodes], flowFor(p, dir));
    const ctl = helper.getNode('srv').controller;
    this.test.ctx.leak = ctl;
    ctl.state.should.equal('connecting');
    const t0 = Date.now();
    await helper.unload();
    (Date.now() - t0).should.be.below(5000);
    // A ctserver that was being started must not come up after the close.
    await delay(1500);
    const pid = ctl.pid;
    should(pid === undefined || !isAlive(pid)).equal(
      true,
      `the flow was stopped while its ctserver was starting, but a ctserver (pid ${pid}) was started anyway and keeps running (and its Supervisor restarts it when it dies); it holds the ports, so the next deploy fails with EADDRINUSE`,
    );
    for (let port = p.basePort; port <= p.basePort + 2; port++) (await E.canBindTcp(port)).should.equal(true, `TCP ${port} is held after the close`);
    (await E.canBindUdp(p.sipPort)).should.equal(true, `SIP UDP ${p.sipPort} is held after the close`);
    let left;
    try {
      await until(() => {
        left = extra(before, resourceCounts());
        return Object.keys(left).length === 0;
      }, 2000, 'handles to close');
    } catch (e) {
      throw new Error(`resources left after unload: ${JSON.stringify(left)}; created at:\n${track.report()}`);
    }
  });

  it('controller (deterministic): deregister right after register leaves no ctserver running, and the next user gets one', async function () {
    const { CtServerController, configFromNode } = require('../dist/nodes/controller');
    const p = { ports: 2, ...(await E.allocatePorts(2)) };
    const ctl = new CtServerController('x', configFromNode({ ...E.serverNode('x', p), recordDir: dir }, dir));
    this.test.ctx.leak = ctl;
    const user = {};
    ctl.register(user); // starts connecting: first an await (mkdir), then the Supervisor
    await ctl.deregister(user); // the last user leaves at once: close()
    ctl.state.should.equal('idle');
    await delay(1500);
    const pid = ctl.pid;
    should(pid === undefined || !isAlive(pid)).equal(true, `a ctserver (pid ${pid}) was spawned after close() and keeps running`);
    ctl.state.should.equal('idle');
    // And the next user gets a working server on the same ports (no EADDRINUSE from the leaked one).
    ctl.register(user);
    await E.waitConnected(ctl, 15000);
    await ctl.deregister(user);
  });

  it('full redeploy on the same ports, 3 times in a row: each time a new ctserver starts (no EADDRINUSE) and a call works', async function () {
    const env = await E.loadFlow(helper, [ctportNodes], (p) => flowFor(p, dir, 0), { ports: 2 });
    const p = { ports: 2, basePort: env.basePort, managerPort: env.managerPort, sipPort: env.sipPort, rtpPorts: env.rtpPorts };
    await callWorks(env.sipPort, 0);
    const pids = [env.ctl.pid];
    for (let v = 1; v <= 3; v++) {
      const errors = [];
      const t0 = Date.now();
      await helper.setFlows(flowFor(p, dir, v), 'full');
      const srv = helper.getNode('srv');
      srv.name.should.equal(`server v${v}`);
      srv.on('call:error', (c) => errors.push(String(c.args[0])));
      await E.waitConnected(srv.controller, 20000);
      const took = Date.now() - t0;
      took.should.be.below(8000, `redeploy ${v} took ${took} ms`);
      const pid = srv.controller.pid;
      pids.includes(pid).should.equal(false, 'the ctserver was not restarted');
      isAlive(pids[pids.length - 1]).should.equal(false, 'the previous ctserver still runs');
      pids.push(pid);
      helper.getNode('n_play').name.should.equal(`v${v}`);
      await callWorks(p.sipPort, v);
      errors.filter((e) => /EADDRINUSE|in use/i.test(e)).should.eql([]);
    }
  });

  it('"modified nodes" redeploy of the only user nodes: the ctserver is restarted cleanly and calls work after each of 3 deploys', async function () {
    // Only action/trigger nodes change; the ct-server config node stays. When every user of
    // the server is restarted, the last one leaving closes it and the first new one reopens it.
    const small = (p, v) => [
      { id: 'f1', type: 'tab', label: 'small' },
      E.serverNode('srv', p, { recordDir: dir, ringInterval: 1 }),
      { id: 'n_ring', z: 'f1', type: 'ct ring', server: 'srv', port: 'any', name: `ring v${v}`, wires: [['n_answer']] },
      { id: 'n_answer', z: 'f1', type: 'ct hook', server: 'srv', action: 'answer', name: `answer v${v}`, wires: [['n_play'], []] },
      { id: 'n_play', z: 'f1', type: 'ct play', server: 'srv', files: 'beep', name: `play v${v}`, wires: [['n_bye'], []] },
      { id: 'n_bye', z: 'f1', type: 'ct hook', server: 'srv', action: 'hangup', name: `bye v${v}`, wires: [['o_done'], []] },
      { id: 'o_done', z: 'f1', type: 'helper' },
    ];
    const env = await E.loadFlow(helper, [ctportNodes], (p) => small(p, 0), { ports: 2 });
    const p = { ports: 2, basePort: env.basePort, managerPort: env.managerPort, sipPort: env.sipPort, rtpPorts: env.rtpPorts };
    await callWorks(p.sipPort, 0);
    for (let v = 1; v <= 3; v++) {
      await helper.setFlows(small(p, v), 'nodes');
      helper.getNode('n_play').name.should.equal(`play v${v}`);
      const srv = helper.getNode('srv');
      await until(() => srv.controller.state === 'connected', 15000, `the ct-server to be connected after deploy ${v} (state ${srv.controller.state})`);
      await callWorks(p.sipPort, v);
    }
  });
});
