// Node-RED settings for `npm start` (scripts/start.js). start.js copies this file into the user
// folder (.node-red/settings.js) the first time; edit that copy to change your setup, or delete it
// to get this one back. Full list of settings: node_modules/node-red/settings.js.
'use strict';

module.exports = {
    // The editor and HTTP endpoints listen on this machine only. PORT picks another port.
    uiHost: '127.0.0.1',
    uiPort: Number(process.env.PORT) || 1880,

    // The flows: the demo IVR (examples/02 - IVR menu.json) on the first run.
    flowFile: 'flows.json',
    flowFilePretty: true,

    // Offline and quiet: no welcome tour, no palette catalogue download, no telemetry or
    // update check.
    editorTheme: {
        tours: false,
        palette: { catalogues: [] },
    },
    telemetry: { enabled: false, updateNotification: false },

    diagnostics: { enabled: true, ui: true },
    runtimeState: { enabled: false, ui: false },
    logging: {
        console: { level: 'info', metrics: false, audit: false },
    },
    exportGlobalContextKeys: false,
    functionExternalModules: true,
    functionTimeout: 0,
    debugMaxLength: 1000,
    mqttReconnectTime: 15000,
};
