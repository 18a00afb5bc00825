// Integration: a deployed model that wants other camera frames than the one served. The real agent process
// (ffmpeg test camera) reopens its camera for the new frame size when it switches, keeps inferring, and on a
// rollback reopens it again for the model it goes back to. No broker: targets are dropped into the state
// directory as provisioning does, and the telemetry outbox on disk shows the frame loop running.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';
import type { DeployTarget } from '../../../agent/protocol/messages.js';
import { startPackageServer } from '../../../electron/core/package-server.js';
import { waitFor } from '../../support/stack.js';
import {
  dropTarget,
  lastDeployment,
  mlpPackagePath,
  modelVariant,
  offlineAgentConfig,
  rewritePackage,
  signedTarget,
  signingKeys,
} from './deploy-fixtures.js';

interface Agent {
  proc: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

function startAgent(configFile: string, env: NodeJS.ProcessEnv = process.env): Agent {
  const proc = spawn(
    process.execPath,
    [join(packageRoot(), 'bin', 'whittle-agent.js'), 'run', '--config', configFile],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    },
  );
  let output = '';
  proc.stdout.on('data', (b: Buffer) => (output += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  return {
    proc,
    output: () => output,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Waits until the agent has finished deployment `id` (deploy/last.json names it); fails with the agent's
 * output when it does not within 40 s. */
async function deploymentFinished(what: string, stateDir: string, id: string, agent: Agent): Promise<void> {
  await waitFor(what, 40_000, () =>
    lastDeployment(stateDir)?.deploymentId === id ? lastDeployment(stateDir) : undefined,
  ).catch((err: Error) => assert.fail(`${err.message}\n${agent.output()}`));
}

/** The per-second records in the agent's telemetry outbox, oldest first. */
function outboxRecords(stateDir: string): { fps: number }[] {
  const dir = join(stateDir, 'telemetry');
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => n.startsWith('seg-'))
      .sort();
  } catch {
    return [];
  }
  return names.flatMap((n) =>
    readFileSync(join(dir, n), 'utf8')
      .split('\n')
      .filter((l) => l.endsWith('}'))
      .map((l) => JSON.parse(l) as { fps: number }),
  );
}

test(
  'a model wanting other frames reopens the camera; a rollback reopens it for the model before',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'whittle-reopen-'));
    const server = await startPackageServer({ dir: join(dir, 'packages'), host: '127.0.0.1', port: 0 });
    const keys = signingKeys();
    const { configFile, stateDir } = await offlineAgentConfig(dir, 'reopen-device', keys, { fps: 15 });
    const drop = (target: DeployTarget): void => dropTarget(stateDir, target);
    let agent: Agent | null = null;
    try {
      // 1. The MLP (784 inputs, NC layout) reading 56 rows of 14 pixels: the bundled LeNet-5 takes 28x28.
      const tall = rewritePackage(
        modelVariant('tall', keys, { base: mlpPackagePath(), version: '2' }),
        (m) => {
          m.inputs[0]!.preprocessing = { ...m.inputs[0]!.preprocessing!, width: 14, height: 56 };
          delete m.probe;
        },
        keys.privateKey,
      );
      drop(signedTarget(server, tall, keys, 'd-tall', '2', { health: { seconds: 1 } }));
      agent = startAgent(configFile);
      const a1 = agent;
      await deploymentFinished('the tall model to commit', stateDir, 'd-tall', a1);
      assert.equal(lastDeployment(stateDir)?.phase, 'committed', a1.output());
      assert.match(a1.output(), /camera testsrc: 28x28x1 frames/);
      assert.match(a1.output(), /camera testsrc: reopened for 14x56x1 frames/);
      await agent.stop();

      // 2. After a restart the committed model's frames come first; a model over its latency budget (the
      // LeNet-5 variant, 28x28 frames) is switched to, rolled back, and the camera goes back to 14x56.
      drop(
        signedTarget(server, modelVariant('slow', keys, { version: '3' }), keys, 'd-slow', '3', {
          health: { seconds: 1, latencyBudgetMs: 0.000_001 },
        }),
      );
      agent = startAgent(configFile);
      const a2 = agent;
      await deploymentFinished('the over-budget model to be rolled back', stateDir, 'd-slow', a2);
      assert.equal(lastDeployment(stateDir)?.phase, 'rolled-back', a2.output());
      const out = a2.output();
      assert.match(out, /camera testsrc: 14x56x1 frames/);
      const toSquare = out.indexOf('reopened for 28x28x1 frames');
      assert.ok(toSquare > 0, out);
      assert.match(out.slice(toSquare), /over-latency-budget|exceeds the budget/);
      await waitFor('the camera back on 14x56 frames', 20_000, () =>
        a2.output().slice(toSquare).includes('reopened for 14x56x1 frames') ? true : undefined,
      ).catch((err: Error) => assert.fail(`${err.message}\n${a2.output()}`));
      // The frame loop runs the model it went back to: new per-second records count frames.
      const before = outboxRecords(stateDir).length;
      const running = await waitFor('frames after the rollback', 20_000, () => {
        const fresh = outboxRecords(stateDir).slice(before + 1);
        return fresh.some((r) => r.fps > 0) ? fresh : undefined;
      }).catch((err: Error) => assert.fail(`${err.message}\n${a2.output()}`));
      assert.ok(running.length > 0);
      assert.equal(a2.proc.exitCode, null, 'the agent is still running');
    } finally {
      await agent?.stop();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

for (const loop of ['native', 'js'] as const) {
  test(
    `a killed ffmpeg: the camera restarts and frames flow again (the ${loop === 'js' ? 'JavaScript' : loop} frame loop)`,
    { timeout: 90_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'whittle-killed-'));
      const keys = signingKeys();
      const { configFile, stateDir } = await offlineAgentConfig(dir, 'killed-device', keys, { fps: 15 });
      const agent = startAgent(configFile, { ...process.env, WHITTLE_AGENT_FRAME_LOOP: loop });
      try {
        const way = loop === 'js' ? 'the JavaScript frame loop' : 'the native frame loop';
        await waitFor('the camera to start', 30_000, () =>
          agent.output().includes(`frames, run in ${way}`) ? true : undefined,
        ).catch((err: Error) => assert.fail(`${err.message}\n${agent.output()}`));
        const framesAfter = (from: number): Promise<unknown> =>
          waitFor('frames', 20_000, () =>
            outboxRecords(stateDir)
              .slice(from)
              .some((r) => r.fps > 0)
              ? true
              : undefined,
          ).catch((err: Error) => assert.fail(`${err.message}\n${agent.output()}`));
        await framesAfter(0);
        const ffmpeg = readFileSync(`/proc/${agent.proc.pid}/task/${agent.proc.pid}/children`, 'utf8')
          .trim()
          .split(/\s+/)
          .map(Number);
        assert.equal(ffmpeg.length, 1, agent.output());
        process.kill(ffmpeg[0]!, 'SIGKILL');
        await waitFor('the camera to restart', 20_000, () =>
          /ffmpeg exited \(SIGKILL\).*restarting the camera in 1 s/.test(agent.output()) &&
          agent.output().includes('reopened for 28x28x1 frames')
            ? true
            : undefined,
        ).catch((err: Error) => assert.fail(`${err.message}\n${agent.output()}`));
        await framesAfter(outboxRecords(stateDir).length + 1);
        assert.equal(agent.proc.exitCode, null, 'the agent is still running');
      } finally {
        await agent.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}
