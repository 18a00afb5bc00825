// `whittle device add|remove|forget-host`, `whittle devices` and `whittle serial list`: provisioning
// devices over SSH and serial consoles (electron/core/provisioning/). Parses its own options so the
// main CLI only dispatches here.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { formatDeviceProfile } from '../../agent/profile/profile.js';
import { LATENCY_GRIDS } from '../../agent/protocol/messages.js';
import type { DeviceProfileResponse, LatencyTablesResponse } from '../api/contract.js';
import { DEFAULT_MQTT_PORT, defaultDataDir } from '../core/core.js';
import { DeviceRequestError, storedLatencyTables, storedProfile } from '../core/device-profiles.js';
import {
  acceptFingerprint,
  type AcceptHostKey,
  isFingerprint,
  refuseUnknownHostKey,
} from '../core/provisioning/host-key.js';
import { addDeviceOverSsh, provisionedRecords, removeDevice } from '../core/provisioning/provision.js';
import { listSerialPorts, readIdentityOverSerial } from '../core/provisioning/serial-console.js';
import type { SshAuth } from '../core/provisioning/ssh-session.js';
import { parseTarget, type SshTarget } from '../core/provisioning/target-url.js';
import { Store } from '../core/store.js';
import { CommandUsageError, reportCommandError } from './command-error.js';
import { ManagerClient } from './manager-client.js';

