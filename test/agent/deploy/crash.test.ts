// Integration: SIGKILL the real agent process at random points of deployments, again and again. After
// every restart it must serve the old or the new model — never none, never a half-written file.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';
import type { DeployTarget } from '../../../agent/protocol/messages.js';
import { startPackageServer } from '../../../electron/core/package-server.js';
import {
  dropTarget,
  lastDeployment,
  modelVariant,
  offlineAgentConfig,
  signedTarget,
  signingKeys,
} from './deploy-fixtures.js';

const KILLS = 50;
/** The limit is 3 minutes for the whole test; this leaves room for set-up and clean-up. */
const BUDGET_MS = 172_000;

/** A seeded generator (mulberry32), so a failing run can be repeated with the seed it prints. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test(
  `SIGKILL at ${KILLS} random points of deployments never leaves the agent without a whole model`,
  { timeout: 180_000 },
  async (t) => {
    const seed = Number(process.env.WHITTLE_CRASH_SEED ?? Date.now() % 100_000);
    t.diagnostic(`seed ${seed} (WHITTLE_CRASH_SEED repeats it)`);
    const random = rng(seed);
    const dir = mkdtempSync(join(tmpdir(), 'whittle-crash-'));
    // Slow enough that kills land inside the download too (the package is 109 kB: about 0.3 s).
    const server = await startPackageServer({
      dir: join(dir, 'packages'),
      host: '127.0.0.1',
      port: 0,
      bytesPerSecond: 350_000,
    });
    const keys = signingKeys();
    // No manager: deployment does not need the broker, and the reports wait in the client.
    const { configFile, stateDir } = await offlineAgentConfig(dir, 'crash-device', keys);
    const blobs = join(stateDir, 'models', 'blobs');
    const started = Date.now();
    let child: ChildProcess | null = null;
    const phasesAtKill = new Map<string, number>();
    const served = new Map<string, number>();
    try {
      let version = 1;
      let target: DeployTarget | null = null;
      let oldSha = 'bundled';
      let kills = 0;
      let committed = 0;
      while (kills < KILLS) {
        assert.ok(Date.now() - started < BUDGET_MS, `only ${kills} kills in ${BUDGET_MS / 1000} s`);
        // A new deployment once the previous one finished (as provisioning drops it into the state dir).
        const last = lastDeployment(stateDir);
        if (target === null || last?.deploymentId === target.deploymentId) {
          version++;
          target = signedTarget(
            server,
            modelVariant(`v${version}`, keys, { version: String(version) }),
            keys,
            `d${version}`,
            String(version),
            {
              health: { seconds: 0.3 },
            },
          );
          dropTarget(stateDir, target);
        }
        const newSha = target.model.sha256;

        const proc = spawn(
          process.execPath,
          [join(packageRoot(), 'bin', 'whittle-agent.js'), 'run', '--config', configFile],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        child = proc;
        let output = '';
        let phase = 'starting';
        const seen: { sha: string | null } = { sha: null };
        const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
        const servingLine = new Promise<void>((resolve) => {
          const onData = (b: Buffer): void => {
            output += b.toString();
            for (const m of output.matchAll(/deploy d\d+: ([a-z-]+)/g)) phase = m[1]!;
            const s = /serving model \S+ \(([0-9a-f]{64}|bundled)\)/.exec(output);
            if (s && seen.sha === null) {
              seen.sha = s[1]!;
              resolve();
            }
          };
          proc.stdout.on('data', onData);
          proc.stderr.on('data', onData);
          void exited.then(() => resolve());
        });
        // Half the kills at any moment from spawn (start-up, recovery, resumption), half after the agent
        // serves, within the time a deployment takes.
        const early = random() < 0.3;
        if (early) await new Promise((r) => setTimeout(r, random() * 3000));
        else {
          await servingLine;
          await new Promise((r) => setTimeout(r, random() * 1200));
        }
        const servingSha = seen.sha;
        if (servingSha !== null) {
          // The restart check: the model it came up with is the old or the new one.
          assert.ok(
            servingSha === oldSha || servingSha === newSha,
            `after restart ${kills} the agent serves ${servingSha}; expected ${oldSha} or ${newSha}\n${output}`,
          );
          served.set(
            servingSha === newSha ? 'new' : 'old',
            (served.get(servingSha === newSha ? 'new' : 'old') ?? 0) + 1,
          );
        }
        assert.equal(proc.exitCode, null, `the agent exited on its own:\n${output}`);
        proc.kill('SIGKILL');
        await exited;
        child = null;
        kills++;
        const at = servingSha === null ? 'start-up' : phase;
        phasesAtKill.set(at, (phasesAtKill.get(at) ?? 0) + 1);
        // Never a half-written model file: every blob's content matches the hash it is named by.
        // A kill during start-up can land before the agent has made its model store at all.
        const blobNames = existsSync(blobs) ? readdirSync(blobs) : [];
        for (const name of blobNames.filter((n) => n.endsWith('.model'))) {
          const sha = createHash('sha256')
            .update(readFileSync(join(blobs, name)))
            .digest('hex');
          assert.equal(`${sha}.model`, name, `blob ${name} is damaged after kill ${kills}`);
        }
        const done = lastDeployment(stateDir);
        if (done?.deploymentId === target.deploymentId && done.phase === 'committed' && oldSha !== newSha) {
          oldSha = newSha;
          committed++;
        }
      }
      t.diagnostic(`kills by phase: ${JSON.stringify(Object.fromEntries(phasesAtKill))}`);
      t.diagnostic(
        `restarts serving: ${JSON.stringify(Object.fromEntries(served))}; deployments: ${version - 1}`,
      );
      assert.ok(committed >= 1, 'at least one deployment completed between the kills');
      assert.ok(phasesAtKill.size >= 4, `kills landed in only ${[...phasesAtKill.keys()].join(', ')}`);
    } finally {
      child?.kill('SIGKILL');
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
