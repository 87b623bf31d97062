'use strict';
// The editor side, for real: Node-RED (red.js) runs with this package linked into its user
// directory, headless Debian Chromium (driven by playwright-core) opens the editor, checks the
// palette, opens every node's edit dialog, imports an example through the Examples library API,
// deploys it with the Deploy button, and sees it run (the ct nodes turn "connected" and a SIP
// call through the deployed IVR is answered). No network beyond 127.0.0.1.
const should = require('should');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { spawn } = require('child_process');
const E = require('./fixtures/nodes/env');
const A = require('./audio-helpers');

const ROOT = path.resolve(__dirname, '..');
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, 'artifacts');
const NODE_TYPES = ['ct ring', 'ct dtmf', 'ct hangup', 'ct event', 'ct hook', 'ct play', 'ct record', 'ct collect', 'ct dial', 'ct tone', 'ct bridge', 'ct command'];
const EXAMPLE = '02 - IVR menu';

function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${url} timed out`)));
  });
}

const haveChromium = fs.existsSync(CHROMIUM);
const haveEditor = fs.existsSync(path.join(ROOT, 'nodes', 'ctport.html'));

(haveChromium && haveEditor ? describe : describe.skip)('editor: real Node-RED + headless Chromium', function () {
  this.timeout(180000);
  let userDir;
  let browserDir;
  let red;
  let redOut = '';
  let base;
  let context;
  let page;
  const consoleErrors = [];
  const badResponses = [];
  let ports;

  before(async function () {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-editor-'));
    browserDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctport-chromium-'));
    fs.mkdirSync(path.join(userDir, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(userDir, 'node_modules', 'node-red-contrib-ctport'), 'dir');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    let lastErr;
    for (let attempt = 0; attempt < 5 && !red; attempt++) {
      const uiPort = await E.freeTcpBlock(0);
      fs.writeFileSync(
        path.join(userDir, 'settings.js'),
        `module.exports = ${JSON.stringify(
          {
            uiHost: '127.0.0.1',
            uiPort,
            flowFile: 'flows.json',
            credentialSecret: false,
            editorTheme: { tours: false, palette: { catalogues: [] }, projects: { enabled: false } },
            telemetry: { enabled: false, updateNotification: false },
            diagnostics: { enabled: false },
            logging: { console: { level: 'info', metrics: false, audit: false } },
          },
          null,
          2,
        )};\n`,
      );
      redOut = '';
      const child = spawn(process.execPath, [path.join(ROOT, 'node_modules', 'node-red', 'red.js'), '-u', userDir], { cwd: userDir, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (d) => (redOut += d));
      child.stderr.on('data', (d) => (redOut += d));
      const exited = new Promise((r) => child.once('exit', r));
      base = `http://127.0.0.1:${uiPort}`;
      const t0 = Date.now();
      let ready = false;
      while (Date.now() - t0 < 30000 && child.exitCode === null) {
        try {
          const r = await get(`${base}/nodes`, { Accept: 'application/json' });
          if (r.status === 200) {
            ready = true;
            break;
          }
        } catch (e) {
          // not listening yet
        }
        await E.delay(200);
      }
      if (ready) {
        red = { child, exited };
        break;
      }
      child.kill('SIGKILL');
      await exited;
      lastErr = new Error(`Node-RED did not start on ${base}: ${redOut.slice(-2000)}`);
      if (!/EADDRINUSE/.test(redOut)) break;
    }
    if (!red) throw lastErr;

    const { chromium } = require('playwright-core');
    context = await chromium.launchPersistentContext(browserDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1600, height: 1000 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-breakpad',
        '--disable-crash-reporter',
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400) badResponses.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
    await page.goto(`${base}/`, { waitUntil: 'load' });
    await page.waitForFunction(() => window.RED && RED.nodes && RED.nodes.getType && RED.nodes.getType('ct play') && document.querySelectorAll('.red-ui-palette-node').length > 10, null, { timeout: 30000 });
    await page.waitForTimeout(500);
  });

  after(async function () {
    if (page && !page.isClosed()) await page.screenshot({ path: path.join(ARTIFACTS, 'editor-final.png') }).catch(() => undefined);
    if (context) await context.close().catch(() => undefined);
    if (red) {
      red.child.kill('SIGINT');
      const t = setTimeout(() => red.child.kill('SIGKILL'), 15000);
      await red.exited;
      clearTimeout(t);
    }
    fs.writeFileSync(path.join(ARTIFACTS, 'editor-node-red.log'), redOut);
    fs.rmSync(userDir, { recursive: true, force: true });
    fs.rmSync(browserDir, { recursive: true, force: true });
  });

  it('loads the node set into Node-RED with no error', async function () {
    const r = await get(`${base}/nodes`, { Accept: 'application/json' });
    const sets = JSON.parse(r.body);
    const ours = sets.find((s) => s.module === 'node-red-contrib-ctport');
    should.exist(ours, `node-red-contrib-ctport is not loaded: ${redOut.slice(-1500)}`);
    should(ours.err).be.undefined();
    ours.enabled.should.equal(true);
    ours.types.should.containDeep(['ct-server', ...NODE_TYPES]);
    redOut.should.not.match(/\[error\]/i);
  });

  it('shows all 12 node types in the palette under "telephony", and no config node there', async function () {
    const info = await page.evaluate((types) => {
      const out = {};
      for (const t of types) {
        const el = document.querySelector(`.red-ui-palette-node[data-palette-type="${t}"]`);
        out[t] = el
          ? {
              category: el.closest('.red-ui-palette-category')?.id,
              label: el.querySelector('.red-ui-palette-label')?.textContent.trim(),
              icon: getComputedStyle(el.querySelector('.red-ui-palette-icon') ?? el).backgroundImage,
            }
          : null;
      }
      out.server = !!document.querySelector('.red-ui-palette-node[data-palette-type="ct-server"]');
      return out;
    }, NODE_TYPES);
    for (const t of NODE_TYPES) {
      should.exist(info[t], `${t} is not in the palette`);
      info[t].category.should.equal('red-ui-palette-container-telephony', `${t} is not under "telephony"`);
      info[t].label.should.not.be.empty();
      info[t].label.should.not.match(/ctport\//, `${t} shows an i18n key as its label`);
    }
    info.server.should.equal(false);
    await page.screenshot({ path: path.join(ARTIFACTS, 'editor-palette.png') });
  });

  it('lists the examples in Import > Examples, imports the IVR example, and every node is known and valid', async function () {
    const list = await get(`${base}/library/examples/flows/node-red-contrib-ctport`, { Accept: 'application/json' });
    list.status.should.equal(200);
    const names = JSON.parse(list.body).map((e) => e.fn ?? e);
    const files = fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.json'));
    names.should.containDeep(files.map((f) => f.replace(/\.json$/, '')));
    const ex = await get(`${base}/library/examples/flows/node-red-contrib-ctport/${encodeURIComponent(EXAMPLE)}`, { Accept: 'application/json' });
    ex.status.should.equal(200);
    const flow = JSON.parse(ex.body);
    // Free ports for the bundled ctserver of the example (never its defaults 1198/1199/5060).
    ports = await E.allocatePorts(4);
    const srv = flow.find((n) => n.type === 'ct-server');
    should.exist(srv);
    Object.assign(srv, { basePort: ports.basePort, managerPort: ports.managerPort, sipPort: ports.sipPort, rtpPorts: ports.rtpPorts, recordDir: path.join(userDir, 'recordings') });
    ports.serverId = srv.id;
    const result = await page.evaluate((nodes) => {
      RED.view.importNodes(nodes, { addFlow: true, notify: false });
      const imported = [];
      RED.nodes.eachNode((n) => {
        imported.push(n);
      });
      RED.nodes.eachConfig((n) => {
        imported.push(n);
      });
      return imported.map((n) => ({
        id: n.id,
        type: n.type,
        known: !!RED.nodes.getType(n.type),
        valid: n.valid !== false,
        errors: n.validationErrors ?? [],
      }));
    }, flow);
    // The imported nodes hang on the mouse pointer until a click drops them, as for a user.
    const chart = await page.locator('#red-ui-workspace-chart').boundingBox();
    await page.mouse.move(chart.x + 150, chart.y + 120);
    await page.mouse.move(chart.x + 160, chart.y + 130);
    await page.mouse.click(chart.x + 160, chart.y + 130);
    await page.waitForFunction(() => RED.nodes.dirty(), null, { timeout: 5000 });
    const ids = new Set(flow.map((n) => n.id));
    const mine = result.filter((n) => ids.has(n.id));
    mine.length.should.equal(flow.length, 'not every node of the example was imported');
    mine.filter((n) => !n.known).should.eql([], 'unknown node types after import');
    mine.filter((n) => !n.valid).should.eql([], 'nodes the editor marks invalid (red triangle) in the example');
  });

  it('opens the edit dialog of every ct node in the example (and of the ct-server) without a console error', async function () {
    const types = await page.evaluate(() => {
      const seen = {};
      RED.nodes.eachNode((n) => {
        if (/^ct /.test(n.type) && !seen[n.type]) seen[n.type] = n.id;
      });
      return seen;
    });
    Object.keys(types).length.should.be.above(5);
    const before = consoleErrors.length;
    for (const [type, id] of Object.entries(types)) {
      await page.evaluate((nid) => RED.editor.edit(RED.nodes.node(nid)), id);
      await page.waitForSelector('.red-ui-tray #dialog-form', { timeout: 5000 });
      await page.waitForTimeout(300);
      const form = await page.evaluate(() => document.querySelector('.red-ui-tray #dialog-form').querySelectorAll('input,select,textarea').length);
      form.should.be.above(0, `the ${type} dialog has no inputs`);
      await page.click('#node-dialog-cancel');
      await page.waitForSelector('.red-ui-tray #dialog-form', { state: 'detached', timeout: 5000 });
    }
    await page.evaluate((sid) => RED.editor.editConfig('', 'ct-server', sid), ports.serverId);
    await page.waitForSelector('.red-ui-tray #node-config-dialog-edit-form, .red-ui-tray #dialog-form', { timeout: 5000 });
    await page.waitForTimeout(300);
    const fields = await page.evaluate(() => ['basePort', 'managerPort', 'sipPort', 'mode'].map((f) => !!document.querySelector(`#node-config-input-${f}`)));
    fields.should.eql([true, true, true, true], 'the ct-server dialog lacks basePort/managerPort/sipPort/mode');
    const shown = await page.evaluate(() => document.querySelector('#node-config-input-basePort').value);
    shown.should.equal(String(ports.basePort));
    await page.click('#node-config-dialog-cancel');
    await page.waitForTimeout(300);
    consoleErrors.slice(before).should.eql([]);
  });

  it('deploys the example with the Deploy button: /flows has it, the ct nodes show "connected", a call gets through', async function () {
    (await page.evaluate(() => RED.nodes.dirty())).should.equal(true, 'nothing to deploy');
    const posted = page.waitForResponse((r) => r.url().endsWith('/flows') && r.request().method() === 'POST', { timeout: 20000 });
    await page.click('#red-ui-header-button-deploy');
    // A confirm dialog means the editor found invalid or unused nodes: show its text.
    const dialog = await page.waitForSelector('.ui-dialog:visible .ui-dialog-content', { timeout: 1500 }).catch(() => null);
    if (dialog) throw new Error(`the deploy asked for confirmation: ${await dialog.textContent()}`);
    const resp = await posted;
    resp.status().should.equal(200);
    await page.waitForFunction(() => !RED.nodes.dirty(), null, { timeout: 10000 });

    const flows = JSON.parse((await get(`${base}/flows`, { Accept: 'application/json', 'Node-RED-API-Version': 'v2' })).body).flows;
    const srv = flows.find((n) => n.id === ports.serverId);
    should.exist(srv, 'the ct-server is not in the deployed flows');
    srv.should.containEql({ type: 'ct-server', basePort: ports.basePort, sipPort: ports.sipPort });
    flows.filter((n) => /^ct /.test(n.type)).length.should.be.above(8);

    // The runtime status of the ct nodes comes back to the editor: "connected", green dot.
    const st = await page.waitForFunction(
      (sid) => {
        const users = [];
        RED.nodes.eachNode((n) => {
          if (n.server === sid) users.push(n);
        });
        const ok = users.length > 0 && users.every((n) => n.status && n.status.fill === 'green' && n.status.shape === 'dot');
        return ok ? users.map((n) => ({ type: n.type, status: n.status })) : false;
      },
      ports.serverId,
      { timeout: 30000 },
    ).catch(async (e) => {
      const now = await page.evaluate((sid) => {
        const users = [];
        RED.nodes.eachNode((n) => {
          if (n.server === sid) users.push({ id: n.id, type: n.type, name: n.name, status: n.status });
        });
        return users;
      }, ports.serverId);
      throw new Error(`the ct nodes did not all show a green dot: ${JSON.stringify(now)} (${e.message})`);
    });
    const statuses = await st.jsonValue();
    for (const s of statuses) s.status.text.should.not.match(/^ctport\.|status\./, `${s.type} shows an untranslated status key`);
    // For the screenshot: nothing selected, the palette filtered to the telephony nodes.
    await page.evaluate(() => RED.view.select(''));
    await page.locator('#red-ui-palette-search input').pressSequentially('ct ', { delay: 50 });
    await page.waitForTimeout(800);
    await page.screenshot({ path: path.join(ARTIFACTS, 'editor.png') });
    await page.fill('#red-ui-palette-search input', '');

    // The deployed IVR answers a real SIP call: welcome prompt, key 1 → "1 2 3", goodbye, hang-up.
    const callers = new E.Callers();
    try {
      const sip = await callers.make();
      const call = sip.call(`sip:1000@127.0.0.1:${ports.sipPort}`, { from: '5550000' });
      await call.answered;
      await E.until(() => A.soundSpan(call.heard(), 1000), 8000, 'the welcome prompt');
      await E.delay(500);
      await call.sendDigits('1');
      let timer;
      const ended = await Promise.race([call.ended, new Promise((r) => (timer = setTimeout(() => r(null), 20000)))]);
      clearTimeout(timer);
      should.exist(ended, 'the IVR did not hang up after option 1');
      ended.by.should.equal('remote');
    } finally {
      await callers.stopAll();
    }
  });

  it('the browser console shows no errors and no request failed', function () {
    consoleErrors.should.eql([]);
    badResponses.should.eql([]);
  });

  it('stopping Node-RED stops the bundled ctserver and frees its ports', async function () {
    red.child.kill('SIGINT');
    const t = setTimeout(() => red.child.kill('SIGKILL'), 15000);
    const t0 = Date.now();
    await red.exited;
    clearTimeout(t);
    (Date.now() - t0).should.be.below(10000);
    red = undefined;
    await E.delay(300);
    for (let p = ports.basePort; p <= ports.basePort + 4; p++) (await E.canBindTcp(p)).should.equal(true, `TCP ${p} still held after Node-RED stopped`);
    (await E.canBindUdp(ports.sipPort)).should.equal(true, 'SIP UDP still held after Node-RED stopped');
  });
});
