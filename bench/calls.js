'use strict';
// Call setup and tear-down under load: sipp's built-in uac scenario calls the bundled ctserver
// (a separate process); a CtPort script in this process answers on every port (ring 1 ->
// offHook(), hangup -> onHook()). That script's TCP round trip is part of the measured path.
//   node bench/calls.js [--rates 25,50,100,150] [--seconds 10] [--ports 128] [--hold 200] [--all] [--no-baseline]
// For each rate: calls attempted/successful/failed (sipp's exit code and -trace_stat), sustained
// calls/s, INVITE-to-200 p50/p95 from sipp's -trace_rtt csv (whole milliseconds, measured by sipp),
// and from our side the ring-event-to-answer-reply time of the CtPort script (µs).
// A baseline run of sipp's uac against sipp's own uas shows sipp's share of the response time.
// 150 calls/s runs only when 100 met the aim (or with --all).
const fs = require('fs');
const path = require('path');
const { CtPort } = require('../dist/core');
const L = require('./lib');

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : def; };
const RATES = String(opt('rates', '25,50,100,150')).split(',').map(Number);
const SECONDS = Number(opt('seconds', 10));
const PORTS = Number(opt('ports', 128));
const HOLD_MS = Number(opt('hold', 200));
const ALL = argv.includes('--all');
const BASELINE = !argv.includes('--no-baseline');
const AIM_RATE = 100;
const AIM_P95 = 20; // ms

const SIPP = fs.existsSync('/usr/bin/sipp') ? '/usr/bin/sipp' : 'sipp';

function parseStat(file) {
  if (!fs.existsSync(file)) return null;
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  if (lines.length < 2) return null;
  const keys = lines[0].split(';');
  const vals = lines[lines.length - 1].split(';');
  const o = {};
  keys.forEach((k, i) => { if (k) o[k] = vals[i]; });
  return o;
}

function readRtt(dir) {
  const f = fs.readdirSync(dir).find((n) => n.endsWith('_rtt.csv'));
  if (!f) return { times: [], at: [] };
  const times = [];
  const at = [];
  for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n').slice(1)) {
    const [date, ms, rtd] = line.split(';');
    if (rtd === undefined || rtd.trim() !== '1') continue;
    at.push(Number(date));
    times.push(Number(ms));
  }
  return { times, at };
}

function errorCodes(dir) {
  const f = fs.readdirSync(dir).find((n) => n.endsWith('_error_codes.log'));
  if (!f) return {};
  const counts = {};
  for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
    const m = /\b([1-6]\d\d)\b/.exec(line);
    if (m) counts[m[1]] = (counts[m[1]] || 0) + 1;
  }
  return counts;
}

/** Run sipp's built-in uac; returns the parsed figures. */
async function runSipp(target, rate, label) {
  const dir = L.tmpDir(`bench-calls-${label}-`);
  const local = await L.freeUdpPort();
  const total = Math.round(rate * SECONDS);
  const args = ['-sn', 'uac', target, '-i', '127.0.0.1', '-p', String(local),
    '-r', String(rate), '-m', String(total), '-l', String(PORTS), '-d', String(HOLD_MS),
    '-nostdin', '-timeout', String(SECONDS + 60), '-recv_timeout', '10000',
    '-trace_stat', '-stf', path.join(dir, 'stat.csv'), '-fd', '1',
    '-trace_rtt', '-rtt_freq', '1',
    '-trace_err', '-trace_error_codes',
    '-trace_screen', '-screen_file', path.join(dir, 'screen.log')];
  const t0 = process.hrtime.bigint();
  const child = L.spawnTracked(SIPP, args, { cwd: dir });
  const r = await child.done;
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const stat = parseStat(path.join(dir, 'stat.csv')) || {};
  const rtt = readRtt(dir);
  const num = (k) => (stat[k] === undefined ? NaN : Number(stat[k]));
  const failedKinds = {};
  for (const k of Object.keys(stat)) {
    if (/^Failed.*\(C\)$/.test(k) && k !== 'FailedCall(C)' && Number(stat[k]) > 0) failedKinds[k.replace('(C)', '')] = Number(stat[k]);
  }
  const s = L.summary(rtt.times);
  // Sustained rate: answered calls over the span between the first and the last 200.
  const span = rtt.at.length > 1 ? (rtt.at[rtt.at.length - 1] - rtt.at[0]) / 1000 : NaN;
  const sustained = rtt.at.length > 1 ? (rtt.at.length - 1) / span : NaN;
  return {
    label, rate, total, exit: r.code, signal: r.signal, dir, wallS,
    attempted: num('TotalCallCreated'), successful: num('SuccessfulCall(C)'), failed: num('FailedCall(C)'),
    retrans: num('Retransmissions(C)'), sippRate: num('CallRate(C)'), failedKinds, errorCodes: errorCodes(dir),
    rttN: rtt.times.length, p50: s.p50, p95: s.p95, p99: s.p99, max: s.max, sustained,
    out: r.out,
  };
}

