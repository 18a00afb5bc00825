// The Electron shell: starts the manager core in this process and shows its UI in a locked-down
// window. The window is only a browser for the core's own loopback UI: context isolation and the
// sandbox are on, Node is off, the core sends a strict Content-Security-Policy, navigation away from
// the UI and new windows are refused, and every permission request is denied.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { app, BrowserWindow, dialog, session } from 'electron';

import {
  type Core,
  DEFAULT_HTTP_PORT,
  DEFAULT_MQTT_PORT,
  DEFAULT_PACKAGE_PORT,
  defaultDataDir,
  startCore,
} from '../core/core.js';

const here = fileURLToPath(new URL('.', import.meta.url));
let core: Core | null = null;

async function openWindow(): Promise<void> {
  core = await startCore({
    dataDir: defaultDataDir(),
    httpPort: DEFAULT_HTTP_PORT,
    mqttPort: DEFAULT_MQTT_PORT,
    mqttHost: '0.0.0.0',
    packagePort: DEFAULT_PACKAGE_PORT,
    log: (line) => console.log(line),
  });
  const origin = new URL(core.api.uiUrl).origin;
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));

  const window = new BrowserWindow({
    width: 1200,
    height: 800,
    title: 'Whittle',
    webPreferences: {
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      // Bundled to CommonJS by the build: sandboxed preloads cannot be ES modules.
      preload: join(here, 'preload.cjs'),
    },
  });
  window.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  window.webContents.on('will-navigate', (event, url) => {
    if (new URL(url).origin !== origin) event.preventDefault();
  });
  await window.loadURL(core.api.uiUrl);
}

app.on('web-contents-created', (_event, contents) => {
  contents.on('will-attach-webview', (event) => event.preventDefault());
});

app
  .whenReady()
  .then(openWindow)
  .catch((err: unknown) => {
    dialog.showErrorBox('Whittle could not start', (err as Error).message);
    app.exit(1);
  });

app.on('window-all-closed', () => {
  const closing = core?.close() ?? Promise.resolve();
  closing.finally(() => app.quit()).catch(() => undefined);
});
