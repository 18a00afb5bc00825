// whittle-agent: the daemon that runs on each device.
import { parseArgs } from 'node:util';

import { WhittleError } from '../native/whittle-error.js';
import { ConfigError, defaultDeviceId, resolveConfig } from './config.js';
import { AgentStartError, runDaemon } from './daemon.js';
import { packageVersion } from './package-root.js';
import { defaultGrid, measureLatencyTable } from './profile/latency-table.js';
import { collectDeviceProfile, formatDeviceProfile } from './profile/profile.js';

const HELP = `whittle-agent — Whittle's on-device agent

Usage: whittle-agent <command> [options]

Commands:
  run            connect to the manager's broker, read the camera, run the model, stream stats
  profile        print this device's profile (CPU, clocks, caches, memory, storage, thermal zones,
                 OS, cameras, kernels); --json for the JSON the manager stores
  latency-table  time this device's kernels over the latency grid (layer shapes x number formats)
                 [--json] print the table as JSON; [--quick] the small grid; [--threads N]
  help           show this help

Options of run (flags override the config file):
  --config FILE        JSON file with any of the options below (keys: broker, deviceId, username,
                       password, camera, fps, model, modelMemoryBytes, labels,
                       snapshotSeconds, stateDir, reconnectMaxMs, packageKey)
  --broker URL         manager broker, mqtt://host:port            (default mqtt://127.0.0.1:7421)
  --device-id ID       this device's id: A-Z a-z 0-9 . _ -         (default: hostname, ${defaultDeviceId()})
  --username NAME      broker username                             (default: the device id)
  --password SECRET    broker password (prefer the config file; flags show in ps)
  --camera SOURCE      testsrc | /dev/videoN | video file | rtsp:// or http:// stream  (default testsrc)
  --fps N              frame rate asked of the test source and of looped files          (default 30)
  --model FILE         Whittle package served when nothing is deployed, trusted as shipped
                       (hash checked, signature not)               (default: the bundled demo package)
  --model-memory BYTES most memory a model may take (weights + activations); bigger packages are
                       refused                                     (default: a quarter of the RAM)
  --labels FILE        per-frame labels of a labelled video (<video>.labels.json): report live accuracy;
                       one that does not fit the video (frames, name, version) is refused, no accuracy
  --snapshot-every S   seconds between camera snapshots sent to the manager, 0 = none  (default 5)
  --state-dir DIR      telemetry outbox and deployed models    (default: next to --config, or
                       $XDG_STATE_HOME/whittle-agent/<device id>)

Options of profile:
  --json               print the profile as JSON (agent/profile/profile.ts, profile_version 1)
  --config FILE, --state-dir DIR   the data directory whose free space is reported (as for run)

Options:
  -h, --help           show this help
  -v, --version        print the version
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      config: { type: 'string' },
      broker: { type: 'string' },
      'device-id': { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
      camera: { type: 'string' },
      fps: { type: 'string' },
      model: { type: 'string' },
      'model-memory': { type: 'string' },
      labels: { type: 'string' },
      'snapshot-every': { type: 'string' },
      'state-dir': { type: 'string' },
      json: { type: 'boolean' },
      quick: { type: 'boolean' },
      threads: { type: 'string' },
    },
  });
  const command = positionals[0];
  if (values.version) {
    console.log(packageVersion());
    return 0;
  }
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 1 : 0;
  }
  if (command === 'latency-table') return latencyTable(values);
  if (command === 'profile') {
    const { stateDir } = resolveConfig(
      { deviceId: values['device-id'], stateDir: values['state-dir'] },
      values.config,
    );
    const profile = collectDeviceProfile({ dataDir: stateDir });
    console.log(values.json ? JSON.stringify(profile, null, 2) : formatDeviceProfile(profile));
    return 0;
  }
  if (command !== 'run') {
    console.error(`whittle-agent: unknown command "${command}"; see whittle-agent --help`);
    return 2;
  }
  const config = resolveConfig(
    {
      broker: values.broker,
      deviceId: values['device-id'],
      username: values.username,
      password: values.password,
      camera: values.camera,
      fps: values.fps,
      model: values.model,
      modelMemoryBytes: values['model-memory'],
      labels: values.labels,
      snapshotSeconds: values['snapshot-every'],
      stateDir: values['state-dir'],
    },
    values.config,
  );
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const log = (line: string): void => console.log(`${new Date().toISOString()} ${line}`);
  await runDaemon({ config, log, signal: controller.signal });
  log('stopped');
  return 0;
}

/** whittle-agent latency-table: measures the grid here, progress on stderr, the table (or a summary) on stdout. */
async function latencyTable(values: { json?: boolean; quick?: boolean; threads?: string }): Promise<number> {
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 64)) {
    console.error(`whittle-agent: --threads must be an integer in [1, 64], got ${values.threads}`);
    return 2;
  }
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const started = Date.now();
  const table = await measureLatencyTable({
    grid: defaultGrid(values.quick === true),
    ...(threads !== undefined ? { threads } : {}),
    signal: controller.signal,
    ...(process.stderr.isTTY
      ? {
          onEntry: (entry, done, total) => process.stderr.write(`\r${done}/${total} ${entry.key}`.padEnd(60)),
        }
      : {}),
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  if (values.json === true) {
    console.log(JSON.stringify(table));
  } else {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      `${table.entries.length} entries in ${seconds} s (${table.complete ? 'complete' : 'incomplete'}), ` +
        `build ${table.build_hash}, ${table.isa}, ${table.threads} thread(s), grid ${table.grid_id}`,
    );
  }
  return table.complete ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof AgentStartError || err instanceof WhittleError) {
      console.error(`whittle-agent: ${err.message}`);
    } else if (
      err instanceof TypeError &&
      (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      console.error(`whittle-agent: ${err.message}; see whittle-agent --help`);
    } else {
      console.error('whittle-agent: unexpected failure:', err);
    }
    process.exitCode = 1;
  },
);
