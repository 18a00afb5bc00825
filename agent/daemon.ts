// The agent daemon: camera -> model -> per-second stats -> broker. One frame loop, one stats timer.
import { cpus, hostname, totalmem } from 'node:os';

import { CameraError, FfmpegCamera } from './camera/ffmpeg-source.js';
import type { AgentConfig } from './config.js';
import { MqttLink } from './link/mqtt-link.js';
import { packageVersion } from './package-root.js';
import type { DeviceInfo } from './protocol/messages.js';
import { Int8MlpModel } from './runtime/int8-mlp.js';
import { StatsWindow } from './telemetry/stats-window.js';

export interface DaemonOptions {
  config: AgentConfig;
  log: (line: string) => void;
  signal: AbortSignal;
}

export class AgentStartError extends Error {
  override name = 'AgentStartError';
}

/** Runs until the signal aborts. Rejects with AgentStartError when the model or the camera cannot be
 * opened; once running, a failing camera is reopened with backoff. */
export async function runDaemon({ config, log, signal }: DaemonOptions): Promise<void> {
  let model: Int8MlpModel;
  try {
    model = Int8MlpModel.load(config.model);
  } catch (err) {
    throw new AgentStartError(`cannot load model ${config.model}: ${(err as Error).message}`);
  }
  const { width, height, channels } = model.input;
  if (channels !== 1 && channels !== 3)
    throw new AgentStartError(`model ${config.model}: unsupported channel count ${channels}`);

  const camera = new FfmpegCamera({ source: config.camera, width, height, channels, fps: config.fps });
  try {
    await camera.start(signal);
  } catch (err) {
    camera.stop();
    if (err instanceof CameraError) throw new AgentStartError(err.message);
    throw err;
  }
  log(`camera ${config.camera}: ${width}x${height}x${channels} frames`);

  const info: DeviceInfo = {
    id: config.deviceId,
    hostname: hostname(),
    arch: process.arch,
    platform: process.platform,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cpus: cpus().length,
    memTotalBytes: totalmem(),
    agentVersion: packageVersion(),
    nodeVersion: process.version,
    camera: config.camera,
    model: { id: model.id, name: model.name },
  };
  const link = new MqttLink({
    brokerUrl: config.broker,
    username: config.username,
    password: config.password,
    info,
    log,
  });

  const stats = new StatsWindow();
  const timer = setInterval(() => link.publishStats(stats.close()), 1000);
  try {
    while (!signal.aborted) {
      let frame: Buffer;
      try {
        frame = await camera.nextFrame(signal);
      } catch (err) {
        if (signal.aborted) break;
        throw err;
      }
      const t0 = performance.now();
      const result = model.infer(frame);
      const latency = performance.now() - t0;
      stats.record(latency, {
        classIndex: result.classIndex,
        label: model.labels[result.classIndex] ?? String(result.classIndex),
        confidence: result.confidence,
      });
    }
  } finally {
    clearInterval(timer);
    camera.stop();
    await link.close();
  }
}
