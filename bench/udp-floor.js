'use strict';
// The floor under the media-load figures: what a Node process spends only on moving the same
// RTP packets, with no media work at all. N UDP sockets each send a 172-byte datagram every
// 20 ms (one timer for all, sends spread over the period like the ctserver's clock) and receive
// one every 20 ms from a peer process; the figure is this process's CPU (utime + stime).
//   node bench/udp-floor.js [--streams 400] [--seconds 10] [--cpu 0] [--peer-cpu 1]
// Prints: RESULT udp-floor {"streams":N,"cpuPct":...}. media-load runs it at each step's call
// count right after its own steps, so the server's cost can be read as a ratio to this floor
// measured on the same machine in the same run.
const dgram = require('dgram');
const { fork, execFileSync } = require('child_process');

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : def; };
const N = Number(opt('streams', 400));
const SECONDS = Number(opt('seconds', 10));
const PKT = Buffer.alloc(172);

async function bindMany(n) {
  const socks = [];
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise((r) => s.bind(0, '127.0.0.1', r));
    s.on('message', () => undefined);
    socks.push(s);
  }
  return socks;
}

/** Send one datagram per socket per 20 ms, in 10 slots of 2 ms (as the ctserver's clock does). */
function pace(socks, ports) {
  const t0 = performance.now();
  let done = 0;
  let timer;
  const tick = () => {
    const due = Math.floor((performance.now() - t0) / 2);
    while (done < due) {
      done++;
      const slot = done % 10;
      for (let i = slot; i < socks.length; i += 10) socks[i].send(PKT, ports[i], '127.0.0.1');
    }
    timer = setTimeout(tick, 1);
  };
  tick();
  return () => clearTimeout(timer);
}

if (argv[0] === '--peer') {
  process.on('message', async (m) => {
    if (m.cmd === 'bind') {
      const socks = await bindMany(m.n);
      process.send({ ports: socks.map((s) => s.address().port) });
      process.once('message', (m2) => pace(socks, m2.ports));
    }
  });
  process.on('disconnect', () => process.exit(0));
} else {
  (async () => {
    const pin = (pid, cpu) => { try { execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' }); return true; } catch { return false; } };
    const cpus = require('os').cpus().length;
    const peer = fork(__filename, ['--peer']);
    if (cpus >= 2) {
      pin(process.pid, opt('cpu', 0));
      pin(peer.pid, opt('peer-cpu', 1));
    }
    peer.send({ cmd: 'bind', n: N });
    const { ports: peerPorts } = await new Promise((r) => peer.once('message', r));
    const socks = await bindMany(N);
    peer.send({ ports: socks.map((s) => s.address().port) });
    const stop = pace(socks, peerPorts);
    await new Promise((r) => setTimeout(r, 2000));
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const c = process.cpuUsage(c0);
    const wall = performance.now() - t0;
    stop();
    const cpuPct = ((c.user + c.system) / 1000 / wall) * 100;
    console.log(`udp floor: ${N} streams, 50 packets/s each way per stream: CPU ${cpuPct.toFixed(1)} % of a core (user ${(c.user / 10 / wall).toFixed(1)}, system ${(c.system / 10 / wall).toFixed(1)})`);
    console.log(`RESULT udp-floor ${JSON.stringify({ streams: N, cpuPct })}`);
    peer.kill();
    for (const s of socks) s.close();
    process.exit(0);
  })().catch((e) => { console.error(e); process.exit(1); });
}
