// The agent daemon: camera -> model -> per-second stats -> broker. One frame loop, one stats timer.
//
// runDaemon runs its phases in this order, each a function below:
//   readPackageKey -> recoverModelStore -> loadServedModel -> new CameraFeed -> startDeployRunner ->
//   readLabelsFor -> startCamera -> openOutbox -> connectLink -> startStatsLoop -> runFrameLoop -> shutdown
// The frame path. Frames go one of two ways, chosen per camera (FrameShape.nativeLoop, cameraShape below):
//  - native (the default): ffmpeg writes into a pipe the addon's frame loop reads on a thread of its own
//    (native/src/frame_source.h); the served model's frame call (PackageModel.frameLoopRunner) is attached to
//    it, and each frame is written into the plan's input, run and read there, with no JavaScript, V8 or
//    Node-API per frame. The stats timer drains the loop's results once a second (NativeFrames.drain) into the
//    stats window and the health check's watchers.
//  - JavaScript (runFrameLoop's loop over camera.next): where the native loop cannot run — a model whose
//    infer is not one native call or whose graph does not end in softmax (frameLoopRunner undefined), Windows,
//    or WHITTLE_AGENT_FRAME_LOOP=js in the environment.
//  Both measure the same window as latency: from the frame's bytes available (the native loop: its last byte
//  read from the pipe; JavaScript: camera.next resolved with it) to its scores and class ready; the pipe,
//  the stats and the snapshot are outside it. Each frame runs once. The native loop also warms the model
//  up ahead of each frame (FrameSource.warmAhead): FRAME_WARMUP_MS before the next frame is due it runs the
//  last frame again, result dropped, so the frame finds the plan's code and data in the caches rather than
//  evicted by whatever ran in the 33 ms between frames. A frame that arrives during a warm-up is charged
//  from the warm-up's start. One more run per frame; WHITTLE_AGENT_FRAME_WARMUP_MS=0 turns it off (or sets
//  another lead, ms).
// Invariants:
//  - One model is served at a time (ServedModel.model); only the deploy runner's activate() replaces it. The
//    frame loop reads it once per frame and drops frames of another shape until the camera gives the new one.
//  - The deploy runner starts before the camera and the link (a deployment interrupted by a restart resumes
//    while the camera opens); its reports wait in ReportChannel.early, in order, until the link exists.
//  - The outbox pump exists before the link, so the link's first 'connect' finds it.
//  - A start-up failure the user can act on (bad key, store, model, labels, camera, outbox) is an
//    AgentStartError, which cli.ts prints as one line; stopped while the camera opens, runDaemon returns.
//  - Once the frame loop runs, shutdown stops the stats timer, the runner (no switch in flight), the camera,
//    the link and the outbox, in that order, whatever ended the loop.
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';

import type { FrameRecord, FrameSource } from '../native/plan.js';
import { WhittleError } from '../native/whittle-error.js';
import {
  CameraFeed,
  describeFrameShape,
  type FrameShape,
  resumeLeftPaused,
  sameCamera,
  sameFrameShape,
  type ShapedFrame,
} from './camera/camera-feed.js';
import { CameraError, sourceKind } from './camera/ffmpeg-source.js';
import { encodeFrameJpeg } from './camera/frame-jpeg.js';
import {
  checkLabelsFitVideo,
  type FrameLabels,
  FrameLabelsError,
  type FrameTruth,
  readFrameLabels,
  truthForModel,
} from './camera/frame-labels.js';
import { type AgentConfig, modelMemoryBudget } from './config.js';
import { ModelStore } from './deploy/model-store.js';
import { DeployRunner, type Recovery } from './deploy/runner.js';
import { MqttLink } from './link/mqtt-link.js';
import { RequestHandler } from './link/requests.js';
import { parsePublicKey } from './package/signing.js';
import { packageVersion } from './package-root.js';
import { collectDeviceProfile, type DeviceProfile } from './profile/profile.js';
import { type DeviceInfo, PROTOCOL_VERSION, type SnapshotMessage } from './protocol/messages.js';
import { PackageModel } from './runtime/package-model.js';
import { Outbox, OutboxError } from './telemetry/outbox.js';
import { OutboxPump } from './telemetry/outbox-pump.js';
import { type Prediction, StatsWindow } from './telemetry/stats-window.js';
import { temperatureReader } from './telemetry/temperature.js';

