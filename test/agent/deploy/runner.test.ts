// Deployments end to end inside one process: the real package server, real signed packages, the real
// runtime loading and probing them, and a real frame loop feeding the health check.
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';

import { defaultModelPath } from '../../../agent/config.js';
import { ModelStore } from '../../../agent/deploy/model-store.js';
import { DeployRunner, MAX_ATTEMPTS } from '../../../agent/deploy/runner.js';
import type { DeployReport, DeployTarget } from '../../../agent/protocol/messages.js';
import { PackageModel } from '../../../agent/runtime/package-model.js';
import { type PackageServer, startPackageServer } from '../../../electron/core/package-server.js';
import { loadFashionMnist } from '../../../optimize/datasets/fashion-mnist.js';
import {
  mlpPackagePath,
  modelVariant,
  rewritePackage,
  signedTarget,
  signingKeys,
} from './deploy-fixtures.js';

const keys = signingKeys();
let server: PackageServer;
let root: string;
let dir: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'whittle-runner-'));
  server = await startPackageServer({ dir: join(root, 'packages'), host: '127.0.0.1', port: 0 });
});
after(async () => {
  await server.close();
  rmSync(root, { recursive: true, force: true });
});

interface Harness {
  runner: DeployRunner<PackageModel>;
  store: ModelStore;
  reports: DeployReport[];
  serving: () => string;
  stop: () => Promise<void>;
}

/** A runner with a frame loop that infers a blank frame every 5 ms with whichever model is active. Deployed
 * packages load as the daemon loads them: signature by the pinned key, this CPU, the memory budget. */
async function harness(
  publicKey: KeyObject | null = keys.publicKey,
  memoryBudgetBytes = 1e8,
): Promise<Harness> {
  const store = new ModelStore(join(dir, 'models'));
  const recovery = await DeployRunner.recover(store, defaultModelPath(), () => undefined);
  const loadModel = (p: string): PackageModel =>
    PackageModel.load(p, { trust: { publicKey }, memoryBudgetBytes });
  const loadBundled = (): PackageModel => PackageModel.load(defaultModelPath(), { trust: 'shipped' });
  let model = recovery.sha256 === 'bundled' ? loadBundled() : loadModel(recovery.path);
  let serving = recovery.sha256;
  const watchers = new Set<(ms: number) => void>();
  const frame = new Uint8Array(784);
  const loop = setInterval(() => {
    const t0 = performance.now();
    model.infer(frame);
    for (const w of watchers) w(performance.now() - t0);
  }, 5);
  const reports: DeployReport[] = [];
  const runner = new DeployRunner<PackageModel>(
    {
      store,
      deployDir: join(dir, 'deploy'),
      publicKey,
      arch: process.arch,
      memBytes: 1e9,
      bundledModel: defaultModelPath(),
      loadModel,
      loadBundled,
      activate: (m, sha) => {
        model = m;
        serving = sha;
      },
      watchFrames: (ms, signal) =>
        new Promise((resolve) => {
          const seen: number[] = [];
          const w = (l: number): void => void seen.push(l);
          watchers.add(w);
          const done = (): void => {
            watchers.delete(w);
            resolve(seen);
          };
          setTimeout(done, ms);
          signal.addEventListener('abort', done, { once: true });
        }),
      report: (r) => reports.push(r),
      log: () => undefined,
      download: { backoffInitialMs: 10, backoffMaxMs: 20, retries: 1 },
    },
    serving,
  );
  return {
    runner,
    store,
    reports,
    serving: () => serving,
    stop: async () => {
      await runner.close();
      clearInterval(loop);
    },
  };
}

async function deploy(h: Harness, target: DeployTarget): Promise<DeployReport> {
  h.runner.submit(target);
  await h.runner.idle();
  const last = h.reports.at(-1);
  assert.ok(last, 'a report');
  return last;
}

