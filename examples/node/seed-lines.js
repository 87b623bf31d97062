#!/usr/bin/env node
// The same job written with the Perl module's own wire lines (ctserver protocol), as the seed's
// users saw them in ct_input. Usage: node examples/node/seed-lines.js [--base-port 1199]
'use strict';
const { CtPort } = require('../..');

const i = process.argv.indexOf('--base-port');
const ct = new CtPort({ port: 1, basePort: i > 0 ? Number(process.argv[i + 1]) : 1199 });
ct.on('input', (parsed, raw) => console.log('ct_input:', raw));
ct.on('input', async (inp) => {
  if (inp.rly === 'ring' && inp.args[1] === '1') {
    await ct.sendRaw('cmd=ctanswer src=0 dst=0 argc=0 \n');
    await ct.sendRaw('cmd=ctsleep src=0 dst=0 arg1=2 argc=1 \n');
    await ct.sendRaw('cmd=cthangup src=0 dst=0 argc=0 \n');
  }
  if (inp.rly === 'hangup') await ct.sendRaw('cmd=cthangup src=0 dst=0 argc=0 \n');
});
ct.connect().then(() => console.log('connected to ctserver on port 1'));
