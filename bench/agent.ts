// `npm run bench -- agent [--seconds N] [--fps N] [--json]`: the agent's footprint while it runs its bundled
// model package (agent/config.ts defaultModelPath) on ffmpeg's test camera — resident memory, bundle
// size, frames per second and CPU.
//
// The agent runs as it ships: one esbuild bundle of agent/cli.ts (dist/agent-bundle/) plus the native
// addon; it streams stats to a real manager core started in this process, and the figures are the
// agent's own per-second records (its process only; ffmpeg is reported apart).
//
// latency_p50_ms is the mean of the agent's per-second p50 of its frame latency: the window from a frame's
// bytes available to its scores and class ready (agent/daemon.ts, "The frame path"). frame_loop says which
// loop ran the frames: "native" (the addon's thread reading ffmpeg's pipe; the window starts when the
// frame's last byte is read) or "js" (WHITTLE_AGENT_FRAME_LOOP=js or a model the native loop cannot run;
// the window starts when camera.next resolves with the frame).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { build } from 'esbuild';

import { AGENT_NODE_FLAGS, defaultModelPath } from '../agent/config.js';
import { readPackageFile } from '../agent/package/reader.js';
import { packageRoot } from '../agent/package-root.js';
import type { StatsMessage } from '../agent/protocol/messages.js';
import { startCore } from '../electron/core/core.js';
import { BenchArgumentError, benchOptions, positiveInteger } from './kernels.js';

export interface AgentBenchResult {
  rss_mb: number;
  rss_peak_mb: number;
  bundle_mb: number;
  bundle_js_mb: number;
  addon_mb: number;
  fps: number;
  cpu_percent: number;
  latency_p50_ms: number;
  latency_p99_ms: number;
  frame_loop: 'native' | 'js' | 'unknown';
  ffmpeg_rss_mb: number | null;
  seconds: number;
  camera_fps: number;
  model: string;
  model_bytes: number;
}

/** The bundled package as the figures name it: id, version, layer ops and number formats. */
function describeBundledModel(): { model: string; bytes: number } {
  const pkg = readPackageFile(defaultModelPath(), { allowUnsigned: true, cpuFamily: null });
  const { model, nodes } = pkg.manifest;
  const layers = nodes.filter((n) => !/quantize/.test(n.op)).map((n) => `${n.op}/${n.format}`);
  return { model: `${model.id} ${model.version} (package: ${layers.join(' → ')})`, bytes: pkg.fileBytes };
}

const MB = 1024 * 1024;

