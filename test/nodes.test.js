'use strict';
// Every Node-RED node of the package, run by node-red-node-test-helper against the real bundled
// ctserver (a child process spawned by the ct-server config node), with real SIP calls and RTP
// audio from SipCaller. Errors are checked the way a flow sees them: through a Catch node.
const should = require('should');
const fs = require('fs');
const path = require('path');
const helper = require('node-red-node-test-helper');
const ctportNodes = require('../nodes/ctport.js');
const A = require('./audio-helpers');
const E = require('./fixtures/nodes/env');
const { readAudioFile } = require('../dist/server/media/audio-file');
const { CtServer } = require('../dist/server');

helper.init(require.resolve('node-red'));

const { delay, nextMsg, statusesOf, until } = E;

/** Decoded samples of a bundled vocabulary word. */
const vocab = {};
async function word(name) {
  if (!vocab[name]) vocab[name] = await readAudioFile(path.join(E.VOCAB, `${name}.au`));
  return vocab[name];
}

function helperNode(id) {
  return { id, z: 'f1', type: 'helper' };
}

/** An action node wired to two helper nodes, `<id>_1` (done) and `<id>_2` (hangup). */
function act(id, type, props = {}) {
  return [{ id, z: 'f1', type, server: 'srv', name: '', ...props, wires: [[`${id}_1`], [`${id}_2`]] }, helperNode(`${id}_1`), helperNode(`${id}_2`)];
}

