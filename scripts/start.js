#!/usr/bin/env node
// `npm start`: Node-RED with this package's nodes and the demo IVR (examples/02 - IVR menu.json),
// whose ct-server config node runs the bundled ctserver. Ctrl-C stops Node-RED, which stops the
// ctserver.
//
// The user folder is .node-red/ in the repository (CTPORT_USERDIR picks another). On the first
// run it gets settings.js (from scripts/settings.js), flows.json (the demo IVR), a package.json and
// node_modules/node-red-contrib-ctport, a symlink to this repository (how Node-RED finds the
// nodes without an npm install). Later runs keep what you changed in the editor.
//
// Environment: PORT (editor, default 1880), CTPORT_SIP_PORT (5060), CTPORT_BASE_PORT (1199),
// CTPORT_MANAGER_PORT (1198), CTPORT_RTP_PORTS (10000-20000), CTPORT_USERDIR. The CTPORT_* ports
// are written into the demo's ct-server node when given.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const PKG = require(path.join(ROOT, 'package.json'));
const DEMO = path.join(ROOT, 'examples', '02 - IVR menu.json');
const RED_JS = require.resolve('node-red/red.js', { paths: [ROOT] });
const userDir = path.resolve(process.env.CTPORT_USERDIR || path.join(ROOT, '.node-red'));
const editorPort = Number(process.env.PORT) || 1880;
const STOP_TIMEOUT_MS = 15000;

const log = (line) => console.log(`[start] ${line}`);

/** Create the user folder, its settings, flows and the link to this package; apply env ports. */
function prepareUserDir() {
  fs.mkdirSync(userDir, { recursive: true });
  const settings = path.join(userDir, 'settings.js');
  if (!fs.existsSync(settings)) {
    fs.copyFileSync(path.join(__dirname, 'settings.js'), settings);
    log(`created ${settings}`);
  }
  const pkgFile = path.join(userDir, 'package.json');
  if (!fs.existsSync(pkgFile)) {
    const rel = path.relative(userDir, ROOT) || '.';
    const pkg = { name: 'node-red-project', description: 'Node-RED user folder of npm start', version: '0.0.1', private: true, dependencies: { [PKG.name]: `file:${rel.split(path.sep).join('/')}` } };
    fs.writeFileSync(pkgFile, JSON.stringify(pkg, null, 4) + '\n');
  }
  const link = path.join(userDir, 'node_modules', PKG.name);
  let target;
  try {
    target = fs.realpathSync(link);
  } catch {
    target = undefined;
  }
  if (target !== fs.realpathSync(ROOT)) {
    let isLink = true;
    try {
      isLink = fs.lstatSync(link).isSymbolicLink();
    } catch {
      // missing
    }
    if (isLink) {
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.rmSync(link, { force: true });
      fs.symlinkSync(ROOT, link, 'dir');
      log(`linked ${link} -> ${ROOT}`);
    } else {
      log(`WARNING: ${link} is an installed copy, not this repository: Node-RED will load that one`);
    }
  }
  const flowsFile = path.join(userDir, 'flows.json');
  let flows;
  let before = '';
  if (!fs.existsSync(flowsFile)) {
    const demo = JSON.parse(fs.readFileSync(DEMO, 'utf8'));
    const tab = { id: 'c7a0d1e2f3b4a596', type: 'tab', label: 'IVR demo', disabled: false, info: 'The demo IVR of `npm start`: examples/02 - IVR menu.json. Import the other examples with Import > Examples > node-red-contrib-ctport.' };
    flows = [tab, ...demo.map((n) => (n.type === 'ct-server' || n.type === 'mqtt-broker' ? n : { ...n, z: tab.id }))];
    log(`created ${flowsFile} with the demo IVR (delete it to start over)`);
  } else {
    before = fs.readFileSync(flowsFile, 'utf8');
    flows = JSON.parse(before || '[]');
  }
  // Ports from the environment go into the bundled ct-server(s).
  const env = {
    sipPort: process.env.CTPORT_SIP_PORT,
    basePort: process.env.CTPORT_BASE_PORT,
    managerPort: process.env.CTPORT_MANAGER_PORT,
    rtpPorts: process.env.CTPORT_RTP_PORTS,
  };
  const servers = flows.filter((n) => n.type === 'ct-server' && (n.mode || 'bundled') === 'bundled');
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || v === '') continue;
    for (const s of servers) s[k] = k === 'rtpPorts' ? String(v) : Number(v);
  }
  if (!before || JSON.stringify(flows) !== JSON.stringify(JSON.parse(before))) fs.writeFileSync(flowsFile, JSON.stringify(flows, null, 4) + '\n');
  return servers[0];
}

