// Node-RED entry for the telephony nodes. Built from src/nodes by `npm run build`.
module.exports = require('../dist/nodes/index.js');
