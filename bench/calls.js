'use strict';
// Call setup and tear-down under load: sipp's built-in uac scenario calls the bundled ctserver
// (a separate process); a CtPort script in this process answers on every port (ring 1 ->
// offHook(), hangup -> onHook()). That script's TCP round trip is part of the measured path.
//   node bench/calls.js [--rates 25,50,100,150] [--seconds 10] [--ports 128] [--hold 200] [--all]
//                       [--no-baseline] [--no-diag] [--keep]
// For each rate: calls attempted/successful/failed (sipp's exit code and -trace_stat), sustained
// calls/s, INVITE-to-100/180/200 from the µs timestamps of sipp's -trace_msg log (sipp's own
// -trace_rtt csv, in 4 ms clock ticks, is shown too), from our side the ring-event-to-answer-reply
// time of the CtPort script, CPU per call of ctserver and of the script, and port states after.
// A baseline run of sipp's uac against sipp's own uas shows sipp's share of the response time.
// 150 calls/s runs only when 100 met the aim (or with --all). When calls failed, a diagnostic run
// at >= 100 calls/s uses a script that answers but sends no onHook after the far end hung up.
// sipp's files go to a temp dir per run, removed at the end unless --keep.
const fs = require('fs');
const path = require('path');
const { CtPort, CtManager } = require('../dist/core');
const L = require('./lib');

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : def; };
const RATES = String(opt('rates', '25,50,100,150')).split(',').map(Number);
const SECONDS = Number(opt('seconds', 10));
const PORTS = Number(opt('ports', 128));
const HOLD_MS = Number(opt('hold', 200));
const ALL = argv.includes('--all');
const BASELINE = !argv.includes('--no-baseline');
const VARIANT_RUNS = !argv.includes('--no-diag');
const KEEP = argv.includes('--keep');
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

/**
 * INVITE-to-100/180/200 per call from sipp's -trace_msg log, which stamps every message with
 * microseconds (the -trace_rtt csv only has sipp's 4 ms clock ticks). Returns arrays of ms.
 */
function readMessages(dir) {
  const f = fs.readdirSync(dir).find((n) => n.endsWith('_messages.log'));
  const out = { to100: [], to180: [], to200: [] };
  if (!f) return out;
  const calls = new Map();
  const text = fs.readFileSync(path.join(dir, f), 'utf8');
  const re = /^-{20,} (\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\n(UDP message (sent|received))[^\n]*\n\n([^\n]*)\n([\s\S]*?)(?=^-{20,} |$(?![\s\S]))/gm;
  let m;
  while ((m = re.exec(text))) {
    const t = Date.parse(`${m[1]}T00:00:00Z`) + ((Number(m[2]) * 60 + Number(m[3])) * 60 + Number(m[4])) * 1000 + Number(m[5]) / 1000;
    const first = m[8];
    const cid = (/^Call-ID:\s*(\S+)/im.exec(m[9]) || [])[1];
    const cseq = (/^CSeq:\s*\d+\s+(\w+)/im.exec(m[9]) || [])[1];
    if (!cid) continue;
    let c = calls.get(cid);
    if (!c) calls.set(cid, (c = {}));
    if (m[7] === 'sent' && first.startsWith('INVITE ')) { if (c.invite === undefined) c.invite = t; continue; }
    const st = /^SIP\/2\.0 (\d{3})/.exec(first);
    if (m[7] === 'received' && st && cseq === 'INVITE') {
      const k = `s${st[1]}`;
      if (c[k] === undefined) c[k] = t;
    }
  }
  for (const c of calls.values()) {
    if (c.invite === undefined) continue;
    if (c.s100 !== undefined) out.to100.push(c.s100 - c.invite);
    if (c.s180 !== undefined) out.to180.push(c.s180 - c.invite);
    if (c.s200 !== undefined) out.to200.push(c.s200 - c.invite);
  }
  return out;
}

/** Unexpected SIP responses: codes from *_error_codes.csv, and from *_errors.log what sipp was
 *  waiting for when each arrived ('180' = only 100 came first, no ring; '183' = it had rung). */
function errorCodes(dir) {
  const counts = {};
  const f = fs.readdirSync(dir).find((n) => n.endsWith('_error_codes.csv'));
  if (f) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const last = line.split(';').pop() || '';
      for (const c of last.split(',')) if (/^\d{3}$/.test(c.trim())) counts[c.trim()] = (counts[c.trim()] || 0) + 1;
    }
  }
  const whileExpecting = {};
  const g = fs.readdirSync(dir).find((n) => n.endsWith('_errors.log'));
  if (g) {
    const re = /while expecting '(\w+)' \(index \d+\), received 'SIP\/2\.0 (\d{3})/g;
    const text = fs.readFileSync(path.join(dir, g), 'utf8');
    let m;
    while ((m = re.exec(text))) {
      const k = `${m[2]} while expecting ${m[1]}`;
      whileExpecting[k] = (whileExpecting[k] || 0) + 1;
    }
  }
  return { counts, whileExpecting };
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
    '-trace_rtt', '-rtt_freq', '1', '-trace_msg',
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
  const msg = readMessages(dir);
  const m100 = L.summary(msg.to100);
  const m180 = L.summary(msg.to180);
  const m200 = L.summary(msg.to200);
  // Sustained rate: answered calls over the span between the first and the last 200.
  const span = rtt.at.length > 1 ? (rtt.at[rtt.at.length - 1] - rtt.at[0]) / 1000 : NaN;
  const sustained = rtt.at.length > 1 ? (rtt.at.length - 1) / span : NaN;
  const result = {
    label, rate, total, exit: r.code, signal: r.signal, dir, wallS,
    attempted: num('TotalCallCreated'), successful: num('SuccessfulCall(C)'), failed: num('FailedCall(C)'),
    retrans: num('Retransmissions(C)'), sippRate: num('CallRate(C)'), failedKinds, errorCodes: errorCodes(dir),
    rttN: rtt.times.length, p50: s.p50, p95: s.p95, p99: s.p99, max: s.max, sustained,
    msg: { n: msg.to200.length, to100p50: m100.p50, to100p95: m100.p95, to180p50: m180.p50, to180p95: m180.p95, to200p50: m200.p50, to200p95: m200.p95, to200p99: m200.p99, to200max: m200.max },
    out: r.out,
  };
  if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  return result;
}

