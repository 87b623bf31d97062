'use strict';
// MediaClock: one timer for every stream, the 20 ms period cut into slots with the clients spread
// over them, poll() from the receive path, catch-up and re-basing after a stall.
const should = require('should');
const { MediaClock, DEFAULT_SLOTS } = require('../dist/server/media/clock');

/** Blocks this thread for `ms` (a sleep, not a busy wait): stands in for a busy event loop. */
function blockFor(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** A client that logs what the clock asks of it. */
function client(log = []) {
  return {
    log,
    rx: [],
    tx: [],
    rxTick() { this.log.push('rx'); this.rx.push(performance.now()); },
    txTick() { this.log.push('tx'); this.tx.push(performance.now()); },
  };
}

describe('MediaClock', function () {
  const clocks = [];
  const make = (opts) => { const c = new MediaClock(opts); clocks.push(c); return c; };
  afterEach(() => { for (const c of clocks.splice(0)) c.stop(); });

  it('cuts the period into 10 slots by default and rejects a bad slot count by name', function () {
    DEFAULT_SLOTS.should.equal(10);
    make().slots.should.equal(10);
    (() => new MediaClock({ slots: 0 })).should.throw(RangeError, { message: /slots must be an integer from 1 to 20, not 0/ });
    (() => new MediaClock({ slots: 2.5 })).should.throw(/not 2\.5/);
  });

  it('spreads clients evenly over the slots and fills the emptiest slot first', function () {
    const clock = make();
    const cs = Array.from({ length: 25 }, () => client());
    cs.forEach((c) => clock.add(c));
    const sizes = new Array(10).fill(0);
    for (const c of cs) sizes[clock.slotOf(c)]++;
    Math.max(...sizes).should.equal(3);
    Math.min(...sizes).should.equal(2);
    // Empty slot 3 entirely: the next two clients go there.
    const in3 = cs.filter((c) => clock.slotOf(c) === 3);
    in3.forEach((c) => clock.remove(c));
    should(clock.slotOf(in3[0])).be.undefined();
    const a = client();
    const b = client();
    clock.add(a);
    clock.add(b);
    clock.slotOf(a).should.equal(3);
    clock.slotOf(b).should.equal(3);
    clock.size.should.equal(25 - in3.length + 2);
  });

  it('runs each client once per 20 ms, receive side before send side, on its own slot phase', async function () {
    const clock = make();
    const order = [];
    const cs = Array.from({ length: 10 }, () => client(order));
    cs.forEach((c) => clock.add(c));
    await delay(420);
    clock.stop();
    for (const c of cs) {
      c.tx.length.should.be.within(15, 23); // about 21 frames in 420 ms
      c.rx.length.should.equal(c.tx.length);
      for (let i = 0; i < c.tx.length; i++) c.rx[i].should.be.belowOrEqual(c.tx[i]);
      // Mean interval of 20 ms: the schedule is the ideal one, not a timer that drifts.
      ((c.tx[c.tx.length - 1] - c.tx[0]) / (c.tx.length - 1)).should.be.within(18, 22);
    }
    // Different slots tick at different times in the period: client 5 is 10 ms off client 0.
    const phase = (c) => c.tx.map((t) => (((t - cs[0].tx[0]) % 20) + 20) % 20);
    const p5 = phase(cs[5]).slice(2, -2).sort((x, y) => x - y);
    p5[Math.floor(p5.length / 2)].should.be.within(5, 15);
    // Within one slot tick all receive sides run before any send side.
    order.slice(0, 2).should.eql(['rx', 'tx']);
    clock.running.should.be.false();
  });

  it('poll() sends what is due while the event loop is busy, without waiting for the timer', function () {
    const clock = make();
    const c = client();
    clock.add(c);
    blockFor(45); // the timer cannot fire during this
    c.tx.length.should.equal(0);
    clock.poll();
    c.tx.length.should.be.within(2, 4); // frames 1 and 2 (and more if the block overran) caught up at once
    const n = c.tx.length;
    clock.poll(); // nothing more is due
    c.tx.length.should.equal(n);
  });

  it('re-bases instead of bursting after a long stall, and keeps going', async function () {
    const clock = make();
    const c = client();
    clock.add(c);
    await delay(30);
    const before = c.tx.length;
    blockFor(200); // 10 frames behind: more than the catch-up limit
    clock.poll();
    clock.stats.rebases.should.equal(1);
    (c.tx.length - before).should.equal(1); // one frame now, not the ten it is behind
    await delay(100);
    (c.tx.length - before).should.be.within(4, 7);
  });

  it('a client that throws does not stop the clock or the others', async function () {
    const errors = [];
    const clock = make({ onError: (e) => errors.push(e.message) });
    const bad = { rxTick() { throw new Error('bad rx'); }, txTick() { throw new Error('bad tx'); } };
    const good = client();
    clock.add(bad);
    clock.add(good);
    await delay(100);
    good.tx.length.should.be.aboveOrEqual(3);
    errors.should.containEql('bad rx');
    errors.should.containEql('bad tx');
  });

  it('stops its timer when the last client leaves, and starts again on the next one', async function () {
    const clock = make();
    const c = client();
    clock.add(c);
    clock.running.should.be.true();
    clock.remove(c);
    clock.running.should.be.false();
    clock.poll(); // a poll with nothing on the clock does nothing
    c.tx.length.should.equal(0);
    clock.add(c);
    await delay(70);
    c.tx.length.should.be.aboveOrEqual(2);
  });
});
