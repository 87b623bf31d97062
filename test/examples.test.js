'use strict';
// Every example flow in examples/*.json, loaded as it ships (only the ct-server's ports, the
// user folder and the MQTT broker's port are changed to free ones), run end to end with real
// SIP calls from SipCaller, a real mosquitto and a real HTTP request.
require('should');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const net = require('net');
const { spawn } = require('child_process');
const helper = require('node-red-node-test-helper');
const ctportNodes = require('../nodes/ctport.js');
const { SipCaller } = require('../dist/server');
const { readAudioFile } = require('../dist/server/media/audio-file');
const { freePort, freeUdpPort, once, delay } = require('./helpers');
const { tone, goertzel } = require('./audio-helpers');

helper.init(require.resolve('node-red'));

const EXAMPLES = path.join(__dirname, '..', 'examples');
const VOCAB = path.join(__dirname, '..', 'resources', 'vocabulary');
const CORE = path.join(path.dirname(require.resolve('@node-red/nodes/package.json')), 'core');
const coreNodes = ['common/20-inject.js', 'common/21-debug.js', 'common/90-comment.js', 'function/10-function.js', 'function/10-switch.js', 'function/15-change.js', 'network/10-mqtt.js', 'network/21-httpin.js'].map((f) => require(path.join(CORE, f)));

const exampleFiles = fs
  .readdirSync(EXAMPLES)
  .filter((f) => f.endsWith('.json'))
  .sort();

/** The example file whose name starts with `prefix` ("01", "02"...). */
function example(prefix) {
  const f = exampleFiles.find((x) => x.startsWith(`${prefix} - `));
  if (!f) throw new Error(`no example ${prefix} in examples/`);
  return f;
}

function readExample(file) {
  return JSON.parse(fs.readFileSync(path.join(EXAMPLES, file), 'utf8'));
}

// ------------------------------------------------------------------ audio analysis

const BLOCK = 160; // 20 ms at 8 kHz

/** Spans of sound in `samples`: [{ start, end }] in samples; gaps shorter than gapMs are bridged. */
function spans(samples, { from = 0, threshold = 400, gapMs = 250 } = {}) {
  const out = [];
  let cur;
  const gap = (gapMs / 1000) * 8000;
  for (let i = from; i + BLOCK <= samples.length; i += BLOCK) {
    let e = 0;
    for (let j = i; j < i + BLOCK; j++) e += samples[j] * samples[j];
    if (Math.sqrt(e / BLOCK) <= threshold) continue;
    if (cur && i - cur.end <= gap) cur.end = i + BLOCK;
    else out.push((cur = { start: i, end: i + BLOCK }));
  }
  return out;
}

const ms = (samples) => Math.round(samples / 8);

/**
 * The 20 ms blocks from `from` on that are loud and made of the frequencies `hz` (one or several,
 * each with at least `min` of the block's power): { ms: total length, first, last } (samples).
 */
function toneBlocks(samples, hz, from = 0, { threshold = 400, min } = {}) {
  const freqs = Array.isArray(hz) ? hz : [hz];
  const least = min ?? 0.5 / freqs.length;
  let n = 0;
  let first;
  let last;
  for (let i = from; i + BLOCK <= samples.length; i += BLOCK) {
    let e = 0;
    for (let j = i; j < i + BLOCK; j++) e += samples[j] * samples[j];
    if (Math.sqrt(e / BLOCK) <= threshold || freqs.some((f) => goertzel(samples, f, i, i + BLOCK) < least)) continue;
    n++;
    if (first === undefined) first = i;
    last = i + BLOCK;
  }
  return { ms: n * 20, first, last };
}

