// The agent daemon: camera -> model -> per-second stats -> broker. One frame loop, one stats timer.
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, totalmem } from 'node:os';
import { join } from 'node:path';

import { CameraFeed, describeFrameShape, sameFrameShape, type ShapedFrame } from './camera/camera-feed.js';
import { CameraError } from './camera/ffmpeg-source.js';
import { type FrameLabels, FrameLabelsError, labelOfFrame, readFrameLabels } from './camera/frame-labels.js';
import { type AgentConfig, modelMemoryBudget } from './config.js';
import { ModelStore } from './deploy/model-store.js';
import { DeployRunner, type Recovery } from './deploy/runner.js';
import { MqttLink } from './link/mqtt-link.js';
import { parsePublicKey } from './package/signing.js';
import { packageVersion } from './package-root.js';
import { type DeviceInfo, PROTOCOL_VERSION, type SnapshotMessage } from './protocol/messages.js';
import { PackageModel } from './runtime/package-model.js';
import { deviceFacts } from './telemetry/device-facts.js';
import { Outbox, OutboxError } from './telemetry/outbox.js';
import { OutboxPump } from './telemetry/outbox-pump.js';
import { type Prediction, StatsWindow } from './telemetry/stats-window.js';
import { temperatureReader } from './telemetry/temperature.js';

export interface DaemonOptions {
  config: AgentConfig;
  log: (line: string) => void;
  signal: AbortSignal;
}

/** Longest wait for the first frame of a health check, ms. */
const FIRST_FRAME_MS = 15_000;

export class AgentStartError extends Error {
  override name = 'AgentStartError';
}

/** Runs until the signal aborts. Rejects with AgentStartError when the model or the camera cannot be
 * opened; once running, a failing camera is reopened with backoff. */
