'use strict';
require('should');
const path = require('path');
const fs = require('fs');
const os = require('os');
const { spawn } = require('child_process');
const { startServerProcess, freeUdpPort, once } = require('./helpers');

function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ code: -1, out: String(e) }));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('interop: sipp calls the bundled ctserver, the example CtPort script answers', function () {
  this.timeout(60000);
  let srv;
  let script;
  afterEach(async function () {
    if (script && script.exitCode === null) {
      script.kill('SIGTERM');
      await once(script, 'exit').catch(() => undefined);
    }
    if (srv) await srv.sup.stop();
  });

  it('sipp\'s built-in uac scenario: 10 of 10 calls successful, each answered and hung up by examples/node/answer.js', async function () {
    srv = await startServerProcess([], 4);
    script = spawn(process.execPath, [path.join(__dirname, '..', 'examples', 'node', 'answer.js'), '--ports', '4', '--base-port', String(srv.basePort), '--hold', '5', '--calls', '10'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let scriptOut = '';
    script.stdout.on('data', (d) => (scriptOut += d));
    script.stderr.on('data', (d) => (scriptOut += d));
    while ((scriptOut.match(/connected to ctserver/g) || []).length < 4) await once(script.stdout, 'data');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sipp-'));
    const local = await freeUdpPort();
    const r = await run('sipp', ['-sn', 'uac', `127.0.0.1:${srv.sipPort}`, '-i', '127.0.0.1', '-p', String(local), '-m', '10', '-r', '5', '-l', '4', '-d', '500', '-nostdin', '-timeout', '40', '-trace_stat', '-stf', path.join(dir, 'stat.csv'), '-trace_screen', '-screen_file', path.join(dir, 'screen.log')], { cwd: dir });
    const screen = fs.existsSync(path.join(dir, 'screen.log')) ? fs.readFileSync(path.join(dir, 'screen.log'), 'utf8') : r.out;
    r.code.should.equal(0, `sipp exited ${r.code}:\n${r.out}\n${screen}`);
    const success = /Successful call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(screen);
    const failed = /Failed call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(screen);
    Number(success[1]).should.equal(10);
    Number(failed[1]).should.equal(0);
    const exit = once(script, 'exit', 10000);
    await exit;
    scriptOut.should.match(/handled 10 call\(s\)/);
    (scriptOut.match(/: ring from/g) || []).length.should.equal(10);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
