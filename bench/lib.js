'use strict';
// Shared helpers for the benchmarks: free ports, a supervised ctserver process, percentiles,
// RSS readings and cleanup of everything a benchmark started. Benchmarks print; they never assert.
const fs = require('fs');
const os = require('os');
const net = require('net');
const path = require('path');
const dgram = require('dgram');
const { spawn } = require('child_process');
const { Supervisor } = require('../dist/core');

const ROOT = path.resolve(__dirname, '..');
const CTSERVER = path.join(ROOT, 'bin', 'ctserver');

// ---- cleanup ------------------------------------------------------------------------------------
// Everything started through this module is remembered and stopped on exit, on SIGINT/SIGTERM and
// on an uncaught error. Only objects we spawned ourselves are signalled.
const supervisors = new Set();
const children = new Set();
const cleanups = new Set();
let cleaning = null;

function cleanup() {
  if (cleaning) return cleaning;
  cleaning = (async () => {
    for (const fn of [...cleanups]) {
      try { await fn(); } catch { /* keep going */ }
    }
    for (const c of [...children]) {
      if (c.exitCode === null && c.signalCode === null) {
        try { c.kill('SIGTERM'); } catch { /* gone */ }
      }
    }
    await Promise.all([...supervisors].map((s) => s.stop().catch(() => undefined)));
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.error(`\n${sig}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', () => {
  // Last resort (synchronous): children still alive get SIGKILL.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) try { c.kill('SIGKILL'); } catch { /* gone */ }
  for (const s of supervisors) {
    const pid = s.pid;
    if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

/** Run a benchmark's main(): prints the error (never throws further), always cleans up. */
function runMain(main) {
  main()
    .catch((e) => {
      console.error(e && e.stack ? e.stack : String(e));
      process.exitCode = 1;
    })
    .finally(() => cleanup());
}

// ---- ports --------------------------------------------------------------------------------------
function randomBase(span = 4) {
  // Keep base+span under 60000 and away from the low ranges other programs like to hold.
  return 20000 + Math.floor(Math.random() * (38000 - span));
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Start bin/ctserver as a separate process (through the Supervisor, which waits for `Started!`),
 * on a random free TCP base port, SIP on a free UDP port, RTP in a random range; retries on
 * "address in use". Returns { sup, pid, basePort, managerPort, sipPort, ports }.
 */
async function startCtServer({ ports = 4, args = [] } = {}) {
  let lastErr;
  for (let i = 0; i < 20; i++) {
    const basePort = randomBase(ports + 1);
    const sipPort = await freeUdpPort();
    const rtpLo = 40100 + 2 * Math.floor(Math.random() * 5000); // 40100..50098 (+1000)
    const sup = new Supervisor({
      binary: CTSERVER,
      args: ['--ports', String(ports), '--base-port', String(basePort), '--manager-port', String(basePort),
        '--sip-port', String(sipPort), '--rtp-ports', `${rtpLo}-${rtpLo + 1000}`, '--quiet', ...args],
      restart: false,
      startTimeoutMs: 20000,
    });
    supervisors.add(sup);
    try {
      await sup.start();
      return { sup, pid: sup.pid, basePort, managerPort: basePort, sipPort, ports };
    } catch (e) {
      supervisors.delete(sup);
      lastErr = e;
      if (e.code !== 'EADDRINUSE' && e.code !== 'EEARLYEXIT') throw e;
    }
  }
  throw lastErr;
}

async function stopCtServer(srv) {
  if (!srv) return;
  await srv.sup.stop();
  supervisors.delete(srv.sup);
}

/** Spawn a process that is killed on cleanup; resolves { code, signal, out } on exit via .done. */
function spawnTracked(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  let out = '';
  child.stdout && child.stdout.on('data', (d) => { out += d; });
  child.stderr && child.stderr.on('data', (d) => { out += d; });
  child.done = new Promise((resolve) => {
    child.on('error', (e) => { children.delete(child); resolve({ code: -1, signal: null, out: out + String(e) }); });
    child.on('close', (code, signal) => { children.delete(child); resolve({ code, signal, out }); });
  });
  return child;
}

function onCleanup(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

function tmpDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return dir;
}

// ---- numbers ------------------------------------------------------------------------------------
/** Nearest-rank percentile of an ascending-sorted array. */
function pct(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summary(values) {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, min: s[0], p50: pct(s, 50), p90: pct(s, 90), p95: pct(s, 95), p99: pct(s, 99), max: s[s.length - 1], mean: sum / s.length };
}

/** VmRSS (and VmHWM) of a pid in KiB, from /proc/<pid>/status. */
function rssKiB(pid) {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => {
    const m = new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, 'm').exec(st);
    return m ? Number(m[1]) : NaN;
  };
  return { rss: get('VmRSS'), hwm: get('VmHWM') };
}

/** CPU time (user+system) of a pid in ms, from /proc/<pid>/stat (clock ticks, usually 100 Hz). */
const CLK_TCK = 100;
function cpuMs(pid) {
  const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // utime (14), stime (15)
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** Print an aligned table: rows are arrays of cells, the first row is the header. */
function table(rows) {
  const w = [];
  for (const r of rows) r.forEach((c, i) => { w[i] = Math.max(w[i] || 0, String(c).length); });
  const line = (r) => '  ' + r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  console.log(line(rows[0]));
  console.log('  ' + w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
}

function verdict(ok) {
  return ok ? 'met' : 'MISSED';
}

function header(title) {
  console.log(`\n=== ${title} ===`);
  console.log(`node ${process.version}, ${os.cpus().length} CPU(s) (${(os.cpus()[0] || {}).model || 'unknown'}), ${new Date().toISOString()}`);
}

module.exports = {
  ROOT, CTSERVER,
  startCtServer, stopCtServer, spawnTracked, onCleanup, cleanup, runMain, tmpDir,
  freeUdpPort, freeTcpPort, randomBase,
  pct, summary, rssKiB, cpuMs, delay, table, verdict, header,
};
