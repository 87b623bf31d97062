'use strict';
// number() and digits(): vocabulary names for spoken numbers, and the bundled vocabulary itself.
const fs = require('fs');
const path = require('path');
require('should');
const { number, digits, MAX_SPOKEN_NUMBER } = require('../dist/core/number');
const { ValidationError } = require('../dist/core/errors');
const { DEFAULT_VOCABULARY_DIR } = require('../dist/core/audio-paths');

describe('number()', function () {
  it('speaks 0 (the Perl module said nothing)', function () {
    number(0).should.eql(['0']);
    number(-0).should.eql(['0']);
    number('0').should.eql(['0']);
    number(0n).should.eql(['0']);
  });

  it('speaks units, teens and tens', function () {
    number(7).should.eql(['7']);
    number(10).should.eql(['10']);
    number(13).should.eql(['13']);
    number(19).should.eql(['19']);
    number(20).should.eql(['20']);
    number(42).should.eql(['40', '2']);
    number(90).should.eql(['90']);
    number(99).should.eql(['90', '9']);
  });

  it('speaks hundreds', function () {
    number(100).should.eql(['1', 'hundred']);
    number(105).should.eql(['1', 'hundred', '5']);
    number(110).should.eql(['1', 'hundred', '10']);
    number(119).should.eql(['1', 'hundred', '19']);
    number(250).should.eql(['2', 'hundred', '50']);
    number(999).should.eql(['9', 'hundred', '90', '9']);
  });

  it('speaks thousands (the Perl module failed above 999)', function () {
    number(1000).should.eql(['1', 'thousand']);
    number(1001).should.eql(['1', 'thousand', '1']);
    number(1100).should.eql(['1', 'thousand', '1', 'hundred']);
    number(2024).should.eql(['2', 'thousand', '20', '4']);
    number(15000).should.eql(['15', 'thousand']);
    number(999999).should.eql(['9', 'hundred', '90', '9', 'thousand', '9', 'hundred', '90', '9']);
  });

  it('speaks millions and billions', function () {
    number(1000000).should.eql(['1', 'million']);
    number(1000001).should.eql(['1', 'million', '1']);
    number(1234567).should.eql(['1', 'million', '2', 'hundred', '30', '4', 'thousand', '5', 'hundred', '60', '7']);
    number(20000300).should.eql(['20', 'million', '3', 'hundred']);
    number(1e9).should.eql(['1', 'billion']);
    number(3000000017).should.eql(['3', 'billion', '17']);
    number(MAX_SPOKEN_NUMBER).should.eql([
      '9', 'hundred', '90', '9', 'billion',
      '9', 'hundred', '90', '9', 'million',
      '9', 'hundred', '90', '9', 'thousand',
      '9', 'hundred', '90', '9',
    ]);
    number(999999999999n).should.eql(number(999999999999));
  });

  it('speaks negatives with "minus" first', function () {
    number(-1).should.eql(['minus', '1']);
    number(-42).should.eql(['minus', '40', '2']);
    number(-1000).should.eql(['minus', '1', 'thousand']);
    number(-MAX_SPOKEN_NUMBER).should.eql(['minus', ...number(MAX_SPOKEN_NUMBER)]);
    number(-5n).should.eql(['minus', '5']);
  });

  it('accepts decimal strings and bigints', function () {
    number('42').should.eql(['40', '2']);
    number(' -7 ').should.eql(['minus', '7']);
    number('+12').should.eql(['12']);
    number('007').should.eql(['7']);
    number(1234567n).should.eql(number(1234567));
  });

  it('throws ValidationError naming the bad value', function () {
    const bad = [
      [1.5, /1\.5 is not an integer/],
      [NaN, /NaN is not a finite number/],
      [Infinity, /Infinity is not a finite number/],
      [1e12, /1000000000000 is too large/],
      [-1e12, /-1000000000000 is too small/],
      [Number.MAX_VALUE, /too large/],
      [1000000000000n, /1000000000000n is too large/],
      ['1e3', /"1e3" is not an integer/],
      ['12.0', /"12\.0" is not an integer/],
      ['', /"" is not an integer/],
      ['abc', /"abc" is not an integer/],
      ['9999999999999', /too large/],
      [null, /got null/],
      [undefined, /got undefined/],
      [{}, /got object/],
    ];
    for (const [v, re] of bad) {
      let err;
      try {
        number(v);
      } catch (e) {
        err = e;
      }
      (err === undefined).should.be.false(`number(${String(v)}) did not throw`);
      err.should.be.instanceOf(ValidationError);
      err.code.should.equal('EINVAL');
      err.message.should.match(re);
    }
  });
});

