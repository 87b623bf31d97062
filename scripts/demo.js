#!/usr/bin/env node
// `npm run demo`: starts the bundled ctserver (through the Supervisor, as the Node-RED config node
// will) and the example script that answers calls on every port. Ctrl-C stops both.
'use strict';
const path = require('path');
const { fork } = require('child_process');
const { Supervisor } = require('../dist/core');

const sipPort = process.env.CTPORT_SIP_PORT || '5060';
const basePort = process.env.CTPORT_BASE_PORT || '1199';
const managerPort = process.env.CTPORT_MANAGER_PORT || '1198';
const ports = 4;

async function main() {
  const sup = new Supervisor({
    args: ['--ports', String(ports), '--sip-port', sipPort, '--base-port', basePort, '--manager-port', managerPort, '--quiet'],
  });
  sup.on('stdout', (l) => console.log(`[ctserver] ${l}`));
  sup.on('stderr', (l) => console.error(`[ctserver] ${l}`));
  try {
    await sup.start();
  } catch (e) {
    console.error(`Could not start the bundled ctserver: ${e.message}`);
    process.exit(1);
  }
  const script = fork(path.join(__dirname, '..', 'examples', 'node', 'answer.js'), ['--ports', String(ports), '--base-port', basePort, '--hold', '5']);
  console.log(`\nReady. Call sip:1@127.0.0.1:${sipPort} (any user part hunts for a free port), for example:`);
  console.log(`  sipp -sn uac 127.0.0.1:${sipPort} -s 1 -m 1 -i 127.0.0.1 -p 0`);
  console.log('Each call is answered, held 5 s and hung up. Ctrl-C stops.\n');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    script.kill('SIGTERM');
    await sup.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  script.on('exit', () => void stop());
}
main();
