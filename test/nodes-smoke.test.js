'use strict';
require('should');
const helper = require('node-red-node-test-helper');
const ctportNodes = require('../nodes/ctport.js');
const { SipCaller } = require('../dist/server');
const { once, delay, freeUdpPort } = require('./helpers');
const fs = require('fs');
const os = require('os');
const path = require('path');

helper.init(require.resolve('node-red'));

describe('nodes: a call through a flow (smoke)', function () {
  this.timeout(30000);
  let sip;
  before(function (done) {
    helper.startServer(done);
  });
  after(function (done) {
    helper.stopServer(done);
  });
  afterEach(async function () {
    if (sip) await sip.stop();
    sip = undefined;
    await helper.unload();
  });

  it('ring → answer → play → hang up, with msg.call carried along', async function () {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const sipPort = await freeUdpPort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctnodes-'));
    const flow = [
      { id: 'srv', type: 'ct-server', mode: 'bundled', ports: 2, basePort: base, managerPort: base, sipPort, rtpPorts: '42000-42100', recordDir: dir },
      { id: 'f1', type: 'tab' },
      { id: 'n_ring', z: 'f1', type: 'ct ring', server: 'srv', port: 'any', wires: [['n_answer']] },
      { id: 'n_answer', z: 'f1', type: 'ct hook', server: 'srv', action: 'answer', wires: [['n_play'], []] },
      { id: 'n_play', z: 'f1', type: 'ct play', server: 'srv', files: 'beep', wires: [['n_bye'], []] },
      { id: 'n_bye', z: 'f1', type: 'ct hook', server: 'srv', action: 'hangup', wires: [['out'], []] },
      { id: 'out', z: 'f1', type: 'helper' },
    ];
    await helper.load(ctportNodes, flow);
    const srv = helper.getNode('srv');
    if (srv.controller.state !== 'connected') await once(srv.controller, 'state', 15000, (s) => s === 'connected');
    sip = new SipCaller({ port: 0 });
    await sip.start();
    const out = helper.getNode('out');
    const got = once(out, 'input', 15000);
    const call = sip.call(`sip:1@127.0.0.1:${sipPort}`, { from: '5551234', name: 'Smoke Test' });
    await call.answered;
    const [msg] = await got;
    msg.call.should.containEql({ port: 1, cid: { number: '5551234', name: 'Smoke Test' } });
    msg.payload.should.equal('');
    (await call.ended).by.should.equal('remote');
    call.media.rxFrames.should.be.above(5);
  });
});