/** ctserver process + one answering CtPort per port. */
async function startAnswering({ onHookAfterHangup = true } = {}) {
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
      if (!onHookAfterHangup) return;
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

/** States of all ports (manager port_status), e.g. { idle: 120, offhook: 8 }. */
async function portStates(srv) {
  const m = new CtManager({ managerPort: srv.managerPort, reconnect: false });
  try {
    await m.connect();
    const r = await m.portStatus();
    const counts = {};
    for (const p of r.ports || []) counts[`${p.state}/${p.hook}`] = (counts[`${p.state}/${p.hook}`] || 0) + 1;
    return counts;
  } catch (e) {
    return { error: e.message };
  } finally {
    await m.disconnect().catch(() => undefined);
  }
}

async function stopAnswering(a) {
  await Promise.all(a.lines.map((ct) => ct.disconnect().catch(() => undefined)));
  await L.stopCtServer(a.srv);
}

/** INVITE-to-200 p95 in ms: from the µs message log when there is one, else sipp's rtt csv. */
const p95Of = (r) => (Number.isFinite(r.msg.to200p95) ? r.msg.to200p95 : r.p95);

function meets(r) {
  return r.exit === 0 && r.failed === 0 && r.successful === r.total && p95Of(r) < AIM_P95;
}

const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '-');

const VARIANTS = {
  'answer+onHook': { onHookAfterHangup: true, what: "ring 1 -> offHook(); hangup -> onHook() (the brief's script, as examples/node/answer.js)" },
  'answer-only': { onHookAfterHangup: false, what: 'ring 1 -> offHook(); hangup -> nothing (the port is already idle after BYE)' },
};

