'use strict';
const should = require('should');
const core = require('../dist/core');

const { encodeRequest, encodeReply, parseLine, LineSplitter, escapeText, unescapeText, COMMANDS, encodeCommand, decodeArgs, wireArgSpecs } = core;

function split(chunks, max) {
  const lines = [];
  const errors = [];
  const s = new LineSplitter((l) => lines.push(l), (e) => errors.push(e), max);
  for (const c of chunks) s.push(c);
  return { lines, errors, s };
}

describe('codec', function () {
  describe('the seed\'s exact lines', function () {
    it('encodes off_hook on port 4 as the Perl module did (trailing space, argc)', function () {
      encodeRequest('ctanswer', 3, 3, []).should.equal('cmd=ctanswer src=3 dst=3 argc=0 \n');
    });
    it('encodes arguments in order with argc', function () {
      encodeRequest('ctrecord', 0, 0, ['/tmp/prompt.wav', '15', '#', '3']).should.equal('cmd=ctrecord src=0 dst=0 arg1=/tmp/prompt.wav arg2=15 arg3=# arg4=3 argc=4 \n');
    });
    it('parses the reply shown in the seed into its ct_input shape', function () {
      const m = parseLine('rly=ctanswer src=3 dst=3 arg1=OK argc=1');
      m.should.containEql({ kind: 'rly', name: 'ctanswer', rly: 'ctanswer', src: 3, dst: 3, argc: 1, args: ['OK'], raw: 'rly=ctanswer src=3 dst=3 arg1=OK argc=1' });
      should(m.cmd).be.undefined();
    });
    it('parses a request with a trailing space, \\r and NUL', function () {
      const m = parseLine('cmd=ctplay src=0 dst=0 arg1=beep.au argc=1 \r\0');
      m.should.containEql({ kind: 'cmd', cmd: 'ctplay', args: ['beep.au'], argc: 1 });
      m.raw.should.equal('cmd=ctplay src=0 dst=0 arg1=beep.au argc=1');
    });
    it('accepts the manager handle -2', function () {
      parseLine('cmd=serversion src=-2 dst=-2 argc=0').dst.should.equal(-2);
    });
  });

  describe('round trips for every catalog command', function () {
    const sample = { seconds: 5, count: 3, port: 2, tone: 'busy', dial: '1,2&#', keys: '#*', file: '/tmp/a b=c%d.wav', text: 'name_1', flag: true };
    for (const cmd of COMMANDS) {
      it(`${cmd.event} (${cmd.wire})`, function () {
        const values = cmd.args.map((a) => sample[a.type]);
        const enc = encodeCommand(cmd, values, 1);
        const line = encodeRequest(cmd.wire, 1, enc.dst, enc.args);
        line.endsWith(' \n').should.be.true();
        line.split('\n').length.should.equal(2);
        const m = parseLine(line.slice(0, -1));
        m.cmd.should.equal(cmd.wire);
        m.args.should.eql(enc.args);
        m.argc.should.equal(enc.args.length);
        const decoded = decodeArgs(cmd, m.args);
        const expected = wireArgSpecs(cmd).map((a) => String(a.type === 'flag' ? 'ignore_dtmf' : a.type === 'dial' || a.type === 'keys' ? sample[a.type].toUpperCase() : sample[a.type]));
        decoded.should.eql(expected);
        if (cmd.addressing === 'target' || cmd.addressing === 'server-or-target') enc.dst.should.equal(1);
        else if (cmd.addressing === 'server') enc.dst.should.equal(-2);
        else enc.dst.should.equal(1);
      });
    }
  });

  describe('values that cannot travel', function () {
    for (const [what, v] of [['a space', 'a b'], ['a newline', 'a\nb'], ['a NUL', 'a\0b'], ['an "="', 'a=b'], ['a carriage return', 'a\rb']]) {
      it(`refuses ${what} with a clear error`, function () {
        (() => encodeRequest('ctsetscript', 0, 0, [v])).should.throw(new RegExp(`contains ${what.replace(/"/g, '"')}`));
        (() => encodeRequest('ctsetscript', 0, 0, [v])).should.throw({ code: 'EINVAL' });
      });
    }
    it('cannot smuggle a second command through a value', function () {
      (() => encodeRequest('ctsetscript', 0, 0, ['x\ncmd=shutdown src=-2 dst=-2 argc=0'])).should.throw(/newline/);
      (() => core.encodeCommand(core.getCommand('set_script_name'), ['a b'], 0)).should.throw(/set_script_name \(name\)/);
    });
    it('refuses bad command names', function () {
      (() => encodeRequest('bad name', 0, 0)).should.throw(/bad command name/);
    });
  });

  describe('the file-name escape', function () {
    const names = ['/srv/prompts/hello world.wav', '100%.au', 'a=b.wav', 'tab\there', 'x\ny', 'nul\0byte', 'plain.au', 'ünïcødé €.wav', '%20literal'];
    for (const n of names) {
      it(`round-trips ${JSON.stringify(n)}`, function () {
        const e = escapeText(n);
        e.should.not.match(/[ =\t\r\n\0]/);
        unescapeText(e).should.equal(n);
        const line = encodeRequest('ctplay', 0, 0, [e]);
        unescapeText(parseLine(line.trim()).args[0]).should.equal(n);
      });
    }
    it('documents the escape as %XX', function () {
      escapeText('a b%c=d').should.equal('a%20b%25c%3Dd');
    });
    it('rejects a bad escape on decode', function () {
      (() => unescapeText('50%')).should.throw(/two hex digits/);
      (() => unescapeText('%zz')).should.throw(/two hex digits/);
    });
  });

  describe('malformed input', function () {
    const bad = [
      ['', /empty line/],
      ['hello', /not key=value/],
      ['foo=bar src=0 dst=0', /must start with cmd= or rly=/],
      ['cmd=ctanswer dst=0 argc=0', /missing src=/],
      ['cmd=ctanswer src=0 argc=0', /missing dst=/],
      ['cmd=ctanswer src=x dst=0', /src must be an integer/],
      ['cmd=ctplay src=0 dst=0 arg1=a argc=2', /argc=2 but 1 argument/],
      ['cmd=ctplay src=0 dst=0 arg2=a argc=2', /arg1 is missing/],
      ['cmd=ctplay src=0 dst=0 arg1=a arg1=b argc=2', /arg1 given twice/],
      ['cmd=ctplay  src=0 dst=0', /empty token/],
      ['cmd=ctplay src=0 dst=0 foo=1', /unknown field "foo"/],
      ['cmd=ctplay src=0 dst=0 argc=x', /argc must be a count/],
      ['cmd=a/b src=0 dst=0', /bad name/],
    ];
    for (const [line, re] of bad) {
      it(`rejects ${JSON.stringify(line)}`, function () {
        (() => parseLine(line)).should.throw(re);
        (() => parseLine(line)).should.throw({ code: 'EPROTO' });
      });
    }
    it('keeps the first "=" as the separator (values may not hold one, keys never do)', function () {
      (() => parseLine('cmd=ctplay src=0 dst=0 arg1=a=b argc=1')).should.not.throw();
      parseLine('cmd=ctplay src=0 dst=0 arg1=a=b argc=1').args[0].should.equal('a=b');
    });
    it('omitted argc is counted', function () {
      parseLine('rly=dtmf src=0 dst=0 arg1=5').argc.should.equal(1);
    });
  });

  describe('LineSplitter', function () {
    it('splits \\n and \\r\\n, strips NULs and trailing spaces, skips empty lines', function () {
      const { lines } = split(['a=1 \nb=2\r\n\0c=3\0\n\n  \n']);
      lines.should.eql(['a=1', 'b=2', 'c=3']);
    });
    it('joins a line split across chunks, byte by byte', function () {
      const text = 'rly=ctplay src=0 dst=0 arg1=OK argc=1\n';
      const { lines } = split(Buffer.from(text).toJSON().data.map((b) => Buffer.from([b])));
      lines.should.eql([text.trim()]);
    });
    it('joins a multi-byte UTF-8 character split across chunks', function () {
      const buf = Buffer.from('rly=x src=0 dst=0 arg1=é€ argc=1\n');
      const i = buf.indexOf(0xe2) + 1;
      const { lines } = split([buf.subarray(0, i), buf.subarray(i)]);
      lines[0].should.endWith('arg1=é€ argc=1');
    });
    it('reports a line over 8 KiB and carries on with the next line', function () {
      const long = 'x'.repeat(9000);
      const { lines, errors } = split([long.slice(0, 5000), long.slice(5000) + '\nrly=ok src=0 dst=0\n']);
      errors.length.should.equal(1);
      errors[0].code.should.equal('ELINETOOLONG');
      errors[0].message.should.match(/longer than 8192 bytes/);
      errors[0].head.should.equal('x'.repeat(80)); // the start of the line, to tell which reply it was
      lines.should.eql(['rly=ok src=0 dst=0']);
    });
    it('holds an unfinished line until its newline', function () {
      const { lines, s } = split(['rly=a src=0 dst=0']);
      lines.length.should.equal(0);
      s.pending.should.equal(17);
      s.push('\n');
      lines.length.should.equal(1);
    });
  });

  describe('encodeReply', function () {
    it('has no trailing space by default', function () {
      encodeReply('ring', 0, 0, ['ring', '1']).should.equal('rly=ring src=0 dst=0 arg1=ring arg2=1 argc=2\n');
    });
  });
});