/** ctserver process + one answering CtPort per port. */
async function startAnswering() {
  const srv = await L.startCtServer({ ports: PORTS });
  const stats = { rings: 0, answered: 0, answerErrors: {}, hangups: 0, onHookNotOk: {}, answerUs: [] };
  const lines = [];
  for (let n = 1; n <= PORTS; n++) {
    const ct = new CtPort({ port: n, basePort: srv.basePort, reconnect: false });
    ct.on('ring', (e) => {
      if (e.rings !== 1) return;
      stats.rings++;
      const t0 = process.hrtime.bigint();
      ct.offHook().then((r) => {
        if (r.status === 'OK') {
          stats.answered++;
          stats.answerUs.push(Number(process.hrtime.bigint() - t0) / 1000);
        } else {
          const k = `${r.status} ${r.reason || ''}`.trim();
          stats.answerErrors[k] = (stats.answerErrors[k] || 0) + 1;
        }
      }, (e2) => { stats.answerErrors[e2.code || e2.message] = (stats.answerErrors[e2.code || e2.message] || 0) + 1; });
    });
    ct.on('hangup', () => {
      stats.hangups++;
      ct.onHook().then((r) => {
        if (r.status !== 'OK') {
          const k = `${r.status} ${r.reason || ''}`.trim().slice(0, 60);
          stats.onHookNotOk[k] = (stats.onHookNotOk[k] || 0) + 1;
        }
      }, () => undefined);
    });
    ct.on('error', () => undefined);
    lines.push(ct);
  }
  await Promise.all(lines.map((ct) => ct.connect()));
  return { srv, lines, stats };
}

async function stopAnswering(a) {
  await Promise.all(a.lines.map((ct) => ct.disconnect().catch(() => undefined)));
  await L.stopCtServer(a.srv);
}

function meets(r) {
  return r.exit === 0 && r.failed === 0 && r.successful === r.total && r.p95 < AIM_P95;
}

const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '-');