export interface DaemonOptions {
  config: AgentConfig;
  log: (line: string) => void;
  signal: AbortSignal;
}

/** Under the state directory: the id of the ffmpeg paused for a measurement, while it is (CameraFeed.pause). */
const PAUSED_CAMERA_RECORD = 'camera-paused.pid';

/** Width of the snapshots sent to the manager, pixels. */
const SNAPSHOT_WIDTH = 160;

/** Longest wait for the first frame of a health check, ms. */
const FIRST_FRAME_MS = 15_000;

/** The agent cannot start: its model, camera, labels, key or state directory is unusable. */
export class AgentStartError extends WhittleError {
  override readonly name = 'AgentStartError';
  readonly code = 'agent-start-failed';
}

type Log = (line: string) => void;

/** The model the frame loop runs; replaced only by the deploy runner's activate(). */
interface ServedModel {
  model: PackageModel;
}

/** Where deploy reports go: queued in `early` until the link exists, then published on it. */
interface ReportChannel {
  link: MqttLink | null;
  early: string[];
}

/** Loaders of the two kinds of model files, with the device's memory budget applied. */
interface ModelLoaders {
  /** A deployed package: must carry a signature by the pinned key (checked again at every load, so a blob
   * altered on disk after its deployment is not served). */
  loadDeployed: (path: string) => PackageModel;
  /** The package shipped with the agent: trusted as shipped. */
  loadBundled: () => PackageModel;
}

/** Frames the health check watches: each finished frame's latency (ms) goes to every watcher. */
type FrameWatchers = Set<(latencyMs: number) => void>;

/** Whether this agent runs its frames in the native frame loop where the model allows it (see the top). */
function nativeLoopWanted(): boolean {
  return process.platform !== 'win32' && process.env['WHITTLE_AGENT_FRAME_LOOP'] !== 'js';
}

/** How long before a frame is due the native loop warms the model up (ms; see the top). */
const FRAME_WARMUP_MS = 1;

/** The native loop's warm-up lead: FRAME_WARMUP_MS, or WHITTLE_AGENT_FRAME_WARMUP_MS (0 turns it off). */
function frameWarmupMs(): number {
  const text = process.env['WHITTLE_AGENT_FRAME_WARMUP_MS'];
  if (text === undefined || text === '') return FRAME_WARMUP_MS;
  const ms = Number(text);
  if (!(ms >= 0 && ms <= 1000))
    throw new AgentStartError(
      `WHITTLE_AGENT_FRAME_WARMUP_MS: expected milliseconds in [0, 1000] but received "${text}"`,
    );
  return ms;
}

/** The camera frames `model` takes, and which way they go. */
function cameraShape(model: PackageModel): FrameShape {
  return { ...model.input, ...(nativeLoopWanted() && model.frameLoopRunner ? { nativeLoop: true } : {}) };
}

/** Longest wait between two restarts of a camera that failed on its own, ms. */
const MAX_CAMERA_BACKOFF_MS = 30_000;

/**
 * The served model on the camera's native frame loop. sync() attaches the served model when the open camera
 * is native and gives its frames (else detaches: frames of another shape are dropped, as the JavaScript
 * loop drops them); every attach has a generation, so each drained result is credited to the model that ran
 * it, also across a swap. drain() moves the loop's results to `each`, and reports once a loop that ended.
 */
class NativeFrames {
  #generation = 0;
  /** Generation -> the model attached under it; older generations go once drained. */
  readonly #models = new Map<number, PackageModel>();
  #attached: { source: FrameSource; model: PackageModel } | null = null;
  #reported: FrameSource | null = null;

  constructor(
    private readonly camera: CameraFeed,
    private readonly served: ServedModel,
    private readonly log: Log,
    private readonly warmupMs: number,
  ) {}