export async function runDaemon({ config, log, signal }: DaemonOptions): Promise<void> {
  let publicKey: KeyObject | null = null;
  if (config.packageKey !== undefined) {
    try {
      publicKey = parsePublicKey(config.packageKey);
    } catch (err) {
      throw new AgentStartError(`packageKey: ${(err as Error).message}`);
    }
  } else if (config.packageKeyFile !== undefined) {
    try {
      publicKey = parsePublicKey(readFileSync(config.packageKeyFile, 'utf8'));
    } catch (err) {
      throw new AgentStartError(`packageKeyFile ${config.packageKeyFile}: ${(err as Error).message}`);
    }
  }
  let store: ModelStore;
  let recovery: Recovery;
  try {
    store = new ModelStore(join(config.stateDir, 'models'), log);
    recovery = await DeployRunner.recover(store, config.model, log);
  } catch (err) {
    throw new AgentStartError(`model store in ${config.stateDir}: ${(err as Error).message}`);
  }
  // Deployed packages must carry a signature by the pinned key (checked again at every load, so a blob
  // altered on disk after its deployment is not served); the bundled one is trusted as shipped.
  const memoryBudgetBytes = modelMemoryBudget(config, totalmem());
  const loadDeployed = (path: string): PackageModel =>
    PackageModel.load(path, { trust: { publicKey }, memoryBudgetBytes });
  const loadBundled = (): PackageModel =>
    PackageModel.load(config.model, { trust: 'shipped', memoryBudgetBytes });
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
  // The camera gives the frames the served model wants; a deployed model wanting others reopens it.
  const camera = new CameraFeed(
    {
      source: config.camera,
      fps: config.fps,
      ...(config.snapshotSeconds > 0
        ? { snapshot: { everySeconds: config.snapshotSeconds, width: 160 } }
        : {}),
    },
    model.input,
    log,
  );

  // The link comes later (the deployment resumes while the camera opens); reports made before it
  // exists wait here. QoS 1 publishes wait in the MQTT client while it is disconnected.
  let link: MqttLink | null = null;
  const earlyReports: string[] = [];
  const publishReport = (to: MqttLink, payload: string): void => {
    to.publishAcked('deploy', payload).catch((err: Error) =>
      log(`deploy report not delivered: ${err.message}`),
    );
  };
  // Frames the health check watches: each finished frame's latency goes to every watcher.
  const watchers = new Set<(latencyMs: number) => void>();
  const runner = new DeployRunner<PackageModel>(
    {
      store,
      deployDir: join(config.stateDir, 'deploy'),
      publicKey,
      arch: process.arch,
      memBytes: totalmem(),
      bundledModel: config.model,
      loadModel: loadDeployed,
      loadBundled,
      activate: (next, sha) => {
        model = next;
        log(`serving model ${next.id} (${sha}) version ${next.version}`);
        // Frames of the old shape still in flight are dropped by the frame loop until the camera gives
        // the new ones; the health check's first-frame wait covers the reopen.
        if (!sameFrameShape(next.input, camera.shape)) void camera.reopen(next.input);
        link?.updateModel({ id: next.id, name: next.name });
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
        if (link) publishReport(link, payload);
        else earlyReports.push(payload);
      },
      log,
    },
    serving,
  );
  runner.resume(recovery.interrupted);

  let labels: FrameLabels | undefined;
  if (config.labels !== undefined) {
    try {
      labels = readFrameLabels(config.labels);
    } catch (err) {
      if (err instanceof FrameLabelsError) throw new AgentStartError(err.message);
      throw err;
    }
    if (labels.classes.length !== model.labels.length)
      throw new AgentStartError(
        `labels file ${config.labels} has ${labels.classes.length} classes but model ${model.id} has ${model.labels.length}`,
      );
  }

  try {
    await camera.start(signal);
  } catch (err) {
    camera.stop();
    await runner.close();
    if (signal.aborted) return; // stopped while the camera was opening
    if (err instanceof CameraError) throw new AgentStartError(err.message);
    throw err;
  }
  log(
    `camera ${config.camera}: ${describeFrameShape(camera.shape)} frames${labels ? `, labelled by ${config.labels}` : ''}`,
  );

  const info: DeviceInfo = {
    id: config.deviceId,
    hostname: hostname(),
    ...deviceFacts(),
    agentVersion: packageVersion(),
    nodeVersion: process.version,
    camera: config.camera,
    model: { id: model.id, name: model.name },
  };
  let outbox: Outbox;
  try {
    outbox = Outbox.open({ dir: join(config.stateDir, 'telemetry'), log });
  } catch (err) {
    camera.stop();
    if (err instanceof OutboxError || (err as NodeJS.ErrnoException).code !== undefined)
      throw new AgentStartError(`telemetry outbox: ${(err as Error).message}`);
    throw err;
  }
  if (outbox.pending > 0) log(`telemetry outbox: ${outbox.pending} records queued from before`);
  // The pump exists before the link so the link's first 'connect' finds it.
  const pump = new OutboxPump({
    outbox,
    publish: (payload) => (link ? link.publishAcked('stats', payload) : Promise.reject(new Error('no link'))),
    log,
  });
  link = new MqttLink({
    brokerUrl: config.broker,
    username: config.username,
    password: config.password,
    info,
    log,
    reconnectMaxMs: config.reconnectMaxMs,
    onConnectionChange: (up) => pump.setConnected(up),
    onTarget: (payload) => {
      try {
        runner.submit(DeployRunner.decodeTarget(JSON.parse(payload.toString('utf8'))));
      } catch (err) {
        log(`deploy: refused a target: ${(err as Error).message}`);
      }
    },
  });

  for (const payload of earlyReports.splice(0)) publishReport(link, payload);

  const stats = new StatsWindow(undefined, {
    classes: model.labels.length,
    temperature: temperatureReader(),
  });
  const closeWindow = (): void => {
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

  let lastPrediction: Prediction | undefined;
  let lastTrueClass: number | undefined;
  camera.onSnapshot = (jpeg) => {
    const message: SnapshotMessage = {
      v: PROTOCOL_VERSION,
      ts: Date.now(),
      jpeg: jpeg.toString('base64'),
      ...(lastPrediction ? { prediction: lastPrediction } : {}),
      ...(lastTrueClass !== undefined
        ? { trueLabel: model.labels[lastTrueClass] ?? String(lastTrueClass) }
        : {}),
    };
    link?.publishVolatile('snapshot', JSON.stringify(message));
  };
  try {
    while (!signal.aborted) {
      let next: ShapedFrame;
      try {
        next = await camera.next(signal);
      } catch (err) {
        if (signal.aborted) break;
        throw err;
      }
      // A frame made for the model served before a switch (or a rollback) is not this model's input.
      if (!sameFrameShape(next.shape, model.input)) continue;
      const t0 = performance.now();
      const result = model.infer(next.frame);
      const latency = performance.now() - t0;
      lastPrediction = {
        classIndex: result.classIndex,
        label: model.labels[result.classIndex] ?? String(result.classIndex),
        confidence: result.confidence,
      };
      lastTrueClass = labels ? labelOfFrame(labels, next.index) : undefined;
      stats.record(latency, lastPrediction, lastTrueClass);
      for (const watcher of watchers) watcher(latency);
    }
  } finally {
    clearInterval(timer);
    await runner.close();
    camera.stop();
    await link.close();
    outbox.close();
  }
}