describe('nodes: every node type against the bundled ctserver', function () {
  this.timeout(45000);
  const callers = new E.Callers();
  let dirs;
  let env;

  /** The standard flow: ring → answer → o_answered, a Catch node → o_caught, plus `extra`. */
  function standard(extra = [], { srv: srvExtra = {}, answerTo = [], answer = true } = {}) {
    return (p) => [
      { id: 'f1', type: 'tab', label: 'ctport test' },
      E.serverNode('srv', p, { recordDir: dirs.rec, audioDirs: dirs.audio, ...srvExtra }),
      { id: 'n_ring', z: 'f1', type: 'ct ring', server: 'srv', port: 'any', name: '', wires: [answer ? ['n_answer', 'o_ring'] : ['o_ring']] },
      helperNode('o_ring'),
      { id: 'n_answer', z: 'f1', type: 'ct hook', server: 'srv', action: 'answer', name: '', wires: [['o_answered', ...answerTo], ['o_answer_hup']] },
      helperNode('o_answered'),
      helperNode('o_answer_hup'),
      { id: 'n_catch', z: 'f1', type: 'catch', scope: null, uncaught: false, name: '', wires: [['o_caught']] },
      helperNode('o_caught'),
      ...extra,
    ];
  }

  async function load(extra, opts = {}) {
    env = await E.loadFlow(helper, [ctportNodes], standard(extra, opts), { ports: opts.ports ?? 2 });
    return env;
  }

  const node = (id) => {
    const n = helper.getNode(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  };

  /** Call port `n` (or hunt with n = 0); resolves once the flow has answered, with the answered msg. */
  async function answered(n, opts = {}) {
    const sip = opts.sip ?? (await callers.make());
    const got = nextMsg(node('o_answered'), 10000, (m) => n === 0 || m.call.port === n, `o_answered (port ${n})`);
    const call = sip.call(`sip:${n === 0 ? 1000 : n}@127.0.0.1:${env.sipPort}`, { from: opts.from ?? '5551234', name: opts.name ?? 'Test Caller' });
    const failed = call.answered.then(
      () => new Promise(() => undefined),
      (e) => Promise.reject(new Error(`the call to port ${n} was not answered: ${e.message}`)),
    );
    const msg = await Promise.race([got, failed]);
    await call.answered;
    await delay(80);
    return { sip, call, msg };
  }

  /** Send a message into a node (with a copy of msg.call). */
  function inject(id, msg) {
    node(id).receive({ ...msg, call: msg.call ? JSON.parse(JSON.stringify(msg.call)) : msg.call });
  }

  before(function (done) {
    helper.startServer(done);
  });
  after(function (done) {
    helper.stopServer(done);
  });
  beforeEach(function () {
    dirs = { rec: E.tmpDir('ctnodes-rec-'), audio: E.tmpDir('ctnodes-audio-') };
    A.writeWav(path.join(dirs.audio, 'long.wav'), A.tone(500, 6000, 6000));
  });
  afterEach(async function () {
    await callers.stopAll();
    await helper.unload();
    env = undefined;
    fs.rmSync(dirs.rec, { recursive: true, force: true });
    fs.rmSync(dirs.audio, { recursive: true, force: true });
  });

  // ------------------------------------------------------------------ ct-server
  describe('ct-server (config node)', function () {
    it('spawns the bundled ctserver, connects every port and the manager, and its users show "connected" (green dot)', async function () {
      await load(act('n_play', 'ct play', { files: 'beep' }));
      env.ctl.state.should.equal('connected');
      should(env.ctl.pid).be.a.Number();
      process.kill(env.ctl.pid, 0).should.equal(true); // a real, running process
      env.ctl.userCount.should.be.above(2);
      env.ctl.supervisorArgs().should.containDeep(['--base-port', String(env.basePort), '--sip-port', String(env.sipPort), '--record-dir', dirs.rec]);
      (await E.canBindTcp(env.basePort + 1)).should.equal(false);
      (await E.canBindUdp(env.sipPort)).should.equal(false);
      await until(() => statusesOf(node('n_play')).some((s) => s.fill === 'green' && s.shape === 'dot'), 3000, 'a green dot on ct play');
      const last = statusesOf(node('n_play')).pop();
      last.should.containEql({ fill: 'green', shape: 'dot' });
      statusesOf(node('n_play')).some((s) => s.fill === 'yellow' && s.shape === 'ring').should.equal(true, 'no "connecting" yellow ring first');
    });
  });

  // ------------------------------------------------------------------ triggers
  describe('ct ring', function () {
    it('sends one message per call with payload {port, rings, cid} and msg.call; a port filter holds back other ports', async function () {
      await load(
        [
          { id: 'n_ring2', z: 'f1', type: 'ct ring', server: 'srv', port: '2', name: '', wires: [['o_ring2']] },
          helperNode('o_ring2'),
        ],
        { srv: { ringInterval: 1 }, answer: false },
      );
      // No answer here: the call rings for 2.5 s (3 rings).
      const rings = E.collect(node('o_ring'));
      const ring2 = E.collect(node('o_ring2'));
      const sip = await callers.make();
      const call = sip.call(`sip:1@127.0.0.1:${env.sipPort}`, { from: '5550001', name: 'Ring Test' });
      await E.until(() => rings.length > 0, 5000, 'the ring message');
      await delay(2500);
      rings.length.should.equal(1, 'one message per call, not one per ring');
      const m = rings[0];
      m.topic.should.equal('ring');
      m.payload.should.eql({ port: 1, rings: 1, cid: { number: '5550001', name: 'Ring Test' } });
      m.call.should.containEql({ server: 'srv', port: 1, cid: { number: '5550001', name: 'Ring Test' }, direction: 'in' });
      m.call.id.should.be.a.String().and.not.be.empty();
      ring2.length.should.equal(0, 'the port-2 ring node fired for a call on port 1');
      call.hangup();
      await call.ended;
    });
  });

  describe('ct dtmf', function () {
    it('key mode: one message per key, with msg.call of the call', async function () {
      await load([{ id: 'n_dtmf', z: 'f1', type: 'ct dtmf', server: 'srv', port: 'any', mode: 'key', terminator: '#', timeout: 3, name: '', wires: [['o_dtmf']] }, helperNode('o_dtmf')]);
      const keys = E.collect(node('o_dtmf'));
      const { call, msg } = await answered(1);
      await call.sendDigits('12*');
      await until(() => keys.length >= 3, 4000, 'three dtmf messages');
      keys.map((k) => k.payload).should.eql(['1', '2', '*']);
      keys.forEach((k) => {
        k.topic.should.equal('dtmf');
        k.call.id.should.equal(msg.call.id);
        k.call.port.should.equal(1);
      });
    });

    it('string mode: keys until the terminator (not included), or until the timeout', async function () {
      await load([{ id: 'n_dtmf', z: 'f1', type: 'ct dtmf', server: 'srv', port: '1', mode: 'string', terminator: '#', timeout: 1, name: '', wires: [['o_dtmf']] }, helperNode('o_dtmf')]);
      const got = E.collect(node('o_dtmf'));
      const { call, msg } = await answered(1);
      await call.sendDigits('345#');
      await until(() => got.length >= 1, 3000, 'the string after #');
      got[0].payload.should.equal('345');
      got[0].call.id.should.equal(msg.call.id);
      await call.sendDigits('67');
      const t0 = Date.now();
      await until(() => got.length >= 2, 4000, 'the string after the timeout');
      (Date.now() - t0).should.be.within(700, 2000);
      got[1].payload.should.equal('67');
      await delay(1300);
      got.length.should.equal(2);
    });
  });

  describe('ct hangup', function () {
    it('sends {port, reason} with msg.call when the caller hangs up', async function () {
      await load([{ id: 'n_hup', z: 'f1', type: 'ct hangup', server: 'srv', port: 'any', name: '', wires: [['o_hup']] }, helperNode('o_hup')]);
      const { call, msg } = await answered(2);
      const got = nextMsg(node('o_hup'), 5000);
      call.hangup();
      const m = await got;
      m.topic.should.equal('hangup');
      m.payload.should.eql({ port: 2, reason: 'hangup' });
      m.call.id.should.equal(msg.call.id);
      m.call.port.should.equal(2);
    });
  });

  describe('ct event', function () {
    it('timer (started with ct command start_timer) and a send_event user message; a filter holds back other events', async function () {
      await load([
        { id: 'n_ev_timer', z: 'f1', type: 'ct event', server: 'srv', port: 'any', events: 'timer', raw: false, name: '', wires: [['o_ev_timer']] },
        helperNode('o_ev_timer'),
        { id: 'n_ev_msg', z: 'f1', type: 'ct event', server: 'srv', port: '2', events: 'HELLO', raw: false, name: '', wires: [['o_ev_msg']] },
        helperNode('o_ev_msg'),
        ...act('n_timer', 'ct command', { port: '', command: 'start_timer', args: '1' }),
        ...act('n_send', 'ct command', { port: '1', command: 'send_event', args: '' }),
      ]);
      const timers = E.collect(node('o_ev_timer'));
      const { msg } = await answered(1);
      const done = nextMsg(node('n_timer_1'), 5000);
      inject('n_timer', msg);
      (await done).payload.status.should.equal('OK');
      const t0 = Date.now();
      await until(() => timers.length > 0, 4000, 'the timer event');
      (Date.now() - t0).should.be.within(700, 2000);
      const t = timers[0];
      t.topic.should.equal('timer');
      t.payload.should.containEql({ event: 'timer', port: 1 });
      t.call.id.should.equal(msg.call.id);
      // A user message from port 1 to port 2 (no call there: msg.call is absent).
      const userMsg = nextMsg(node('o_ev_msg'), 5000);
      inject('n_send', { payload: '2 HELLO' });
      const u = await userMsg;
      u.topic.should.equal('HELLO');
      u.payload.should.containEql({ event: 'HELLO', port: 2, user: true });
      should(u.call).be.undefined();
      await delay(200);
      timers.length.should.equal(1);
    });

    it('raw mode sends every protocol line of its port as msg.payload (parsed) and msg.raw', async function () {
      await load([
        { id: 'n_raw', z: 'f1', type: 'ct event', server: 'srv', port: '1', events: 'nothing-matches', raw: true, name: '', wires: [['o_raw']] },
        helperNode('o_raw'),
        ...act('n_timer', 'ct command', { port: '1', command: 'start_timer', args: '1' }),
      ]);
      const raw = E.collect(node('o_raw'));
      inject('n_timer', { payload: '' });
      await until(() => raw.some((m) => /timer/.test(m.raw) && !/ctstarttimer/.test(m.raw)), 4000, 'the raw timer line');
      const reply = raw.find((m) => /ctstarttimerasync/.test(m.raw));
      should.exist(reply, 'the reply line of ctstarttimerasync');
      reply.topic.should.equal('input');
      reply.port.should.equal(1);
      reply.payload.should.containEql({ kind: 'rly', name: 'ctstarttimerasync' });
      raw.every((m) => m.port === 1).should.equal(true);
    });
  });

  // ------------------------------------------------------------------ actions
  describe('ct hook', function () {
    it('answers a ringing call (output 1) and hangs it up (the caller sees BYE)', async function () {
      await load([...act('n_bye', 'ct hook', { action: 'hangup' }), ...act('n_hookmsg', 'ct hook', { action: 'msg' })]);
      const { call, msg } = await answered(1);
      msg.call.port.should.equal(1);
      call.state.should.match(/answered|confirmed/);
      const out = nextMsg(node('n_bye_1'), 5000);
      inject('n_bye', msg);
      (await out).call.id.should.equal(msg.call.id);
      (await call.ended).by.should.equal('remote');
      // action "msg": from msg.payload; a bad value is a clear error.
      const c2 = await answered(2);
      const caught = nextMsg(node('o_caught'), 5000);
      inject('n_hookmsg', { ...c2.msg, payload: 'dance' });
      (await caught).error.message.should.match(/ct hook: action must be "answer" or "hangup"/);
      const out2 = nextMsg(node('n_hookmsg_1'), 5000);
      inject('n_hookmsg', { ...c2.msg, payload: 'hangup' });
      await out2;
      (await c2.call.ended).by.should.equal('remote');
    });
  });

  describe('ct play', function () {
    it('plays the files set on the node; the caller hears them', async function () {
      await load(act('n_play', 'ct play', { files: 'hello goodbye' }));
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_play_1'), 8000);
      inject('n_play', msg);
      const m = await out;
      m.payload.should.equal('');
      m.call.id.should.equal(msg.call.id);
      await E.settle(call);
      const heard = call.heard();
      E.heardShare(heard, await word('hello')).should.be.above(0.6);
      E.heardShare(heard, await word('goodbye')).should.be.above(0.6);
    });

    it('plays files from msg.payload (a string, then an array) when the node has none; a value on the node overrides msg', async function () {
      await load([...act('n_play', 'ct play', { files: '' }), ...act('n_play_node', 'ct play', { files: 'beep' })]);
      const { call, msg } = await answered(1);
      let out = nextMsg(node('n_play_1'), 8000);
      inject('n_play', { ...msg, payload: '17' });
      await out;
      out = nextMsg(node('n_play_1'), 8000);
      inject('n_play', { ...msg, payload: ['40', 'please'] });
      await out;
      out = nextMsg(node('n_play_node_1'), 8000);
      inject('n_play_node', { ...msg, payload: 'goodbye' });
      await out;
      await E.settle(call);
      const heard = call.heard();
      for (const w of ['17', '40', 'please']) E.heardShare(heard, await word(w)).should.be.above(0.6, `did not hear ${w}`);
      E.heardShare(heard, await word('goodbye')).should.be.below(0.3, 'msg.payload won over the node value');
      E.heardShare(heard, await word('beep')).should.be.above(0.6, 'the node value was not played');
      // No files anywhere: a clear error.
      const caught = nextMsg(node('o_caught'), 3000);
      inject('n_play', { ...msg, payload: 42 });
      (await caught).error.message.should.match(/ct play: no files/);
    });

    it('a key stops the prompt and comes back in msg.payload; the status shows "playing" (blue dot) meanwhile', async function () {
      await load(act('n_play', 'ct play', { files: 'long.wav' }));
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_play_1'), 8000);
      inject('n_play', msg);
      await until(() => statusesOf(node('n_play')).some((s) => s.fill === 'blue' && s.shape === 'dot'), 3000, 'a blue dot while playing');
      await delay(500);
      const t0 = Date.now();
      await call.sendDigits('5');
      const m = await out;
      (Date.now() - t0).should.be.below(1500);
      m.payload.should.equal('5');
      statusesOf(node('n_play')).pop().should.containEql({ fill: 'green', shape: 'dot' });
    });

    it('the caller hangs up during the prompt: the message leaves by output 2', async function () {
      await load(act('n_play', 'ct play', { files: 'long.wav' }));
      const { call, msg } = await answered(1);
      const out2 = nextMsg(node('n_play_2'), 8000);
      const out1 = E.collect(node('n_play_1'));
      inject('n_play', msg);
      await delay(600);
      call.hangup();
      const m = await out2;
      m.call.id.should.equal(msg.call.id);
      await delay(200);
      out1.length.should.equal(0);
    });
  });

  describe('ct record', function () {
    it('records to the template name ({port}, {caller}); payload {file, seconds, digits, reason}; a valid WAV of what was said', async function () {
      await load(act('n_rec', 'ct record', { file: 'rec-{port}-{caller}.wav', seconds: 10, digits: '#', silence: 5 }));
      const { call, msg } = await answered(2, { from: '+61.2*555' });
      const out = nextMsg(node('n_rec_1'), 12000);
      inject('n_rec', msg);
      await until(() => statusesOf(node('n_rec')).some((s) => s.fill === 'blue' && s.shape === 'dot'), 3000, 'a blue dot while recording');
      await delay(150);
      await call.play(A.tone(1000, 1200, 10000));
      await call.sendDigits('#');
      const m = await out;
      const file = path.join(dirs.rec, 'rec-2-+61_2_555.wav');
      m.payload.should.containEql({ file, digits: '#', reason: 'dtmf' });
      m.payload.seconds.should.be.within(1.1, 3);
      const buf = fs.readFileSync(file);
      buf.toString('ascii', 0, 4).should.equal('RIFF');
      buf.toString('ascii', 8, 12).should.equal('WAVE');
      buf.readUInt16LE(20).should.equal(1); // PCM
      buf.readUInt16LE(22).should.equal(1); // mono
      buf.readUInt32LE(24).should.equal(8000);
      buf.readUInt16LE(34).should.equal(16);
      buf.readUInt32LE(40).should.equal(buf.length - 44);
      buf.readUInt32LE(4).should.equal(buf.length - 8);
      const samples = await readAudioFile(file);
      const span = A.soundSpan(samples, 1000);
      should.exist(span, 'the recording is silent');
      ((span[1] - span[0]) / 8).should.be.within(1000, 1500);
      A.goertzel(samples, 1000, span[0] + 160, span[0] + 4000).should.be.above(0.8);
    });
  });

  describe('ct record (hang-up)', function () {
    it('the caller hangs up while recording: output 2, and the file ({id}, {time}) is a complete WAV', async function () {
      await load(act('n_rec', 'ct record', { file: 'v-{id}-{time}.wav', seconds: 20, digits: '#', silence: 0 }));
      const { call, msg } = await answered(1);
      const out2 = nextMsg(node('n_rec_2'), 8000);
      inject('n_rec', msg);
      await delay(200);
      await call.play(A.tone(700, 800, 8000));
      call.hangup();
      const m = await out2;
      m.payload.reason.should.equal('hangup');
      path.basename(m.payload.file).should.match(new RegExp(`^v-${msg.call.id}-\\d{8}-\\d{6}\\.wav$`));
      const buf = fs.readFileSync(m.payload.file);
      buf.readUInt32LE(40).should.equal(buf.length - 44);
      ((buf.length - 44) / 16000).should.be.within(0.6, 2);
    });
  });

  describe('ct collect', function () {
    it('plays the prompt, then collects digits up to the terminator', async function () {
      await load(act('n_col', 'ct collect', { prompt: 'beep', minDigits: 2, maxDigits: 4, tries: 1, terminators: '#', timeout: 8, interDigit: 1, invalidPrompt: '' }));
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_col_1'), 10000);
      inject('n_col', msg);
      await until(() => A.soundSpan(call.heard(), 1000), 3000, 'the prompt');
      await delay(400);
      await call.sendDigits('123#');
      const m = await out;
      m.payload.should.equal('123');
      m.timeout.should.equal(false);
      E.heardShare(call.heard(), await word('beep')).should.be.above(0.6);
    });

    it('too few digits: plays the invalid prompt and tries again; max digits ends collection at once', async function () {
      await load(act('n_col', 'ct collect', { prompt: '', minDigits: 3, maxDigits: 4, tries: 2, terminators: '', timeout: 4, interDigit: 1, invalidPrompt: 'invalid' }));
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_col_1'), 15000);
      inject('n_col', msg);
      await delay(300);
      const mark = call.heard().length;
      await call.sendDigits('1');
      // Wait until the caller has heard a prompt start and end, then answer properly.
      await until(() => A.soundSpan(call.heard().subarray(mark), 1000), 5000, 'the invalid prompt');
      await until(() => {
        const h = call.heard();
        return h.length - mark > 2400 && A.rms(h, h.length - 2400, h.length) < 50;
      }, 5000, 'the end of the invalid prompt');
      E.heardShare(call.heard().subarray(mark), await word('invalid')).should.be.above(0.6, 'the invalid prompt was not played');
      const t0 = Date.now();
      await call.sendDigits('4567');
      const m = await out;
      (Date.now() - t0).should.be.below(1500, 'max digits should end the collection at once');
      m.payload.should.equal('4567');
      m.timeout.should.equal(false);
    });

    it('no input at all: after the tries, the message leaves output 1 with payload "" and msg.timeout true', async function () {
      await load(act('n_col', 'ct collect', { prompt: '', minDigits: 1, maxDigits: 4, tries: 2, terminators: '#', timeout: 1, interDigit: 1, invalidPrompt: 'invalid' }));
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_col_1'), 10000);
      const t0 = Date.now();
      inject('n_col', msg);
      const m = await out;
      (Date.now() - t0).should.be.within(2000, 5000);
      m.payload.should.equal('');
      m.timeout.should.equal(true);
      E.heardShare(call.heard(), await word('invalid')).should.be.above(0.6);
    });

    it('the caller hangs up while it collects: output 2', async function () {
      await load(act('n_col', 'ct collect', { prompt: '', minDigits: 1, maxDigits: 4, tries: 3, terminators: '#', timeout: 10, interDigit: 3, invalidPrompt: '' }));
      const { call, msg } = await answered(1);
      const out2 = nextMsg(node('n_col_2'), 8000);
      inject('n_col', msg);
      await delay(400);
      call.hangup();
      (await out2).call.id.should.equal(msg.call.id);
    });

    it('the terminator ends the collection at once (it does not wait for the inter-digit timeout)', async function () {
      await load(act('n_col', 'ct collect', { prompt: '', minDigits: 1, maxDigits: 6, tries: 1, terminators: '#', timeout: 10, interDigit: 4, invalidPrompt: '' }));
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_col_1'), 15000);
      inject('n_col', msg);
      await delay(300);
      await call.sendDigits('42#');
      const t0 = Date.now();
      const m = await out;
      m.payload.should.equal('42');
      (Date.now() - t0).should.be.below(1500, `"#" was pressed but ct collect waited ${Date.now() - t0} ms (the inter-digit timeout) before sending`);
    });
  });

  describe('ct dial', function () {
    it('dials out through the trunk: answered → output 1 with msg.call (and a pickup event); busy 486 → output 2 with reason "busy"', async function () {
      const trunk = await callers.make({ autoAnswer: { delayMs: 100 } });
      const incoming = [];
      trunk.on('incoming', (c) => incoming.push(c));
      await load(
        [
          ...act('n_dial', 'ct dial', { port: '1', number: '', timeout: 10 }),
          ...act('n_play', 'ct play', { files: 'beep' }),
          ...act('n_bye', 'ct hook', { action: 'hangup' }),
          { id: 'n_ev', z: 'f1', type: 'ct event', server: 'srv', port: 'any', events: 'pickup', raw: false, name: '', wires: [['o_ev']] },
          helperNode('o_ev'),
        ],
        { srv: { trunk: `sip:127.0.0.1:${trunk.address().port}` } },
      );
      const pickup = nextMsg(node('o_ev'), 8000);
      const out = nextMsg(node('n_dial_1'), 12000);
      inject('n_dial', { payload: '5550100' });
      const m = await out;
      m.call.should.containEql({ server: 'srv', port: 1, direction: 'out', cid: { number: '5550100', name: '' } });
      incoming.length.should.equal(1);
      incoming[0].to.user.should.equal('5550100');
      const p = await pickup;
      p.payload.should.containEql({ event: 'pickup', port: 1 });
      p.call.id.should.equal(m.call.id);
      // The call is usable: play to the far end, then hang up.
      const played = nextMsg(node('n_play_1'), 5000);
      inject('n_play', m);
      await played;
      await E.settle(trunk.mediaOf(incoming[0]));
      E.heardShare(trunk.mediaOf(incoming[0]).heard(), await word('beep')).should.be.above(0.6);
      const ended = new Promise((r) => incoming[0].once('ended', r));
      const bye = nextMsg(node('n_bye_1'), 5000);
      inject('n_bye', m);
      await bye;
      await ended;
      // Busy.
      trunk.autoAnswer = false;
      trunk.autoReject = 486;
      const out2 = nextMsg(node('n_dial_2'), 12000);
      inject('n_dial', { payload: '5550199' });
      const b = await out2;
      b.payload.should.containEql({ reason: 'busy', status: 486 });
      should(env.ctl.callOn(1)).be.undefined();
      // The port is free again: the next dial works.
      trunk.autoReject = false;
      trunk.autoAnswer = { delayMs: 0 };
      const again = nextMsg(node('n_dial_1'), 12000);
      inject('n_dial', { payload: '5550101' });
      (await again).call.port.should.equal(1);
    });
  });

  describe('ct dial (more)', function () {
    it('nobody answers within the node timeout: output 2 with reason "noanswer"; the far end sees CANCEL and the port dials again', async function () {
      const trunk = await callers.make();
      const incoming = [];
      trunk.on('incoming', (c) => {
        incoming.push(c);
        c.ringing();
      });
      await load(act('n_dial', 'ct dial', { port: '2', number: '5550123', timeout: 2 }), { srv: { trunk: `sip:127.0.0.1:${trunk.address().port}` } });
      const out2 = nextMsg(node('n_dial_2'), 8000);
      const t0 = Date.now();
      inject('n_dial', { payload: 'ignored: the node has a number' });
      const m = await out2;
      (Date.now() - t0).should.be.within(1800, 4000);
      m.payload.should.containEql({ reason: 'noanswer' });
      incoming.length.should.equal(1);
      incoming[0].to.user.should.equal('5550123');
      await until(() => incoming[0].state === 'ended' || incoming[0].state === 'cancelled' || incoming[0].endedBy, 3000, 'the far end to see the call end');
      should(env.ctl.callOn(2)).be.undefined();
      trunk.removeAllListeners('incoming');
      trunk.autoAnswer = { delayMs: 0 };
      const again = nextMsg(node('n_dial_1'), 8000);
      inject('n_dial', {});
      (await again).call.port.should.equal(2);
    });

    it('with msg.call of a live call, it sends the keys into the call (RFC 4733)', async function () {
      await load(act('n_dial', 'ct dial', { number: '' }));
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_dial_1'), 8000);
      inject('n_dial', { ...msg, payload: '12#' });
      (await out).call.id.should.equal(msg.call.id);
      await until(() => call.media.digits === '12#', 3000, 'the caller to receive 12#');
      // A bad number is refused before anything is sent.
      const caught = nextMsg(node('o_caught'), 3000);
      inject('n_dial', { ...msg, payload: '12x' });
      (await caught).error.message.should.match(/ct dial: the number may hold only 0-9 \* # A-D , and &, got "12x"/);
    });
  });

  describe('ct tone', function () {
    it('plays busy tone (the caller hears 480 + 620 Hz) and stops it', async function () {
      await load([...act('n_tone', 'ct tone', { action: 'play', tone: 'busy' }), ...act('n_tstop', 'ct tone', { action: 'stop', tone: '' })]);
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_tone_1'), 5000);
      inject('n_tone', msg);
      await out;
      await delay(2200);
      const stopped = nextMsg(node('n_tstop_1'), 5000);
      inject('n_tstop', msg);
      await stopped;
      const stopAt = call.heard().length;
      await delay(1200);
      const heard = call.heard();
      const span = A.soundSpan(heard, 300);
      should.exist(span, 'the caller heard no tone');
      const on = span[0] + 800;
      A.goertzel(heard, 480, on, on + 2400).should.be.above(0.3);
      A.goertzel(heard, 620, on, on + 2400).should.be.above(0.3);
      A.goertzel(heard, 1000, on, on + 2400).should.be.below(0.05);
      A.rms(heard, stopAt + 800, heard.length).should.be.below(100, 'the tone did not stop');
    });

    it('a tone name that does not exist is refused with a clear error, and the node shows a red ring', async function () {
      await load(act('n_tone', 'ct tone', { action: 'play', tone: '' }));
      const { msg } = await answered(1);
      const caught = nextMsg(node('o_caught'), 3000);
      inject('n_tone', { ...msg, payload: 'siren' });
      const c = await caught;
      c.error.message.should.match(/ct tone: tone must be one of busy, dialx, dial, ringback, got "siren"/);
      c.error.source.id.should.equal('n_tone');
      statusesOf(node('n_tone')).pop().should.containEql({ fill: 'red', shape: 'ring' });
    });
  });

  describe('ct bridge', function () {
    async function twoCalls() {
      const a = await answered(1, { from: '1001' });
      const b = await answered(2, { from: '1002' });
      return { a, b };
    }
    function hearEachOther(a, b) {
      const ha = a.call.heard();
      const hb = b.call.heard();
      const sa = A.soundSpan(ha, 1000);
      const sb = A.soundSpan(hb, 1000);
      should.exist(sa, 'caller A heard nothing');
      should.exist(sb, 'caller B heard nothing');
      A.goertzel(hb, 500, sb[0] + 160, sb[1] - 160).should.be.above(0.6, 'B does not hear A');
      A.goertzel(ha, 800, sa[0] + 160, sa[1] - 160).should.be.above(0.6, 'A does not hear B');
    }

    it('bridge (the other call in msg.other): the two callers hear each other; unbridge', async function () {
      await load([...act('n_bridge', 'ct bridge', { action: 'bridge', other: '' }), ...act('n_unbridge', 'ct bridge', { action: 'unbridge', other: '' })]);
      const { a, b } = await twoCalls();
      const out = nextMsg(node('n_bridge_1'), 5000);
      inject('n_bridge', { ...a.msg, other: b.msg.call });
      await out;
      await until(() => statusesOf(node('n_bridge')).some((s) => s.fill === 'green' && /1-2/.test(s.text)), 2000, 'the bridged status');
      await Promise.all([a.call.play(A.tone(500, 1000)), b.call.play(A.tone(800, 1000))]);
      await delay(250);
      hearEachOther(a, b);
      const un = nextMsg(node('n_unbridge_1'), 5000);
      inject('n_unbridge', { ...a.msg, payload: 2 });
      await un;
      const before = b.call.heard().length;
      await a.call.play(A.tone(500, 600));
      await delay(200);
      A.rms(b.call.heard(), before, b.call.heard().length).should.be.below(100, 'still bridged after unbridge');
    });

    it('conference-join: two callers in the conference hear each other', async function () {
      await load(act('n_conf', 'ct bridge', { action: 'conference-join', other: '' }));
      const { a, b } = await twoCalls();
      for (const c of [a, b]) {
        const out = nextMsg(node('n_conf_1'), 5000);
        inject('n_conf', c.msg);
        (await out).call.id.should.equal(c.msg.call.id);
      }
      await Promise.all([a.call.play(A.tone(500, 1000)), b.call.play(A.tone(800, 1000))]);
      await delay(250);
      hearEachOther(a, b);
    });
  });

  describe('ct command', function () {
    it('sleep (payload = the result), set_script_name then port_status; a command with its own node is refused clearly', async function () {
      await load([
        ...act('n_sleep', 'ct command', { command: 'sleep', args: '1' }),
        ...act('n_script', 'ct command', { command: 'set_script_name', args: 'ivr-main' }),
        ...act('n_status', 'ct command', { command: 'port_status', args: '' }),
        ...act('n_any', 'ct command', { command: 'msg', args: '' }),
      ]);
      const { msg } = await answered(1);
      let out = nextMsg(node('n_sleep_1'), 5000);
      const t0 = Date.now();
      inject('n_sleep', msg);
      let m = await out;
      (Date.now() - t0).should.be.within(900, 2000);
      m.payload.should.containEql({ status: 'OK', digits: '' });
      out = nextMsg(node('n_script_1'), 5000);
      inject('n_script', msg);
      (await out).payload.status.should.equal('OK');
      out = nextMsg(node('n_status_1'), 5000);
      inject('n_status', { ...msg, payload: '1' });
      m = await out;
      m.payload.status.should.equal('OK');
      m.payload.ports.should.eql([{ port: 1, state: 'connected', hook: 'off', script: 'ivr-main' }]);
      // msg.command chooses the command; msg.payload (an array) gives the arguments.
      out = nextMsg(node('n_any_1'), 5000);
      inject('n_any', { ...msg, command: 'port_status', payload: [] });
      m = await out;
      m.payload.ports.length.should.equal(2);
      // A dedicated-node command is refused, naming the node to use.
      const caught = nextMsg(node('o_caught'), 3000);
      inject('n_any', { ...msg, command: 'play', payload: 'beep' });
      const c = await caught;
      c.error.message.should.match(/ct command: use the dedicated node for "play"/);
      c.error.source.id.should.equal('n_any');
      // An unknown command, too.
      const caught2 = nextMsg(node('o_caught'), 3000);
      inject('n_any', { ...msg, command: 'fly_to_the_moon' });
      (await caught2).error.message.should.match(/unknown command "fly_to_the_moon"/);
    });

    it('a key cuts sleep short: payload {status: "EVENT", event: "dtmf"}', async function () {
      await load(act('n_sleep', 'ct command', { command: 'sleep', args: '8' }));
      const { call, msg } = await answered(1);
      const out = nextMsg(node('n_sleep_1'), 5000);
      inject('n_sleep', msg);
      await delay(300);
      await call.sendDigits('9');
      (await out).payload.should.containEql({ status: 'EVENT', digits: '9', event: 'dtmf' });
    });
  });

  // ------------------------------------------------------------------ errors
  describe('errors a flow sees through Catch', function () {
    it('a node with no ct-server: its input ends in done(err) that Catch sees, and the node shows a red ring', async function () {
      const flow = [
        { id: 'f1', type: 'tab', label: 'no server' },
        ...act('n_play', 'ct play', { server: '', files: 'beep', port: '1' }),
        { id: 'n_catch', z: 'f1', type: 'catch', scope: null, uncaught: false, name: '', wires: [['o_caught']] },
        helperNode('o_caught'),
      ];
      flow[1].server = '';
      await helper.load([ctportNodes], flow);
      const caught = nextMsg(node('o_caught'), 3000);
      node('n_play').receive({ payload: 'x' });
      const c = await caught;
      c.error.message.should.match(/^(ValidationError: )?no ct-server configured for this node$/);
      c.error.source.id.should.equal('n_play');
      statusesOf(node('n_play')).pop().should.containEql({ fill: 'red', shape: 'ring' });
    });

    it('a message whose call has ended: done(err) with "has ended"', async function () {
      await load([...act('n_play', 'ct play', { files: 'beep' }), { id: 'n_hup', z: 'f1', type: 'ct hangup', server: 'srv', port: 'any', name: '', wires: [['o_hup']] }, helperNode('o_hup')]);
      const { call, msg } = await answered(1);
      const hup = nextMsg(node('o_hup'), 5000);
      call.hangup();
      await hup;
      const caught = nextMsg(node('o_caught'), 3000);
      inject('n_play', msg);
      const c = await caught;
      c.error.message.should.match(/has ended/);
      c.error.message.should.containEql(msg.call.id);
      // Also when a new call has taken the port meanwhile: the old msg.call must not act on it.
      await delay(300);
      const second = await answered(1);
      const caught2 = nextMsg(node('o_caught'), 3000);
      inject('n_play', msg);
      (await caught2).error.message.should.match(/has ended/);
      await delay(300);
      A.soundSpan(second.call.heard(), 1000) === undefined || should.fail('the old message played to the new call');
    });

    it('two ct-servers in one flow: a msg.call of one server is refused by the other server\'s nodes', async function () {
      for (let i = 0; ; i++) {
        const p2 = { ports: 1, ...(await E.allocatePorts(1)) };
        await load([E.serverNode('srv2', p2, { recordDir: dirs.rec, name: 'second' }), ...act('n_play2', 'ct play', { server: 'srv2', files: 'beep' })]);
        try {
          await E.waitConnected(node('srv2').controller, 20000);
          break;
        } catch (e) {
          // another program took one of its ports meanwhile: try other ports
          await helper.unload();
          if (i >= 3 || !/EADDRINUSE|in use/i.test(e.message)) throw e;
        }
      }
      node('srv2').controller.pid.should.not.equal(env.ctl.pid);
      const { call, msg } = await answered(1);
      const caught = nextMsg(node('o_caught'), 3000);
      inject('n_play2', msg);
      const c = await caught;
      c.error.message.should.match(/msg\.call belongs to another ct-server \(srv\)/);
      c.error.source.id.should.equal('n_play2');
      await delay(300);
      should(A.soundSpan(call.heard(), 1000)).be.undefined();
    });

    it('no msg.call and no port on the node: a clear error', async function () {
      await load(act('n_play', 'ct play', { files: 'beep', port: 'any' }));
      const caught = nextMsg(node('o_caught'), 3000);
      inject('n_play', { payload: '' });
      (await caught).error.message.should.match(/ct play: no msg.call, and no port set on the node/);
    });
  });

  describe('disconnected ctserver (mode "none")', function () {
    this.timeout(60000);

    it('nothing listens: the ct-server reports "error" (red ring on its nodes) and an action input fails quickly with a clear message', async function () {
      const p = { ports: 2, basePort: await E.freeTcpBlock(2), sipPort: 0, rtpPorts: '10000-10100' };
      p.managerPort = p.basePort;
      const flow = [
        { id: 'f1', type: 'tab', label: 'none' },
        E.serverNode('srv', p, { mode: 'none', recordDir: dirs.rec }),
        ...act('n_play', 'ct play', { files: 'beep', port: '1' }),
        { id: 'n_catch', z: 'f1', type: 'catch', scope: null, uncaught: false, name: '', wires: [['o_caught']] },
        helperNode('o_caught'),
      ];
      await helper.load([ctportNodes], flow);
      const ctl = node('srv').controller;
      should(ctl.pid).be.undefined();
      const caught = nextMsg(node('o_caught'), 25000);
      const t0 = Date.now();
      inject('n_play', { payload: 'hello' });
      const c = await caught;
      (Date.now() - t0).should.be.below(7000, 'the message waited too long for a ctserver that is not there');
      c.error.message.should.match(/ct-server \(error: .*could not connect to 127\.0\.0\.1:\d+.*\) is not connected/);
      ctl.state.should.equal('error');
      statusesOf(node('n_play')).pop().should.containEql({ fill: 'red', shape: 'ring' });
      // Once in error, later messages fail at once.
      const caught2 = nextMsg(node('o_caught'), 3000);
      const t1 = Date.now();
      inject('n_play', { payload: 'hello' });
      (await caught2).error.message.should.match(/is not connected/);
      (Date.now() - t1).should.be.below(500);
    });

    it('an external ctserver that goes away: state "disconnected", actions fail at once; it reconnects when the server is back', async function () {
      let srv;
      let p;
      for (let i = 0; i < 10 && !srv; i++) {
        p = { ports: 2, basePort: await E.freeTcpBlock(2), sipPort: 0, rtpPorts: '10000-10100' };
        p.managerPort = p.basePort;
        const s = new CtServer({ ports: 2, basePort: p.basePort, managerPort: p.basePort, sipPort: 0, rtpPorts: [52000, 52100] });
        try {
          await s.start();
          srv = s;
        } catch (e) {
          if (e.code !== 'EADDRINUSE') throw e;
        }
      }
      try {
        const flow = [
          { id: 'f1', type: 'tab', label: 'none' },
          E.serverNode('srv', p, { mode: 'none', recordDir: dirs.rec, reconnectDelay: 100 }),
          ...act('n_cmd', 'ct command', { command: 'port_status', port: '1', args: '' }),
          { id: 'n_catch', z: 'f1', type: 'catch', scope: null, uncaught: false, name: '', wires: [['o_caught']] },
          helperNode('o_caught'),
        ];
        await helper.load([ctportNodes], flow);
        const ctl = node('srv').controller;
        await E.waitConnected(ctl, 10000);
        let out = nextMsg(node('n_cmd_1'), 3000);
        inject('n_cmd', { payload: '' });
        (await out).payload.status.should.equal('OK');
        const disc = new Promise((r) => ctl.on('state', (s) => s === 'disconnected' && r()));
        await srv.stop();
        srv = undefined;
        await disc;
        await until(() => statusesOf(node('n_cmd')).pop()?.fill === 'red', 2000, 'a red status');
        statusesOf(node('n_cmd')).pop().should.containEql({ fill: 'red', shape: 'ring' });
        const caught = nextMsg(node('o_caught'), 3000);
        const t0 = Date.now();
        inject('n_cmd', { payload: '' });
        (await caught).error.message.should.match(/ct-server \(disconnected\) is not connected/);
        (Date.now() - t0).should.be.below(500);
        // The server comes back on the same ports: the nodes reconnect by themselves.
        srv = new CtServer({ ports: 2, basePort: p.basePort, managerPort: p.basePort, sipPort: 0, rtpPorts: [52000, 52100] });
        await srv.start();
        await until(() => ctl.state === 'connected', 10000, 'the reconnect');
        out = nextMsg(node('n_cmd_1'), 3000);
        inject('n_cmd', { payload: '' });
        (await out).payload.status.should.equal('OK');
      } finally {
        if (srv) await srv.stop();
      }
    });

    it('a ctserver that starts after the flow (mode "none", after the first connect attempts failed) is picked up once it listens', async function () {
      const p = { ports: 2, basePort: await E.freeTcpBlock(2), sipPort: 0, rtpPorts: '10000-10100' };
      p.managerPort = p.basePort;
      const flow = [
        { id: 'f1', type: 'tab', label: 'none' },
        E.serverNode('srv', p, { mode: 'none', recordDir: dirs.rec, reconnectDelay: 100 }),
        ...act('n_cmd', 'ct command', { command: 'port_status', port: '1', args: '' }),
      ];
      await helper.load([ctportNodes], flow);
      const ctl = node('srv').controller;
      // The first attempts fail (nothing listens yet); the ctserver starts a moment later.
      await until(() => ctl.state === 'error', 20000, 'the failed connect attempts');
      await delay(1500);
      const srv = new CtServer({ ports: 2, basePort: p.basePort, managerPort: p.basePort, sipPort: 0, rtpPorts: [52000, 52100] });
      await srv.start();
      try {
        await until(() => ctl.state === 'connected', 10000, 'the controller to connect to the ctserver that now listens (it stays in "error" for good: only a redeploy helps)');
      } finally {
        await srv.stop();
      }
    });
  });

  // ------------------------------------------------------------------ concurrency
  describe('two calls through one flow', function () {
    it('two simultaneous callers on two ports each hear their own digits played back, and the messages never mix', async function () {
      await load([
        { id: 'n_col', z: 'f1', type: 'ct collect', server: 'srv', port: '', prompt: 'beep', minDigits: 2, maxDigits: 2, tries: 1, terminators: '', timeout: 10, interDigit: 3, invalidPrompt: '', name: '', wires: [['n_say', 'o_collected'], ['o_col_hup']] },
        helperNode('o_collected'),
        helperNode('o_col_hup'),
        { id: 'n_say', z: 'f1', type: 'ct play', server: 'srv', port: '', files: '', name: '', wires: [['o_said'], ['o_say_hup']] },
        helperNode('o_said'),
        helperNode('o_say_hup'),
      ], { answerTo: ['n_col'] });
      const collected = E.collect(node('o_collected'));
      const said = E.collect(node('o_said'));
      const sipA = await callers.make();
      const sipB = await callers.make();
      const who = [
        { sip: sipA, port: 1, from: '1001', keys: '17' },
        { sip: sipB, port: 2, from: '1002', keys: '40' },
      ];
      const answeredMsgs = E.collect(node('o_answered'));
      for (const w of who) w.call = w.sip.call(`sip:${w.port}@127.0.0.1:${env.sipPort}`, { from: w.from, name: `caller ${w.port}` });
      await Promise.all(who.map((w) => w.call.answered));
      await until(() => answeredMsgs.length === 2, 5000, 'both answered');
      // Both hear the beep prompt, then type at the same moment.
      await Promise.all(who.map((w) => until(() => A.soundSpan(w.call.heard(), 1000), 4000, 'the prompt')));
      await delay(300);
      await Promise.all(who.map((w) => w.call.sendDigits(w.keys)));
      await until(() => said.length === 2, 8000, 'both playbacks');
      await Promise.all(who.map((w) => E.settle(w.call)));
      for (const w of who) {
        const c = collected.find((m) => m.call.port === w.port);
        should.exist(c, `no collect output for port ${w.port}`);
        c.payload.should.equal(w.keys, `port ${w.port} got someone else's digits`);
        c.call.cid.number.should.equal(w.from);
        const s = said.find((m) => m.call.port === w.port);
        s.call.id.should.equal(c.call.id);
        s.call.cid.number.should.equal(w.from);
      }
      const [a, b] = who;
      const hA = a.call.heard();
      const hB = b.call.heard();
      E.heardShare(hA, await word('17')).should.be.above(0.6, 'caller A did not hear "17"');
      E.heardShare(hB, await word('40')).should.be.above(0.6, 'caller B did not hear "40"');
      E.heardShare(hA, await word('40')).should.be.below(0.3, 'caller A heard B\'s answer');
      E.heardShare(hB, await word('17')).should.be.below(0.3, 'caller B heard A\'s answer');
    });
  });
});