describe('digits()', function () {
  it('speaks each digit, * as star and # as pound', function () {
    digits('0123456789').should.eql(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    digits('*72#').should.eql(['star', '7', '2', 'pound']);
    digits('').should.eql([]);
    digits('007').should.eql(['0', '0', '7']);
  });

  it('skips the separators of written phone numbers', function () {
    digits('+61 (2) 9999-1234').should.eql(['6', '1', '2', '9', '9', '9', '9', '1', '2', '3', '4']);
    digits('555.1234').should.eql(['5', '5', '5', '1', '2', '3', '4']);
  });

  it('throws ValidationError for other characters and non-strings', function () {
    (() => digits('12A4')).should.throw(ValidationError, { code: 'EINVAL', message: /"12A4" has "A" at position 2/ });
    (() => digits(1234)).should.throw(ValidationError, { message: /expected a string, got 1234/ });
  });
});

describe('bundled vocabulary', function () {
  const files = new Set(fs.readdirSync(DEFAULT_VOCABULARY_DIR));
  const has = (name) => files.has(`${name}.au`);

  it('is where audio-paths looks for it, as .au files, with a README', function () {
    path.basename(DEFAULT_VOCABULARY_DIR).should.equal('vocabulary');
    files.has('README.txt').should.be.true();
    [...files].filter((f) => f.endsWith('.au')).length.should.be.above(80);
  });

  it('has a file for every name number() and digits() return', function () {
    const samples = [];
    for (let i = 0; i <= 1100; i++) samples.push(i);
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let i = 0; i < 500; i++) samples.push(Math.floor(rand() * MAX_SPOKEN_NUMBER), -Math.floor(rand() * 1e7));
    samples.push(MAX_SPOKEN_NUMBER, -MAX_SPOKEN_NUMBER, 1e9, 1e6, 1e3);
    const names = new Set();
    for (const n of samples) for (const name of number(n)) names.add(name);
    for (const name of digits('0123456789*#')) names.add(name);
    const missing = [...names].filter((n) => !has(n));
    missing.should.eql([]);
    names.size.should.equal(28 + 4 + 1 + 2); // 0-19, tens, hundred/thousand/million/billion, minus, star/pound
  });

  it('has the record beep and the common IVR words, each a small 8 kHz mono mu-law .au', function () {
    for (const w of ['beep', 'please', 'press', 'enter', 'thank_you', 'goodbye', 'invalid', 'message', 'extension', 'operator', 'hash']) {
      has(w).should.be.true(`${w}.au missing`);
    }
    let total = 0;
    for (const f of files) {
      if (!f.endsWith('.au')) continue;
      const b = fs.readFileSync(path.join(DEFAULT_VOCABULARY_DIR, f));
      total += b.length;
      b.readUInt32BE(0).should.equal(0x2e736e64, f);
      b.readUInt32BE(12).should.equal(1, `${f}: mu-law`);
      b.readUInt32BE(16).should.equal(8000, f);
      b.readUInt32BE(20).should.equal(1, f);
      b.length.should.be.above(1000, `${f} is (nearly) empty`);
    }
    total.should.be.below(1024 * 1024);
  });
});
