'use strict';
// Memory of the bundled ctserver process (VmRSS from /proc/<pid>/status, KiB):
//  - per idle port: ctserver --ports 4 vs --ports 256, each idle with no client and with a CtPort
//    connected to every port: (RSS256 - RSS4) / 252, the median of --reps runs;
//  - per ringing call: ctserver --ports 128, nobody answering, SipCaller (in this process) places
//    100 calls that stay ringing: (RSS with 100 ringing - RSS idle) / 100.
//   node bench/memory.js [--reps 3] [--settle 1500]
// RSS moves with V8's heap growth and GC timing, so each reading is the median of samples taken
// over the settle time after the process went quiet.
const { CtPort } = require('../dist/core');
const { SipCaller } = require('../dist/server');
const L = require('./lib');

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : def; };
const REPS = opt('reps', 3);
const SETTLE_MS = opt('settle', 1500);
const SMALL = 4;
const LARGE = 256;
const RING_PORTS = 128;
const CALLS = 100;

const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };

/** Median VmRSS over the settle time (samples every 100 ms), after a short quiet period. */
async function settledRss(pid) {
  await L.delay(300);
  const samples = [];
  const n = Math.max(3, Math.round(SETTLE_MS / 100));
  for (let i = 0; i < n; i++) {
    samples.push(L.rssKiB(pid).rss);
    await L.delay(100);
  }
  return median(samples);
}

async function idleReading(ports) {
  const srv = await L.startCtServer({ ports });
  const bare = await settledRss(srv.pid);
  const lines = [];
  for (let n = 1; n <= ports; n++) lines.push(new CtPort({ port: n, basePort: srv.basePort, reconnect: false }));
  await Promise.all(lines.map((ct) => ct.connect()));
  // One command on every port so each session has done real work once.
  await Promise.all(lines.map((ct) => ct.clear()));
  const connected = await settledRss(srv.pid);
  await Promise.all(lines.map((ct) => ct.disconnect()));
  await L.stopCtServer(srv);
  return { bare, connected };
}

async function ringingReading() {
  const srv = await L.startCtServer({ ports: RING_PORTS });
  const caller = new SipCaller({ host: '127.0.0.1', port: 0 });
  const stopCaller = L.onCleanup(() => caller.stop());
  await caller.start();
  const place = async (count) => {
    const calls = [];
    for (let n = 1; n <= count; n++) calls.push(caller.call(`sip:${n}@127.0.0.1:${srv.sipPort}`));
    // wait until every call got its 180 (state 'proceeding'), at most 10 s
    const t0 = Date.now();
    while (calls.some((c) => c.state === 'calling') && Date.now() - t0 < 10000) await L.delay(20);
    return calls;
  };
  const endAll = async (calls) => {
    for (const c of calls) c.hangup();
    await Promise.race([Promise.all(calls.map((c) => c.ended)), L.delay(10000)]);
  };
  // Warm-up: 10 calls rung and cancelled, so one-off code and buffers are not charged to the calls.
  await endAll(await place(10));
  const idle = await settledRss(srv.pid);
  const calls = await place(CALLS);
  const ringing = calls.filter((c) => c.state === 'proceeding').length;
  const withCalls = await settledRss(srv.pid);
  await endAll(calls);
  const after = await settledRss(srv.pid);
  await caller.stop();
  stopCaller();
  await L.stopCtServer(srv);
  return { idle, withCalls, after, ringing };
}

async function main() {
  L.header(`memory: ctserver RSS (reps ${REPS}, settle ${SETTLE_MS} ms)`);
  const runs = [];
  for (let r = 0; r < REPS; r++) {
    const small = await idleReading(SMALL);
    const large = await idleReading(LARGE);
    runs.push({ small, large });
    console.log(`run ${r + 1}: --ports ${SMALL}: ${small.bare} KiB bare, ${small.connected} KiB with clients; --ports ${LARGE}: ${large.bare} KiB bare, ${large.connected} KiB with clients`);
  }
  const perPortBare = median(runs.map((x) => (x.large.bare - x.small.bare) / (LARGE - SMALL)));
  const perPortConn = median(runs.map((x) => (x.large.connected - x.small.connected) / (LARGE - SMALL)));

  const rings = [];
  for (let r = 0; r < REPS; r++) {
    const x = await ringingReading();
    rings.push(x);
    console.log(`run ${r + 1}: --ports ${RING_PORTS}: ${x.idle} KiB idle, ${x.withCalls} KiB with ${x.ringing}/${CALLS} calls ringing, ${x.after} KiB after they were cancelled`);
  }
  const perCall = median(rings.map((x) => (x.withCalls - x.idle) / CALLS));

  console.log('\nctserver RSS (KiB, medians):');
  L.table([
    ['reading', `--ports ${SMALL}`, `--ports ${LARGE}`, 'per port'],
    ['idle, no client', String(median(runs.map((x) => x.small.bare))), String(median(runs.map((x) => x.large.bare))), perPortBare.toFixed(1)],
    ['idle, a CtPort on every port', String(median(runs.map((x) => x.small.connected))), String(median(runs.map((x) => x.large.connected))), perPortConn.toFixed(1)],
  ]);
  console.log('');
  L.table([
    ['reading', `--ports ${RING_PORTS}`, 'per call'],
    ['idle (after a 10-call warm-up)', String(median(rings.map((x) => x.idle))), ''],
    [`${CALLS} calls ringing (nobody answering)`, String(median(rings.map((x) => x.withCalls))), perCall.toFixed(1)],
    ['after cancelling them', String(median(rings.map((x) => x.after))), ''],
  ]);
  console.log(`\nRESULT memory ${JSON.stringify({ runs, rings, perPortBare, perPortConn, perCall })}`);
}

L.runMain(main);
