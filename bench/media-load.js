'use strict';
// Concurrent calls with media on one ctserver process: how much of one core the server uses, how
// late its RTP goes out, and whether anything is lost.
//   node bench/media-load.js [--calls 100,200,400,600] [--window 10] [--settle 3] [--rate 100]
//                            [--gens 2] [--digit-every 10] [--prompt 30] [--packet-window 10]
//                            [--quiet 30] [--quiet-wait 120] [--tries 2] [--gen-detect] [--cpu-prof DIR] [--keep]
//                            [--no-pin] [--no-floor]
// The server under test is bin/ctserver (--ports = the largest call count, --quiet) in its own
// process, alone on CPU 0 with the generators on the other CPUs (taskset; --no-pin to share), so its CPU (utime+stime from /proc/<pid>/stat over the window, as % of one core) and
// RSS (/proc/<pid>/status) are its own. A CtPort script in this process answers every port
// (ring 1 -> offHook()) and loops play of a speech prompt (espeak-ng + sox, --prompt seconds, in
// a temp --audio-dir); a key barges in, the script clears the digits and plays again.
// The load comes from --gens generator processes (this file, forked with --generator), each a
// SipCaller (keepAudio off) that places its share of the calls at --rate calls/s in all, sends the
// same speech looped on every call (so the server runs its in-band DTMF detector on every received
// frame) and one RFC 4733 key per call every --digit-every seconds (random phase).
// The generators' own in-band detector is switched off (--gen-detect keeps it): they only load.
// The calls are added step by step (100, then 100 more, ...); after each step has settled for
// --settle s, and the machine is quiet (processes other than ours under --quiet % of a core for a
// second, waiting at most --quiet-wait s), the figures are taken over --window s (window A); when
// other processes used more than --quiet % during the window, it is measured again (at most
// --tries times; the least disturbed one is kept). Window A:
//  - server CPU and tick lateness against the ideal 20 ms schedule of its MediaClock. This file is
//    also preloaded into the server (NODE_OPTIONS=--require, env CTPORT_MEDIA_PROBE), where it wraps
//    MediaClock.prototype.tick and RtpStream.prototype.send (src/ is not touched): "tick start" is
//    the lateness of the first slot tick of a wake-up of the clock, "last out" the time when a
//    nextTick queued after that wake-up ran (every datagram of it has gone to the kernel by then).
//    It also counts GC pauses (by kind) and stalls (gaps over 15 ms between wake-ups). The probe
//    answers SIGUSR2 with a snapshot file.
//  - the lateness seen by the callers: per stream, arrival - (RTP ts - first ts) / 8 ms, minus the
//    smallest such value of that stream in the window. It adds loopback delivery and the
//    generator's own event-loop lag (shown next to it); after a re-base of the server's clock
//    (frames skipped, RTP timestamps not) it also holds the skipped time.
//  - RFC 3550 interarrival jitter (RtpStream.stats.jitterMs) at both ends; loss: sequence numbers
//    expected vs distinct ones received and duplicates at the callers, jitter-buffer lost counts at
//    both ends, kernel UDP drops (/proc/net/snmp, machine-wide); the generators' CPU and send
//    lateness (is the load generator keeping up?); CPU of everything else on the machine (softirq,
//    mostly our own loopback traffic, is shown apart).
//  - RSS per call = (RSS with N calls - RSS idle with every CtPort connected) / N.
// Window B (--packet-window s, right after; 0 = none): per-packet send lateness, i.e. when each
// RTP datagram reached the native UDP handle (the sendto) against the ideal time of its stream's
// slot. That costs CPU, so the CPU figure comes from window A.
// Then (--no-floor to skip) bench/udp-floor.js moves the same packets through bare Node sockets on
// the same CPU, and the server's CPU is shown as a ratio to that floor, which moves much less than
// the raw figure between runs on these shared machines.
// --cpu-prof DIR writes a CPU profile of the server per window (the inspector's profiler, started
// by the probe; node refuses --cpu-prof in NODE_OPTIONS): DIR/ctserver-<pid>-window-<k>.cpuprofile,
// where window k ends at the k-th snapshot (per step: settle, A, B).
// The aim: 400 calls under 60 % of one core, send p99 <= 5 ms, no loss; stretch 600.

if (process.env.CTPORT_MEDIA_PROBE && require.main !== module) {
  probe();
} else if (process.argv[2] === '--generator') {
  generator();
} else {
  require('./lib').runMain(main);
}

/** Event-loop delay (ms) from a monitorEventLoopDelay histogram; its samples include the 5 ms
 *  resolution of its timer, which is taken off. */
function eldStats(h) {
  const ms = (v) => Math.max(0, v / 1e6 - 5);
  return { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) };
}

