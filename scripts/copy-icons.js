// Node-RED finds a node set's icons only beside its .js file: copy icons/*.svg to nodes/icons/.
'use strict';
const fs = require('fs');
const path = require('path');
const src = path.join(__dirname, '..', 'icons');
const dst = path.join(__dirname, '..', 'nodes', 'icons');
fs.mkdirSync(dst, { recursive: true });
for (const f of fs.existsSync(src) ? fs.readdirSync(src) : []) {
  if (f.endsWith('.svg')) fs.copyFileSync(path.join(src, f), path.join(dst, f));
}
