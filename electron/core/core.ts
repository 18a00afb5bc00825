// The manager core: store, embedded broker, device registry, package server, deployments, HTTP/WS API.
// Runs headless (`whittle serve`, `whittle demo`) and inside the Electron shell.
import { homedir, networkInterfaces } from 'node:os';
import { join } from 'node:path';

import { packageRoot, packageVersion } from '../../agent/package-root.js';
import { type Broker, startBroker } from './broker.js';
import { Deployments } from './deployments.js';
import { DeviceProfiles } from './device-profiles.js';
import { DeviceRegistry } from './device-registry.js';
import { type HttpApi, startHttpApi } from './http-api.js';
import { type PackageServer, startPackageServer } from './package-server.js';
import { managerSigningKeys } from './provisioning/signing-key.js';
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
  /** Port of the package server agents download models from (on mqttHost); 0 or absent picks a free one. */
  packagePort?: number;
  /** The address devices reach this machine at, for package URLs. By default: the address a device's own
   * broker connection arrived on, else mqttHost unless it is a wildcard, else the first external IPv4. */
  packageHost?: string;
  /** How long a device has to answer the manager's requests (profile, start of a measurement); tests
   * shorten it. Default 15 s. */
  deviceAnswerMs?: number;
}

export interface Core {
  store: Store;
  registry: DeviceRegistry;
  api: HttpApi;
  broker: Broker;
  packages: PackageServer;
  deployments: Deployments;
  profiles: DeviceProfiles;
  close(): Promise<void>;
}

export const DEFAULT_HTTP_PORT = 7420;
export const DEFAULT_MQTT_PORT = 7421;
export const DEFAULT_PACKAGE_PORT = 7422;

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** The first non-internal IPv4 address of this machine, or loopback when it has none. */
function externalAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

export function defaultDataDir(): string {
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'whittle');
}

export async function startCore(options: CoreOptions): Promise<Core> {
  const store = new Store(options.dataDir);
  const registry = new DeviceRegistry(store, options.log);
  let broker: Broker | null = null;
  let packages: PackageServer | null = null;
  let api: HttpApi | null = null;
  try {
    broker = await startBroker({
      host: options.mqttHost,
      port: options.mqttPort,
      store,
      log: options.log,
      onPublish: (topic, payload) => registry.ingest(topic, payload),
      onClientGone: (id) => registry.markOffline(id),
    });
    packages = await startPackageServer({
      dir: join(options.dataDir, 'packages'),
      host: options.mqttHost,
      port: options.packagePort ?? 0,
    });
    const startedBroker = broker;
    const fallbackHost =
      options.packageHost ?? (WILDCARDS.has(options.mqttHost) ? externalAddress() : options.mqttHost);
    const deployments = new Deployments({
      store,
      registry,
      broker: startedBroker,
      packages,
      keys: managerSigningKeys(options.dataDir),
      packageHost: (device) => options.packageHost ?? startedBroker.addressSeenBy(device) ?? fallbackHost,
      log: options.log,
    });
    await deployments.start();
    const profiles = new DeviceProfiles({
      store,
      registry,
      broker: startedBroker,
      log: options.log,
      ...(options.deviceAnswerMs !== undefined ? { answerMs: options.deviceAnswerMs } : {}),
      measuredPackage: (sha, device) => deployments.measuredPackage(sha, device),
    });
    api = await startHttpApi({
      host: '127.0.0.1',
      port: options.httpPort,
      registry,
      deployments,
      profiles,
      rendererDir: join(packageRoot(), 'dist', 'renderer'),
      version: packageVersion(),
      ...(options.token ? { token: options.token } : {}),
    });
    const startedApi = api;
    const startedPackages = packages;
    return {
      store,
      registry,
      api: startedApi,
      broker: startedBroker,
      packages: startedPackages,
      deployments,
      profiles,
      async close() {
        await startedApi.close();
        profiles.close();
        deployments.close();
        await startedPackages.close();
        await startedBroker.close();
        store.close();
      },
    };
  } catch (err) {
    await api?.close();
    await packages?.close();
    await broker?.close();
    store.close();
    throw err;
  }
}
