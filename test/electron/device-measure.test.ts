// Issue 16 points 5 and 7 on the device itself: a real manager core, a real agent process (ffmpeg's test
// camera), real MQTT. The manager has the device time packages, downloaded and verified as a deployment's;
// every measurement (packages or a latency table) pauses the camera loop and resumes it after, also after a
// refusal or an agent killed mid-measurement; each hostile package, unknown device or package, silent agent
// and lost device is refused by name.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { sha256, signDigest } from '../../agent/package/signing.js';
import {
  deviceTopic,
  MAX_MEASURED_PACKAGE_BYTES,
  type MeasuredPackage,
  PROTOCOL_VERSION,
  type ResponseMessage,
} from '../../agent/protocol/messages.js';
import { ManagerApiError, ManagerClient } from '../../electron/commands/manager-client.js';
import { managerSigningKeys } from '../../electron/core/provisioning/signing-key.js';
import { activeIsa, addonBuildHash } from '../../native/index.js';
import { demoPackage } from '../support/packages.js';
import { waitFor } from '../support/stack.js';
import { type PinnedDevice, startHandmadeDevice, startPinnedDevice } from './agent-process.js';

const DEVICE = 'bench-board';

describe('packages measured on the device, its camera paused meanwhile', () => {
  let t: PinnedDevice;
  let client: ManagerClient;
  let keys: ReturnType<typeof managerSigningKeys>;
  let files: Server;
  const served = new Map<string, Buffer>();
  /** The device's `paused` as each change of its view showed it: the request id, or null. */
  const pauses: (string | null)[] = [];
  const stateDir = (): string => join(t.dir, 'state');
  /** Frames the device ran after `since` (manager clock): its camera loop runs. */
  const framesAfter = (since: number): Promise<number> =>
    waitFor('frames from the camera loop', 30_000, () => {
      const view = t.core.registry.get(DEVICE);
      return view?.online && view.stats && view.stats.ts > since && view.stats.frames > 0
        ? view.stats.frames
        : undefined;
    }).catch(t.failWithLogs);
  const refusal = async (call: Promise<unknown>): Promise<ManagerApiError> => {
    const err = await call.then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ManagerApiError, String(err));
    return err;
  };

  before(async () => {
    t = await startPinnedDevice({
      prefix: 'whittle-measure-e2e-',
      deviceId: DEVICE,
      dataDir: (dir) => join(dir, 'data'),
      deviceAnswerMs: 3000,
    });
    const { core } = t;
    keys = managerSigningKeys(t.dataDir);
    client = new ManagerClient({
      url: `http://127.0.0.1:${core.api.port}`,
      token: core.api.token,
      pid: process.pid,
    });
    core.registry.on('change', (view) => {
      if (view.id === DEVICE && view.online) pauses.push(view.paused?.request ?? null);
    });
    // Files of the test's choosing, for the hostile packages the manager would never serve.
    files = createServer((req, res) => {
      const body = served.get(req.url ?? '');
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    await framesAfter(0);
  });
  after(async () => {
    await t.stop();
    await new Promise((resolve) => files.close(resolve));
  });

  test('two packages timed interleaved on the device, the camera paused for it and running after', async () => {
    const a = await client.uploadPackage(demoPackage(keys.privateKey, { id: 'a', version: '1' }));
    const b = await client.uploadPackage(demoPackage(keys.privateKey, { id: 'b', version: '1' }));
    pauses.length = 0;
    const r = await client.measurePackages(DEVICE, { packages: [a.sha256, b.sha256], runs: 40 });
    assert.deepEqual(
      r.timings.map((t) => t.sha256),
      [a.sha256, b.sha256],
    );
    for (const t of r.timings) {
      assert.equal(t.runs, 40);
      assert.ok(t.median_ms > 0 && t.p90_ms >= t.median_ms, JSON.stringify(t));
    }
    assert.equal(r.build_hash, addonBuildHash());
    assert.equal(r.isa, activeIsa());
    // The retained status said paused (for this measurement), then no longer.
    await waitFor('the status to say the camera runs again', 10_000, () =>
      pauses.length >= 2 && pauses.at(-1) === null ? true : undefined,
    ).catch(t.failWithLogs);
    assert.ok(
      pauses.some((p) => p !== null),
      `paused never announced: ${JSON.stringify(pauses)}`,
    );
    assert.ok(t.logs.some((l) => /camera paused for measurement/.test(l)));
    assert.ok(t.logs.some((l) => /camera resumed after measurement/.test(l)));
    assert.deepEqual(readdirSync(join(stateDir(), 'measure')), [], 'the downloaded packages are deleted');
    await framesAfter(r.receivedAt);
  });

  test('a latency-table measurement pauses the camera loop too', async () => {
    pauses.length = 0;
    const started = await client.measure(DEVICE, { grid: 'quick', limit: 24 });
    const request = started.measurement!.request;
    const done = await waitFor('the table', 60_000, async () => {
      const t = await client.latencyTables(DEVICE);
      return t.measurement?.state !== 'running' ? t : undefined;
    }).catch(t.failWithLogs);
    assert.equal(done.measurement?.state, 'complete', done.measurement?.error ?? '');
    await waitFor('the status to say the camera runs again', 10_000, () =>
      pauses.at(-1) === null ? true : undefined,
    ).catch(t.failWithLogs);
    assert.ok(pauses.includes(request), `${request} not in ${JSON.stringify(pauses)}`);
    await framesAfter(Date.now());
  });

  test('hostile packages are refused with the deployment codes, nothing timed, the camera resumed', async () => {
    const good = demoPackage(keys.privateKey, { id: 'good', version: '1' });
    const other = generateKeyPairSync('ed25519').privateKey;
    let n = 0;
    /** A package entry naming `bytes` (served by the test), signed as `sign` says. */
    const entry = (
      bytes: Buffer,
      o: { sha?: string; signWith?: typeof other; declared?: number } = {},
    ): MeasuredPackage => {
      const path = `/p${n++}`;
      served.set(path, bytes);
      const sha = o.sha ?? sha256(bytes).toString('hex');
      return {
        url: `http://127.0.0.1:${(files.address() as AddressInfo).port}${path}`,
        sha256: sha,
        bytes: o.declared ?? bytes.length,
        signature: signDigest(Buffer.from(sha, 'hex'), o.signWith ?? keys.privateKey).toString('base64'),
      };
    };
    /** Publishes a request as the manager does and waits for the device's last word on it. */
    const ask = (packages: unknown[]): Promise<ResponseMessage> => {
      const id = `hostile${n++}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer to ${id}`)), 30_000);
        const onResponse = (device: string, message: ResponseMessage): void => {
          if (device !== DEVICE || message.id !== id || message.kind === 'packages-start') return;
          clearTimeout(timer);
          t.core.registry.off('response', onResponse);
          resolve(message);
        };
        t.core.registry.on('response', onResponse);
        void t.core.broker.publish(
          deviceTopic(DEVICE, 'request'),
          JSON.stringify({ v: PROTOCOL_VERSION, id, kind: 'measure-packages', packages, runs: 5 }),
          false,
        );
      });
    };
    const refused = async (packages: unknown[], code: string, message: RegExp): Promise<void> => {
      const answer = await ask(packages);
      assert.equal(answer.kind, 'error', JSON.stringify(answer));
      if (answer.kind !== 'error') return;
      assert.equal(answer.code, code, answer.message);
      assert.match(answer.message, message);
    };
    const corrupt = Buffer.from(good);
    corrupt[corrupt.length >> 1] = corrupt[corrupt.length >> 1]! ^ 0xff;
    const foreign = demoPackage(other, { id: 'foreign', version: '1' });
    await refused([entry(corrupt)], 'bad-model', /package 1 of 1 .*the package is refused/);
    await refused(
      [entry(good), entry(good, { sha: sha256(foreign).toString('hex') })],
      'hash-mismatch',
      /package 2 of 2 .*SHA-256 is [0-9a-f]{64}; the manager says/,
    );
    await refused(
      [entry(good, { signWith: other })],
      'bad-signature',
      /does not verify against the pinned package key/,
    );
    // The manager's signature over the file verifies; the package's own, by another key, does not.
    await refused([entry(foreign)], 'bad-signature', /the package is refused/);
    await refused([entry(good, { declared: good.length - 10 })], 'too-large', /./);
    await refused(
      [{ ...entry(good), bytes: MAX_MEASURED_PACKAGE_BYTES + 1 }],
      'bad-request',
      /packages\.0\.bytes: bytes: over the package limit/,
    );
    assert.equal(t.core.registry.get(DEVICE)?.paused, undefined);
    await framesAfter(Date.now());
  });

  test('an unknown device or package, and an agent that never answers, are refused by name', async () => {
    const pkg = await client.uploadPackage(demoPackage(keys.privateKey, { id: 'c', version: '1' }));
    const unknown = await refusal(client.measurePackages('nobody', { packages: [pkg.sha256] }));
    assert.equal(unknown.status, 404);
    assert.match(unknown.message, /unknown device nobody/);
    const missing = await refusal(client.measurePackages(DEVICE, { packages: ['ab'.repeat(32)] }));
    assert.equal(missing.status, 404);
    assert.match(missing.message, /no package abab.*upload it first/);
    // A device whose agent predates package measurements: online, subscribed, silent.
    const fake = 'old-agent';
    const silent = await startHandmadeDevice(t.core, fake);
    try {
      const old = await refusal(client.measurePackages(fake, { packages: [pkg.sha256] }));
      assert.equal(old.status, 504);
      assert.match(
        old.message,
        /did not answer the package measurement request within 3 s; its agent may predate/,
      );
    } finally {
      await silent.endAsync();
    }
  });

  test('an agent killed mid-measurement: a clear error; the next agent resumes the camera it left paused', async () => {
    const a = await client.uploadPackage(demoPackage(keys.privateKey, { id: 'd', version: '1' }));
    const onResponse = (device: string, message: ResponseMessage): void => {
      if (device === DEVICE && message.kind === 'packages-start') t.agent.child.kill('SIGKILL');
    };
    t.core.registry.on('response', onResponse);
    const lost = await refusal(client.measurePackages(DEVICE, { packages: [a.sha256], runs: 10_000 }));
    t.core.registry.off('response', onResponse);
    assert.equal(lost.status, 409);
    assert.match(lost.message, /went offline during the package measurement; nothing was measured/);
    // The agent paused its camera before it accepted: that ffmpeg is stopped, and recorded.
    const record = join(stateDir(), 'camera-paused.pid');
    const pid = Number(readFileSync(record, 'utf8'));
    const state = (): string | undefined => {
      try {
        return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      } catch {
        return undefined;
      }
    };
    assert.equal(state(), 'T', `ffmpeg ${pid} is not stopped`);
    t.restartAgent();
    await waitFor('the paused ffmpeg to go', 30_000, () =>
      state() === undefined || state() === 'Z' ? true : undefined,
    ).catch(t.failWithLogs);
    assert.ok(t.logs.some((l) => l.includes(`resumed ffmpeg ${pid}, left paused`)));
    assert.equal(existsSync(record), false);
    await framesAfter(Date.now());
  });
});