beforeEach(() => {
  dir = mkdtempSync(join(root, 'agent-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('deploy runner', () => {
  test('a signed model is downloaded, verified, staged, switched to, checked and committed', async () => {
    const h = await harness();
    try {
      const target = signedTarget(server, modelVariant('v2', keys), keys, 'd-ok', '2');
      const last = await deploy(h, target);
      assert.deepEqual(
        h.reports.map((r) => r.phase),
        ['downloading', 'verified', 'staged', 'switched', 'committed'],
      );
      assert.equal(last.serving, target.model.sha256);
      assert.equal(h.serving(), target.model.sha256);
      const active = h.store.readActive();
      assert.equal(active.current?.sha256, target.model.sha256);
      assert.equal(active.trial, false);
      assert.ok(readFileSync(h.store.blobPath(target.model.sha256)).equals(modelVariant('v2', keys)));
      // Submitting the same deployment again changes nothing.
      h.runner.submit(target);
      await h.runner.idle();
      assert.equal(h.reports.length, 5);
    } finally {
      await h.stop();
    }
  });

  for (const [what, change, code] of [
    [
      'a hash mismatch',
      (t: DeployTarget): DeployTarget => ({
        ...t,
        model: { ...t.model, url: server.urlOf(server.add(modelVariant('v9', keys))) },
      }),
      'hash-mismatch',
    ],
    [
      'a wrong signature',
      (t: DeployTarget): DeployTarget =>
        signedTarget(server, modelVariant('v2', keys), signingKeys(), t.deploymentId, '2'),
      'bad-signature',
    ],
    [
      'a package signed by another key (its target signed by the pinned one)',
      (t: DeployTarget): DeployTarget =>
        signedTarget(server, modelVariant('v2', signingKeys()), keys, t.deploymentId, '2'),
      'bad-signature',
    ],
    [
      'a package built for another CPU family',
      (t: DeployTarget): DeployTarget =>
        signedTarget(
          server,
          modelVariant('v2', keys, { cpuFamily: process.arch === 'arm' ? 'x86_64' : 'armv7' }),
          keys,
          t.deploymentId,
          '2',
        ),
      'wrong-cpu',
    ],
    [
      'a package that is not one (bytes of the right hash and signature)',
      (t: DeployTarget): DeployTarget =>
        signedTarget(server, Buffer.from('{"format": "whittle-int8-mlp"}'), keys, t.deploymentId, '2'),
      'bad-model',
    ],
    [
      'a truncated download',
      (t: DeployTarget): DeployTarget => ({ ...t, model: { ...t.model, bytes: t.model.bytes + 10 } }),
      'truncated',
    ],
    [
      'a package for another CPU',
      (t: DeployTarget): DeployTarget => ({ ...t, requires: { arch: ['riscv64'] } }),
      'wrong-cpu',
    ],
    [
      'a package beyond the memory',
      (t: DeployTarget): DeployTarget => ({ ...t, requires: { memBytes: 2e12 } }),
      'not-enough-memory',
    ],
  ] as const) {
    test(`${what} is refused with the reason reported, the running model untouched`, async () => {
      const h = await harness();
      try {
        const last = await deploy(
          h,
          change(signedTarget(server, modelVariant('v2', keys), keys, `d-${code}`, '2')),
        );
        assert.equal(last.code, code, JSON.stringify(last));
        assert.ok(last.phase === 'failed' || last.phase === 'refused', last.phase);
        assert.ok(last.reason && last.reason.length > 10);
        assert.equal(h.serving(), 'bundled');
        assert.equal(h.store.readActive().current, null);
        assert.ok(!h.reports.some((r) => r.phase === 'switched'), 'never switched');
        assert.deepEqual(
          readdirSync(h.store.blobs).filter((n) => n.endsWith('.model')),
          [],
          'nothing staged',
        );
      } finally {
        await h.stop();
      }
    });
  }

  test('a package beyond the memory budget is refused with the runtime reason', async () => {
    const h = await harness(keys.publicKey, 50_000);
    try {
      const last = await deploy(h, signedTarget(server, modelVariant('v2', keys), keys, 'd-mem', '2'));
      assert.equal(last.phase, 'failed');
      assert.equal(last.code, 'not-enough-memory');
      assert.match(last.reason ?? '', /needs \d+ bytes .* memory budget is 50000 bytes/);
      assert.equal(h.serving(), 'bundled');
    } finally {
      await h.stop();
    }
  });

  test('a package wanting other camera frames is not refused: it is switched to and checked', async () => {
    const h = await harness();
    try {
      // 14x56 grey is 784 pixels too, so the harness's frames fit; the daemon reopens its camera for such a
      // model (test/agent/deploy/camera-reopen.test.ts runs that with the real agent).
      const other = rewritePackage(
        modelVariant('v2', keys, { base: mlpPackagePath() }),
        (m) => {
          m.inputs[0]!.preprocessing = { ...m.inputs[0]!.preprocessing!, width: 14, height: 56 };
          delete m.probe;
        },
        keys.privateKey,
      );
      const target = signedTarget(server, other, keys, 'd-frames', '2');
      const last = await deploy(h, target);
      assert.equal(last.phase, 'committed', last.reason);
      assert.equal(h.serving(), target.model.sha256);
    } finally {
      await h.stop();
    }
  });

  test("the package's own probe is run by the health check; the target's probe overrides it", async () => {
    const h = await harness();
    try {
      const bundled = PackageModel.load(defaultModelPath(), { trust: 'shipped' });
      const probe = bundled.probe;
      assert.ok(probe, 'the bundled package carries a probe');
      const wrongProbe = (name: string): Buffer =>
        rewritePackage(
          modelVariant(name, keys),
          (m) => {
            m.probe = { ...m.probe!, expectedClass: (probe.expectedClass + 1) % 10 };
          },
          keys.privateKey,
        );
      const wrong = await deploy(h, signedTarget(server, wrongProbe('v2'), keys, 'd-pkg-probe', '2'));
      assert.equal(wrong.phase, 'rolled-back');
      assert.equal(wrong.code, 'probe-mismatch');
      assert.match(wrong.reason ?? '', /the package's known input gave class/);
      assert.equal(h.serving(), 'bundled');
      const overridden = await deploy(
        h,
        signedTarget(server, wrongProbe('v3'), keys, 'd-target-probe', '3', {
          health: {
            seconds: 0.1,
            probe: { input: Buffer.from(probe.input).toString('base64'), expectedClass: probe.expectedClass },
          },
        }),
      );
      assert.equal(overridden.phase, 'committed');
    } finally {
      await h.stop();
    }
  });

  test('an older version is refused unless rollback is asked', async () => {
    const h = await harness();
    try {
      await deploy(h, signedTarget(server, modelVariant('v3', keys), keys, 'd-v3', '3'));
      const older = signedTarget(server, modelVariant('v2', keys), keys, 'd-v2', '2');
      const refused = await deploy(h, older);
      assert.equal(refused.phase, 'refused');
      assert.equal(refused.code, 'older-version');
      const back = await deploy(h, { ...older, deploymentId: 'd-v2-rollback', rollback: true });
      assert.equal(back.phase, 'committed');
      assert.equal(h.store.readActive().current?.version, '2');
    } finally {
      await h.stop();
    }
  });

  test('a model over its latency budget, or wrong on its probe, is rolled back by itself', async () => {
    const h = await harness();
    try {
      const v2 = signedTarget(server, modelVariant('v2', keys), keys, 'd-v2', '2');
      await deploy(h, v2);
      const slow = await deploy(
        h,
        signedTarget(server, modelVariant('v3', keys), keys, 'd-slow', '3', {
          health: { seconds: 0.3, latencyBudgetMs: 1e-6 },
        }),
      );
      assert.equal(slow.phase, 'rolled-back');
      assert.equal(slow.code, 'over-latency-budget');
      assert.match(slow.reason ?? '', /exceeds the budget/);
      assert.equal(h.serving(), v2.model.sha256);
      assert.equal(h.store.readActive().current?.sha256, v2.model.sha256);

      const test0 = loadFashionMnist('test');
      const image = Buffer.from(test0.pixels.subarray(0, 784));
      const truth = PackageModel.load(defaultModelPath(), { trust: 'shipped' }).infer(image).classIndex;
      const wrong = await deploy(
        h,
        signedTarget(server, modelVariant('v4', keys), keys, 'd-probe', '4', {
          health: {
            seconds: 0.1,
            probe: { input: image.toString('base64'), expectedClass: (truth + 1) % 10 },
          },
        }),
      );
      assert.equal(wrong.code, 'probe-mismatch');
      assert.equal(h.serving(), v2.model.sha256);
      const right = await deploy(
        h,
        signedTarget(server, modelVariant('v5', keys), keys, 'd-probe-ok', '5', {
          health: { seconds: 0.1, probe: { input: image.toString('base64'), expectedClass: truth } },
        }),
      );
      assert.equal(right.phase, 'committed');
    } finally {
      await h.stop();
    }
  });

  test('without a pinned key every deployment is refused', async () => {
    const h = await harness(null);
    try {
      const last = await deploy(h, signedTarget(server, modelVariant('v2', keys), keys, 'd-nokey', '2'));
      assert.equal(last.code, 'no-key');
    } finally {
      await h.stop();
    }
  });

  test('start-up undoes an interrupted trial and refuses a damaged blob', async () => {
    const h = await harness();
    const v2 = signedTarget(server, modelVariant('v2', keys), keys, 'd-v2', '2');
    const v3 = signedTarget(server, modelVariant('v3', keys), keys, 'd-v3', '3');
    try {
      await deploy(h, v2);
      await deploy(h, v3);
    } finally {
      await h.stop();
    }
    const store = new ModelStore(join(dir, 'models'));
    const active = store.readActive();
    store.writeActive({ ...active, trial: true });
    const lines: string[] = [];
    const recovered = await DeployRunner.recover(store, defaultModelPath(), (l) => lines.push(l));
    assert.equal(recovered.sha256, v2.model.sha256);
    assert.ok(recovered.interrupted);
    assert.match(lines.join('\n'), /interrupted/);
    writeFileSync(store.blobPath(v2.model.sha256), '{"half": ');
    const damaged = await DeployRunner.recover(store, defaultModelPath(), (l) => lines.push(l));
    assert.equal(damaged.sha256, 'bundled');
    assert.match(lines.join('\n'), /does not match its hash/);
  });

  test(`a health check interrupted ${MAX_ATTEMPTS} times is given up, not retried forever`, async () => {
    const h = await harness();
    try {
      const target = signedTarget(server, modelVariant('v2', keys), keys, 'd-crashy', '2');
      // As the agent finds it after the new model killed it during its health check a third time.
      writeFileSync(
        join(dir, 'deploy', 'target.json'),
        JSON.stringify({ target, attempts: MAX_ATTEMPTS - 1 }),
      );
      h.runner.resume(true);
      await h.runner.idle();
      assert.deepEqual(
        h.reports.map((r) => [r.phase, r.code]),
        [
          ['rolled-back', 'interrupted'],
          ['failed', 'interrupted'],
        ],
      );
      assert.match(h.reports[1]!.reason ?? '', new RegExp(`interrupted ${MAX_ATTEMPTS} times`));
      assert.equal(h.serving(), 'bundled');
    } finally {
      await h.stop();
    }
  });

  test('a malformed target is refused naming the field', () => {
    assert.throws(
      () => DeployRunner.decodeTarget({ v: 1, deploymentId: 'x', model: { id: 'm', version: 'latest' } }),
      /model\.version: version: expected dotted numbers/,
    );
  });
});