/** Bundles agent/cli.ts with esbuild and copies the addon next to it; returns the paths. */
export async function buildAgentBundle(root: string = packageRoot()): Promise<{ js: string; addon: string }> {
  const outDir = join(root, 'dist', 'agent-bundle');
  mkdirSync(outDir, { recursive: true });
  const js = join(outDir, 'whittle-agent.mjs');
  await build({
    entryPoints: [join(root, 'agent', 'cli.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    minify: true,
    outfile: js,
    logLevel: 'warning',
    // CommonJS dependencies (mqtt's) call require(); an ES module bundle has to provide it.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
  const addon = join(outDir, 'whittle_native.node');
  copyFileSync(join(root, 'native', 'build', 'Release', 'whittle_native.node'), addon);
  return { js, addon };
}

function rssOf(pid: number | undefined, field: 'VmRSS' | 'VmHWM'): number | null {
  if (pid === undefined) return null;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (Number(m[1]) * 1024) / MB : null;
  } catch {
    return null;
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export async function benchAgent(options: {
  seconds: number;
  fps: number;
  /** Node flags for the agent process; by default the ones it runs with on a device (AGENT_NODE_FLAGS). */
  nodeFlags?: readonly string[];
}): Promise<AgentBenchResult> {
  const root = packageRoot();
  const bundled = describeBundledModel();
  const { js, addon } = await buildAgentBundle(root);
  const dir = mkdtempSync(join(tmpdir(), 'whittle-bench-agent-'));
  const core = await startCore({
    dataDir: dir,
    httpPort: 0,
    mqttPort: 0,
    mqttHost: '127.0.0.1',
    log: () => undefined,
  });
  const configFile = join(dir, 'agent.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      broker: `mqtt://127.0.0.1:${core.broker.port}`,
      deviceId: 'bench',
      password: core.store.issueCredential('bench'),
      camera: 'testsrc',
      fps: options.fps,
    }),
  );
  const agent = spawn(
    process.execPath,
    [...(options.nodeFlags ?? AGENT_NODE_FLAGS), js, 'run', '--config', configFile],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  agent.stdout.on('data', (b: Buffer) => (output += b.toString()));
  agent.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<void>((resolve) => agent.on('exit', () => resolve()));
  try {
    const warmupMs = 3000;
    const deadline = Date.now() + 30_000;
    while (core.store.stats('bench').length === 0) {
      if (Date.now() > deadline || agent.exitCode !== null)
        throw new Error(`the agent sent no stats within 30 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, warmupMs));
    const from = Date.now();
    let ffmpegRss: number | null = null;
    while (Date.now() - from < options.seconds * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      for (const pid of childPids(agent.pid!)) ffmpegRss = Math.max(ffmpegRss ?? 0, rssOf(pid, 'VmRSS') ?? 0);
    }
    const records = core.store
      .stats('bench', from)
      .map((r) => JSON.parse(r.json) as StatsMessage)
      .filter((s) => s.frames > 0);
    if (records.length === 0) throw new Error(`no stats records in the measured window:\n${output}`);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const peak = rssOf(agent.pid, 'VmHWM');
    const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
    const jsMb = statSync(js).size / MB;
    const addonMb = statSync(addon).size / MB;
    return {
      rss_mb: round(Math.max(...records.map((s) => s.rssBytes ?? 0)) / MB),
      rss_peak_mb: round(peak ?? 0),
      bundle_mb: round(jsMb + addonMb, 2),
      bundle_js_mb: round(jsMb, 2),
      addon_mb: round(addonMb, 2),
      fps: round(mean(records.map((s) => s.fps))),
      cpu_percent: round(mean(records.map((s) => s.cpuPercent))),
      latency_p50_ms: round(mean(records.map((s) => s.latencyMs.p50)), 3),
      latency_p99_ms: round(mean(records.map((s) => s.latencyMs.p99 ?? s.latencyMs.max)), 3),
      frame_loop: /run in the native frame loop/.test(output)
        ? 'native'
        : /run in the JavaScript frame loop/.test(output)
          ? 'js'
          : 'unknown',
      ffmpeg_rss_mb: ffmpegRss === null ? null : round(ffmpegRss),
      seconds: records.length,
      camera_fps: options.fps,
      model: bundled.model,
      model_bytes: bundled.bytes,
    };
  } finally {
    agent.kill('SIGTERM');
    const timer = setTimeout(() => agent.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    await core.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const AGENT_HELP = `agent options: --seconds 10, --fps 30 (at most 240), --node-flags "FLAGS" (the agent's node
  flags, default ${AGENT_NODE_FLAGS.join(' ')}), --json`;

/** The `agent` subcommand: prints the machine line and the figures, or one JSON object with --json. */
export async function agentBenchCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(
    args,
    {
      seconds: { type: 'string' },
      fps: { type: 'string' },
      json: { type: 'boolean' },
      'node-flags': { type: 'string' },
    },
    AGENT_HELP,
  );
  if (values === undefined) return 0;
  const seconds = positiveInteger(values.seconds, 10, '--seconds');
  const fps = Number(values.fps ?? 30);
  if (!(fps > 0 && fps <= 240))
    throw new BenchArgumentError(`Expected a number in (0, 240] for --fps but received "${values.fps}"`);
  const nodeFlags = values['node-flags']?.split(/\s+/).filter(Boolean) ?? AGENT_NODE_FLAGS;
  const result = await benchAgent({ seconds, fps, nodeFlags });
  if (values.json) {
    console.log(JSON.stringify({ machine, ...result }));
  } else {
    console.log(
      `agent footprint: testsrc camera at ${fps} fps, ${result.model}, ${result.seconds} s measured`,
    );
    console.log(`machine: ${machine}`);
    console.log(
      `rss ${result.rss_mb} MB (peak ${result.rss_peak_mb} MB; target ≤ 80) · bundle ${result.bundle_mb} MB ` +
        `(js ${result.bundle_js_mb} + addon ${result.addon_mb}; target ≤ 5) · ${result.fps} fps · cpu ${result.cpu_percent} % · ` +
        `latency p50 ${result.latency_p50_ms} ms p99 ${result.latency_p99_ms} ms (${result.frame_loop} frame loop) · ffmpeg rss ${result.ffmpeg_rss_mb ?? '?'} MB`,
    );
  }
  return 0;
}