async function main() {
  L.header(`calls: sipp uac -> ctserver (${PORTS} ports, CtPort answering), ${SECONDS} s per rate, hold ${HOLD_MS} ms`);
  const results = [];
  for (const rate of RATES) {
    if (rate > AIM_RATE && !ALL) {
      const r100 = results.find((r) => r.rate === AIM_RATE);
      if (!r100 || !meets(r100)) {
        console.log(`skipping ${rate} calls/s: ${AIM_RATE} calls/s did not meet the aim (use --all to force)`);
        continue;
      }
    }
    const a = await startAnswering();
    const r = await runSipp(`127.0.0.1:${a.srv.sipPort}`, rate, `ctserver-${rate}`);
    await L.delay(300); // let the last BYE's hangup reach the script
    const ans = L.summary(a.stats.answerUs);
    r.ours = { rings: a.stats.rings, answered: a.stats.answered, answerErrors: a.stats.answerErrors, hangups: a.stats.hangups, onHookNotOk: a.stats.onHookNotOk, answerP50: ans.p50, answerP95: ans.p95, answerMax: ans.max };
    await stopAnswering(a);
    results.push(r);
    console.log(`rate ${rate}: sipp exit ${r.exit}, ${r.successful}/${r.attempted} successful, ${r.failed} failed, INVITE->200 p50 ${r.p50} ms p95 ${r.p95} ms (files in ${r.dir})`);
    if (r.exit !== 0 && r.exit !== 1) console.log(r.out.split('\n').slice(-15).join('\n'));
  }

  let base = null;
  if (BASELINE) {
    // sipp uas answering (no ctserver): the floor of sipp's own measurement at 100 calls/s.
    const port = await L.freeUdpPort();
    const dir = L.tmpDir('bench-calls-uas-');
    const uas = L.spawnTracked(SIPP, ['-sn', 'uas', '-i', '127.0.0.1', '-p', String(port), '-nostdin'], { cwd: dir });
    await L.delay(500);
    base = await runSipp(`127.0.0.1:${port}`, AIM_RATE, 'sipp-uas-100');
    uas.kill('SIGTERM');
    await uas.done;
  }

  console.log(`\nCall setup + tear-down, sipp built-in uac, hold ${HOLD_MS} ms, ${PORTS} ports (INVITE->200 from sipp -trace_rtt, whole ms):`);
  const rows = [['peer', 'rate', 'exit', 'attempted', 'successful', 'failed', 'sustained/s', 'retrans', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'answer p50 µs', 'answer p95 µs']];
  for (const r of results) {
    rows.push([`ctserver+CtPort`, String(r.rate), String(r.exit), String(r.attempted), String(r.successful), String(r.failed), fmt(r.sustained, 1), String(r.retrans), fmt(r.p50), fmt(r.p95), fmt(r.p99), fmt(r.max), fmt(r.ours.answerP50), fmt(r.ours.answerP95)]);
  }
  if (base) rows.push(['sipp uas (baseline)', String(base.rate), String(base.exit), String(base.attempted), String(base.successful), String(base.failed), fmt(base.sustained, 1), String(base.retrans), fmt(base.p50), fmt(base.p95), fmt(base.p99), fmt(base.max), '-', '-']);
  L.table(rows);
  console.log('("answer" = our side: ring event at the CtPort script -> offHook() reply, i.e. ctanswer round trip incl. the server sending 200)');
  for (const r of results) {
    const extra = [];
    if (Object.keys(r.failedKinds).length) extra.push(`sipp failures ${JSON.stringify(r.failedKinds)}`);
    if (Object.keys(r.errorCodes).length) extra.push(`unexpected SIP codes ${JSON.stringify(r.errorCodes)}`);
    if (Object.keys(r.ours.answerErrors).length) extra.push(`offHook not OK ${JSON.stringify(r.ours.answerErrors)}`);
    if (Object.keys(r.ours.onHookNotOk).length) extra.push(`onHook after hangup not OK ${JSON.stringify(r.ours.onHookNotOk)}`);
    extra.push(`script saw ${r.ours.rings} first rings, answered ${r.ours.answered}, ${r.ours.hangups} hangups`);
    console.log(`  ${r.rate}/s: ${extra.join('; ')}`);
  }
  const r100 = results.find((r) => r.rate === AIM_RATE);
  if (r100) {
    console.log(`\nAim: ${AIM_RATE} calls/s with no failed call: ${r100.failed} failed of ${r100.attempted} (${r100.successful} successful) ${L.verdict(r100.failed === 0 && r100.successful === r100.total)}; ` +
      `INVITE->200 p95 < ${AIM_P95} ms: ${r100.p95} ms ${L.verdict(r100.p95 < AIM_P95)}`);
  }
  for (const r of [...results, ...(base ? [base] : [])]) delete r.out;
  console.log(`\nRESULT calls ${JSON.stringify({ results, base })}`);
}

L.runMain(main);
