'use strict';
// Command round trip: a CtPort in this process, the bundled ctserver in another, ctclear.
//   node bench/rtt.js [--n 10000] [--warmup 1000]
// Prints sequential p50/p90/p99/max (µs) and pipelined throughput. Two floors are measured for
// context: a bare Node.js line echo process (the loopback TCP + event loop floor) and the same
// ctclear line over a raw socket (the server's share without the client library).
const net = require('net');
const { CtPort, encodeRequest } = require('../dist/core');
const L = require('./lib');

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : def; };
const N = opt('n', 10000);
const WARMUP = opt('warmup', 1000);
const AIM_P50 = 100; // µs
const AIM_P99 = 1000; // µs

const us = (ns) => Number(ns) / 1000;
const f1 = (v) => v.toFixed(1);

/** Sequential request/response over a raw socket: one line out, wait for one line back. */
async function rawSequential(port, line, n, warmup) {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  let buf = '';
  let waiter = null;
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      buf = buf.slice(i + 1);
      const w = waiter;
      waiter = null;
      if (w) w();
    }
  });
  const once = () => new Promise((r) => { waiter = r; sock.write(line); });
  for (let i = 0; i < warmup; i++) await once();
  const samples = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await once();
    samples[i] = us(process.hrtime.bigint() - t0);
  }
  sock.destroy();
  return L.summary(samples);
}

async function startEcho() {
  // A separate Node.js process echoing every byte back: the floor for any Node TCP round trip.
  const src = "const s=require('net').createServer((c)=>{c.setNoDelay(true);c.pipe(c);c.on('error',()=>{});});" +
    "s.listen(0,'127.0.0.1',()=>console.log('PORT '+s.address().port));";
  const child = L.spawnTracked(process.execPath, ['-e', src]);
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error('echo process exited')));
  });
  return { child, port };
}

async function main() {
  L.header(`rtt: ctclear round trip (n=${N}, warm-up ${WARMUP})`);
  const srv = await L.startCtServer({ ports: 4 });
  console.log(`ctserver pid ${srv.pid}, port 1 on TCP ${srv.basePort + 1}`);

  // 1. the real path: CtPort.clear()
  const ct = new CtPort({ port: 1, basePort: srv.basePort, reconnect: false });
  await ct.connect();
  for (let i = 0; i < WARMUP; i++) await ct.clear();
  const samples = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    await ct.clear();
    samples[i] = us(process.hrtime.bigint() - t0);
  }
  const seq = L.summary(samples);

  // 2. pipelined: N clear() at once, three runs (after one pipelined warm-up)
  await Promise.all(Array.from({ length: WARMUP }, () => ct.clear()));
  const pipes = [];
  for (let run = 0; run < 3; run++) {
    const t0 = process.hrtime.bigint();
    const rs = await Promise.all(Array.from({ length: N }, () => ct.clear()));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const bad = rs.filter((r) => r.status !== 'OK').length;
    pipes.push({ ms, rate: N / (ms / 1000), bad });
  }
  await ct.disconnect();

  // 3. floors: the same ctclear line over a raw socket, and a bare Node echo process
  const line = encodeRequest('ctclear', 0, 0, []);
  const raw = await rawSequential(srv.basePort + 1, line, N, WARMUP);
  await L.stopCtServer(srv);
  const echo = await startEcho();
  const floor = await rawSequential(echo.port, line, N, WARMUP);
  echo.child.kill('SIGTERM');
  await echo.child.done;

  console.log('\nSequential round trips (µs):');
  L.table([
    ['path', 'p50', 'p90', 'p99', 'max', 'mean'],
    ['CtPort.clear() -> ctserver', f1(seq.p50), f1(seq.p90), f1(seq.p99), f1(seq.max), f1(seq.mean)],
    ['raw socket ctclear -> ctserver', f1(raw.p50), f1(raw.p90), f1(raw.p99), f1(raw.max), f1(raw.mean)],
    ['raw socket -> node echo process', f1(floor.p50), f1(floor.p90), f1(floor.p99), f1(floor.max), f1(floor.mean)],
  ]);
  console.log(`\nAim: p50 < ${AIM_P50} µs: ${f1(seq.p50)} µs ${L.verdict(seq.p50 < AIM_P50)}; p99 < ${AIM_P99} µs: ${f1(seq.p99)} µs ${L.verdict(seq.p99 < AIM_P99)}`);

  console.log(`\nPipelined: ${N} clear() issued at once:`);
  L.table([
    ['run', 'total ms', 'commands/s', 'not OK'],
    ...pipes.map((p, i) => [String(i + 1), f1(p.ms), Math.round(p.rate).toLocaleString('en-US'), String(p.bad)]),
  ]);
  const med = [...pipes].sort((a, b) => a.ms - b.ms)[1];
  console.log(`median: ${f1(med.ms)} ms, ${Math.round(med.rate).toLocaleString('en-US')} commands/s`);
  console.log(`\nRESULT rtt ${JSON.stringify({ seq, raw, floor, pipelined: pipes, n: N })}`);
}

L.runMain(main);
