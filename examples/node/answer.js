#!/usr/bin/env node
// Answer calls on ctserver ports with plain Node.js: no Node-RED needed.
// Usage: node examples/node/answer.js [--ports 1] [--base-port 1199] [--hold 3] [--calls N]
'use strict';
const { CtPort } = require('../..'); // from your own project: require('node-red-contrib-ctport')

const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : def; };
const ports = arg('ports', 1), basePort = arg('base-port', 1199), hold = arg('hold', 3), maxCalls = arg('calls', Infinity);
let calls = 0;
const lines = [];

for (let n = 1; n <= ports; n++) {
  const ct = new CtPort({ port: n, basePort });
  lines.push(ct);
  ct.on('ring', async (e) => {
    if (e.rings !== 1) return;
    console.log(`port ${n}: ring from ${e.cid.number || 'unknown'} ${e.cid.name}`);
    await ct.offHook();                       // answer
    const r = await ct.sleep(hold);           // hold the line (a key or a hang-up ends it early)
    if (r.event !== 'hangup') await ct.onHook(); // hang up
  });
  ct.on('hangup', async () => {
    await ct.onHook().catch(() => {});
    console.log(`port ${n}: call ended`);
    if (++calls >= maxCalls) { console.log(`handled ${calls} call(s)`); lines.forEach((l) => l.disconnect()); }
  });
  ct.on('socket_error', (e) => console.error(e.message));
  ct.connect().then(() => console.log(`port ${n}: connected to ctserver on TCP ${ct.tcpPort}`));
}