export const DEVICE_HELP = `  device add ADDRESS    install the agent on a device and start it. ADDRESS is ssh://user@host[:port]
                        or serial:///dev/ttyX?baud=115200&user=NAME (logs in on the console, reads
                        the device's address, then continues over SSH). Options: --identity KEY |
                        --password-stdin, --accept-host-key SHA256:..., --name ID, --camera SOURCE,
                        --broker mqtt://HOST:PORT, --address IP (serial), --no-ssh (serial: stop
                        after reading the address), --build-addon-on-device
  device remove ID      stop and remove the agent from a device, revoke its broker password
  device forget-host H[:P]  forget a pinned SSH host key (after a device was reinstalled)
  device profile ID     the device's stored profile (CPU, clocks, caches, memory, storage, thermal,
                        OS, cameras, kernels); --refresh asks the device first (needs whittle serve),
                        --json prints it as JSON
  device measure ID     the device times its own kernels over a grid of layer shapes and formats; the
                        entries show as they arrive and are stored with its profile's kernel build.
                        A measurement cut short is stored incomplete and resumed by the next one.
                        Options: --grid default|quick, --limit N (first N points), --threads N, --json
                        (needs whittle serve)
  device table ID       the device's stored latency table for its current kernel build (--json)
  devices               list the devices this manager installed an agent on (--json: every known
                        device, with its profile)
  serial list           list serial ports (needs udevadm)
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  'data-dir': { type: 'string' },
  'mqtt-port': { type: 'string' },
  identity: { type: 'string', short: 'i' },
  'password-stdin': { type: 'boolean' },
  'accept-host-key': { type: 'string' },
  name: { type: 'string' },
  camera: { type: 'string' },
  broker: { type: 'string' },
  address: { type: 'string' },
  'no-ssh': { type: 'boolean' },
  'build-addon-on-device': { type: 'boolean' },
  json: { type: 'boolean' },
  refresh: { type: 'boolean' },
  grid: { type: 'string' },
  limit: { type: 'string' },
  threads: { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

const DEVICE_COMMANDS = new Set(['device', 'devices', 'serial']);
/** Options of the main CLI and of these commands that take a value (which is not the command). */
const VALUE_OPTIONS = new Set([
  '--port',
  '--mqtt-port',
  '--mqtt-host',
  '--data-dir',
  '--camera',
  '-i',
  '--identity',
  '--accept-host-key',
  '--name',
  '--broker',
  '--address',
  '--grid',
  '--limit',
  '--threads',
]);

/** Whether argv names one of this module's commands, for the main CLI's dispatch. */
export function isDeviceCommand(argv: string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith('-')) return DEVICE_COMMANDS.has(a);
  }
  return false;
}

export async function runDeviceCommand(argv: string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (err) {
    return reportCommandError('whittle', err);
  }
}

async function dispatch(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  const [command, sub, arg, ...extra] = positionals;
  if (values.help) {
    process.stdout.write(DEVICE_HELP);
    return 0;
  }
  const dataDir = values['data-dir'] ?? defaultDataDir();
  const log = (line: string): void => console.log(`  ${line}`);
  if (command === 'devices') {
    if (sub !== undefined) throw new CommandUsageError(`devices takes no arguments, got "${sub}"`);
    return withStore(dataDir, (store) => {
      const records = provisionedRecords(store);
      if (values.json) {
        console.log(JSON.stringify({ devices: knownDevices(store) }, null, 2));
        return 0;
      }
      if (!records.length) {
        console.log('no devices provisioned yet; add one with: whittle device add ssh://user@host');
        return 0;
      }
      const seen = new Map(store.devices().map((d) => [d.id, d.lastSeen]));
      for (const r of records) {
        const last = seen.get(r.deviceId);
        console.log(
          `${r.deviceId.padEnd(20)} ${`${r.username}@${r.host}:${r.port}`.padEnd(28)} ${r.arch.padEnd(6)} ${r.kind.padEnd(11)} ` +
            `camera ${r.camera}  last seen ${last ? new Date(last).toISOString() : 'never'}`,
        );
      }
      return 0;
    });
  }
  if (command === 'serial') {
    if (sub !== 'list')
      throw new CommandUsageError(`expected "whittle serial list", got "serial ${sub ?? ''}"`);
    const ports = await listSerialPorts();
    if (!ports.length) console.log('no serial ports found');
    for (const p of ports)
      console.log(
        [
          p.path,
          p.manufacturer,
          p.serialNumber && `serial ${p.serialNumber}`,
          p.vendorId && `usb ${p.vendorId}:${p.productId ?? '?'}`,
        ]
          .filter(Boolean)
          .join('  '),
      );
    return 0;
  }
  if (command !== 'device') throw new CommandUsageError(`unknown command "${command ?? ''}"`);
  if (extra.length) throw new CommandUsageError(`unexpected arguments: ${extra.join(' ')}`);
  switch (sub) {
    case 'add':
      if (!arg)
        throw new CommandUsageError(
          'device add: expected an address, ssh://user@host[:port] or serial:///dev/ttyX',
        );
      return addDevice(arg, values, dataDir, log);
    case 'remove': {
      if (!arg) throw new CommandUsageError('device remove: expected a device id (see whittle devices)');
      const auth = await authFrom(values, undefined);
      return withStore(dataDir, async (store) => {
        const record = await removeDevice({ store, deviceId: arg, auth, progress: log });
        console.log(
          `whittle: removed the agent from ${record.deviceId} (${record.host}); its broker password is revoked`,
        );
        return 0;
      });
    }
    case 'forget-host': {
      const m = /^(.+?)(?::(\d+))?$/.exec(arg ?? '');
      if (!m) throw new CommandUsageError('device forget-host: expected HOST[:PORT]');
      const host = m[1]!;
      const port = m[2] ? Number(m[2]) : 22;
      return withStore(dataDir, (store) => {
        const forgotten = store.forgetHostKey(host, port);
        console.log(
          forgotten
            ? `whittle: forgot the host key of ${host}:${port}`
            : `whittle: no host key pinned for ${host}:${port}`,
        );
        return forgotten ? 0 : 1;
      });
    }
    case 'profile':
    case 'table':
    case 'measure': {
      if (!arg) throw new CommandUsageError(`device ${sub}: expected a device id (see whittle devices)`);
      if (sub === 'measure') return measureDevice(arg, values, dataDir);
      if (sub === 'profile' && values.refresh) {
        const answer = await ManagerClient.forDataDir(dataDir).refreshProfile(arg);
        printProfile(answer, values.json === true);
        return 0;
      }
      return withStore(dataDir, (store) => {
        if (sub === 'table') {
          const tables = storedLatencyTables(store, arg);
          if (values.json) console.log(JSON.stringify(tables, null, 2));
          else printTables(tables);
          return tables.current?.complete ? 0 : 1;
        }
        const stored = storedProfile(store, arg);
        if (!stored)
          throw new DeviceRequestError(
            `no profile stored for device ${arg}; with whittle serve running, ask for one: whittle device profile ${arg} --refresh`,
            'no-profile',
          );
        printProfile(stored, values.json === true);
        return 0;
      });
    }
    default:
      throw new CommandUsageError(
        `unknown device command "${sub ?? ''}": expected add, remove, forget-host, profile, measure or table`,
      );
  }
}

/** Every device the store knows (provisioned here or just connected), with its stored profile. */
function knownDevices(store: Store): unknown[] {
  const provisioned = new Map(provisionedRecords(store).map((r) => [r.deviceId, r]));
  const seen = new Map(store.devices().map((d) => [d.id, d.lastSeen]));
  const ids = [...new Set([...provisioned.keys(), ...seen.keys()])].sort();
  return ids.map((id) => {
    const r = provisioned.get(id);
    return {
      id,
      lastSeen: seen.get(id) ?? null,
      provisioned: r
        ? { host: r.host, port: r.port, username: r.username, arch: r.arch, kind: r.kind }
        : null,
      profile: storedProfile(store, id)?.profile ?? null,
    };
  });
}

function printProfile(answer: DeviceProfileResponse, json: boolean): void {
  if (json) console.log(JSON.stringify(answer.profile, null, 2));
  else {
    console.log(`device ${answer.device}, profile received ${new Date(answer.receivedAt).toISOString()}`);
    console.log(formatDeviceProfile(answer.profile));
  }
}

function describeTable(
  t: { build_hash: string; grid_id: string; threads: number; complete: boolean },
  entries: number,
): string {
  return `build ${t.build_hash}, grid ${t.grid_id}, ${t.threads} thread(s), ${entries} entries, ${t.complete ? 'complete' : 'INCOMPLETE'}`;
}

function printTables(tables: LatencyTablesResponse): void {
  const { current } = tables;
  if (current) {
    console.log(`device ${tables.device}: ${describeTable(current, current.entries.length)}`);
    for (const e of current.entries)
      console.log(`  ${e.key.padEnd(44)} ${e.op.padEnd(18)} ${e.ms.toFixed(4)} ms`);
  } else
    console.log(
      tables.buildHash === null
        ? `device ${tables.device}: no profile stored, so no table is current`
        : `device ${tables.device}: no latency table for its kernel build ${tables.buildHash}; measure one with whittle device measure ${tables.device}`,
    );
  for (const t of tables.stale)
    console.log(`  not current (another kernel build or an older table): ${describeTable(t, t.entries)}`);
}

function positiveInt(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1)
    throw new CommandUsageError(`--${name}: expected a positive whole number, got "${text}"`);
  return n;
}

/** How often `device measure` asks for the measurement's progress. */
const MEASURE_POLL_MS = 250;

async function measureDevice(id: string, values: Values, dataDir: string): Promise<number> {
  const grid = values.grid ?? 'default';
  if (!(LATENCY_GRIDS as readonly string[]).includes(grid))
    throw new CommandUsageError(`--grid: expected ${LATENCY_GRIDS.join(' or ')}, got "${grid}"`);
  const limit = positiveInt('limit', values.limit);
  const threads = positiveInt('threads', values.threads);
  const client = ManagerClient.forDataDir(dataDir);
  let answer = await client.measure(id, {
    grid: grid as (typeof LATENCY_GRIDS)[number],
    ...(limit !== undefined ? { limit } : {}),
    ...(threads !== undefined ? { threads } : {}),
  });
  const request = answer.measurement?.request;
  const shown = new Set<string>();
  for (;;) {
    const m = answer.measurement;
    const current = answer.current;
    // Progress lines go to stderr with --json, so stdout stays one JSON document.
    const say = values.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
    if (current && m && m.request === request)
      for (const e of current.entries)
        if (!shown.has(e.key)) {
          shown.add(e.key);
          say(`  [${shown.size}/${m.total}] ${e.key.padEnd(44)} ${e.op.padEnd(18)} ${e.ms.toFixed(4)} ms`);
        }
    if (!m || m.request !== request || m.state !== 'running') break;
    await new Promise((resolve) => setTimeout(resolve, MEASURE_POLL_MS));
    answer = await client.latencyTables(id);
  }
  const m = answer.measurement;
  if (values.json) console.log(JSON.stringify(answer, null, 2));
  else if (answer.current)
    console.log(`whittle: ${describeTable(answer.current, answer.current.entries.length)}`);
  if (m?.state !== 'complete') {
    console.error(
      `whittle: the measurement ${m?.state ?? 'was lost'}: ${m?.error ?? 'the manager no longer follows it'}`,
    );
    return 1;
  }
  return 0;
}

async function withStore<T>(dataDir: string, fn: (store: Store) => T | Promise<T>): Promise<T> {
  const store = new Store(dataDir);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

function mqttPort(values: Values): number {
  const text = values['mqtt-port'];
  if (text === undefined) return DEFAULT_MQTT_PORT;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new CommandUsageError(`--mqtt-port: expected 1-65535, got "${text}"`);
  return n;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Asks on the terminal; `hidden` does not echo what is typed. */
function ask(question: string, hidden = false): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    if (hidden) {
      const write = (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput.bind(rl);
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
        if (s.includes(question)) write(s);
      };
    }
    rl.question(question, (answer) => {
      rl.close();
      if (hidden) process.stderr.write('\n');
      resolve(answer);
    });
  });
}

let stdinPassword: string | undefined;

async function authFrom(values: Values, who: string | undefined): Promise<SshAuth> {
  if (values.identity && values['password-stdin'])
    throw new CommandUsageError('give either --identity or --password-stdin, not both');
  if (values.identity) return { kind: 'key', privateKeyPath: values.identity };
  if (values['password-stdin']) {
    stdinPassword ??= (await readStdin()).split('\n')[0]!.replace(/\r$/, '');
    if (!stdinPassword) throw new CommandUsageError('--password-stdin: standard input held no password');
    return { kind: 'password', password: stdinPassword };
  }
  for (const name of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    const path = join(homedir(), '.ssh', name);
    try {
      readFileSync(path);
      return { kind: 'key', privateKeyPath: path };
    } catch {
      // Not there: try the next.
    }
  }
  if (process.stdin.isTTY)
    return { kind: 'password', password: await ask(`password of ${who ?? 'the device user'}: `, true) };
  throw new CommandUsageError(
    'no SSH key in ~/.ssh and no terminal to ask for a password: use --identity KEY or --password-stdin',
  );
}

function hostKeyPolicy(values: Values): AcceptHostKey {
  const offered = values['accept-host-key'];
  if (offered !== undefined) {
    if (!isFingerprint(offered))
      throw new CommandUsageError(
        `--accept-host-key: expected SHA256:<43 base64 characters> as ssh-keygen -lf prints it, got "${offered}"`,
      );
    return acceptFingerprint(offered);
  }
  // A password read from stdin means stdin is not a terminal to ask on.
  if (!process.stdin.isTTY || values['password-stdin']) return refuseUnknownHostKey;
  return async (host, port, key) => {
    console.error(`The host key of ${host}:${port} is not known yet:\n  ${key.keyType} ${key.fingerprint}`);
    console.error(
      'Compare it with the output of `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the device.',
    );
    const answer = await ask('Accept and pin it? [y/N] ');
    return /^y(es)?$/i.test(answer.trim());
  };
}