/** Pids of the processes whose parent is `pid` (Linux /proc; [] elsewhere). */
function childrenOf(pid) {
  const out = [];
  let entries = [];
  try {
    entries = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const d of entries) {
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push({ pid: Number(d), cmd: fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {
      // it has gone meanwhile
    }
  }
  return out;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Wait until the bundled ctserver answers SIP (an OPTIONS request gets a response). */
async function sipAnswers(port, timeoutMs) {
  let SipCaller;
  try {
    ({ SipCaller } = require(path.join(ROOT, 'dist', 'server')));
  } catch {
    return false;
  }
  const probe = new SipCaller({ port: 0, media: false, user: 'start' });
  await probe.start();
  try {
    const t = new Promise((r) => setTimeout(() => r(false), timeoutMs).unref());
    const ok = probe.options(`sip:127.0.0.1:${port}`).then(
      () => true,
      () => false,
    );
    return await Promise.race([ok, t]);
  } finally {
    await probe.stop();
  }
}

async function main() {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'nodes', 'index.js'))) {
    console.error('[start] the build output is missing: run `npm run build` (npm start does it for you)');
    process.exit(1);
  }
  const server = prepareUserDir();
  log(`Node-RED ${require(path.join(path.dirname(RED_JS), 'package.json')).version}, user folder ${userDir}`);

  // Node-RED in its own process group: Ctrl-C reaches this script only, which stops Node-RED in
  // order (Node-RED stops the ctserver it started).
  const red = spawn(process.execPath, [RED_JS, '--userDir', userDir], {
    cwd: userDir,
    env: { ...process.env, NODE_RED_DISABLE_TELEMETRY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let exited = false;
  const exitedP = new Promise((resolve) => red.once('exit', (code, signal) => ((exited = true), resolve({ code, signal }))));
  let stopping = false;
  let ctserverPid;

  const stop = async (why) => {
    if (stopping) return;
    stopping = true;
    log(`${why}: stopping Node-RED (pid ${red.pid})...`);
    if (!exited) red.kill('SIGINT');
    const t = setTimeout(() => {
      if (!exited) {
        log(`Node-RED did not stop in ${STOP_TIMEOUT_MS / 1000} s: killing it`);
        red.kill('SIGKILL');
      }
    }, STOP_TIMEOUT_MS);
    const { code, signal } = await exitedP;
    clearTimeout(t);
    if (ctserverPid) {
      for (let i = 0; i < 50 && alive(ctserverPid); i++) await new Promise((r) => setTimeout(r, 100));
      log(alive(ctserverPid) ? `WARNING: the ctserver (pid ${ctserverPid}) is still running` : `the ctserver (pid ${ctserverPid}) has stopped`);
    }
    log(`Node-RED has stopped (${signal ? `signal ${signal}` : `exit code ${code}`})`);
    process.exit(code === 0 || signal === 'SIGINT' ? 0 : 1);
  };
  process.on('SIGINT', () => void stop('Ctrl-C'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => void stop('SIGHUP'));
  process.on('exit', () => {
    if (!exited) red.kill('SIGKILL');
  });

  let started = false;
  const lines = (stream, out) => {
    let buf = '';
    stream.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        out.write(`${line}\n`);
        if (!started && /Started flows/.test(line)) {
          started = true;
          void ready();
        }
        if (/port in use|EADDRINUSE/i.test(line) && !started) log(`the editor port ${editorPort} is taken: try PORT=${editorPort + 1} npm start`);
      }
    });
  };
  lines(red.stdout, process.stdout);
  lines(red.stderr, process.stderr);

  const ready = async () => {
    if (!server) {
      log(`Node-RED is ready: http://127.0.0.1:${editorPort} (no bundled ct-server in the flows)`);
      return;
    }
    const sipPort = Number(server.sipPort || 5060);
    const ok = await sipAnswers(sipPort, 20000);
    if (stopping) return;
    const ct = childrenOf(red.pid).find((c) => /ctserver/.test(c.cmd));
    ctserverPid = ct && ct.pid;
    if (!ok) {
      log(`Node-RED is running (http://127.0.0.1:${editorPort}) but the ctserver does not answer SIP on 127.0.0.1:${sipPort}: see the log above (is the port taken? CTPORT_SIP_PORT picks another)`);
      return;
    }
    console.log(
      [
        '',
        '==================================================================',
        ` ready: the demo IVR is running`,
        `   Node-RED editor   http://127.0.0.1:${editorPort}`,
        `   call the IVR      sip:1@127.0.0.1:${sipPort}  (ports 1-${server.ports || 4}; any SIP phone)`,
        `   or try it with    npm run call -- 1 --dtmf 1${sipPort !== 5060 ? ` --port ${sipPort}` : ''}`,
        `   pids              Node-RED ${red.pid}, ctserver ${ctserverPid || '?'}`,
        '   Ctrl-C stops Node-RED and the ctserver.',
        '==================================================================',
        '',
      ].join('\n'),
    );
  };

  const { code, signal } = await exitedP;
  if (!stopping) {
    log(`Node-RED exited by itself (${signal ? `signal ${signal}` : `exit code ${code}`})`);
    process.exit(code || 1);
  }
}

main().catch((e) => {
  console.error(`[start] ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
