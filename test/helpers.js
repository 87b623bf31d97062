'use strict';
// Shared test helpers: real servers on free ports (never a fixed port).
const net = require('net');
const { CtServer } = require('../dist/server');

function randomBase() {
  return 20000 + Math.floor(Math.random() * 30000);
}

/** Start the bundled ctserver in this process on free ports; retries on "address in use". */
async function startServer(opts = {}) {
  let lastErr;
  for (let i = 0; i < 20; i++) {
    const basePort = randomBase();
    const rtpLo = 30000 + 2 * Math.floor(Math.random() * 10000);
    const server = new CtServer({
      ports: 4,
      basePort,
      managerPort: basePort,
      sipPort: 0,
      rtpPorts: [rtpLo, rtpLo + 400],
      ringInterval: 1,
      ...opts,
    });
    try {
      const addr = await server.start();
      return { server, addr, basePort, managerPort: addr.manager, sipPort: addr.sip.port };
    } catch (e) {
      lastErr = e;
      if (e.code !== 'EADDRINUSE') throw e;
    }
  }
  throw lastErr;
}

/** A free TCP port on 127.0.0.1 (for tests that need one number). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Wait for an event from an emitter, with a timeout that names what was awaited. */
function once(emitter, name, ms = 5000, filter = () => true) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.removeListener(name, on);
      reject(new Error(`timed out after ${ms} ms waiting for "${name}"`));
    }, ms);
    function on(...args) {
      if (!filter(...args)) return;
      clearTimeout(t);
      emitter.removeListener(name, on);
      resolve(args.length > 1 ? args : args[0]);
    }
    emitter.on(name, on);
  });
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { startServer, freePort, once, delay };

/** Start bin/ctserver as a real process through the Supervisor, on free ports. */
async function startServerProcess(extraArgs = [], ports = 4) {
  const { Supervisor } = require('../dist/core');
  let lastErr;
  for (let i = 0; i < 20; i++) {
    const basePort = randomBase();
    const sipPort = await freeUdpPort();
    const rtpLo = 30000 + 2 * Math.floor(Math.random() * 10000);
    const sup = new Supervisor({
      args: ['--ports', String(ports), '--base-port', String(basePort), '--manager-port', String(basePort), '--sip-port', String(sipPort), '--rtp-ports', `${rtpLo}-${rtpLo + 400}`, '--quiet', ...extraArgs],
      restart: false,
    });
    try {
      await sup.start();
      return { sup, basePort, managerPort: basePort, sipPort };
    } catch (e) {
      lastErr = e;
      if (e.code !== 'EADDRINUSE' && e.code !== 'EEARLYEXIT') throw e;
    }
  }
  throw lastErr;
}

/** A UDP port that was free a moment ago. */
function freeUdpPort() {
  const dgram = require('dgram');
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

module.exports.startServerProcess = startServerProcess;
module.exports.freeUdpPort = freeUdpPort;
