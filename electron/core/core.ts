// The manager core: store, embedded broker, device registry, HTTP/WS API. Runs headless
// (`whittle serve`, `whittle demo`) and inside the Electron shell.
import { homedir } from 'node:os';
import { join } from 'node:path';

import { packageRoot, packageVersion } from '../../agent/package-root.js';
import { type Broker, startBroker } from './broker.js';
import { DeviceRegistry } from './device-registry.js';
import { type HttpApi, startHttpApi } from './http-api.js';
import { Store } from './store.js';

export interface CoreOptions {
  /** Where the SQLite store lives. */
  dataDir: string;
  /** HTTP API and UI port on 127.0.0.1; 0 picks a free one. */
  httpPort: number;
  /** MQTT port for agents; 0 picks a free one. */
  mqttPort: number;
  /** Address the broker listens on: devices on the network connect to it. */
  mqttHost: string;
  log: (line: string) => void;
  /** A fixed API token (tests); by default a new one per launch. */
  token?: string;
}

export interface Core {
  store: Store;
  registry: DeviceRegistry;
  api: HttpApi;
  broker: Broker;
  close(): Promise<void>;
}

export const DEFAULT_HTTP_PORT = 7420;
export const DEFAULT_MQTT_PORT = 7421;

export function defaultDataDir(): string {
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'whittle');
}

export async function startCore(options: CoreOptions): Promise<Core> {
  const store = new Store(options.dataDir);
  const registry = new DeviceRegistry(store, options.log);
  let broker: Broker | null = null;
  try {
    broker = await startBroker({
      host: options.mqttHost,
      port: options.mqttPort,
      store,
      log: options.log,
      onPublish: (topic, payload) => registry.ingest(topic, payload),
      onClientGone: (id) => registry.markOffline(id),
    });
    const api = await startHttpApi({
      host: '127.0.0.1',
      port: options.httpPort,
      registry,
      rendererDir: join(packageRoot(), 'dist', 'renderer'),
      version: packageVersion(),
      ...(options.token ? { token: options.token } : {}),
    });
    const started = broker;
    return {
      store,
      registry,
      api,
      broker: started,
      async close() {
        await api.close();
        await started.close();
        store.close();
      },
    };
  } catch (err) {
    await broker?.close();
    store.close();
    throw err;
  }
}
