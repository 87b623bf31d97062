'use strict';
const should = require('should');
const { CtPort, parseAudioSdp } = Object.assign({}, require('../dist/core'), require('../dist/server'));
const { SipCaller } = require('../dist/server');
const { startServer, once, delay } = require('./helpers');

describe('SIP call control (bundled ctserver + SipCaller)', function () {
  let env;
  const stops = [];
  async function client(n) {
    const c = new CtPort({ port: n, basePort: env.basePort, resolveAudio: false });
    stops.push(() => c.disconnect());
    await c.connect();
    return c;
  }
  async function caller(opts = {}) {
    const c = new SipCaller({ host: '127.0.0.1', port: 0, ...opts });
    stops.push(() => c.stop());
    await c.start();
    return c;
  }
  const uri = (user) => `sip:${user}@127.0.0.1:${env.sipPort}`;

  afterEach(async function () {
    for (const s of stops.splice(0).reverse()) await s();
    if (env) await env.server.stop();
    env = undefined;
  });

  it('rings port N with caller ID on arrival and every ring interval; read_cid gives it too', async function () {
    env = await startServer();
    const ct = await client(1);
    const rings = [];
    ct.on('ring', (e) => rings.push(e));
    const cidEv = once(ct, 'cid');
    const sip = await caller();
    const call = sip.call(uri(1), { from: '5551234', name: 'Jane Doe' });
    const first = await once(ct, 'ring');
    first.should.containEql({ event: 'ring', port: 1, rings: 1 });
    first.cid.should.eql({ number: '5551234', name: 'Jane Doe' });
    (await cidEv).cid.should.eql({ number: '5551234', name: 'Jane Doe' });
    await once(ct, 'ring', 3000);
    rings.length.should.equal(2);
    rings[1].rings.should.equal(2);
    (await ct.readCid()).cid.should.eql({ number: '5551234', name: 'Jane Doe' });
    call.history.map((h) => h.what).join(' ').should.match(/180/);
    (await ct.portStatus(1)).ports[0].state.should.equal('ringing');
    await ct.onHook();
    await call.answered.should.be.rejectedWith({ status: 486 });
  });

  it('answers with SDP offering PCMU, PCMA and telephone-event on the bound address; remote BYE gives loopdrop then hangup', async function () {
    env = await startServer();
    const ct = await client(2);
    const sip = await caller();
    const call = sip.call(uri(2), { from: '200' });
    await once(ct, 'ring');
    (await ct.offHook()).status.should.equal('OK');
    const sdp = await call.answered;
    const parsed = typeof sdp === 'string' ? parseAudioSdp(sdp) : sdp;
    parsed.address.should.equal('127.0.0.1');
    parsed.port.should.be.within(env.addr.rtp[0], env.addr.rtp[1]);
    parsed.payloads.should.containDeep([0, 8]);
    should(parsed.telephoneEvent).be.a.Number();
    (await ct.portStatus(2)).ports[0].should.containEql({ state: 'connected', hook: 'off' });
    const seen = [];
    ct.on('event', (e) => seen.push(e.event));
    const hung = once(ct, 'hangup');
    call.hangup();
    await hung;
    seen.should.eql(['loopdrop', 'hangup']);
    // a loop drop: the port waits, off hook, for its program to hang up; it is not hunted meanwhile
    (await ct.portStatus(2)).ports[0].should.containEql({ state: 'dropped', hook: 'off' });
    (await ct.offHook()).reason.should.equal('port 2: the far end has hung up; send cthangup');
    await ct.onHook();
    (await ct.portStatus(2)).ports[0].state.should.equal('idle');
  });

  it('local hang-up sends BYE', async function () {
    env = await startServer();
    const ct = await client(1);
    const sip = await caller();
    const call = sip.call(uri(1));
    await once(ct, 'ring');
    await ct.offHook();
    await call.answered;
    await ct.onHook();
    const end = await call.ended;
    end.by.should.equal('remote');
    (await ct.portStatus(1)).ports[0].state.should.equal('idle');
  });

  it('a CANCEL while ringing gives loopdrop and hangup, and ends a blocking wait with EVENT hangup', async function () {
    env = await startServer();
    const ct = await client(1);
    const sip = await caller();
    const call = sip.call(uri(1));
    await once(ct, 'ring');
    const waiting = ct.waitForRing(5);
    const events = [];
    ct.on('event', (e) => events.push(e.event));
    call.cancel();
    const r = await waiting;
    r.should.containEql({ status: 'EVENT', event: 'hangup' });
    events.should.containDeepOrdered(['loopdrop', 'hangup']);
    await call.answered.should.be.rejectedWith({ status: 487 });
  });

  it('wait_for_ring returns after N rings with the caller ID', async function () {
    env = await startServer();
    const ct = await client(3);
    const sip = await caller();
    const waiting = ct.waitForRing(2);
    sip.call(uri(3), { from: '777', name: 'Bob' });
    const r = await waiting;
    r.should.containEql({ status: 'OK' });
    r.cid.should.eql({ number: '777', name: 'Bob' });
  });

  it('hunts for a free port when the user part is not a port number, and gives 486 when all are busy', async function () {
    env = await startServer({ ports: 2 });
    const ct1 = await client(1);
    const ct2 = await client(2);
    const sip = await caller();
    const a = sip.call(uri('sales'));
    await once(ct1, 'ring');
    const b = sip.call(uri('support'));
    await once(ct2, 'ring');
    const c = sip.call(uri('anyone'));
    await c.answered.should.be.rejectedWith({ status: 486 });
    const d = sip.call(uri(1));
    await d.answered.should.be.rejectedWith({ status: 486 });
    a.cancel();
    b.cancel();
    await Promise.all([a.ended, b.ended]);
  });

  it('does not hunt a port whose program has not hung up after a loop drop, and hunts the longest-idle port first', async function () {
    env = await startServer({ ports: 3 });
    const ct1 = await client(1);
    const ct2 = await client(2);
    const ct3 = await client(3);
    const sip = await caller();
    const a = sip.call(uri('any'));
    await once(ct1, 'ring');
    a.cancel();
    await once(ct1, 'hangup');
    (await ct1.portStatus(1)).ports[0].state.should.equal('dropped');
    const b = sip.call(uri('any'));
    await once(ct2, 'ring');
    await ct1.onHook(); // port 1 is idle again, but it was used last: port 3 comes next
    const c = sip.call(uri('any'));
    await once(ct3, 'ring');
    b.cancel();
    c.cancel();
    await Promise.all([b.ended, c.ended]);
  });

  it('a port with no program attached goes straight back to idle after a hang-up', async function () {
    env = await startServer({ ports: 1 });
    const sip = await caller();
    const a = sip.call(uri(1));
    await delay(200);
    a.cancel();
    await a.ended;
    const b = sip.call(uri(1));
    await delay(200);
    b.state.should.not.equal('ended');
    b.cancel();
    await b.ended;
  });

  it('dials out through the trunk: the far end answering emits pickup; on_hook sends BYE', async function () {
    const far = await caller({ user: 'far' });
    far.autoAnswer = { delayMs: 100 };
    env = await startServer({ trunk: `sip:127.0.0.1:${far.address().port}` });
    const ct = await client(1);
    await ct.sendCid('5550001', 'Front Desk');
    const incoming = once(far, 'incoming');
    (await ct.offHook()).status.should.equal('OK');
    const pickup = once(ct, 'pickup');
    (await ct.dial('1234')).status.should.equal('OK');
    const inc = await incoming;
    inc.to.user.should.equal('1234');
    inc.from.number.should.equal('5550001');
    inc.from.name.should.equal('Front Desk');
    await pickup;
    (await ct.portStatus(1)).ports[0].state.should.equal('connected');
    const farEnded = once(inc, 'ended');
    await ct.onHook();
    await farEnded;
  });

  it('reports a busy far end as a busy event, and other failures as failed with the SIP status', async function () {
    const far = await caller({ user: 'far' });
    far.autoReject = 486;
    env = await startServer({ trunk: `sip:127.0.0.1:${far.address().port}` });
    const ct = await client(1);
    await ct.offHook();
    const busy = once(ct, 'busy');
    await ct.dial('5551212');
    (await busy).status.should.equal(486);
    (await ct.portStatus(1)).ports[0].state.should.equal('offhook');
    far.autoReject = 404;
    const failed = once(ct, 'failed');
    await ct.dial('999');
    (await failed).status.should.equal(404);
  });

  it('refuses to dial without a trunk, or when not off hook', async function () {
    env = await startServer();
    const ct = await client(1);
    (await ct.dial('123')).should.containEql({ status: 'ERROR', reason: 'port 1 must be off hook with no call to dial (it is idle); send ctanswer first' });
    await ct.offHook();
    (await ct.dial('123')).reason.should.match(/no trunk configured/);
  });

  it('rings a registered station phone with the send_cid caller ID; its answer emits pickup and its hang-up emits hangup', async function () {
    env = await startServer();
    const ct = await client(2);
    (await ct.startRing()).reason.should.match(/no phone is registered on port 2/);
    const phone = await caller({ user: '2' });
    (await phone.register(uri(2), { user: '2' })).should.equal(200);
    await ct.sendCid('100', 'Reception');
    const incoming = once(phone, 'incoming');
    (await ct.startRing()).status.should.equal('OK');
    const inc = await incoming;
    inc.from.number.should.equal('100');
    inc.from.name.should.equal('Reception');
    const pickup = once(ct, 'pickup');
    inc.answer();
    await pickup;
    (await ct.portStatus(2)).ports[0].state.should.equal('connected');
    const hangup = once(ct, 'hangup');
    inc.hangup();
    await hangup;
    (await ct.portStatus(2)).ports[0].state.should.equal('dropped');
    await ct.onHook();
    (await ct.portStatus(2)).ports[0].state.should.equal('idle');
  });

  it('stop_ring and ring_once cancel the station INVITE', async function () {
    env = await startServer();
    const ct = await client(1);
    const phone = await caller({ user: '1' });
    await phone.register(uri(1), { user: '1' });
    let incoming = once(phone, 'incoming');
    await ct.startRing();
    let inc = await incoming;
    let ended = once(inc, 'ended');
    await ct.stopRing();
    (await ended).should.match(/cancel/i);
    incoming = once(phone, 'incoming');
    await ct.ringOnce();
    inc = await incoming;
    ended = once(inc, 'ended', 5000);
    (await ended).should.match(/cancel/i);
    (await ct.portStatus(1)).ports[0].state.should.equal('idle');
  });

  it('requires digest auth for a station when the server has a password for it', async function () {
    env = await startServer({ sipAuth: { 3: 's3cret' } });
    const phone = await caller({ user: '3' });
    (await phone.register(uri(3), { user: '3', password: 'wrong' })).should.not.equal(200);
    (await phone.register(uri(3), { user: '3', password: 's3cret' })).should.equal(200);
  });

  it('turns SIP INFO DTMF into dtmf events and the digit buffer, and Signal=16 into flash', async function () {
    env = await startServer();
    const ct = await client(1);
    const sip = await caller();
    const call = sip.call(uri(1));
    await once(ct, 'ring');
    await ct.offHook();
    await call.answered;
    const dtmf = once(ct, 'dtmf');
    await call.info('application/dtmf-relay', 'Signal=5\r\nDuration=160\r\n');
    (await dtmf).digit.should.equal('5');
    const flash = once(ct, 'flash');
    await call.info('application/dtmf-relay', 'Signal=16\r\nDuration=500\r\n');
    await flash;
    const r = await ct.sleep(0);
    r.digits.should.equal('5');
    await ct.clear();
    (await ct.sleep(0)).digits.should.equal('');
  });

  it('maps the hook flash "&" in dial to SIP INFO Signal=16 during a call', async function () {
    const far = await caller({ user: 'far' });
    far.autoAnswer = { delayMs: 0 };
    env = await startServer({ trunk: `sip:127.0.0.1:${far.address().port}` });
    const ct = await client(1);
    const incoming = once(far, 'incoming');
    await ct.offHook();
    const pickup = once(ct, 'pickup');
    await ct.dial('42');
    const inc = await incoming;
    await pickup;
    const info = once(inc, 'info');
    (await ct.dial('&')).status.should.equal('OK');
    const got = await info;
    got.body.should.match(/Signal=16/);
  });
});