// =================================================================================================
// In the server process (preloaded): wrap MediaClock.tick, answer SIGUSR2 with a snapshot file.
// =================================================================================================
function probe() {
  const fs = require('fs');
  const path = require('path');
  const { monitorEventLoopDelay } = require('perf_hooks');
  const { MediaClock } = require(path.join(__dirname, '..', 'dist', 'server', 'media', 'clock.js'));
  const out = process.env.CTPORT_MEDIA_PROBE;
  const FRAME_NS = 20000000n;
  const CAP = 1 << 15;
  const ring = { start: new Float64Array(CAP), js: new Float64Array(CAP), last: new Float64Array(CAP), n: 0, from: 0 };
  const clocks = new Set();
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  // Garbage-collection pauses in the window (count, total and longest, ms), by kind.
  const { PerformanceObserver, constants: pc } = require('perf_hooks');
  const GC_KIND = { [pc.NODE_PERFORMANCE_GC_MINOR]: 'minor', [pc.NODE_PERFORMANCE_GC_MAJOR]: 'major', [pc.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [pc.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
  let gc = {};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const k = GC_KIND[e.detail ? e.detail.kind : e.kind] || 'other';
      const g = gc[k] || (gc[k] = { n: 0, ms: 0, max: 0 });
      g.n++;
      g.ms += e.duration;
      g.max = Math.max(g.max, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  let seq = 0;
  let prevRebases = 0;
  let stalls = [];
  let lastWake;
  const lastStats = new WeakMap();

  const origAdd = MediaClock.prototype.add;
  MediaClock.prototype.add = function add(c) {
    clocks.add(this);
    return origAdd.call(this, c);
  };
  // Per packet: when each RTP datagram reaches the native UDP handle (the sendto), against the
  // ideal time of the clock slot whose frame it carries (performance.now() timebase). The socket's
  // send() queues that ideal time, the handle's send() (called by dgram once the address is
  // resolved, at once or later) takes it: right for sync and async sends, and for the three
  // end packets of an RFC 4733 event.
  const { RtpStream } = require(path.join(__dirname, '..', 'dist', 'server', 'media', 'rtp.js'));
  const PCAP = 1 << 20;
  const pkt = { late: new Float32Array(PCAP), n: 0, from: 0 };
  let hrToPerf = 0; // hrtime (ms) - performance.now(), taken again at every tick
  let curClock;
  let curFrames = -1n; // the slot tick (its ideal time) whose packets are being sent
  let curIdealMs = 0;
  let packetsOn = false; // switched per window through the control file (it costs CPU)
  const wrapped = new WeakSet();
  const wrapSocket = (sock) => {
    wrapped.add(sock);
    const sym = Object.getOwnPropertySymbols(sock).find((x) => x.description === 'state symbol');
    const handle = sym && sock[sym] && sock[sym].handle;
    if (!handle) return;
    const ideals = [];
    const sockSend = sock.send;
    sock.send = function send(...a) {
      ideals.push(curIdealMs);
      return sockSend.apply(this, a);
    };
    const handleSend = handle.send;
    handle.send = function send(...a) {
      const r = handleSend.apply(this, a);
      const ideal = ideals.shift();
      if (packetsOn && ideal !== undefined) pkt.late[pkt.n++ & (PCAP - 1)] = performance.now() - ideal;
      return r;
    };
  };
  {
    const origSend = RtpStream.prototype.send;
    RtpStream.prototype.send = function send() {
      const c = curClock;
      if (c && this.remote) {
        if (c.ideal !== curFrames) {
          curFrames = c.ideal;
          curIdealMs = Number(c.ideal) / 1e6 - hrToPerf;
        }
        if (packetsOn && !wrapped.has(this.socket)) wrapSocket(this.socket);
      }
      origSend.call(this);
    };
  }
  const origTick = MediaClock.prototype.tick;
  MediaClock.prototype.tick = function tick() {
    // Stalls: a gap of more than 15 ms between two wake-ups of the clock.
    const nowMs = performance.now();
    if (lastWake !== undefined && nowMs - lastWake > 15 && stalls.length < 200) stalls.push(Math.round(nowMs - lastWake));
    lastWake = nowMs;
    curClock = this;
    curFrames = -1n;
    hrToPerf = Number(process.hrtime.bigint()) / 1e6 - performance.now();
    const before = this.stats.latenessCount;
    origTick.call(this);
    const t1 = process.hrtime.bigint();
    const k = this.stats.latenessCount - before; // slot ticks that ran clients
    if (k === 0) return; // the timer fired early (ms timers): nothing was due, nothing sent
    // The first slot tick of this wake-up is the latest one against its ideal time.
    const firstLateUs = this.stats.lateness[before % this.stats.lateness.length];
    const ideal = this.ideal - BigInt(k - 1) * (FRAME_NS / BigInt(this.slots)); // ideal time of that first slot
    const i = ring.n++ % CAP;
    ring.start[i] = firstLateUs;
    ring.js[i] = Number(t1 - ideal) / 1000;
    ring.last[i] = NaN;
    process.nextTick(() => { ring.last[i] = Number(process.hrtime.bigint() - ideal) / 1000; });
  };

  // --cpu-prof: a CPU profile per window (node refuses --cpu-prof in NODE_OPTIONS), through the
  // inspector: each SIGUSR2 stops the running profile, writes it, and starts the next one.
  const profDir = process.env.CTPORT_MEDIA_PROBE_PROFILE;
  let session;
  if (profDir) {
    session = new (require('inspector').Session)();
    session.connect();
    session.post('Profiler.enable');
    session.post('Profiler.start');
  }
  const rotateProfile = (name) => {
    if (!session) return;
    session.post('Profiler.stop', (err, res) => {
      if (!err && res && res.profile) fs.writeFileSync(path.join(profDir, `${name}.cpuprofile`), JSON.stringify(res.profile));
      session.post('Profiler.start');
    });
  };

  process.on('SIGUSR2', () => {
    const n = Math.min(ring.n - ring.from, CAP);
    const take = (a) => { const r = []; for (let k = ring.n - n; k < ring.n; k++) r.push(Math.round(a[k % CAP] * 10) / 10); return r; };
    let rebases = 0;
    let ticks = 0;
    const rx = { streams: 0, rxPackets: 0, rxLost: 0, rxLate: 0, rxDuplicate: 0, rxEvents: 0, txPackets: 0, jitterSum: 0, jitterMax: 0 };
    for (const c of clocks) {
      rebases += c.stats.rebases;
      ticks += c.stats.ticks;
      for (const m of c.clients || []) {
        const s = m.stream && m.stream.stats;
        if (!s) continue;
        const prev = lastStats.get(m) || { rxPackets: 0, rxLost: 0, rxLate: 0, rxDuplicate: 0, rxEvents: 0, txPackets: 0 };
        rx.streams++;
        for (const k of ['rxPackets', 'rxLost', 'rxLate', 'rxDuplicate', 'rxEvents', 'txPackets']) rx[k] += s[k] - prev[k];
        rx.jitterSum += s.jitterMs;
        rx.jitterMax = Math.max(rx.jitterMax, s.jitterMs);
        lastStats.set(m, { rxPackets: s.rxPackets, rxLost: s.rxLost, rxLate: s.rxLate, rxDuplicate: s.rxDuplicate, rxEvents: s.rxEvents, txPackets: s.txPackets });
      }
    }
    // This window's per-packet lateness (ms), as raw float32 next to the JSON file.
    const np = Math.min(pkt.n - pkt.from, PCAP);
    const lateBuf = Buffer.alloc(np * 4);
    for (let k = 0, j = pkt.n - np; k < np; k++, j++) lateBuf.writeFloatLE(pkt.late[j & (PCAP - 1)], k * 4);
    fs.writeFileSync(`${out}.f32`, lateBuf);
    pkt.from = pkt.n;
    const snap = {
      seq: ++seq, at: Date.now(), ticks, rebases: rebases - prevRebases, packets: np,
      start: take(ring.start), js: take(ring.js), last: take(ring.last),
      eld: eldStats(eld), gc, stalls,
      rx, mem: process.memoryUsage(),
    };
    prevRebases = rebases;
    gc = {};
    stalls = [];
    ring.from = ring.n;
    rotateProfile(`ctserver-${process.pid}-window-${seq}`);
    try {
      packetsOn = JSON.parse(fs.readFileSync(`${out}.ctl`, 'utf8')).packets === true;
    } catch {
      packetsOn = false;
    }
    eld.reset();
    const tmp = `${out}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(snap));
    fs.renameSync(tmp, out);
  });
}

// =================================================================================================
// Load generator process: a SipCaller placing calls with speech and RFC 4733 keys, measuring.
// =================================================================================================
function generator() {
  const { monitorEventLoopDelay } = require('perf_hooks');
  const { SipCaller } = require('../dist/server');
  const { readAudioFile } = require('../dist/server/media/audio-file');
  const KEYS = '0123456789';
  const HIST_BIN = 0.05; // ms
  const HIST_N = 40000; // up to 2 s
  let caller;
  let speech;
  let digitEveryMs = 10000;
  let genDetect = false;
  const calls = []; // { cc, port, timer, m: measurement state }
  let measuring = false;
  let windowS = 10;
  let digitsSent = 0;
  let cpu0;
  let clockFrom = 0;
  let rebases0 = 0;
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();

  const reply = (id, body) => process.send({ id, ...body });
  process.on('disconnect', () => process.exit(0)); // the parent is gone
  process.on('message', (msg) => {
    handle(msg).then((body) => reply(msg.id, { ok: true, ...body }), (e) => reply(msg.id, { ok: false, error: e && e.stack ? e.stack : String(e) }));
  });

  function onPacket(c) {
    return (buf) => {
      if (!measuring || buf.length < 12) return;
      const pt = buf[1] & 0x7f;
      if (pt !== 0 && pt !== 8) return;
      const now = performance.now();
      const m = c.m;
      const seq = buf.readUInt16BE(2);
      const ts = buf.readUInt32BE(4);
      if (m.n === 0) {
        m.ts0 = ts;
        m.seq0 = seq;
        m.seqHi = 0;
        m.lastSeq = seq;
        m.seqExt = 0;
      } else {
        let d = (seq - m.lastSeq) & 0xffff;
        if (d >= 0x8000) d -= 0x10000;
        m.seqExt += d;
        m.lastSeq = seq;
        if (m.seqExt > m.seqHi) m.seqHi = m.seqExt;
      }
      const si = m.seqExt + 64;
      if (si >= 0 && si < m.seen.length) {
        if (m.seen[si]) m.dup++;
        else m.seen[si] = 1;
      }
      const dts = ((ts - m.ts0) | 0) / 8; // ms; | 0 handles the 32-bit wrap
      if (m.n < m.off.length) m.off[m.n] = now - dts;
      m.n++;
    };
  }

  async function place(ports, rate, target) {
    const gap = 1000 / rate;
    const t0 = performance.now();
    const started = [];
    for (let i = 0; i < ports.length; i++) {
      const wait = t0 + i * gap - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const cc = caller.call(`sip:${ports[i]}@127.0.0.1:${target}`);
      const c = { cc, port: ports[i], timers: [], ended: false, m: { n: 0, dup: 0, off: new Float64Array(0), seen: new Uint8Array(0) } };
      calls.push(c);
      started.push(c);
      cc.ended.then(() => { c.ended = true; for (const t of c.timers) clearTimeout(t); });
      cc.answered.then(() => {
        const media = cc.media;
        if (!media) return;
        media.stream.socket.on('message', onPacket(c));
        // The generator needs no in-band DTMF detector of its own (PeerMedia runs one on every
        // received frame): switch it off to keep the load generator light.
        if (!genDetect && media.dtmfRx) media.dtmfRx.process = () => '';
        const loop = () => { if (!c.ended) media.send(speech).then(loop); };
        loop();
        const key = () => {
          if (c.ended) return;
          media.sendDigits(KEYS[Math.floor(Math.random() * KEYS.length)], { mode: 'rfc4733' }).catch(() => undefined);
          if (measuring) digitsSent++;
          c.timers[1] = setTimeout(key, digitEveryMs);
        };
        if (digitEveryMs > 0) c.timers[0] = setTimeout(key, Math.random() * digitEveryMs);
      }, () => undefined);
    }
    const results = await Promise.all(started.map((c) => Promise.race([
      c.cc.answered.then(() => (c.cc.media ? 'answered' : 'no media'), (e) => `failed ${e.status || ''} ${e.reason || e.message}`.trim()),
      new Promise((r) => setTimeout(() => r('timeout'), 20000)),
    ])));
    const counts = {};
    for (const r of results) counts[r] = (counts[r] || 0) + 1;
    return { counts, ms: performance.now() - t0 };
  }

  async function handle(msg) {
    switch (msg.cmd) {
      case 'init': {
        digitEveryMs = msg.digitEvery * 1000;
        genDetect = msg.genDetect;
        speech = await readAudioFile(msg.audioFile);
        caller = new SipCaller({ host: '127.0.0.1', port: 0, keepAudio: false });
        await caller.start();
        await caller.reserveMedia(msg.reserve);
        return { pid: process.pid };
      }
      case 'call':
        return place(msg.ports, msg.rate, msg.sipPort);
      case 'measure-start': {
        windowS = msg.window;
        const cap = Math.ceil(windowS * 50 * 1.2) + 100;
        for (const c of calls) {
          c.m = { n: 0, dup: 0, off: new Float64Array(cap), seen: new Uint8Array(cap + 128), lost0: c.cc.media ? c.cc.media.stream.stats.rxLost : 0 };
        }
        digitsSent = 0;
        clockFrom = caller.clock.stats.latenessCount;
        rebases0 = caller.clock.stats.rebases;
        eld.reset();
        cpu0 = process.cpuUsage();
        measuring = true;
        return { t: Date.now() };
      }
      case 'measure-stop': {
        measuring = false;
        const cpu = process.cpuUsage(cpu0);
        const hist = new Uint32Array(HIST_N);
        let over = 0;
        let max = 0;
        let received = 0;
        let expected = 0;
        let dup = 0;
        let lost = 0;
        let streams = 0;
        const jitter = [];
        const perStreamMax = [];
        for (const c of calls) {
          const media = c.cc.media;
          if (c.ended || !media) continue;
          const m = c.m;
          streams++;
          jitter.push(media.stream.stats.jitterMs);
          lost += media.stream.stats.rxLost - (m.lost0 || 0);
          if (m.n === 0) continue;
          received += m.n;
          dup += m.dup;
          expected += m.seqHi + 1;
          const k = Math.min(m.n, m.off.length);
          let base = Infinity;
          for (let i = 0; i < k; i++) if (m.off[i] < base) base = m.off[i];
          let smax = 0;
          for (let i = 0; i < k; i++) {
            const late = m.off[i] - base;
            if (late > smax) smax = late;
            const b = Math.floor(late / HIST_BIN);
            if (b < HIST_N) hist[b]++;
            else over++;
          }
          perStreamMax.push(smax);
          if (smax > max) max = smax;
        }
        // Our own send schedule (the generator's MediaClock): lateness of its ticks in the window.
        const st = caller.clock.stats;
        const cnt = Math.min(st.latenessCount - clockFrom, st.lateness.length);
        const own = [];
        for (let k = st.latenessCount - cnt; k < st.latenessCount; k++) own.push(st.lateness[k % st.lateness.length] / 1000);
        const sparse = [];
        hist.forEach((v, i) => { if (v) sparse.push([i, v]); });
        return {
          streams, received, expected, dup, lost, digitsSent, hist: sparse, histBin: HIST_BIN, over, max,
          jitter, perStreamMax,
          cpuMs: (cpu.user + cpu.system) / 1000,
          ownLateMs: own, ownRebases: st.rebases - rebases0,
          eld: eldStats(eld),
        };
      }
      case 'hangup': {
        for (const c of calls) if (!c.ended) c.cc.hangup();
        await Promise.race([Promise.all(calls.map((c) => c.cc.ended)), new Promise((r) => setTimeout(r, 10000))]);
        return { left: calls.filter((c) => !c.ended).length };
      }
      case 'exit':
        await caller.stop();
        setTimeout(() => process.exit(0), 50);
        return {};
      default:
        throw new Error(`unknown command ${msg.cmd}`);
    }
  }
}

// =================================================================================================
// The benchmark.
// =================================================================================================
async function main() {
  const fs = require('fs');
  const path = require('path');
  const { execFileSync } = require('child_process');
  const { CtPort, CtManager, Supervisor } = require('../dist/core');
  const { readAudioFile } = require('../dist/server/media/audio-file');
  const L = require('./lib');

  const argv = process.argv.slice(2);
  const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : def; };
  const STEPS = String(opt('calls', '100,200,400,600')).split(',').map(Number).sort((a, b) => a - b);
  const WINDOW_S = Number(opt('window', 10));
  const SETTLE_S = Number(opt('settle', 3));
  const RATE = Number(opt('rate', 100));
  const GENS = Number(opt('gens', 2));
  const DIGIT_EVERY = Number(opt('digit-every', 10));
  const PROMPT_S = Number(opt('prompt', 30));
  const CPU_PROF = opt('cpu-prof', undefined);
  const KEEP = argv.includes('--keep');
  const GEN_DETECT = argv.includes('--gen-detect');
  const PACKET_S = Number(opt('packet-window', WINDOW_S));
  const PACKET_PROBE = PACKET_S > 0;
  const MAX = STEPS[STEPS.length - 1];
  const AIM = { calls: 400, cpu: 60, p99: 5 };
  const SEQ_PER_KEY = 7;
  // "others" includes kernel work our own traffic causes outside softirq (about 20 % of a core at
  // 200 calls here), so the threshold leaves room for it.
  const QUIET_PCT = Number(opt('quiet', 30)); // % of a core others may use during a window
  const QUIET_WAIT_S = Number(opt('quiet-wait', 120));
  const TRIES = Number(opt('tries', 2));
  const PIN = !argv.includes('--no-pin');
  const FLOOR = !argv.includes('--no-floor');

  L.header(`media load: ${STEPS.join(', ')} calls with speech both ways on one ctserver process, ${WINDOW_S} s windows, ${GENS} generator process(es)`);
  const dir = L.tmpDir('bench-media-load-');
  if (!KEEP) L.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));

  // ---- the prompt: speech-like audio, PROMPT_S seconds ----------------------------------------
  const prompt = path.join(dir, 'prompt.wav');
  const promptInfo = await makeSpeech(prompt, PROMPT_S);
  const promptSamples = await readAudioFile(prompt);
  console.log(`prompt: ${promptInfo} (${(promptSamples.length / 8000).toFixed(1)} s at 8 kHz), in ${dir}`);

  // ---- the server, with the probe preloaded ----------------------------------------------------
  const probeFile = path.join(dir, 'probe.json');
  const srv = await startServer();
  console.log(`ctserver pid ${srv.pid}: --ports ${MAX}, TCP base ${srv.basePort}, SIP ${srv.sipPort}, RTP ${srv.rtp}${CPU_PROF ? `, --cpu-prof into ${CPU_PROF}` : ''}`);
  let probeSeq = 0;
  /** Ends the server's current window (returns its figures) and starts the next one, with the
   *  per-packet probe on or off. */
  const snapshot = async ({ packets = false } = {}) => {
    fs.writeFileSync(`${probeFile}.ctl`, JSON.stringify({ packets }));
    process.kill(srv.pid, 'SIGUSR2');
    for (let i = 0; i < 200; i++) {
      await L.delay(10);
      try {
        const s = JSON.parse(fs.readFileSync(probeFile, 'utf8'));
        if (s.seq > probeSeq) {
          probeSeq = s.seq;
          const b = fs.readFileSync(`${probeFile}.f32`);
          s.pkt = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
          return s;
        }
      } catch { /* not yet */ }
    }
    throw new Error('the probe in the server did not answer SIGUSR2');
  };

  // ---- the answering script -------------------------------------------------------------------
  const script = { rings: 0, answered: 0, answerErr: {}, plays: 0, replies: {}, digits: 0, errors: {}, pending: new Set() };
  const lines = [];
  for (let n = 1; n <= MAX; n++) {
    const ct = new CtPort({ port: n, basePort: srv.basePort, reconnect: false, resolveAudio: false });
    let up = false;
    const playLoop = async () => {
      while (up) {
        script.plays++;
        let r;
        try {
          script.pending.add(n);
          r = await ct.play('prompt.wav');
          script.pending.delete(n);
        } catch (e) {
          script.pending.delete(n);
          script.errors[e.code || e.message] = (script.errors[e.code || e.message] || 0) + 1;
          return;
        }
        const k = `${r.status}${r.event ? ` ${r.event}` : ''}`;
        script.replies[k] = (script.replies[k] || 0) + 1;
        if (r.status === 'EVENT' && r.event === 'dtmf') await ct.clear().catch(() => undefined);
        else if (r.status !== 'OK') return;
      }
    };
    ct.on('ring', (e) => {
      if (e.rings !== 1) return;
      script.rings++;
      ct.offHook().then((r) => {
        if (r.status !== 'OK') { script.answerErr[r.status] = (script.answerErr[r.status] || 0) + 1; return; }
        script.answered++;
        up = true;
        playLoop();
      }, () => undefined);
    });
    ct.on('dtmf', () => { script.digits++; });
    ct.on('hangup', () => { up = false; });
    ct.on('error', () => undefined);
    lines.push(ct);
  }
  await Promise.all(lines.map((ct) => ct.connect()));
  await Promise.all(lines.map((ct) => ct.clear()));
  L.onCleanup(() => Promise.all(lines.map((ct) => ct.disconnect().catch(() => undefined))));

  const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };
  const rssMedian = async (ms) => {
    const s = [];
    for (let t = 0; t < ms; t += 100) { s.push(L.rssKiB(srv.pid).rss); await L.delay(100); }
    return median(s);
  };
  await L.delay(1000);
  const idleCpu0 = L.cpuMs(srv.pid);
  const idleT0 = Date.now();
  const rssIdle = await rssMedian(2000);
  const idleCpuPct = ((L.cpuMs(srv.pid) - idleCpu0) / (Date.now() - idleT0)) * 100;
  console.log(`idle (${MAX} CtPorts connected, no call): RSS ${rssIdle} KiB, CPU ${idleCpuPct.toFixed(1)} %`);

  // ---- generators -----------------------------------------------------------------------------
  const gens = [];
  for (let g = 0; g < GENS; g++) {
    const child = L.spawnTracked(process.execPath, [__filename, '--generator'], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const pending = new Map();
    let nextId = 1;
    child.on('message', (m) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.ok) p.resolve(m); else p.reject(new Error(`generator ${g}: ${m.error}`));
    });
    child.done.then((r) => {
      for (const p of pending.values()) p.reject(new Error(`generator ${g} exited (${r.code}${r.signal ? `, ${r.signal}` : ''}): ${r.out.slice(-2000)}`));
      pending.clear();
    });
    const ask = (cmd, body = {}, ms = 120000) => new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      child.send({ id, cmd, ...body });
      setTimeout(() => { if (pending.delete(id)) reject(new Error(`generator ${g}: ${cmd} timed out`)); }, ms).unref();
    });
    gens.push({ child, ask });
  }
  const share = Math.ceil(MAX / GENS);
  const inits = await Promise.all(gens.map((g) => g.ask('init', { audioFile: prompt, reserve: share + 4, digitEvery: DIGIT_EVERY, genDetect: GEN_DETECT })));
  inits.forEach((r, i) => { gens[i].pid = r.pid; });
  console.log(`generators: pids ${gens.map((g) => g.pid).join(', ')}, ${share} RTP sockets reserved each`);
  // "One core": the server (all its threads) alone on CPU 0, the load on the other CPUs, so that
  // the server's figures are not the scheduler sharing its core with the load generators.
  let pinned = 'no (--no-pin, or one CPU, or taskset missing)';
  const cpus = require('os').cpus().length;
  if (PIN && cpus >= 2) {
    try {
      const rest = `1-${cpus - 1}`;
      execFileSync('taskset', ['-a', '-p', '-c', '0', String(srv.pid)], { stdio: 'ignore' });
      for (const pid of [...gens.map((g) => g.pid), process.pid]) execFileSync('taskset', ['-a', '-p', '-c', rest, String(pid)], { stdio: 'ignore' });
      pinned = `server on CPU 0, generators and this script on CPU ${rest}`;
    } catch (e) {
      pinned = `no (taskset failed: ${e.message.split('\n')[0]})`;
    }
  }
  console.log(`pinned: ${pinned}`);

  // ---- steps ----------------------------------------------------------------------------------
  const rows = [];
  let placed = 0;
  const setupCounts = {};
  const L_CLK = 100; // USER_HZ
  const procStat = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    return { busy: user + nice + system + irq + softirq, idle, iowait, softirq, steal };
  };
  const snmp = () => {
    const t = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const k = t[0].split(/\s+/).slice(1);
    const v = t[1].split(/\s+/).slice(1).map(Number);
    const o = {};
    k.forEach((name, i) => { o[name] = v[i]; });
    return o;
  };
  for (const N of STEPS) {
    // Place calls placed+1..N, round-robin over the generators.
    const per = gens.map(() => []);
    for (let p = placed + 1; p <= N; p++) per[(p - 1) % GENS].push(p);
    const t0 = Date.now();
    const setups = await Promise.all(gens.map((g, i) => (per[i].length ? g.ask('call', { ports: per[i], rate: RATE / GENS, sipPort: srv.sipPort }) : { counts: {} })));
    placed = N;
    for (const s of setups) for (const [k, v] of Object.entries(s.counts)) setupCounts[k] = (setupCounts[k] || 0) + v;
    console.log(`\n${N} calls: placed in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(setupCounts)}; script: ${script.answered} answered`);
    await L.delay(SETTLE_S * 1000);

    let best;
    for (let attempt = 1; attempt <= TRIES; attempt++) {
      const waited = await waitQuiet();
      const row = await measure(N);
      row.attempt = attempt;
      row.waitedS = waited;
      printRow(row);
      if (!best || row.machine.others < best.machine.others) best = row;
      if (row.machine.others <= QUIET_PCT) break;
      if (attempt < TRIES) console.log(`  disturbed: other processes used ${row.machine.others.toFixed(0)} % of a core during the window; measuring again`);
    }
    rows.push(best);
  }

  // ---- tear down ------------------------------------------------------------------------------
  const left = await Promise.all(gens.map((g) => g.ask('hangup')));
  await L.delay(1500);
  // Every call is gone: every play should have been answered (EVENT hangup), every port idle.
  const unanswered = script.pending.size;
  const states = {};
  {
    const m = new CtManager({ managerPort: srv.managerPort, reconnect: false });
    try {
      await m.connect();
      const r = await Promise.race([m.portStatus(), L.delay(10000).then(() => { throw new Error('port_status: no reply in 10 s'); })]);
      for (const p of r.ports || []) states[`${p.state}/${p.hook}`] = (states[`${p.state}/${p.hook}`] || 0) + 1;
    } catch (e) {
      states.error = e.message;
    } finally {
      await m.disconnect().catch(() => undefined);
    }
  }
  await Promise.all(gens.map((g) => g.ask('exit').catch(() => undefined)));
  await Promise.all(gens.map((g) => Promise.race([g.child.done, L.delay(3000)])));
  await Promise.all(lines.map((ct) => ct.disconnect().catch(() => undefined)));
  await srv.sup.stop();

  // ---- the floor: the same packet rates through bare Node sockets, no media work ----------------
  // CPU figures on these machines move by tens of % from one run to the next (other tenants on
  // the host); a ratio to a floor measured in the same run, on the same CPU, moves much less.
  if (FLOOR) {
    for (const r of rows) {
      try {
        const out = execFileSync(process.execPath, [path.join(__dirname, 'udp-floor.js'), '--streams', String(r.calls), '--seconds', String(WINDOW_S)], { encoding: 'utf8' });
        const m = /RESULT udp-floor (.*)/.exec(out);
        r.floorCpuPct = m ? JSON.parse(m[1]).cpuPct : NaN;
      } catch (e) {
        r.floorCpuPct = NaN;
        console.log(`  udp floor at ${r.calls} streams failed: ${e.message.split('\n')[0]}`);
      }
      r.cpuOverFloor = r.cpuPct / r.floorCpuPct;
    }
  }

  // ---- report ---------------------------------------------------------------------------------
  const f = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  if (FLOOR) {
    console.log('\nServer CPU against the floor (bench/udp-floor.js: the same packets each way through bare Node sockets on the same CPU, no media work, measured right after):');
    L.table([
      ['calls', 'server CPU % of a core', 'floor CPU %', 'server / floor', 'server - floor (media work) %'],
      ...rows.map((r) => [String(r.calls), f(r.cpuPct, 1), f(r.floorCpuPct, 1), f(r.cpuOverFloor, 2), f(r.cpuPct - r.floorCpuPct, 1)]),
    ]);
  }
  console.log(`\nServer (one process, --ports ${MAX}): CPU over the ${WINDOW_S} s window, RTP send lateness against the ideal 20 ms schedule (ms):`);
  L.table([
    ['calls', 'CPU % of a core', 'per packet p50', 'p99', 'max', 'packets', 'CPU with probe', 'tick start p50', 'p99', 'tick last out p50', 'p99', 'max', 'rebases', 'event loop p99', 'others on the machine %'],
    ...rows.map((r) => [String(r.calls), f(r.cpuPct, 1), f(r.send.packet.p50), f(r.send.packet.p99), f(r.send.packet.max), String(r.send.packets), f(r.send.cpuPctWithProbe, 1), f(r.send.start.p50), f(r.send.start.p99),
      f(r.send.last.p50), f(r.send.last.p99), f(r.send.last.max), `${r.rebases}${PACKET_PROBE ? `/${r.send.packetRebases}` : ''}`, f(r.serverEld.p99), f(r.machine.others, 0)]),
  ]);
  console.log('\nWhat the callers received (all streams pooled):');
  L.table([
    ['calls', 'streams', 'caller-side lateness p50', 'p99', 'max', 'jitter (RFC 3550) mean', 'p99', 'max', 'expected', 'received', 'missing', 'duplicated', 'jb lost', 'kernel UDP drops'],
    ...rows.map((r) => [String(r.calls), String(r.streams), f(r.recv.p50), f(r.recv.p99), f(r.recv.max), f(r.jitter.mean), f(r.jitter.p99), f(r.jitter.max),
      String(r.callerRx.expected), String(r.callerRx.received), String(r.callerRx.missing), String(r.callerRx.dup), String(r.callerRx.lost), String(r.udp.InErrors + r.udp.RcvbufErrors + r.udp.SndbufErrors)]),
  ]);
  console.log('\nWhat the server received, memory, and the load generators:');
  L.table([
    ['calls', 'server rx pkts', 'server jb lost', 'keys', 'lost - 7/key', 'late', 'server jitter mean', 'RSS KiB', 'RSS/call KiB', 'heap MiB', 'gen CPU %', 'gen send p99', 'gen send max', 'gen loop p99', 'script CPU %', 'keys sent', 'keys heard', 'in-band detections'],
    ...rows.map((r) => [String(r.calls), String(r.serverRx.rxPackets), String(r.serverRx.rxLost), String(r.serverRx.rxEvents), String(r.serverRx.lostNet), String(r.serverRx.rxLate), f(r.serverRx.jitterMean), String(r.rss), f(r.rssPerCallKiB, 1), f(r.heapUsedMiB, 1),
      r.gens.map((g) => f(g.cpuPct, 0)).join('+'), r.gens.map((g) => f(g.lateP99, 1)).join('/'), r.gens.map((g) => f(g.lateMax, 1)).join('/'), r.gens.map((g) => f(g.eld.p99, 1)).join('/'),
      f(r.scriptCpuPct, 1), String(r.digitsSent), String(r.digitsHeard), String(r.digitsHeard - r.serverRx.rxEvents)]),
  ]);
  console.log(`\nThe machine (${require('os').cpus().length} CPUs; % of one core, /proc/stat):`);
  L.table([
    ['calls', 'all busy', 'server', 'generators', 'this process', 'softirq', 'others', 'steal', 'iowait'],
    ...rows.map((r) => [String(r.calls), f(r.machine.busy, 1), f(r.cpuPct, 1), f(r.gens.reduce((a, g) => a + g.cpuPct, 0), 1), f(r.scriptCpuPct, 1), f(r.machine.softirq, 1), f(r.machine.others, 1), f(r.machine.steal, 1), f(r.machine.iowait, 1)]),
  ]);
  console.log(`  idle RSS ${rssIdle} KiB (all ${MAX} CtPorts connected, no call), idle CPU ${f(idleCpuPct, 1)} %`);
  console.log(`  per packet: when each RTP packet went to the kernel, measured in a second window of ${PACKET_S} s right after (the probe costs CPU: "CPU with probe"); tick start / last out: when the MediaClock tick began, and when its last datagram went out`);
  console.log('  others on the machine: CPU used by processes other than the server, the generators and this one during the window (they disturb the figures); softirq (charged to no process: mostly the loopback delivery of our RTP) is not counted in it');
  console.log('  caller-side lateness: arrival - RTP-timestamp schedule, per stream against its earliest packet in the window (includes loopback and the generator\'s loop lag)');
  console.log('  missing = expected (from sequence numbers) - distinct sequence numbers received, in the window; duplicated = the same sequence number received again; jb lost = jitter-buffer lost count; kernel UDP drops = InErrors+RcvbufErrors+SndbufErrors (machine-wide)');
  console.log('  server jb lost: the server\'s jitter-buffer lost count, which includes the 7 sequence numbers of each RFC 4733 key (lost - 7/key: without them, +-7 at the window edges)');
  console.log('  keys heard: dtmf events at the CtPort script; in-band detections = keys heard - RFC 4733 keys the server received (the callers send speech, so these would be talk-off)');
  console.log('  gen send: lateness of the generators\' own MediaClock ticks (ms); gen loop: their event-loop delay p99 (ms)');
  console.log(`  play replies in the windows: ${JSON.stringify(rows.map((r) => r.replies))}; setup: ${JSON.stringify(setupCounts)}; script: ${JSON.stringify({ rings: script.rings, answered: script.answered, answerErr: script.answerErr })}; calls left after hang-up: ${JSON.stringify(left.map((l) => l.left))}`);
  console.log(`  1.5 s after every caller hung up: ${unanswered} plays still had no reply; port states (port_status) ${JSON.stringify(states)}`);
  for (const r of rows) {
    const busy = r.gens.filter((g) => g.cpuPct > 85 || g.lateP99 > 5);
    if (busy.length) console.log(`  ${r.calls} calls: a generator fell behind (CPU ${r.gens.map((g) => f(g.cpuPct, 0)).join('/')} %, own send p99 ${r.gens.map((g) => f(g.lateP99, 1)).join('/')} ms): the caller-side figures include its lag`);
  }
  // Exact counts only (the server's "lost - 7/key" is off by up to a few keys at the window edges).
  const lossOf = (r) => r.callerRx.missing + r.callerRx.dup + r.callerRx.lost + r.serverRx.rxLate + r.serverRx.rxDuplicate + r.udp.InErrors + r.udp.RcvbufErrors + r.udp.SndbufErrors;
  const sendP99 = (r) => (PACKET_PROBE ? r.send.packet.p99 : r.send.last.p99);
  const sendWhat = PACKET_PROBE ? 'per packet' : 'last packet of each tick; --packet-window 0';
  const a = rows.find((r) => r.calls === AIM.calls);
  if (a) {
    const loss = lossOf(a);
    console.log(`\nAim at ${AIM.calls} calls: CPU < ${AIM.cpu} %: ${f(a.cpuPct, 1)} % ${L.verdict(a.cpuPct < AIM.cpu)}; send p99 <= ${AIM.p99} ms (${sendWhat}): ${f(sendP99(a))} ms ${L.verdict(sendP99(a) <= AIM.p99)}; ` +
      `no loss: ${loss} packets missing, duplicated or lost at the callers, late or duplicated at the server, or dropped by the kernel ${L.verdict(loss === 0)}`);
  }
  const s = rows.find((r) => r.calls === 600);
  if (s) {
    const loss = lossOf(s);
    console.log(`Stretch at 600 calls: CPU ${f(s.cpuPct, 1)} % ${L.verdict(s.cpuPct < AIM.cpu)}; send p99 ${f(sendP99(s))} ms ${L.verdict(sendP99(s) <= AIM.p99)}; loss ${loss} ${L.verdict(loss === 0)}`);
  }
  console.log(`\nRESULT media-load ${JSON.stringify({ steps: STEPS, windowS: WINDOW_S, gens: GENS, pinned, rssIdle, idleCpuPct, rows, unansweredPlaysAfterHangup: unanswered, portStatesAfterHangup: states })}`);


  /** One measurement window at N calls. */
  async function measure(N) {
    await snapshot(); // resets the server's window
    const udp0 = snmp();
    const sys0 = procStat();
    const sysT0 = Date.now();
    const cpu0 = L.cpuMs(srv.pid);
    const own0 = process.cpuUsage();
    const digits0 = script.digits;
    const replies0 = { ...script.replies };
    const w0 = Date.now();
    await Promise.all(gens.map((g) => g.ask('measure-start', { window: WINDOW_S })));
    const rssSamples = [];
    while (Date.now() - w0 < WINDOW_S * 1000) {
      rssSamples.push(L.rssKiB(srv.pid).rss);
      await L.delay(Math.min(500, WINDOW_S * 1000 - (Date.now() - w0)));
    }
    const gm = await Promise.all(gens.map((g) => g.ask('measure-stop')));
    const wallMs = Date.now() - w0;
    const digitsHeard = script.digits - digits0;
    const replies = Object.fromEntries(Object.entries(script.replies).map(([k, v]) => [k, v - (replies0[k] || 0)]).filter(([, v]) => v));
    const cpuMs = L.cpuMs(srv.pid) - cpu0;
    const own = process.cpuUsage(own0);
    const udp1 = snmp();
    const sys1 = procStat();
    const sysMs = Date.now() - sysT0;
    const snap = await snapshot({ packets: PACKET_S > 0 });
    // Window B: the per-packet probe on (it adds a nextTick per packet, so CPU is taken from A).
    let snapB = { pkt: new Float32Array(0) };
    let cpuB = NaN;
    if (PACKET_S > 0) {
      const b0 = L.cpuMs(srv.pid);
      const tb = Date.now();
      await L.delay(PACKET_S * 1000);
      cpuB = ((L.cpuMs(srv.pid) - b0) / (Date.now() - tb)) * 100;
      snapB = await snapshot({ packets: false });
    }
    const jiff = (k) => ((sys1[k] - sys0[k]) * 1000) / L_CLK / sysMs * 100; // % of one core
    const rss = median(rssSamples);

    // Pool the generators' receive-side lateness histograms.
    const bin = gm[0].histBin;
    const hist = new Map();
    let over = 0;
    for (const r of gm) { for (const [b, v] of r.hist) hist.set(b, (hist.get(b) || 0) + v); over += r.over; }
    const histPct = (p) => {
      const total = [...hist.values()].reduce((a, b) => a + b, 0) + over;
      const want = Math.ceil((p / 100) * total);
      let acc = 0;
      for (const b of [...hist.keys()].sort((x, y) => x - y)) { acc += hist.get(b); if (acc >= want) return (b + 1) * bin; }
      return Infinity;
    };
    const jit = L.summary(gm.flatMap((r) => r.jitter));
    const genLate = gm.map((r) => L.summary(r.ownLateMs));
    const sum = (k) => gm.reduce((a, r) => a + r[k], 0);
    const start = L.summary(snap.start.map((v) => v / 1000));
    const js = L.summary(snap.js.map((v) => v / 1000));
    const last = L.summary(snap.last.filter((v) => Number.isFinite(v)).map((v) => v / 1000));
    const perPkt = L.summary(snapB.pkt);
    const row = {
      calls: N,
      streams: sum('streams'),
      cpuPct: (cpuMs / wallMs) * 100,
      ticks: snap.start.length,
      rebases: snap.rebases,
      send: { packet: pick(perPkt), packets: perPkt.n, cpuPctWithProbe: cpuB, packetRebases: snapB.rebases, start: pick(start), js: pick(js), last: pick(last) },
      serverEld: snap.eld,
      serverGc: snap.gc, serverGcB: snapB.gc, stalls: snap.stalls, stallsB: snapB.stalls,
      recv: { p50: histPct(50), p99: histPct(99), max: Math.max(...gm.map((r) => r.max)) },
      jitter: { mean: jit.mean, p99: jit.p99, max: jit.max },
      // The server's jitter buffer counts the sequence numbers that the callers' RFC 4733 packets
      // used (5 frames + 2 repeated end packets = 7 per 100 ms key) as lost audio; take them off.
      serverRx: { ...snap.rx, lostNet: snap.rx.rxLost - SEQ_PER_KEY * snap.rx.rxEvents, jitterMean: snap.rx.streams ? snap.rx.jitterSum / snap.rx.streams : NaN },
      // missing = expected - distinct sequence numbers received; dup = received twice or more
      callerRx: { received: sum('received'), expected: sum('expected'), dup: sum('dup'), missing: sum('expected') - (sum('received') - sum('dup')), lost: sum('lost') },
      udp: { InErrors: udp1.InErrors - udp0.InErrors, RcvbufErrors: udp1.RcvbufErrors - udp0.RcvbufErrors, SndbufErrors: udp1.SndbufErrors - udp0.SndbufErrors },
      rss, rssPerCallKiB: (rss - rssIdle) / N, heapUsedMiB: snap.mem.heapUsed / 1048576, externalMiB: snap.mem.external / 1048576,
      gens: gm.map((r, i) => ({ cpuPct: (r.cpuMs / wallMs) * 100, lateP50: genLate[i].p50, lateP99: genLate[i].p99, lateMax: genLate[i].max, rebases: r.ownRebases, eld: r.eld })),
      scriptCpuPct: ((own.user + own.system) / 1000 / wallMs) * 100,
      // Machine-wide (/proc/stat, % of one core): everything busy, of which softirq (loopback UDP
      // delivery is done there) and steal (the hypervisor ran someone else), and what is busy
      // beyond the server, the generators and this process (other processes, kernel threads).
      machine: { busy: jiff('busy'), softirq: jiff('softirq'), steal: jiff('steal'), iowait: jiff('iowait') },
      digitsSent: sum('digitsSent'),
      digitsHeard,
      replies,
      wallMs,
    };
    // softirq time is charged to no process; on loopback it is mostly our own RTP being delivered.
    row.machine.others = row.machine.busy - row.machine.softirq - row.cpuPct - row.gens.reduce((a, g) => a + g.cpuPct, 0) - row.scriptCpuPct;
    return row;
  }

  function printRow(row) {
    const f = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
    const pk = row.send.packet;
    console.log(`  server CPU ${f(row.cpuPct, 1)} %, send lateness (ms) per packet p50 ${f(pk.p50)} p99 ${f(pk.p99)} max ${f(pk.max)}, ` +
      `caller-side p99 ${f(row.recv.p99)}, missing ${row.callerRx.missing}, duplicated ${row.callerRx.dup} (jb lost ${row.callerRx.lost}, server jb lost ${row.serverRx.rxLost} - 7 x ${row.serverRx.rxEvents} keys = ${row.serverRx.lostNet}), ` +
      `RSS ${row.rss} KiB (${f(row.rssPerCallKiB, 1)} KiB/call); generators CPU ${row.gens.map((g) => f(g.cpuPct, 0)).join(' + ')} %; server GC ${gcText(row.serverGc)}; machine busy ${f(row.machine.busy, 0)} % (others ${f(row.machine.others, 1)}, steal ${f(row.machine.steal, 1)})`);
  }

  /** Wait (up to QUIET_WAIT_S) until processes other than ours use at most QUIET_PCT % of a core. */
  async function waitQuiet() {
    const t0 = Date.now();
    const ours = () => L.cpuMs(srv.pid) + gens.reduce((a, g) => a + L.cpuMs(g.pid), 0) + L.cpuMs(process.pid);
    for (;;) {
      const s0 = procStat();
      const o0 = ours();
      await L.delay(1000);
      const s1 = procStat();
      const others = ((s1.busy - s1.softirq - s0.busy + s0.softirq) * 10 - (ours() - o0)) / 10; // % of a core over 1 s
      if (others <= QUIET_PCT) return (Date.now() - t0) / 1000;
      if (Date.now() - t0 > QUIET_WAIT_S * 1000) {
        console.log(`  the machine is busy (other processes: ${others.toFixed(0)} % of a core); measuring anyway`);
        return (Date.now() - t0) / 1000;
      }
    }
  }

  function gcText(g) {
    return Object.entries(g || {}).map(([k, v]) => `${k} ${v.n}x max ${v.max.toFixed(1)} ms`).join(', ') || 'none';
  }

  function pick(s) { return { p50: s.p50, p99: s.p99, max: s.max }; }

  /** A speech file of `seconds`: espeak-ng + sox when installed, else the bundled vocabulary. */
  async function makeSpeech(file, seconds) {
    const text = 'Thank you for calling. Please listen carefully, as our menu options have changed. ' +
      'For account balances and recent transactions, press one. To report a lost or stolen card, press two. ' +
      'For help with online banking, press three. To speak with a member of our customer service team, press zero, ' +
      'or stay on the line. Your call is important to us and will be answered in the order it was received. ' +
      'Our offices are open from eight in the morning until six in the evening, Monday to Friday.';
    try {
      const raw = path.join(dir, 'raw.wav');
      execFileSync('espeak-ng', ['-v', 'en-us', '-s', '150', '-p', '50', '-a', '100', '-w', raw, text], { stdio: 'ignore' });
      execFileSync('sox', ['-R', raw, '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed-integer', file, 'norm', '-3', 'repeat', '20', 'trim', '0', String(seconds)], { stdio: 'ignore' });
      fs.rmSync(raw);
      return `espeak-ng + sox speech, ${seconds} s`;
    } catch {
      // No espeak-ng or sox: the bundled vocabulary words, 100 ms apart, over and over.
      const vdir = path.join(L.ROOT, 'resources', 'vocabulary');
      const words = [];
      for (const n of fs.readdirSync(vdir).filter((x) => x.endsWith('.au') && x !== 'beep.au').sort()) words.push(await readAudioFile(path.join(vdir, n)));
      const pcm = new Int16Array(seconds * 8000);
      for (let at = 0, i = 0; at < pcm.length; i++) {
        const w = words[i % words.length];
        pcm.set(w.subarray(0, Math.min(w.length, pcm.length - at)), at);
        at += w.length + 800;
      }
      const h = Buffer.alloc(44);
      h.write('RIFF', 0); h.writeUInt32LE(36 + pcm.length * 2, 4); h.write('WAVEfmt ', 8); h.writeUInt32LE(16, 16);
      h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(8000, 24); h.writeUInt32LE(16000, 28);
      h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34); h.write('data', 36); h.writeUInt32LE(pcm.length * 2, 40);
      fs.writeFileSync(file, Buffer.concat([h, Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength)]));
      return `the bundled vocabulary words concatenated (no espeak-ng/sox), ${seconds} s`;
    }
  }

  async function startServer() {
    let lastErr;
    for (let i = 0; i < 20; i++) {
      const basePort = L.randomBase(MAX + 1);
      const sipPort = await L.freeUdpPort();
      const span = 4 * MAX + 100;
      const rtpLo = 2 * Math.floor((20000 + Math.random() * (60000 - 20000 - span)) / 2);
      const env = { CTPORT_MEDIA_PROBE: probeFile, NODE_OPTIONS: `${process.env.NODE_OPTIONS || ''} --require ${path.join(__dirname, 'media-load.js')}`.trim() };
      if (CPU_PROF) {
        fs.mkdirSync(CPU_PROF, { recursive: true });
        env.CTPORT_MEDIA_PROBE_PROFILE = path.resolve(CPU_PROF);
      }
      const sup = new Supervisor({
        binary: L.CTSERVER,
        args: ['--ports', String(MAX), '--base-port', String(basePort), '--manager-port', String(basePort), '--sip-port', String(sipPort),
          '--rtp-ports', `${rtpLo}-${rtpLo + span}`, '--audio-dir', dir, '--quiet'],
        env, restart: false, startTimeoutMs: 20000,
      });
      const off = L.onCleanup(() => sup.stop());
      try {
        await sup.start();
        return { sup, pid: sup.pid, basePort, managerPort: basePort, sipPort, rtp: `${rtpLo}-${rtpLo + span}` };
      } catch (e) {
        off();
        lastErr = e;
        if (e.code !== 'EADDRINUSE' && e.code !== 'EEARLYEXIT') throw e;
      }
    }
    throw lastErr;
  }
}