/** Wait (polling what the call hears) until a span of sound that starts at or after `from` has ended. */
async function spanEnded(call, { from = 0, gapMs = 300, timeoutMs = 15000, filter = () => true } = {}) {
  const t0 = Date.now();
  for (;;) {
    const h = call.heard();
    const done = spans(h, { from, gapMs }).find((s) => h.length - s.end >= (gapMs / 1000) * 8000 && filter(h, s));
    if (done) return done;
    if (Date.now() - t0 > timeoutMs) throw new Error(`no span of sound ended within ${timeoutMs} ms (heard ${ms(h.length)} ms)`);
    await delay(40);
  }
}

/** Wait until the call has heard at least `minMs` of sound, followed by `gapMs` of silence. */
async function promptEnded(call, minMs, { gapMs = 400, timeoutMs = 20000 } = {}) {
  const t0 = Date.now();
  for (;;) {
    const h = call.heard();
    const sp = spans(h, { gapMs: 100 });
    const total = sp.reduce((a, x) => a + ms(x.end - x.start), 0);
    const last = sp[sp.length - 1];
    if (last && total >= minMs && h.length - last.end >= (gapMs / 1000) * 8000) return { total, end: last.end };
    if (Date.now() - t0 > timeoutMs) throw new Error(`heard ${total} ms of sound, waited for ${minMs} ms and a pause`);
    await delay(40);
  }
}

/** Length in ms of a vocabulary word file. */
async function wordMs(name) {
  return ms((await readAudioFile(path.join(VOCAB, `${name}.au`))).length);
}

// ------------------------------------------------------------------ flows

/**
 * Load an example flow: a tab around it, free ports for the ct-server, optional other patches;
 * retried on new ports when one was taken meanwhile.
 */
async function loadExample(file, { patch = () => undefined, extra = [] } = {}) {
  let lastErr;
  for (let attempt = 0; attempt < 5; attempt++) {
    const flow = readExample(file);
    const tab = { id: 'example-tab-0001', type: 'tab', label: file };
    const base = 20000 + Math.floor(Math.random() * 25000);
    const rtpLo = 46000 + 2 * Math.floor(Math.random() * 4000);
    const sipPort = await freeUdpPort();
    const server = flow.find((n) => n.type === 'ct-server');
    for (const n of flow) {
      if (n.type !== 'ct-server' && n.type !== 'mqtt-broker') n.z = tab.id;
    }
    Object.assign(server, { basePort: base, managerPort: base, sipPort, rtpPorts: `${rtpLo}-${rtpLo + 200}`, ringInterval: 1 });
    patch(flow);
    await helper.load([ctportNodes, ...coreNodes, ...extra], [tab, ...flow]);
    const srv = helper.getNode(server.id);
    const ctl = srv.controller;
    if (ctl.state !== 'connected') await once(ctl, 'state', 20000, (s) => s === 'connected' || s === 'error');
    if (ctl.state === 'connected') {
      const byName = (type, name) => {
        const n = flow.find((x) => x.type === type && x.name === name);
        if (!n) throw new Error(`${file}: no ${type} node named "${name}"`);
        return helper.getNode(n.id);
      };
      return { flow, srv, ctl, sipPort, byName, uri: (ext) => `sip:${ext}@127.0.0.1:${sipPort}` };
    }
    lastErr = new Error(`ct-server did not start: ${ctl.lastError}`);
    await helper.unload();
  }
  throw lastErr;
}

function startCaller(opts = {}) {
  const c = new SipCaller({ port: 0, ...opts });
  return c.start().then(() => c);
}

// ------------------------------------------------------------------ mosquitto

async function startMosquitto(dir) {
  let lastErr;
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    const conf = path.join(dir, `mosquitto-${port}.conf`);
    fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise((r) => child.once('exit', r));
    const t0 = Date.now();
    while (Date.now() - t0 < 5000 && child.exitCode === null) {
      const ok = await new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (ok) return { port, child, stop: () => (child.exitCode === null ? (child.kill('SIGTERM'), exited) : Promise.resolve()) };
      await delay(50);
    }
    lastErr = new Error(`mosquitto did not start on ${port}: ${output}`);
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
  throw lastErr;
}

