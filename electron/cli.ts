// whittle: the manager's command line. Later capabilities add subcommands here.
import { existsSync, mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { sourceKind } from '../agent/camera/ffmpeg-source.js';
import { defaultDeviceId } from '../agent/config.js';
import { packageVersion } from '../agent/package-root.js';
import { DeviceIdSchema } from '../agent/protocol/messages.js';
import { DatasetMissingError } from '../optimize/datasets/fashion-mnist.js';
import { labelsFileOf } from '../optimize/make-labelled-video.js';
import { CommandUsageError, reportCommandError } from './commands/command-error.js';
import { COMPRESS_HELP } from './commands/compress.js';
import { DEPLOY_HELP } from './commands/deploy.js';
import { DEVICE_HELP, isDeviceCommand, runDeviceCommand } from './commands/device.js';
import { MODEL_COMMANDS_HELP, runModelCommand } from './commands/index.js';
import { NAS_HELP } from './commands/nas.js';
import { OPTIMIZE_HELP } from './commands/optimize.js';
import { QUANTIZE_HELP } from './commands/quantize.js';
import { TRAIN_HELP } from './commands/train.js';
import { removeConnectionFile, writeConnectionFile } from './core/connection-file.js';
import {
  type Core,
  DEFAULT_HTTP_PORT,
  DEFAULT_MQTT_PORT,
  DEFAULT_PACKAGE_PORT,
  defaultDataDir,
  startCore,
} from './core/core.js';
import { Store } from './core/store.js';
import { demoVideo, LABELLED_DEMO_CAMERA } from './demo-video.js';
import { type LocalAgent, startLocalAgent, type SupervisorEvent } from './local-agent.js';
import { formatDeviceLine } from './terminal-stats.js';

const HELP = `whittle — fit neural networks to embedded devices, deploy them, watch them run

Usage: whittle <command> [options]

Commands:
  demo                  the main job: start the manager and an agent on this machine watching a labelled
                        Fashion-MNIST video, print the UI address and the live stats with live accuracy
  serve                 start the manager core headless (broker, API, UI) and wait for agents
  credentials <device>  issue (or replace) the broker password of a device and print its agent config
${DEVICE_HELP}${MODEL_COMMANDS_HELP}${DEPLOY_HELP}${TRAIN_HELP}${QUANTIZE_HELP}${COMPRESS_HELP}${OPTIMIZE_HELP}${NAS_HELP}  help                  show this help

Options:
  --port N              HTTP API and UI port on 127.0.0.1            (default ${DEFAULT_HTTP_PORT})
  --mqtt-port N         MQTT broker port for agents                  (default ${DEFAULT_MQTT_PORT})
  --mqtt-host ADDR      address the broker and package server listen on (default 0.0.0.0)
  --package-port N      package server port agents download models from (default ${DEFAULT_PACKAGE_PORT})
  --data-dir DIR        manager data (SQLite store, logs)            (default ${defaultDataDir()})
  --camera SOURCE       demo: the local agent's camera: labelled (the Fashion-MNIST test set as a video
                        with its labels, made once under the data directory), testsrc, /dev/videoN, or
                        a file (labelled when FILE.labels.json is next to it)  (default labelled)
  -h, --help            show this help
  -v, --version         print the version
`;

function port(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CommandUsageError(`${flag}: expected a port 0-65535, got "${value}"; see whittle --help`);
  return n;
}

const log = (line: string): void => console.log(`${new Date().toISOString()} ${line}`);

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/** The help of each subcommand that parses its own options: `whittle train --help` prints it. */
const COMMAND_HELP: Readonly<Record<string, string>> = {
  device: DEVICE_HELP,
  devices: DEVICE_HELP,
  inspect: MODEL_COMMANDS_HELP,
  import: MODEL_COMMANDS_HELP,
  run: MODEL_COMMANDS_HELP,
  deploy: DEPLOY_HELP,
  train: TRAIN_HELP,
  quantize: QUANTIZE_HELP,
  compress: COMPRESS_HELP,
  optimize: OPTIMIZE_HELP,
  nas: NAS_HELP,
};

/** --help or -h among a subcommand's options (not after a "--", where it would be a positional). */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

async function main(argv: string[]): Promise<number> {
  const section = argv[0] === undefined ? undefined : COMMAND_HELP[argv[0]];
  if (section !== undefined && asksForHelp(argv.slice(1))) {
    process.stdout.write(
      `Usage: whittle ${argv[0]} [options]\n\n${section}\nwhittle --help lists every command.\n`,
    );
    return 0;
  }
  // Device provisioning commands parse their own options (electron/commands/device.ts).
  if (isDeviceCommand(argv)) return runDeviceCommand(argv);
  // Model commands (inspect, import, run, deploy, train, quantize) parse their own options
  // (electron/commands/index.ts).
  const modelExit = await runModelCommand(argv[0], argv.slice(1));
  if (modelExit !== undefined) return modelExit;
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      port: { type: 'string' },
      'mqtt-port': { type: 'string' },
      'mqtt-host': { type: 'string' },
      'package-port': { type: 'string' },
      'data-dir': { type: 'string' },
      camera: { type: 'string' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.version) {
    console.log(packageVersion());
    return 0;
  }
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 1 : 0;
  }
  const dataDir = values['data-dir'] ?? defaultDataDir();
  const coreOptions = {
    dataDir,
    httpPort: port(values.port, DEFAULT_HTTP_PORT, '--port'),
    mqttPort: port(values['mqtt-port'], DEFAULT_MQTT_PORT, '--mqtt-port'),
    mqttHost: values['mqtt-host'] ?? '0.0.0.0',
    packagePort: port(values['package-port'], DEFAULT_PACKAGE_PORT, '--package-port'),
    log,
  };

  switch (command) {
    case 'serve': {
      const core = await startCore(coreOptions);
      const connectionFile = publishConnection(core, dataDir);
      console.log(`whittle: manager ${packageVersion()} running`);
      console.log(`  UI:       ${core.api.uiUrl}`);
      console.log(`  broker:   mqtt://${coreOptions.mqttHost}:${core.broker.port} (agents)`);
      console.log(`  packages: http://${coreOptions.mqttHost}:${core.packages.port} (agents)`);
      console.log(`  commands find it through ${connectionFile}`);
      await waitForSignal();
      removeConnectionFile(dataDir);
      await core.close();
      return 0;
    }
    case 'demo':
      return runDemo(coreOptions, values.camera ?? LABELLED_DEMO_CAMERA);
    case 'credentials': {
      const id = rest[0];
      const parsed = DeviceIdSchema.safeParse(id);
      if (!parsed.success)
        throw new CommandUsageError(
          `credentials: expected a device id (A-Z a-z 0-9 . _ -), got "${id ?? ''}"; see whittle --help`,
        );
      mkdirSync(dataDir, { recursive: true });
      const store = new Store(dataDir);
      const password = store.issueCredential(parsed.data);
      store.close();
      const config = {
        broker: `mqtt://MANAGER_ADDRESS:${coreOptions.mqttPort}`,
        deviceId: parsed.data,
        password,
      };
      console.log(JSON.stringify(config, null, 2));
      console.error(
        `whittle: save this as the device's agent config file (mode 600) and run: whittle-agent run --config FILE`,
      );
      return 0;
    }
    default:
      throw new CommandUsageError(`unknown command "${command}"; see whittle --help`);
  }
}

