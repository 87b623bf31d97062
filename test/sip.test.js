'use strict';
/* SIP signalling layer: real UDP on 127.0.0.1, ports chosen by the OS. */
const dgram = require('node:dgram');
const should = require('should');
const { SipUA, buildAudioSdp, parseAudioSdp } = require('../dist/server/sip');
const { SipCaller } = require('../dist/server/sip-caller');

const SDP = buildAudioSdp({ address: '127.0.0.1', port: 30000 });

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `pred()` is true (polled), fails after `ms`. */
async function until(pred, ms = 1500, what = 'condition') {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** A bare UDP socket speaking hand-written SIP. */
async function rawPeer() {
  const sock = dgram.createSocket('udp4');
  const received = [];
  sock.on('message', (buf) => received.push(buf.toString('latin1')));
  await new Promise((resolve) => sock.bind(0, '127.0.0.1', resolve));
  return {
    port: sock.address().port,
    received,
    send(text, port) {
      return new Promise((resolve, reject) => sock.send(Buffer.from(text, 'latin1'), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    },
    close() {
      return new Promise((resolve) => sock.close(resolve));
    },
  };
}

function sipMessage(lines, body = '') {
  return lines.join('\r\n') + `\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n` + body;
}

function rawInvite(peerPort, uaPort, { callId, branch, body = SDP }) {
  return sipMessage(
    [
      `INVITE sip:1000@127.0.0.1:${uaPort} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${peerPort};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: "Raw" <sip:raw@127.0.0.1:${peerPort}>;tag=rawtag`,
      `To: <sip:1000@127.0.0.1:${uaPort}>`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:raw@127.0.0.1:${peerPort}>`,
      'Content-Type: application/sdp',
    ],
    body,
  );
}

describe('SIP layer', function () {
  this.timeout(4000);

  describe('sdp', function () {
    it('builds an audio offer with PCMU, PCMA and telephone-event', function () {
      const text = buildAudioSdp({ address: '10.1.2.3', port: 4000, sessionId: 42 });
      text.should.match(/^v=0\r\n/);
      text.should.match(/o=- 42 1 IN IP4 10\.1\.2\.3\r\n/);
      text.should.match(/c=IN IP4 10\.1\.2\.3\r\n/);
      text.should.match(/m=audio 4000 RTP\/AVP 0 8 101\r\n/);
      text.should.match(/a=rtpmap:101 telephone-event\/8000\r\n/);
      text.should.match(/a=fmtp:101 0-16\r\n/);
      text.should.match(/a=ptime:20\r\n/);
      text.should.match(/a=sendrecv\r\n/);
      const p = parseAudioSdp(text);
      p.should.containDeep({ address: '10.1.2.3', port: 4000, payloads: [0, 8, 101], telephoneEvent: 101, direction: 'sendrecv', ptime: 20 });
      p.codecs.should.eql([
        { pt: 0, name: 'PCMU', rate: 8000 },
        { pt: 8, name: 'PCMA', rate: 8000 },
        { pt: 101, name: 'telephone-event', rate: 8000 },
      ]);
    });

    it('parses static payloads without rtpmap and media-level c=', function () {
      const p = parseAudioSdp('v=0\r\no=x 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 8 0\r\nc=IN IP4 2.2.2.2\r\n');
      p.address.should.equal('2.2.2.2');
      p.payloads.should.eql([8, 0]);
      p.codecs.map((c) => c.name).should.eql(['PCMA', 'PCMU']);
      should(p.telephoneEvent).be.undefined();
    });

    it('throws clear errors on bad SDP', function () {
      (() => parseAudioSdp('')).should.throw(/empty/);
      (() => parseAudioSdp('hello')).should.throw(/v=0/);
      (() => parseAudioSdp('v=0\r\no=x 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\n')).should.throw(/no m=audio/);
      (() => parseAudioSdp('v=0\r\no=x 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n')).should.throw(/no c= line/);
      (() => buildAudioSdp({ address: 'example.com', port: 1 })).should.throw(/IPv4/);
    });
  });

  describe('calls between a SipUA and a SipCaller', function () {
    let ua;
    let caller;
    let onInvite;

    beforeEach(async function () {
      ua = new SipUA({ port: 0 });
      onInvite = null;
      ua.on('invite', (call) => onInvite(call));
      await ua.start();
      caller = new SipCaller({ port: 0, name: 'Alice Smith' });
      await caller.start();
    });

    afterEach(async function () {
      await caller.stop();
      await ua.stop();
    });

    it('answers, gets the ACK, and the caller hangs up (remote BYE for the UA)', async function () {
      let inbound;
      onInvite = (call) => {
        inbound = call;
        call.ringing();
        setTimeout(() => call.answer(buildAudioSdp({ address: '127.0.0.1', port: 30002 })), 20);
      };
      const call = caller.call(ua.uri('1000'), { from: '5551234', headers: { 'X-Test': 'yes' } });
      const sdp = await call.answered;
      sdp.port.should.equal(30002);
      call.state.should.equal('confirmed');
      call.status.should.equal(200);
      inbound.from.should.eql({ number: '5551234', name: 'Alice Smith', uri: inbound.from.uri });
      inbound.to.user.should.equal('1000');
      inbound.header('X-Test').should.equal('yes');
      // the caller offers its real RTP socket (SipCaller has media on by default)
      inbound.remoteSdp.port.should.equal(call.media.stream.socket.address().port);
      if (inbound.state !== 'confirmed') await once(inbound, 'confirmed');
      const uaEnded = once(inbound, 'ended');
      const uaBye = once(inbound, 'bye');
      call.hangup();
      await uaBye;
      (await uaEnded).should.eql(['remote bye']);
      inbound.endedBy.should.equal('remote');
      (await call.ended).should.eql({ by: 'local', reason: 'local hangup' });
      await until(() => call.count('got 200') >= 2, 1000, '200 to BYE');
      const whats = call.history.map((h) => h.what);
      for (const w of ['sent INVITE', 'got 100', 'got 180', 'got 200', 'sent ACK', 'answered', 'sent BYE', 'ended']) whats.should.containEql(w);
      whats.indexOf('sent ACK').should.be.above(whats.indexOf('got 200'));
    });

    it('UA hangs up: the caller gets BYE and answers 200', async function () {
      let inbound;
      onInvite = (call) => {
        inbound = call;
        call.answer(SDP);
      };
      const call = caller.call(ua.uri('1000'));
      await call.answered;
      if (inbound.state !== 'confirmed') await once(inbound, 'confirmed');
      const uaEnded = once(inbound, 'ended');
      inbound.hangup();
      (await call.ended).should.eql({ by: 'remote', reason: 'remote bye' });
      (await uaEnded).should.eql(['local hangup']);
      inbound.endedBy.should.equal('local');
      await until(() => call.history.some((h) => h.what === 'sent 200' && h.detail.cseq === 'BYE'), 1000, 'sent 200 to BYE');
      call.history.map((h) => h.what).should.containEql('got BYE');
      caller.ua.calls().length.should.equal(0);
    });

    it('CANCEL before answer: 487 for the caller, cancel + ended on both sides', async function () {
      let inbound;
      onInvite = (call) => {
        inbound = call;
        call.ringing();
      };
      const call = caller.call(ua.uri('1000'));
      await once(call.call, 'progress').then(async ([status]) => {
        if (status === 100) await once(call.call, 'progress');
      });
      const uaCancel = once(inbound, 'cancel');
      const uaEnded = once(inbound, 'ended');
      call.cancel().should.be.true();
      await uaCancel;
      (await uaEnded).should.eql(['remote cancel']);
      const err = await call.answered.then(
        () => null,
        (e) => e,
      );
      err.status.should.equal(487);
      (await call.ended).should.eql({ by: 'local', reason: 'local cancel' });
      call.status.should.equal(487);
      inbound.status.should.equal(487);
      await until(() => call.count('sent ACK') >= 1, 1000, 'ACK of the 487');
      const whats = call.history.map((h) => h.what);
      for (const w of ['sent CANCEL', 'got 487', 'sent ACK']) whats.should.containEql(w);
      ua.calls().length.should.equal(0);
    });

    it('reject 486: the caller fails with 486', async function () {
      let inbound;
      onInvite = (call) => {
        inbound = call;
        call.reject(486);
      };
      const call = caller.call(ua.uri('1000'));
      const failed = once(call.call, 'failed');
      await call.answered.should.be.rejectedWith({ status: 486 });
      (await failed).should.eql([486, 'Busy Here']);
      (await call.ended).should.eql({ by: 'remote', reason: 'failed' });
      inbound.state.should.equal('ended');
      inbound.endReason.should.equal('rejected');
    });

    it('no invite listener: 480', async function () {
      ua.removeAllListeners('invite');
      const call = caller.call(ua.uri('1000'));
      await call.answered.should.be.rejectedWith({ status: 480 });
    });

    it('INFO in both directions inside the dialog', async function () {
      let inbound;
      onInvite = (call) => {
        inbound = call;
        call.answer(SDP);
      };
      const call = caller.call(ua.uri('1000'));
      await call.answered;
      if (inbound.state !== 'confirmed') await once(inbound, 'confirmed');
      const gotInfo = once(inbound, 'info');
      (await call.info('application/dtmf-relay', 'Signal=5\r\nDuration=160\r\n')).should.equal(200);
      (await gotInfo)[0].should.eql({ contentType: 'application/dtmf-relay', body: 'Signal=5\r\nDuration=160\r\n' });
      const callerInfo = once(call.call, 'info');
      (await inbound.info('text/plain', 'héllo')).should.equal(200);
      (await callerInfo)[0].should.eql({ contentType: 'text/plain', body: 'héllo' });
      call.hangup();
      await call.ended;
    });

    it('info() before the call is established rejects', async function () {
      onInvite = (call) => call.ringing();
      const call = caller.call(ua.uri('1000'));
      await call.call.info('text/plain', 'x').should.be.rejectedWith(/not established/);
      call.cancel();
      await call.ended;
    });

    it('UA stop() ends calls with BYE (the far end sees a remote BYE)', async function () {
      let inbound;
      onInvite = (call) => {
        inbound = call;
        call.answer(SDP);
      };
      const call = caller.call(ua.uri('1000'));
      await call.answered;
      const uaEnded = once(inbound, 'ended');
      await ua.stop();
      (await uaEnded).should.eql(['ua stopped']);
      (await call.ended).should.eql({ by: 'remote', reason: 'remote bye' });
    });
  });

  describe('two SipCallers', function () {
    let a;
    let b;
    afterEach(async function () {
      await Promise.all([a && a.stop(), b && b.stop()]);
    });

    it('auto-answer after a delay; the caller hangs up', async function () {
      a = new SipCaller({ user: 'alice' });
      b = new SipCaller({ user: 'bob', autoAnswer: { delayMs: 50 } });
      await a.start();
      await b.start();
      const incoming = once(b, 'incoming');
      const call = a.call(b.uri());
      const [inbound] = await incoming;
      inbound.from.number.should.equal('alice');
      await call.answered;
      call.hangup();
      (await call.ended).reason.should.equal('local hangup');
      await until(() => b.history.some((h) => h.what === 'ended'), 1000, 'b ended');
      b.history.map((h) => h.what).should.containEql('got BYE');
    });

    it('auto-reject', async function () {
      a = new SipCaller({ user: 'alice' });
      b = new SipCaller({ user: 'bob', autoReject: 603 });
      await a.start();
      await b.start();
      const call = a.call(b.uri());
      await call.answered.should.be.rejectedWith({ status: 603 });
    });
  });

  describe('2xx retransmission without ACK', function () {
    let callee;
    let raw;
    afterEach(async function () {
      if (callee) await callee.stop();
      if (raw) await raw.close();
    });

    it('retransmits the 200 at T1, 2*T1 until the ACK comes', async function () {
      callee = new SipCaller({ user: 'callee', autoAnswer: { delayMs: 0 } });
      const { port } = await callee.start();
      raw = await rawPeer();
      const confirmed = new Promise((resolve) => callee.once('incoming', (call) => call.once('confirmed', resolve)));
      await raw.send(rawInvite(raw.port, port, { callId: 'noack-1', branch: 'z9hG4bKnoack1' }), port);
      const sent200 = () => callee.history.filter((h) => h.what === 'sent 200' && h.detail.cseq === 'INVITE');
      const got200 = () => raw.received.filter((m) => m.startsWith('SIP/2.0 200'));
      await until(() => sent200().length >= 3 && got200().length >= 3, 1900, 'two retransmissions');
      const [t0, t1, t2] = sent200().map((h) => h.t);
      (t1 - t0).should.be.within(400, 900);
      (t2 - t1).should.be.within(850, 1400); // doubled (T1, 2*T1, ... capped at T2)
      // Now ACK it (To tag from the 200): the UAS stops retransmitting.
      const toLine = got200()[0].split('\r\n').find((l) => l.startsWith('To:'));
      const ack = sipMessage([
        `ACK sip:callee@127.0.0.1:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKnoackack;rport`,
        'Max-Forwards: 70',
        `From: "Raw" <sip:raw@127.0.0.1:${raw.port}>;tag=rawtag`,
        toLine,
        'Call-ID: noack-1',
        'CSeq: 1 ACK',
      ]);
      await raw.send(ack, port);
      await confirmed;
      callee.ua.calls()[0].state.should.equal('confirmed');
    });

    it('absorbs a retransmitted INVITE (one call, the provisional is resent)', async function () {
      callee = new SipCaller({ user: 'callee' });
      const { port } = await callee.start();
      let invites = 0;
      callee.on('incoming', (call) => {
        invites++;
        call.ringing();
      });
      raw = await rawPeer();
      const invite = rawInvite(raw.port, port, { callId: 'retx-1', branch: 'z9hG4bKretx1' });
      await raw.send(invite, port);
      await until(() => raw.received.some((m) => m.startsWith('SIP/2.0 180')), 1000, '180');
      await raw.send(invite, port);
      await until(() => raw.received.filter((m) => m.startsWith('SIP/2.0 180')).length >= 2, 1000, 'resent 180');
      invites.should.equal(1);
    });
  });

  describe('UAC core against a hand-written UAS', function () {
    let caller;
    let raw;
    afterEach(async function () {
      if (caller) await caller.stop();
      if (raw) await raw.close();
    });

    it('ACKs the 200 and every retransmission of it, then BYEs via the Contact', async function () {
      caller = new SipCaller();
      await caller.start();
      raw = await rawPeer();
      const call = caller.call(`sip:far@127.0.0.1:${raw.port}`);
      await until(() => raw.received.some((m) => m.startsWith('INVITE ')), 1000, 'INVITE');
      const invite = raw.received.find((m) => m.startsWith('INVITE '));
      const header = (name) => invite.split('\r\n').find((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'));
      const ok = sipMessage(
        [
          'SIP/2.0 200 OK',
          header('Via'),
          header('From'),
          `${header('To')};tag=uas1`,
          header('Call-ID'),
          header('CSeq'),
          `Contact: <sip:far@127.0.0.1:${raw.port}>`,
          'Content-Type: application/sdp',
        ],
        SDP,
      );
      const callerPort = caller.address().port;
      await raw.send(ok, callerPort);
      (await call.answered).port.should.equal(30000);
      await raw.send(ok, callerPort); // as if our ACK had been lost
      await until(() => raw.received.filter((m) => m.startsWith('ACK ')).length >= 2, 1000, 'two ACKs');
      const acks = raw.received.filter((m) => m.startsWith('ACK '));
      acks[0].should.startWith(`ACK sip:far@127.0.0.1:${raw.port} SIP/2.0`);
      acks[0].should.match(/\r\nTo: +<sip:far@127\.0\.0\.1:\d+>;tag=uas1\r\n/);
      acks[0].should.match(/\r\nCSeq: \d+ ACK\r\n/);
      call.count('got 200').should.equal(2);
      call.count('sent ACK').should.equal(2);
      call.hangup();
      await until(() => raw.received.some((m) => m.startsWith('BYE ')), 1000, 'BYE');
      raw.received.find((m) => m.startsWith('BYE ')).should.match(/\r\nTo: +<sip:far@127\.0\.0\.1:\d+>;tag=uas1\r\n/);
    });
  });

  describe('registrar', function () {
    let ua;
    let phone;
    const events = [];
    beforeEach(async function () {
      events.length = 0;
      ua = new SipUA({ port: 0, auth: { bob: 'secret' }, realm: 'test' });
      ua.on('registered', (user, contact, expires) => events.push(['registered', user, contact, expires]));
      ua.on('unregistered', (user, contact) => events.push(['unregistered', user, contact]));
      await ua.start();
      phone = new SipCaller({ user: 'alice', autoAnswer: { delayMs: 0 } });
      await phone.start();
    });
    afterEach(async function () {
      await phone.stop();
      await ua.stop();
    });

    it('registers without auth, looks up, calls the binding, unregisters', async function () {
      (await phone.register(ua.uri(), { user: 'alice', expires: 7200 })).should.equal(200);
      const b = ua.lookup('alice');
      b.uri.should.equal(phone.uri('alice'));
      b.expires.should.be.within(3590, 3600); // capped
      events.should.eql([['registered', 'alice', phone.uri('alice'), 3600]]);
      should(ua.lookup('nobody')).be.undefined();
      // The registrar side calls the registered phone.
      const out = ua.invite(b.uri, { sdp: SDP });
      await once(out, 'answered');
      const outEnded = once(out, 'ended');
      out.hangup();
      (await outEnded).should.eql(['local hangup']);
      (await phone.register(ua.uri(), { user: 'alice', expires: 0 })).should.equal(200);
      should(ua.lookup('alice')).be.undefined();
      events[1].should.eql(['unregistered', 'alice', phone.uri('alice')]);
    });

    it('requires digest auth for users with a password', async function () {
      (await phone.register(ua.uri(), { user: 'bob' })).should.equal(401);
      should(ua.lookup('bob')).be.undefined();
      (await phone.register(ua.uri(), { user: 'bob', password: 'wrong' })).should.equal(403);
      should(ua.lookup('bob')).be.undefined();
      (await phone.register(ua.uri(), { user: 'bob', password: 'secret', expires: 60 })).should.equal(200);
      ua.lookup('bob').expires.should.be.within(58, 60);
      const regs = phone.history.filter((h) => h.what === 'got 401').length;
      regs.should.equal(3); // each attempt was challenged once
    });
  });

  describe('out-of-dialog requests and robustness', function () {
    let ua;
    let caller;
    let raw;
    beforeEach(async function () {
      ua = new SipUA({ port: 0 });
      await ua.start();
      caller = new SipCaller();
      await caller.start();
    });
    afterEach(async function () {
      await caller.stop();
      await ua.stop();
      if (raw) await raw.close();
      raw = null;
    });

    it('OPTIONS gets 200 with Allow', async function () {
      const rs = await caller.options(ua.uri());
      rs.status.should.equal(200);
      rs.headers.allow.should.match(/INVITE/);
      rs.headers.allow.should.match(/REGISTER/);
    });

    it('405 for unknown methods, 481 for requests outside any dialog', async function () {
      (await caller.ua.request('SUBSCRIBE', ua.uri())).status.should.equal(405);
      (await caller.ua.request('BYE', ua.uri())).status.should.equal(481);
      (await caller.ua.request('INFO', ua.uri(), { headers: { 'X-A': '1' } })).status.should.equal(481);
    });

    it('481 for an in-dialog request to an unknown dialog', async function () {
      raw = await rawPeer();
      const port = ua.address().port;
      await raw.send(
        sipMessage([
          `BYE sip:ctserver@127.0.0.1:${port} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKbye1;rport`,
          'Max-Forwards: 70',
          `From: <sip:raw@127.0.0.1>;tag=a`,
          `To: <sip:ctserver@127.0.0.1>;tag=nosuchdialog`,
          'Call-ID: nothing-here',
          'CSeq: 2 BYE',
        ]),
        port,
      );
      await until(() => raw.received.length > 0, 1000, 'response');
      raw.received[0].should.startWith('SIP/2.0 481');
      raw.received[0].should.match(/received=127\.0\.0\.1/);
      raw.received[0].should.match(new RegExp(`rport=${raw.port}`));
    });

    it('ignores malformed datagrams and keeps working', async function () {
      const logs = [];
      await ua.stop();
      ua = new SipUA({ port: 0, log: (l) => logs.push(l) });
      await ua.start();
      raw = await rawPeer();
      const port = ua.address().port;
      await raw.send('\x00\x01garbage\xff\r\n\r\n', port);
      await raw.send('INVITE sip:x@y SIP/2.0\r\nVia: nonsense\r\n\r\n', port);
      await raw.send('SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n', port);
      await raw.send('\r\n\r\n', port); // keep-alive
      await raw.send(
        sipMessage([
          `OPTIONS sip:ctserver@127.0.0.1:${port} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKmal1`,
          'From: <sip:raw@127.0.0.1>;tag=a',
          'To: <sip:ctserver@127.0.0.1>',
          'Call-ID: cseq-mismatch',
          'CSeq: 1 INVITE',
        ]),
        port,
      );
      await until(() => logs.filter((l) => /malformed/.test(l)).length >= 4, 1000, 'malformed logs');
      raw.received.length.should.equal(0);
      (await caller.options(ua.uri())).status.should.equal(200);
    });

    it('rejects a bad SDP offer with 488 and a non-SDP body with 415', async function () {
      raw = await rawPeer();
      const port = ua.address().port;
      ua.on('invite', () => {
        throw new Error('must not be called');
      });
      await raw.send(rawInvite(raw.port, port, { callId: 'badsdp', branch: 'z9hG4bKbadsdp', body: 'v=0\r\n' }), port);
      await until(() => raw.received.some((m) => m.startsWith('SIP/2.0 488')), 1000, '488');
      const notSdp = rawInvite(raw.port, port, { callId: 'notsdp', branch: 'z9hG4bKnotsdp', body: 'hello' }).replace('application/sdp', 'text/plain');
      await raw.send(notSdp, port);
      await until(() => raw.received.some((m) => m.startsWith('SIP/2.0 415')), 1000, '415');
      raw.received.find((m) => m.startsWith('SIP/2.0 415')).should.match(/\r\nAccept: application\/sdp\r\n/);
    });

    it('binding a taken port rejects with a clear message', async function () {
      const port = ua.address().port;
      const other = new SipUA({ port });
      await other.start().should.be.rejectedWith({ message: `SIP UDP 127.0.0.1:${port}: address already in use`, code: 'EADDRINUSE' });
      await other.stop();
    });

    it('calling a stopped UA throws', async function () {
      const other = new SipUA({ port: 0 });
      (() => other.invite('sip:x@127.0.0.1', { sdp: SDP })).should.throw(/not running/);
      (() => new SipUA({ host: '::1' })).should.throw(/IPv4/);
    });
  });
});