async function runRate(variant, rate) {
  const a = await startAnswering(VARIANTS[variant]);
  const cpu0 = L.cpuMs(a.srv.pid);
  const own0 = process.cpuUsage();
  const r = await runSipp(`127.0.0.1:${a.srv.sipPort}`, rate, `${variant.replace('+', '-')}-${rate}`);
  await L.delay(500); // let the last BYE's hangup reach the script (and its onHook the server)
  const own = process.cpuUsage(own0);
  r.cpu = { serverMs: L.cpuMs(a.srv.pid) - cpu0, scriptMs: (own.user + own.system) / 1000 };
  r.variant = variant;
  r.portsAfter = await portStates(a.srv);
  const ans = L.summary(a.stats.answerUs);
  r.ours = { rings: a.stats.rings, answered: a.stats.answered, answerErrors: a.stats.answerErrors, hangups: a.stats.hangups, onHookNotOk: a.stats.onHookNotOk, answerP50: ans.p50, answerP95: ans.p95, answerMax: ans.max };
  await stopAnswering(a);
  console.log(`${variant} ${rate}/s: sipp exit ${r.exit}, ${r.successful}/${r.attempted} successful, ${r.failed} failed, INVITE->200 p50 ${fmt(r.msg.to200p50, 2)} ms p95 ${fmt(r.msg.to200p95, 2)} ms; ports after: ${JSON.stringify(r.portsAfter)}${KEEP ? ` (sipp files in ${r.dir})` : ''}`);
  if (r.exit !== 0 && r.exit !== 1) console.log(r.out.split('\n').slice(-15).join('\n'));
  return r;
}

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
    results.push(await runRate('answer+onHook', rate));
  }

  // When the brief's script failed calls, run the same load with a script that does not send
  // onHook after a far-end hangup, to tell the server's capacity apart from that script's race.
  const diag = [];
  if (VARIANT_RUNS && results.some((r) => r.failed > 0)) {
    for (const rate of RATES.filter((x) => x >= AIM_RATE)) diag.push(await runRate('answer-only', rate));
  }

  let base = null;
  if (BASELINE) {
    // sipp uas answering (no ctserver): the floor of sipp's own measurement at 100 calls/s.
    const port = await L.freeUdpPort();
    const dir = L.tmpDir('bench-calls-uas-');
    const uas = L.spawnTracked(SIPP, ['-sn', 'uas', '-i', '127.0.0.1', '-p', String(port), '-nostdin'], { cwd: dir });
    await L.delay(500);
    base = await runSipp(`127.0.0.1:${port}`, AIM_RATE, 'sipp-uas-100');
    base.variant = 'sipp uas (baseline)';
    uas.kill('SIGTERM');
    await uas.done;
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }

  console.log(`\nCall setup + tear-down, sipp built-in uac, hold ${HOLD_MS} ms, ${PORTS} ports, ${SECONDS} s per rate:`);
  const all = [...results, ...diag, ...(base ? [base] : [])];
  const f2 = (v) => fmt(v, 2);
  L.table([
    ['answering', 'rate', 'sipp exit', 'attempted', 'successful', 'failed', 'sustained/s', 'retrans', 'ctserver CPU ms/call', 'script CPU ms/call'],
    ...all.map((r) => [r.variant, String(r.rate), String(r.exit), String(r.attempted), String(r.successful), String(r.failed), fmt(r.sustained, 1), String(r.retrans),
      r.cpu ? fmt(r.cpu.serverMs / r.attempted, 2) : '-', r.cpu ? fmt(r.cpu.scriptMs / r.attempted, 2) : '-']),
  ]);
  console.log('\nTimings (ms). INVITE->x from sipp\'s -trace_msg µs timestamps; "rtt csv" is sipp\'s own -trace_rtt (4 ms clock ticks):');
  L.table([
    ['answering', 'rate', '->200 p50', '->200 p95', '->200 p99', '->200 max', 'rtt csv p50', 'rtt csv p95', '->100 p50', '->180 p50', '->180 p95', 'answer p50', 'answer p95'],
    ...all.map((r) => [r.variant, String(r.rate), f2(r.msg.to200p50), f2(r.msg.to200p95), f2(r.msg.to200p99), f2(r.msg.to200max), fmt(r.p50), fmt(r.p95),
      f2(r.msg.to100p50), f2(r.msg.to180p50), f2(r.msg.to180p95), r.ours ? f2(r.ours.answerP50 / 1000) : '-', r.ours ? f2(r.ours.answerP95 / 1000) : '-']),
  ]);
  console.log('  sustained/s: answered calls per second between the first and the last 200 OK');
  console.log('  CPU ms/call: user+system CPU of the ctserver process (/proc) and of this process (the CtPort script) over the run, per attempted call');
  console.log('  answer: our side, ring event at the CtPort script -> offHook() reply (the ctanswer round trip; the server sends the 200 before replying)');
  for (const v of Object.keys(VARIANTS)) if ([...results, ...diag].some((r) => r.variant === v)) console.log(`  ${v}: ${VARIANTS[v].what}`);
  console.log('');
  for (const r of [...results, ...diag]) {
    const extra = [];
    if (Object.keys(r.failedKinds).length) extra.push(`sipp failures ${JSON.stringify(r.failedKinds)}`);
    if (Object.keys(r.errorCodes.whileExpecting).length) extra.push(`unexpected responses ${JSON.stringify(r.errorCodes.whileExpecting)}`);
    if (Object.keys(r.ours.answerErrors).length) extra.push(`offHook not OK ${JSON.stringify(r.ours.answerErrors)}`);
    if (Object.keys(r.ours.onHookNotOk).length) extra.push(`onHook after hangup not OK ${JSON.stringify(r.ours.onHookNotOk)}`);
    extra.push(`script: ${r.ours.rings} first rings, ${r.ours.answered} answered, ${r.ours.hangups} hangups`);
    extra.push(`port states after the run ${JSON.stringify(r.portsAfter)}`);
    console.log(`  ${r.variant} ${r.rate}/s: ${extra.join('; ')}`);
  }
  const r100 = results.find((r) => r.rate === AIM_RATE);
  if (r100) {
    console.log(`\nAim: ${AIM_RATE} calls/s with no failed call: ${r100.failed} failed of ${r100.attempted} (${r100.successful} successful) ${L.verdict(r100.failed === 0 && r100.successful === r100.total)}; ` +
      `INVITE->200 p95 < ${AIM_P95} ms: ${fmt(p95Of(r100), 2)} ms ${L.verdict(p95Of(r100) < AIM_P95)} (sipp rtt csv: ${fmt(r100.p95)} ms)`);
  }
  for (const r of [...results, ...diag, ...(base ? [base] : [])]) delete r.out;
  console.log(`\nRESULT calls ${JSON.stringify({ results, diag, base })}`);
}

L.runMain(main);