/** Writes the connection file `whittle deploy` and other commands read to reach this manager. */
function publishConnection(core: Core, dataDir: string): string {
  return writeConnectionFile(dataDir, {
    url: `http://127.0.0.1:${core.api.port}`,
    token: core.api.token,
    pid: process.pid,
  });
}

/** The demo camera as the agent names it, with the labels of its frames when it has any: the labelled demo
 * video (made on the first demo), a video file with its sidecar next to it, or a source without labels. */
async function demoCamera(camera: string, dataDir: string): Promise<{ camera: string; labels?: string }> {
  if (camera === LABELLED_DEMO_CAMERA) {
    const started = Date.now();
    let made;
    try {
      made = await demoVideo({ dataDir });
    } catch (err) {
      if (err instanceof DatasetMissingError)
        throw new CommandUsageError(
          `the demo's labelled video is made from the Fashion-MNIST test set: ${err.message}; or run whittle demo --camera testsrc`,
        );
      throw err;
    }
    if (made.made)
      console.log(
        `whittle: made the labelled demo video (${made.frames} Fashion-MNIST test images at ${made.fps} fps) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${made.video}`,
      );
    return { camera: made.video, labels: made.labelsFile };
  }
  const sidecar = labelsFileOf(camera);
  return sourceKind(camera) === 'file' && existsSync(sidecar) ? { camera, labels: sidecar } : { camera };
}

/** The supervisor's word in the terminal: the device's systemd unit would restart its agent, and so does
 * the demo. */
function describeSupervisorEvent(event: SupervisorEvent, logFile: string): string {
  if (event.kind === 'restarted')
    return `whittle: the local agent is running again (pid ${event.pid ?? '?'}, restart ${event.restarts})`;
  const how = event.signal ? `killed by ${event.signal}` : `exited with code ${event.code ?? '?'}`;
  return (
    `whittle: the local agent died (${how} after ${(event.ranMs / 1000).toFixed(1)} s); ` +
    `restarting it in ${(event.restartInMs / 1000).toFixed(1)} s; its log: ${logFile}`
  );
}

async function runDemo(coreOptions: Parameters<typeof startCore>[0], cameraOption: string): Promise<number> {
  const { camera, labels } = await demoCamera(cameraOption, coreOptions.dataDir);
  const core: Core = await startCore(coreOptions);
  publishConnection(core, coreOptions.dataDir);
  const deviceId = defaultDeviceId();
  const agent: LocalAgent = startLocalAgent({
    store: core.store,
    deviceId,
    brokerPort: core.broker.port,
    camera,
    ...(labels !== undefined ? { labels } : {}),
    dataDir: coreOptions.dataDir,
    onLine: (line) => {
      if (/error|cannot|refused|retrying|exited|stopped|count as wrong/i.test(line))
        console.log(`[agent] ${line}`);
    },
    onSupervisor: (event) => console.log(describeSupervisorEvent(event, agent.logFile)),
  });
  console.log(
    `whittle: manager ${packageVersion()} and a local agent (${deviceId}, camera ${cameraOption === LABELLED_DEMO_CAMERA ? `${camera}, labelled` : camera}) are running`,
  );
  if (labels === undefined) console.log('  the camera has no labels: no live accuracy');
  console.log(`  UI: ${core.api.uiUrl}`);
  console.log(`  agent log: ${agent.logFile}`);
  console.log('  Ctrl-C stops both.\n');
  core.registry.on('change', (device) => console.log(formatDeviceLine(device)));
  await waitForSignal();
  console.log('\nwhittle: stopping');
  removeConnectionFile(coreOptions.dataDir);
  await agent.stop();
  await core.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    try {
      process.exitCode = reportCommandError('whittle', err);
    } catch {
      console.error('whittle: unexpected failure:', err);
      process.exitCode = 1;
    }
  },
);