  sync(): void {
    const source = this.camera.source;
    if (source === null) return;
    const { model } = this.served;
    const runner =
      this.camera.shape.nativeLoop && sameFrameShape(this.camera.shape, model.input)
        ? model.frameLoopRunner
        : undefined;
    if (this.#attached?.source === source && this.#attached.model === model && runner !== undefined) return;
    // A model attached to a camera replaced since was handed back when that camera's loop stopped.
    this.#attached = null;
    if (runner === undefined) {
      source.attach(null, 0);
      return;
    }
    try {
      source.attach(runner, ++this.#generation);
      source.warmAhead(this.warmupMs);
    } catch (err) {
      this.log(`frame loop: cannot run model ${model.id} natively: ${(err as Error).message}`);
      source.attach(null, 0);
      return;
    }
    this.#models.set(this.#generation, model);
    this.#attached = { source, model };
  }

  /** Every result of `source` not drained yet, with the model that ran it; the end of its loop, once. */
  drain(source: FrameSource, each: (model: PackageModel, record: FrameRecord) => void): void {
    source.drain((record) => {
      const model = this.#models.get(record.generation);
      if (model !== undefined) each(model, record);
    });
    for (const generation of this.#models.keys())
      if (generation < this.#generation) this.#models.delete(generation);
    const { ended, lost } = source.status;
    if (ended !== null && this.#reported !== source) {
      this.#reported = source;
      this.log(`frame loop: ${ended}${lost > 0 ? ` (${lost} results lost)` : ''}`);
    }
  }

  /** Why the open camera's loop ended, when it did on its own (not stopped). */
  failure(): string | null {
    const ended = this.camera.source?.status.ended ?? null;
    return ended;
  }

  /** The model attached to the open camera's loop, if any. */
  get attached(): PackageModel | null {
    return this.#attached?.source === this.camera.source ? (this.#attached?.model ?? null) : null;
  }
}

/** Runs until the signal aborts. Rejects with AgentStartError when the model or the camera cannot be
 * opened; once running, a failing camera is reopened with backoff. */
export async function runDaemon({ config, log, signal }: DaemonOptions): Promise<void> {
  const publicKey = readPackageKey(config);
  const warmupMs = frameWarmupMs();
  const { store, recovery } = await recoverModelStore(config, log);
  const loaders = modelLoaders(config, publicKey);
  const served = loadServedModel(config, loaders, recovery, log);
  // The camera gives the frames the served model wants; a deployed model wanting others reopens it.
  const camera = new CameraFeed(
    {
      source: config.camera,
      fps: config.fps,
      ...(config.snapshotSeconds > 0
        ? { snapshot: { everySeconds: config.snapshotSeconds, width: SNAPSHOT_WIDTH } }
        : {}),
    },
    cameraShape(served.model),
    log,
  );
  resumeLeftPaused(join(config.stateDir, PAUSED_CAMERA_RECORD), log);
  const native = new NativeFrames(camera, served, log, warmupMs);
  // Results of the native loop are drained by the stats timer, right before it closes each window.
  const frames: FrameDrain = { drain: () => undefined, watched: () => undefined };
  camera.onStarted = () => native.sync();
  const reports: ReportChannel = { link: null, early: [] };
  const watchers: FrameWatchers = new Set();
  const runner = startDeployRunner({
    config,
    log,
    store,
    recovery,
    publicKey,
    loaders,
    served,
    native,
    frames,
    camera,
    reports,
    watchers,
  });
  // The sidecar is read now (a missing one stops the agent) and checked against its video while the camera
  // opens (ffprobe counts the video's frames).
  const checkedLabels = readLabelsFor(config, served.model, log);
  void checkedLabels.catch(() => undefined); // awaited below, once the camera runs
  if (!(await startCamera({ config, camera, runner, signal, log }))) return;
  const labels = await checkedLabels;
  const info = deviceInfo(config, served.model, collectDeviceProfile({ dataDir: config.stateDir }));
  const outbox = openOutbox(config, camera, log);
  const { link, pump } = connectLink(config, info, outbox, runner, reports, signal, log, {
    camera,
    publicKey,
    loadPackage: loaders.loadDeployed,
  });
  const { stats, stop: stopStats } = startStatsLoop(served.model, outbox, pump, frames, log);
  try {
    await runFrameLoop({ camera, served, native, frames, labels, stats, link, watchers, signal, log });
  } finally {
    await shutdown({ stopStats, runner, camera, link, outbox });
  }
}

/** The pinned package-signing key from the config (inline or in a file); null when none is pinned, which
 * refuses every deployment. */
function readPackageKey(config: AgentConfig): KeyObject | null {
  if (config.packageKey !== undefined) {
    try {
      return parsePublicKey(config.packageKey);
    } catch (err) {
      throw new AgentStartError(`packageKey: ${(err as Error).message}`);
    }
  }
  if (config.packageKeyFile !== undefined) {
    try {
      return parsePublicKey(readFileSync(config.packageKeyFile, 'utf8'));
    } catch (err) {
      throw new AgentStartError(`packageKeyFile ${config.packageKeyFile}: ${(err as Error).message}`);
    }
  }
  return null;
}

/** Opens the store of deployed models and undoes a trial a restart interrupted. */
async function recoverModelStore(
  config: AgentConfig,
  log: Log,
): Promise<{ store: ModelStore; recovery: Recovery }> {
  try {
    const store = new ModelStore(join(config.stateDir, 'models'), log);
    return { store, recovery: await DeployRunner.recover(store, config.model, log) };
  } catch (err) {
    throw new AgentStartError(`model store in ${config.stateDir}: ${(err as Error).message}`);
  }
}

function modelLoaders(config: AgentConfig, publicKey: KeyObject | null): ModelLoaders {
  const memoryBudgetBytes = modelMemoryBudget(config, totalmem());
  return {
    loadDeployed: (path) => PackageModel.load(path, { trust: { publicKey }, memoryBudgetBytes }),
    loadBundled: () => PackageModel.load(config.model, { trust: 'shipped', memoryBudgetBytes }),
  };
}

/** The model recovery says to serve; a deployed one that no longer loads falls back to the bundled one.
 * `serving` is the served file's hash, "bundled" for the shipped one. */
function loadServedModel(
  config: AgentConfig,
  { loadDeployed, loadBundled }: ModelLoaders,
  recovery: Recovery,
  log: Log,
): ServedModel & { serving: string } {
  let model: PackageModel;
  let serving = recovery.sha256;
  try {
    model = serving === 'bundled' ? loadBundled() : loadDeployed(recovery.path);
  } catch (err) {
    if (recovery.sha256 === 'bundled')
      throw new AgentStartError(`cannot load model ${config.model}: ${(err as Error).message}`);
    log(`deploy: cannot load ${recovery.path} (${(err as Error).message}); serving the bundled model`);
    try {
      model = loadBundled();
      serving = 'bundled';
    } catch (err2) {
      throw new AgentStartError(`cannot load model ${config.model}: ${(err2 as Error).message}`);
    }
  }
  log(`serving model ${model.id} (${serving}) version ${model.version}`);
  return { model, serving };
}

function publishReport(link: MqttLink, payload: string, log: Log): void {
  link
    .publishAcked('deploy', payload)
    .catch((err: Error) => log(`deploy report not delivered: ${err.message}`));
}

/** What the frame path is made of (see the top): the camera, the served model, the native loop and its
 * results, and the health check's watchers. */
interface FramePath {
  camera: CameraFeed;
  served: ServedModel;
  native: NativeFrames;
  frames: FrameDrain;
  watchers: FrameWatchers;
}

/** The deployment runner, started: it resumes the deployment recovery found interrupted. */
function startDeployRunner(
  phase: FramePath & {
    config: AgentConfig;
    log: Log;
    store: ModelStore;
    recovery: Recovery;
    publicKey: KeyObject | null;
    loaders: ModelLoaders;
    served: { serving: string };
    reports: ReportChannel;
  },
): DeployRunner<PackageModel> {
  const { config, log, store, recovery, publicKey, loaders, served, camera, reports, watchers } = phase;
  const runner = new DeployRunner<PackageModel>(
    {
      store,
      deployDir: join(config.stateDir, 'deploy'),
      publicKey,
      arch: process.arch,
      memBytes: totalmem(),
      bundledModel: config.model,
      loadModel: loaders.loadDeployed,
      loadBundled: loaders.loadBundled,
      activate: (next, sha) => {
        served.model = next;
        log(`serving model ${next.id} (${sha}) version ${next.version}`);
        // Frames of the old shape still in flight are dropped by the frame loop until the camera gives
        // the new ones; the health check's first-frame wait covers the reopen. On the same camera the
        // native loop swaps models between two frames (sync: the old one is not running when it returns).
        const want = cameraShape(next);
        phase.native.sync();
        if (!sameCamera(want, camera.shape)) void camera.reopen(want);
        reports.link?.updateModel({ id: next.id, name: next.name });
      },
      // The window starts at the first frame (the camera may still be opening when a deployment
      // resumes at start-up); no frame within FIRST_FRAME_MS gives an empty list.
      watchFrames: (ms, abort) =>
        new Promise((resolve) => {
          const seen: number[] = [];
          let timer = setTimeout(() => done(), FIRST_FRAME_MS);
          const watcher = (latency: number): void => {
            if (seen.length === 0) {
              clearTimeout(timer);
              timer = setTimeout(() => done(), ms);
            }
            seen.push(latency);
          };
          watchers.add(watcher);
          phase.frames.watched();
          const done = (): void => {
            clearTimeout(timer);
            watchers.delete(watcher);
            abort.removeEventListener('abort', done);
            resolve(seen);
          };
          abort.addEventListener('abort', done, { once: true });
        }),
      report: (report) => {
        const payload = JSON.stringify(report);
        if (reports.link) publishReport(reports.link, payload, log);
        else reports.early.push(payload);
      },
      log,
    },
    served.serving,
  );
  runner.resume(recovery.interrupted);
  return runner;
}

/** The ground truth of the camera's frames, when the config names a labels file. A file that cannot be read
 * at all stops the agent (the config names something that is not there); a sidecar that does not fit its
 * video (format, version, frame count, name) or the model (no class in common) is refused with a line naming
 * it, and the agent runs without accuracy rather than with a wrong one. Classes of the sidecar the model
 * does not have are reported here, once: their frames count as wrong. */
function readLabelsFor(config: AgentConfig, model: PackageModel, log: Log): Promise<FrameTruth | undefined> {
  const file = config.labels;
  if (file === undefined) return Promise.resolve(undefined);
  const refuse = (err: unknown): undefined => {
    if (!(err instanceof FrameLabelsError)) throw err;
    log(`${err.message}; refused, running without accuracy`);
    return undefined;
  };
  let labels: FrameLabels;
  try {
    labels = readFrameLabels(file);
  } catch (err) {
    if (err instanceof FrameLabelsError && err.unreadable) throw new AgentStartError(err.message);
    return Promise.resolve(refuse(err));
  }
  const check = async (): Promise<FrameTruth> => {
    if (!isVideoFile(config.camera))
      throw new FrameLabelsError(
        `labels file ${file} labels a video file, but the camera is ${config.camera}`,
      );
    await checkLabelsFitVideo(labels, file, config.camera);
    const truth = truthForModel(labels, file, model.labels);
    for (const { name, frames } of truth.foreign)
      log(
        `labels file ${file}: class "${name}" (${frames} of ${labels.frames} frames) is not a class of model ${model.id}; those frames count as wrong`,
      );
    log(`camera ${config.camera}: labelled by ${file} (${labels.frames} frames, checked against the video)`);
    return truth;
  };
  return check().catch(refuse);
}

/** The camera is a video file (a bad source is the camera's to report, when it opens). */
function isVideoFile(camera: string): boolean {
  try {
    return sourceKind(camera) === 'file';
  } catch {
    return false;
  }
}

/** Opens the camera and says what it gives: true once it gives frames, false when the signal stopped the agent
 * while it opened (the runner is then closed). The line is logged right after the camera started, before a
 * reopen a deployment may have asked for meanwhile changes its shape. */
async function startCamera(phase: {
  config: AgentConfig;
  camera: CameraFeed;
  runner: DeployRunner<PackageModel>;
  signal: AbortSignal;
  log: Log;
}): Promise<boolean> {
  const { config, camera, runner, signal, log } = phase;
  try {
    await camera.start(signal);
  } catch (err) {
    camera.stop();
    await runner.close();
    if (signal.aborted) return false; // stopped while the camera was opening
    if (err instanceof CameraError) throw new AgentStartError(err.message);
    throw err;
  }
  const way = camera.shape.nativeLoop ? 'the native frame loop' : 'the JavaScript frame loop';
  log(`camera ${config.camera}: ${describeFrameShape(camera.shape)} frames, run in ${way}`);
  return true;
}

/** What the agent tells the manager about itself when it connects. */
function deviceInfo(config: AgentConfig, model: PackageModel, profile: DeviceProfile): DeviceInfo {
  return {
    id: config.deviceId,
    // The status message's device facts are the profile's (agent/profile/profile.ts), in its older names.
    hostname: profile.hostname,
    arch: profile.os.arch,
    platform: profile.os.platform,
    cpuModel: profile.cpu.model,
    cpus: profile.cpu.cores,
    memTotalBytes: profile.memory.total_bytes,
    ...(profile.kernels.isa === null ? {} : { isa: profile.kernels.isa }),
    ...(profile.kernels.isa === null ? {} : { cpuFeatures: profile.cpu.isa_features }),
    agentVersion: packageVersion(),
    nodeVersion: process.version,
    camera: config.camera,
    model: { id: model.id, name: model.name },
  };
}

/** The store-and-forward queue of stats records; the camera is stopped when it cannot be opened. */
function openOutbox(config: AgentConfig, camera: CameraFeed, log: Log): Outbox {
  let outbox: Outbox;
  try {
    outbox = Outbox.open({ dir: join(config.stateDir, 'telemetry'), log });
  } catch (err) {
    camera.stop();
    // A file-system error (errno code) or the outbox's own refusal; anything else is a bug, thrown as is.
    if (
      err instanceof OutboxError ||
      (!(err instanceof WhittleError) && (err as NodeJS.ErrnoException).code !== undefined)
    )
      throw new AgentStartError(`telemetry outbox: ${(err as Error).message}`);
    throw err;
  }
  if (outbox.pending > 0) log(`telemetry outbox: ${outbox.pending} records queued from before`);
  return outbox;
}

/** The link to the broker, with the outbox pump it drives and deploy targets going to the runner; reports
 * queued before it existed are published on it, in order. The manager's requests go to a RequestHandler;
 * a measurement pauses the camera (and says so in the retained status) until it ends. */
function connectLink(
  config: AgentConfig,
  info: DeviceInfo,
  outbox: Outbox,
  runner: DeployRunner<PackageModel>,
  reports: ReportChannel,
  signal: AbortSignal,
  log: Log,
  measure: { camera: CameraFeed; publicKey: KeyObject | null; loadPackage: (path: string) => PackageModel },
): { link: MqttLink; pump: OutboxPump } {
  // The pump exists before the link so the link's first 'connect' finds it.
  const pump = new OutboxPump({
    outbox,
    publish: (payload) =>
      reports.link ? reports.link.publishAcked('stats', payload) : Promise.reject(new Error('no link')),
    log,
  });
  const requests = new RequestHandler({
    publish: (payload) => link.publishAcked('response', payload),
    stateDir: config.stateDir,
    signal,
    log,
    packages: { publicKey: measure.publicKey, loadPackage: measure.loadPackage },
    pause: (request) => {
      measure.camera.pause(join(config.stateDir, PAUSED_CAMERA_RECORD));
      link.setPaused({ reason: 'measurement', request, since: Date.now() });
      log(`camera paused for measurement ${request}`);
      return () => {
        measure.camera.resume();
        link.setPaused(undefined);
        log(`camera resumed after measurement ${request}`);
      };
    },
  });
  const link = new MqttLink({
    brokerUrl: config.broker,
    username: config.username,
    password: config.password,
    info,
    log,
    reconnectMaxMs: config.reconnectMaxMs,
    onConnectionChange: (up) => pump.setConnected(up),
    onRequest: (payload) => requests.handle(payload),
    onTarget: (payload) => {
      try {
        runner.submit(DeployRunner.decodeTarget(JSON.parse(payload.toString('utf8'))));
      } catch (err) {
        log(`deploy: refused a target: ${(err as Error).message}`);
      }
    },
  });
  reports.link = link;
  for (const payload of reports.early.splice(0)) publishReport(link, payload, log);
  return { link, pump };
}

/** Closes the stats window every second into the outbox and pumps it. The window's class count is the model
 * served when it starts. `stop` ends the timer. */
function startStatsLoop(
  model: PackageModel,
  outbox: Outbox,
  pump: OutboxPump,
  frames: FrameDrain,
  log: Log,
): { stats: StatsWindow; stop: () => void } {
  const stats = new StatsWindow(undefined, {
    classes: model.labels.length,
    temperature: temperatureReader(),
  });
  const closeWindow = (): void => {
    frames.drain();
    const body = stats.close();
    try {
      outbox.append((seq) => JSON.stringify({ ...body, seq, epoch: outbox.epoch, dropped: outbox.dropped }));
    } catch (err) {
      log(`telemetry outbox: cannot append: ${(err as Error).message}`);
      return;
    }
    pump.pump();
  };
  const timer = setInterval(closeWindow, 1000);
  return { stats, stop: () => clearInterval(timer) };
}

/** Where the stats timer gets the native loop's results: runFrameLoop sets drain. While the health check
 * watches frames, they are drained every WATCH_DRAIN_MS instead (watched), so that its window sees them
 * about as soon as the JavaScript loop gives them. */
interface FrameDrain {
  drain: () => void;
  watched: () => void;
}

/** How often the native loop's results are drained while the health check watches frames, ms. */
const WATCH_DRAIN_MS = 20;

/** Reads frames until the signal aborts: each through the served model into the stats window and to the
 * health check's watchers; the camera's snapshots go out with the last prediction (and its true label).
 * Frames of a native camera run in the addon's loop and arrive here through frames.drain (see the top). A
 * camera that fails on its own (ffmpeg exited, the native loop ended) is restarted, waiting 1 s, then twice
 * as long each time it fails again before giving frames, up to MAX_CAMERA_BACKOFF_MS. */
async function runFrameLoop(
  loop: FramePath & {
    labels: FrameTruth | undefined;
    stats: StatsWindow;
    link: MqttLink;
    signal: AbortSignal;
    log: Log;
  },
): Promise<void> {
  const { camera, served, native, frames, labels, stats, link, watchers, signal, log } = loop;
  let lastPrediction: Prediction | undefined;
  let lastTrueLabel: string | undefined;
  let lastFrame: ShapedFrame | undefined;
  let encodeFailed = false;
  let backoffMs = 1000;
  let restarting = false;
  const restart = async (reason: string): Promise<void> => {
    if (restarting) return;
    restarting = true;
    log(`${reason}; restarting the camera in ${backoffMs / 1000} s`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, backoffMs);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    backoffMs = Math.min(backoffMs * 2, MAX_CAMERA_BACKOFF_MS);
    if (!signal.aborted) await camera.reopen(cameraShape(served.model), true);
    restarting = false;
  };
  const finished = (
    model: PackageModel,
    latency: number,
    classIndex: number,
    confidence: number,
    index: number,
  ): void => {
    backoffMs = 1000;
    lastPrediction = { classIndex, label: model.labels[classIndex] ?? String(classIndex), confidence };
    lastTrueLabel = labels?.nameOf(index);
    stats.record(latency, lastPrediction, labels?.modelClassOf(index));
    // The health check watches the model it switched to.
    if (model === served.model) for (const watcher of watchers) watcher(latency);
  };
  frames.drain = () => {
    const source = camera.source;
    if (source === null) return;
    native.drain(source, (model, r) => finished(model, r.latencyMs, r.classIndex, r.confidence, r.index));
    const ended = native.failure();
    if (ended !== null) void restart(`frame loop: ${ended}`);
  };
  let watching: NodeJS.Timeout | undefined;
  frames.watched = () => {
    watching ??= setInterval(() => {
      frames.drain();
      if (watchers.size === 0 || signal.aborted) {
        clearInterval(watching);
        watching = undefined;
      }
    }, WATCH_DRAIN_MS);
  };
  camera.onSourceClosing = (source) =>
    native.drain(source, (model, r) => finished(model, r.latencyMs, r.classIndex, r.confidence, r.index));
  const publish = (jpeg: Buffer, prediction?: Prediction, trueLabel?: string): void => {
    const message: SnapshotMessage = {
      v: PROTOCOL_VERSION,
      ts: Date.now(),
      jpeg: jpeg.toString('base64'),
      ...(prediction ? { prediction } : {}),
      ...(trueLabel !== undefined ? { trueLabel } : {}),
    };
    link.publishVolatile('snapshot', JSON.stringify(message));
  };
  camera.onSnapshot = (jpeg) => {
    // A labelled video: the picture is the very frame the prediction and the truth are of (frame-jpeg.ts);
    // on the native loop, its last frame run, with that frame's own result.
    let frame = lastFrame;
    let prediction = lastPrediction;
    let trueLabel = lastTrueLabel;
    const source = labels ? camera.source : null;
    const model = native.attached;
    if (labels && source !== null && model !== null) {
      const { width, height, channels } = camera.shape;
      const pixels = Buffer.alloc(width * height * channels);
      const r = source.last(pixels);
      if (r !== undefined && r.generation > 0) {
        frame = { frame: pixels, index: r.index, receivedAt: 0, shape: camera.shape };
        prediction = {
          classIndex: r.classIndex,
          label: model.labels[r.classIndex] ?? String(r.classIndex),
          confidence: r.confidence,
        };
        trueLabel = labels.nameOf(r.index);
      }
    }
    if (!labels || !frame) return publish(jpeg, prediction, trueLabel);
    encodeFrameJpeg(frame.frame, frame.shape, SNAPSHOT_WIDTH).then(
      (own) => publish(own, prediction, trueLabel),
      (err: Error) => {
        if (!encodeFailed) log(`snapshot: ${err.message}; sending the camera's picture without its labels`);
        encodeFailed = true;
        publish(jpeg);
      },
    );
  };
  native.sync(); // the camera started before these hooks were set
  while (!signal.aborted) {
    let next: ShapedFrame;
    try {
      // A native camera gives no frames here: this waits for its failure, a reopen, or the end.
      next = await camera.next(signal);
    } catch (err) {
      if (signal.aborted) break;
      if (!(err instanceof CameraError)) throw err;
      await restart(err.message);
      continue;
    }
    const { model } = served;
    // A frame made for the model served before a switch (or a rollback) is not this model's input.
    if (!sameFrameShape(next.shape, model.input)) continue;
    const t0 = performance.now();
    const result = model.infer(next.frame);
    const latency = performance.now() - t0;
    lastFrame = next;
    finished(model, latency, result.classIndex, result.confidence, next.index);
  }
}

/** Stops everything the daemon started, in the order of the invariant above. */
async function shutdown(running: {
  stopStats: () => void;
  runner: DeployRunner<PackageModel>;
  camera: CameraFeed;
  link: MqttLink;
  outbox: Outbox;
}): Promise<void> {
  running.stopStats();
  await running.runner.close();
  running.camera.stop();
  await running.link.close();
  running.outbox.close();
}