// ------------------------------------------------------------------ the tests

describe('examples: every flow in examples/ runs end to end', function () {
  this.timeout(60000);
  let userDir;
  const cleanups = [];

  before(function (done) {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-examples-'));
    helper.settings({ userDir });
    helper.startServer(done);
  });
  after(function (done) {
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
    helper.stopServer(done);
  });
  afterEach(async function () {
    if (this.currentTest.state === 'failed' && helper.log()) {
      // What the nodes logged (errors and warnings), to explain the failure.
      for (const c of helper.log().getCalls()) {
        const e = c.args[0];
        if (e && e.type && e.level <= 30) console.log(`      [${e.type} ${e.name || e.id || ''}] ${e.msg && e.msg.stack ? e.msg.stack : e.msg}`);
      }
    }
    while (cleanups.length) await cleanups.pop()();
    await helper.unload();
  });

  it('has the five examples, each with a comment, one ct-server (bundled, 4 ports, SIP 5060), and together every ct node type', function () {
    exampleFiles.should.containDeep([
      "01 - Record and play back (the seed's SYNOPSIS).json",
      '02 - IVR menu.json',
      '03 - Voicemail to MQTT.json',
      '04 - Outbound call from HTTP.json',
      '05 - Conference bridge.json',
    ]);
    const used = new Set();
    const serverIds = new Set();
    for (const f of exampleFiles) {
      const flow = readExample(f);
      const ids = new Set(flow.map((n) => n.id));
      ids.size.should.equal(flow.length, `${f}: duplicate ids`);
      flow.filter((n) => n.type === 'comment').length.should.be.above(0, `${f}: no comment node`);
      const servers = flow.filter((n) => n.type === 'ct-server');
      servers.length.should.equal(1, `${f}: one ct-server`);
      servers[0].should.containEql({ mode: 'bundled', ports: 4, sipPort: 5060 });
      serverIds.add(servers[0].id);
      for (const n of flow) {
        if (n.type.startsWith('ct ')) {
          used.add(n.type);
          n.server.should.equal(servers[0].id, `${f}: ${n.type} "${n.name}" uses another server`);
        }
        for (const port of n.wires || []) for (const target of port) ids.has(target).should.be.true(`${f}: ${n.id} wires to a missing node`);
        (n.z === undefined).should.be.true(`${f}: ${n.id} has z (examples import into the current tab)`);
      }
    }
    // One config node shared by all the examples (same id, same properties): importing several
    // of them reuses it instead of adding ctservers that all want SIP port 5060.
    serverIds.size.should.equal(1);
    const configs = exampleFiles.map((f) => readExample(f).find((n) => n.type === 'ct-server'));
    for (const c of configs) c.should.eql(configs[0]);
    [...used].sort().should.eql(['ct bridge', 'ct collect', 'ct command', 'ct dial', 'ct dtmf', 'ct event', 'ct hangup', 'ct hook', 'ct play', 'ct record', 'ct ring', 'ct tone']);
  });

  for (const file of exampleFiles) {
    it(`loads "${file}": every node starts and the ct-server connects`, async function () {
      const patch = (flow) => {
        const b = flow.find((n) => n.type === 'mqtt-broker');
        if (b) b.autoConnect = false; // no broker needed just to load it
      };
      const ex = await loadExample(file, { patch });
      for (const n of ex.flow) {
        if (n.type === 'tab') continue;
        (helper.getNode(n.id) !== null).should.be.true(`${file}: ${n.type} ${n.id} was not created`);
      }
      ex.ctl.state.should.equal('connected');
    });
  }

  it("01 SYNOPSIS: beep, records the caller's tone until #, plays it back, three beeps, the server hangs up", async function () {
    const ex = await loadExample(example('01'));
    const caller = await startCaller();
    cleanups.push(() => caller.stop());
    const call = caller.call(ex.uri(1), { from: '5550101' });
    await call.answered;
    const beep = await spanEnded(call);
    ms(beep.end - beep.start).should.be.within(150, 500);
    goertzel(call.heard(), 1000, beep.start, beep.end).should.be.above(0.5);
    const sentAt = call.heard().length;
    await call.play(tone(600, 1500));
    await call.sendDigits('#');
    const end = await Promise.race([call.ended, delay(20000).then(() => ({ by: 'timeout' }))]);
    end.by.should.equal('remote');
    const h = call.heard();
    // The recording (our 600 Hz tone, about 1.5 s) and then three beeps (3 x 250 ms of 1 kHz).
    const playback = toneBlocks(h, 600, sentAt);
    playback.ms.should.be.within(1100, 1800);
    const beeps = toneBlocks(h, 1000, playback.last);
    beeps.ms.should.be.within(600, 850);
    toneBlocks(h, 1000, sentAt).first.should.be.above(playback.first);
    const rec = fs.readdirSync(path.join(userDir, 'recordings')).filter((f) => /^msg-1-\d{8}-\d{6}\.wav$/.test(f));
    rec.length.should.be.above(0);
  });

  describe('02 IVR menu', function () {
    let ex;
    let caller;
    beforeEach(async function () {
      ex = await loadExample(example('02'));
      caller = await startCaller();
      cleanups.push(() => caller.stop());
    });

    /** Call, wait for the menu prompt to end, press `key`; resolves with what was heard after it. */
    async function choose(key, from) {
      const keys = [];
      ex.byName('debug', 'key').on('input', (msg) => keys.push(msg.payload));
      const call = caller.call(ex.uri(1), { from });
      await call.answered;
      // "welcome to the main menu please press 1 or 2 or 3"
      let menuMs = 0;
      for (const w of 'welcome to the main menu please press 1 or 2 or 3'.split(' ')) menuMs += await wordMs(w);
      await promptEnded(call, menuMs * 0.8);
      const at = call.heard().length;
      await call.sendDigits(key);
      const end = await Promise.race([call.ended, delay(20000).then(() => ({ by: 'timeout' }))]);
      end.by.should.equal('remote');
      keys.should.eql([key]);
      return { h: call.heard(), at };
    }

    it('a caller who hangs up during the menu: ct hangup reports it with msg.call, ct event the loop drop', async function () {
      const hangups = [];
      const events = [];
      ex.byName('debug', 'hang-up').on('input', (msg) => hangups.push(msg));
      ex.byName('debug', 'event').on('input', (msg) => events.push(msg));
      const call = caller.call(ex.uri(2), { from: '5550200' });
      await call.answered;
      await delay(800);
      call.hangup();
      await call.ended;
      for (let i = 0; i < 100 && hangups.length < 1; i++) await delay(20);
      hangups.length.should.equal(1);
      hangups[0].payload.should.containEql({ port: 2 });
      hangups[0].call.cid.number.should.equal('5550200');
      events.map((m) => m.topic).should.containEql('loopdrop');
      events.find((m) => m.topic === 'loopdrop').payload.should.containEql({ event: 'loopdrop', port: 2 });
    });

    it('1 plays "1 2 3" then "goodbye" and hangs up', async function () {
      const { h, at } = await choose('1', '5550201');
      const heardMs = spans(h, { from: at, gapMs: 400 }).reduce((a, s) => a + ms(s.end - s.start), 0);
      const expected = (await wordMs('1')) + (await wordMs('2')) + (await wordMs('3')) + (await wordMs('goodbye'));
      heardMs.should.be.within(expected * 0.7, expected * 1.4 + 300);
      goertzel(h, 350, at, h.length).should.be.below(0.2); // not the dial tone of choice 2
    });

    it('2 plays a dial tone for 3 s', async function () {
      const { h, at } = await choose('2', '5550202');
      // US dial tone: 350 + 440 Hz, from ct tone play until ct tone stop 3 s later.
      const dial = toneBlocks(h, [350, 440], at);
      dial.ms.should.be.within(2500, 3500);
      ms(dial.last - dial.first).should.be.within(2500, 3500);
    });

    it('3 says the time of day', async function () {
      const { h, at } = await choose('3', '5550203');
      const heardMs = spans(h, { from: at, gapMs: 400 }).reduce((a, s) => a + ms(s.end - s.start), 0);
      heardMs.should.be.above((await wordMs('goodbye')) + 400);
    });
  });

  describe('03 voicemail to MQTT', function () {
    let broker;
    let dir;
    before(async function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-mqtt-'));
      broker = await startMosquitto(dir);
    });
    after(async function () {
      if (broker) await broker.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    async function voicemail(from, finish) {
      const ex = await loadExample(example('03'), {
        patch: (flow) => {
          const b = flow.find((n) => n.type === 'mqtt-broker');
          b.broker.should.equal('127.0.0.1');
          b.port = String(broker.port);
        },
      });
      const mqtt = require('mqtt');
      const sub = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0 });
      cleanups.push(() => new Promise((r) => sub.end(true, {}, r)));
      await once(sub, 'connect', 5000);
      await new Promise((resolve, reject) => sub.subscribe('ctport/voicemail', { qos: 1 }, (e) => (e ? reject(e) : resolve())));
      const got = once(sub, 'message', 30000);
      const caller = await startCaller();
      cleanups.push(() => caller.stop());
      const call = caller.call(ex.uri(2), { from, name: 'Voice Mail' });
      await call.answered;
      // "please record your message after the tone", then the beep (1 kHz)
      await spanEnded(call, { gapMs: 300, filter: (h, s) => goertzel(h, 1000, s.end - 1280, s.end) > 0.5 });
      await call.play(tone(700, 1200));
      finish(call);
      const [topic, payload] = await got;
      topic.should.equal('ctport/voicemail');
      const m = JSON.parse(payload.toString());
      m.caller.should.containEql({ number: from, name: 'Voice Mail' });
      fs.existsSync(m.file).should.be.true(`${m.file} does not exist`);
      path.basename(m.file).should.match(new RegExp(`^vm-${from}-\\d{8}-\\d{6}\\.wav$`));
      m.seconds.should.be.within(1, 10);
      const rec = await readAudioFile(m.file);
      goertzel(rec, 700).should.be.above(0.3);
      return call;
    }

    it('publishes { file, caller, seconds } when the caller presses # (then "thank you goodbye")', async function () {
      const call = await voicemail('5550301', (c) => void c.sendDigits('#'));
      (await call.ended).by.should.equal('remote');
    });

    it('publishes the message when the caller hangs up while recording', async function () {
      await voicemail('5550302', (c) => c.hangup());
    });
  });

  describe('04 outbound call from HTTP', function () {
    let far;
    let web;
    let httpNode;
    beforeEach(async function () {
      far = await startCaller({ user: 'far', autoAnswer: { delayMs: 300 } });
      cleanups.push(() => far.stop());
      const capture = (RED) => {
        httpNode = RED.httpNode;
      };
      await loadExample(example('04'), {
        extra: [capture],
        patch: (flow) => {
          flow.find((n) => n.type === 'ct-server').trunk = `sip:127.0.0.1:${far.address().port}`;
        },
      });
      web = http.createServer(httpNode);
      await new Promise((r) => web.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise((r) => web.close(r)));
    });

    function get(p) {
      return new Promise((resolve, reject) => {
        http
          .get(`http://127.0.0.1:${web.address().port}${p}`, (res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
          })
          .on('error', reject);
      });
    }

    it('GET /call?number=1234 calls sip:1234@trunk, which hears "hello"; answers 200 {outcome: answered}', async function () {
      const incoming = once(far, 'incoming', 20000);
      const res = get('/call?number=1234');
      const inbound = await incoming;
      inbound.to.user.should.equal('1234');
      const ended = new Promise((r) => inbound.once('ended', () => r(inbound.endedBy)));
      const media = await (async () => {
        for (let i = 0; i < 100 && !far.mediaOf(inbound); i++) await delay(20);
        return far.mediaOf(inbound);
      })();
      (media !== undefined).should.be.true();
      const r = await res;
      r.should.eql({ status: 200, body: { outcome: 'answered', number: '1234' } });
      (await ended).should.equal('remote');
      const h = media.heard();
      const s = spans(h);
      s.length.should.be.above(0);
      const heardMs = s.reduce((a, x) => a + ms(x.end - x.start), 0);
      heardMs.should.be.within((await wordMs('hello')) * 0.7, (await wordMs('hello')) * 1.4 + 100);
    });

    it('a busy far end: 200 {outcome: busy, status: 486}; no number: 400', async function () {
      far.autoReject = 486;
      (await get('/call?number=555')).should.eql({ status: 200, body: { outcome: 'busy', status: 486, number: '555' } });
      const bad = await get('/call');
      bad.status.should.equal(400);
      bad.body.outcome.should.equal('error');
    });
  });

  it('05 conference: three callers hear each other; the injects bridge ports 1 and 2, name and query port 1', async function () {
    const ex = await loadExample(example('05'));
    const joined = [];
    ex.byName('debug', 'joined').on('input', (msg) => joined.push(msg.call.port));
    const caller = await startCaller();
    cleanups.push(() => caller.stop());
    await caller.reserveMedia(3);
    const calls = [1, 2, 3].map((n) => caller.call(ex.uri(n), { from: `55504${n}` }));
    await Promise.all(calls.map((c) => c.answered));
    await Promise.all(calls.map((c) => spanEnded(c))); // "welcome"
    for (let i = 0; i < 100 && joined.length < 3; i++) await delay(50);
    joined.sort().should.eql([1, 2, 3]);
    await delay(200);

    /** `who` plays `hz`; returns the power of hz that each call heard meanwhile. */
    async function speak(who, hz) {
      const marks = calls.map((c) => c.heard().length);
      await calls[who].play(tone(hz, 800));
      await delay(300);
      return calls.map((c, i) => goertzel(c.heard(), hz, marks[i], c.heard().length));
    }
    const a = await speak(0, 500);
    a[1].should.be.above(0.5);
    a[2].should.be.above(0.5);
    const b = await speak(1, 800);
    b[0].should.be.above(0.5);
    b[2].should.be.above(0.5);

    // bridge 1 and 2: they leave the conference and hear only each other.
    const results = [];
    ex.byName('debug', 'result').on('input', (msg) => results.push(msg));
    ex.byName('inject', 'bridge 1 and 2').receive({});
    for (let i = 0; i < 100 && results.length < 1; i++) await delay(20);
    results.length.should.equal(1);
    const c = await speak(0, 600);
    c[1].should.be.above(0.5);
    const d = await speak(2, 900);
    d[0].should.be.below(0.2);
    d[1].should.be.below(0.2);

    ex.byName('inject', 'name port 1').receive({});
    for (let i = 0; i < 100 && results.length < 2; i++) await delay(20);
    results[1].payload.status.should.equal('OK');
    ex.byName('inject', 'port 1 status').receive({});
    for (let i = 0; i < 100 && results.length < 3; i++) await delay(20);
    results[2].payload.status.should.equal('OK');
    JSON.stringify(results[2].payload).should.match(/conference/);
    ex.byName('inject', 'unbridge').receive({});
    for (let i = 0; i < 100 && results.length < 4; i++) await delay(20);
    results.length.should.equal(4);

    for (const call of calls) call.hangup();
    await Promise.all(calls.map((x) => x.ended));
  });
});