async function addDevice(
  address: string,
  values: Values,
  dataDir: string,
  log: (line: string) => void,
): Promise<number> {
  const target = parseTarget(address);
  const brokerPort = mqttPort(values);
  if (values['no-ssh'] && target.kind === 'ssh')
    throw new CommandUsageError('--no-ssh applies to serial:// addresses only');
  let sshTarget: SshTarget;
  if (target.kind === 'serial') {
    const auth = values['password-stdin'] ? await authFrom(values, target.username) : undefined;
    const password =
      auth?.kind === 'password'
        ? auth.password
        : target.username && process.stdin.isTTY
          ? await ask(`console password of ${target.username}: `, true)
          : undefined;
    const identity = await readIdentityOverSerial({
      path: target.path,
      baudRate: target.baudRate,
      ...(target.username ? { username: target.username } : {}),
      ...(password !== undefined ? { password } : {}),
      progress: log,
    });
    console.log(`device on ${target.path}: hostname ${identity.hostname}`);
    for (const a of identity.addresses) console.log(`  ${a.iface}: ${a.address}/${a.prefixLength}`);
    const chosen = values.address ?? identity.addresses[0]?.address;
    if (values['no-ssh'] || !chosen) {
      if (!chosen)
        console.log(
          'the device has no IPv4 address: configure its network on the console (e.g. nmcli, /etc/network/interfaces), then run whittle device add again',
        );
      console.log(
        `next: whittle device add ssh://${target.username ?? 'USER'}@${chosen ?? 'ADDRESS'} --name ${values.name ?? identity.hostname}`,
      );
      return chosen ? 0 : 1;
    }
    if (!target.username)
      throw new CommandUsageError('to continue over SSH, name the user in the address (&user=NAME)');
    sshTarget = { kind: 'ssh', username: target.username, host: chosen, port: 22 };
    values.name ??= identity.hostname.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
    log(`continuing over SSH: ssh://${sshTarget.username}@${sshTarget.host}`);
  } else {
    sshTarget = target;
  }
  const auth = await authFrom(values, `${sshTarget.username}@${sshTarget.host}`);
  const accept = hostKeyPolicy(values);
  return withStore(dataDir, async (store) => {
    const result = await addDeviceOverSsh({
      store,
      dataDir,
      target: sshTarget,
      auth,
      acceptHostKey: accept,
      ...(values.name ? { deviceId: values.name } : {}),
      ...(values.broker ? { brokerUrl: values.broker } : {}),
      ...(values.camera ? { camera: values.camera } : {}),
      ...(values['build-addon-on-device'] ? { buildAddonOnDevice: true } : {}),
      mqttPort: brokerPort,
      progress: log,
    });
    const r = result.record;
    console.log(`whittle: device ${r.deviceId} (${result.probe.hostname}, ${r.arch}) is running the agent`);
    console.log(`  host key: ${result.hostKey.keyType} ${result.hostKey.fingerprint} (pinned)`);
    console.log(`  broker:   ${r.broker}   camera: ${r.camera}   addon: ${r.addon}`);
    if (r.kind === 'systemd')
      console.log(
        `  service:  ${r.unitPath} (sandboxed, user ${r.serviceUser}); logs: journalctl -u whittle-agent`,
      );
    else
      console.log(
        `  no systemd service: ${result.probe.systemd ? 'no root or passwordless sudo' : 'the device has no systemd'}; the agent runs as a ` +
          `supervised background process (pid file ${r.pidFile}, log ${r.logFile}) and will not start at boot`,
      );
    return 0;
  });
}
