'use strict';
// Runs the benchmarks in sequence, each in its own Node.js process (so one cannot disturb the
// next, and each cleans up after itself).
//   node bench/run.js            all of them
//   node bench/run.js rtt        just one (rtt, calls, memory, dtmf, media-load, media-latency); extra arguments go to it
// Benchmarks print their figures; they never assert. The exit code is non-zero only when a
// benchmark could not run (crashed), not when an aim was missed.
const path = require('path');
const { spawn } = require('child_process');

const ALL = ['rtt', 'calls', 'memory', 'dtmf', 'media-load', 'media-latency'];
const FILES = { dtmf: 'dtmf/bench.js' };

const [name, ...rest] = process.argv.slice(2);
if (name && !ALL.includes(name)) {
  console.error(`unknown benchmark ${JSON.stringify(name)}; choose one of: ${ALL.join(', ')}`);
  process.exit(2);
}
const todo = name ? [name] : ALL;

let current = null;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    // The benchmark cleans up on its own signal; pass it on and wait for it to finish.
    if (current && current.exitCode === null) current.kill(sig);
    else process.exit(130);
  });
}

function runOne(bench) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    current = spawn(process.execPath, [path.join(__dirname, FILES[bench] || `${bench}.js`), ...(name ? rest : [])], { stdio: 'inherit' });
    current.on('exit', (code, signal) => {
      current = null;
      resolve({ bench, code, signal, s: (Date.now() - t0) / 1000 });
    });
  });
}

(async () => {
  const done = [];
  for (const bench of todo) done.push(await runOne(bench));
  console.log('\n=== bench summary ===');
  for (const d of done) console.log(`  ${d.bench.padEnd(7)} ${d.code === 0 ? 'ran' : `FAILED (exit ${d.code}${d.signal ? `, ${d.signal}` : ''})`} in ${d.s.toFixed(1)} s`);
  process.exitCode = done.some((d) => d.code !== 0) ? 1 : 0;
})();
