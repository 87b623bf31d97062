'use strict';
require('should');
const fs = require('fs');
const path = require('path');
const core = require('../dist/core');

const { COMMANDS, getCommand, encodeArgs, encodeCommand, interpretReply, TONE_TYPES } = core;

describe('command catalog', function () {
  it('covers every command of the seed\'s SENDING EVENTS', function () {
    const seed = fs.readFileSync(path.join(__dirname, '..', '..', 'shared', 'seed-POE-Component-Telephony-CTPort.txt'), 'utf8');
    const section = seed.slice(seed.indexOf('SENDING EVENTS'), seed.indexOf('TODO'));
    const clientOnly = new Set(['connect', 'disconnect', 'default_ext', 'ignore_dtmf']);
    const names = [...section.matchAll(/^([a-z_]+)(?: =>.*)?$/gm)].map((m) => m[1]).filter((n) => !clientOnly.has(n));
    names.length.should.be.above(35);
    for (const n of new Set(names)) {
      (() => getCommand(n)).should.not.throw(`${n} is missing from the catalog`);
    }
  });
  it('has unique event and wire names', function () {
    new Set(COMMANDS.map((c) => c.event)).size.should.equal(COMMANDS.length);
    new Set(COMMANDS.map((c) => c.wire)).size.should.equal(COMMANDS.length);
  });
  it('fixes the seed\'s wrong wire names for send_cid and port_reset', function () {
    getCommand('send_cid').wire.should.equal('ctsendcid');
    getCommand('port_reset').wire.should.equal('portreset');
  });
  it('finds commands by wire name too', function () {
    getCommand('ctanswer').event.should.equal('off_hook');
    (() => getCommand('nope')).should.throw(/unknown command "nope"/);
  });

  describe('validation names what was wrong', function () {
    const play_tone = getCommand('play_tone');
    it('tone types', function () {
      for (const t of TONE_TYPES) encodeArgs(play_tone, [t]).should.eql([t]);
      (() => encodeArgs(play_tone, ['beep'])).should.throw(/play_tone \(type\): must be one of busy, dialx, dial, ringback, got "beep"/);
    });
    it('seconds are digits only', function () {
      const sleep = getCommand('sleep');
      encodeArgs(sleep, [5]).should.eql(['5']);
      encodeArgs(sleep, ['007']).should.eql(['7']);
      for (const v of ['1.5', '-1', 'ten', '1e3', '']) (() => encodeArgs(sleep, [v])).should.throw(/sleep \(seconds\): must be whole seconds/);
    });
    it('dial characters', function () {
      const dial = getCommand('dial');
      encodeArgs(dial, ['0-9'.replace('-', '')]).should.eql(['09']);
      encodeArgs(dial, ['&,1234*#abcd']).should.eql(['&,1234*#ABCD']);
      (() => encodeArgs(dial, ['555-1234'])).should.throw(/dial \(number\): may hold only 0-9 \* # A-D , and &/);
      (() => encodeArgs(dial, ['12E'])).should.throw(/may hold only/);
    });
    it('port ranges', function () {
      const bridge = getCommand('bridge');
      (() => encodeArgs(bridge, [0])).should.throw(/bridge \(port\): must be a port number from 1/);
      (() => encodeArgs(bridge, [5000])).should.throw(/must be a port number/);
      encodeArgs(bridge, [3]).should.eql(['3']);
    });
    it('required and optional arguments', function () {
      (() => encodeArgs(getCommand('sleep'), [])).should.throw(/sleep \(seconds\): is required/);
      (() => encodeArgs(getCommand('clear'), [1])).should.throw(/takes at most 0 argument/);
      encodeArgs(getCommand('record'), ['f.wav', 10]).should.eql(['f.wav', '10']);
      encodeArgs(getCommand('record'), ['f.wav', 10, undefined, 3]).should.eql(['f.wav', '10', '', '3']);
      encodeArgs(getCommand('wait_for_ring'), []).should.eql([]);
      encodeArgs(getCommand('wait_for_ring'), [undefined, 5]).should.eql(['2', '5']);
    });
    it('stop digits', function () {
      (() => encodeArgs(getCommand('record'), ['f.wav', 10, 'x'])).should.throw(/record \(digits\): may hold only the DTMF keys/);
    });
  });

  describe('addressing', function () {
    it('puts the target port of send_event, port_reset and port_status in dst', function () {
      encodeCommand(getCommand('send_event'), [3, 'HELLO'], 0).should.eql({ dst: 2, args: ['HELLO'] });
      encodeCommand(getCommand('port_reset'), [2], 0).should.eql({ dst: 1, args: [] });
      encodeCommand(getCommand('port_status'), [], 0).should.eql({ dst: -2, args: [] });
      encodeCommand(getCommand('ser_version'), [], 0).should.eql({ dst: -2, args: [] });
    });
  });

  describe('reply shapes', function () {
    it('digits and event', function () {
      interpretReply(getCommand('play'), ['EVENT', '12', 'dtmf'], 'raw').should.containEql({ status: 'EVENT', digits: '12', event: 'dtmf' });
    });
    it('errors carry their decoded reason', function () {
      interpretReply(getCommand('play'), ['ERROR', 'media%20not%20available'], 'raw').should.containEql({ status: 'ERROR', reason: 'media not available' });
    });
    it('caller id', function () {
      interpretReply(getCommand('read_cid'), ['OK', '5551234', '', 'Jane%20Doe'], 'raw').cid.should.eql({ number: '5551234', name: 'Jane Doe' });
    });
    it('port status list', function () {
      interpretReply(getCommand('port_status'), ['OK', '1:idle:on:', '2:connected:off:ivr'], 'r').ports.should.eql([
        { port: 1, state: 'idle', hook: 'on', script: '' },
        { port: 2, state: 'connected', hook: 'off', script: 'ivr' },
      ]);
    });
  });
});
