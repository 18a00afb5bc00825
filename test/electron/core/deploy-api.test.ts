// The deployment routes of the HTTP API on a real core (no agent): tokens, body limits, content checks,
// typed refusals, and that a refused request publishes nothing while an accepted one leaves a retained,
// correctly signed target for a device that is offline.
import assert from 'node:assert/strict';
import { generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import mqtt from 'mqtt';

import { DeployTargetSchema, deviceTopic } from '../../../agent/protocol/messages.js';
import type {
  DeploymentEventsResponse,
  DeploymentView,
  PackagesResponse,
  PackageView,
} from '../../../electron/api/contract.js';
import type { Core } from '../../../electron/core/core.js';
import { managerSigningKeys } from '../../../electron/core/provisioning/signing-key.js';
import { demoPackage } from '../../support/packages.js';
import { startLoopbackCore, waitFor } from '../../support/stack.js';

let dir: string;
let core: Core;
let base: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'whittle-deploy-api-'));
  core = await startLoopbackCore(dir);
  base = `http://127.0.0.1:${core.api.port}`;
  // A device the manager knows (it announced itself once) but that is offline now.
  core.store.upsertDevice('cam-offline', null, Date.now());
  core.registry.ingest(
    deviceTopic('cam-offline', 'status'),
    Buffer.from(JSON.stringify({ v: 1, online: false, ts: Date.now() })),
  );
});

after(async () => {
  await core.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  json: { error?: string; code?: string } & Record<string, unknown>;
}

async function call(
  method: string,
  path: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
  token = core.api.token,
): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...headers },
    ...(body !== undefined ? { body } : {}),
  });
  return { status: res.status, json: (await res.json()) as Answer['json'] };
}

const postJson = (path: string, body: unknown): Promise<Answer> =>
  call('POST', path, JSON.stringify(body), { 'content-type': 'application/json' });
const postPackage = (bytes: Buffer): Promise<Answer> =>
  call('POST', '/api/packages', bytes, { 'content-type': 'application/octet-stream' });

test('every deployment route needs the token', async () => {
  for (const [method, path] of [
    ['GET', '/api/packages'],
    ['POST', '/api/packages'],
    ['GET', '/api/deployments'],
    ['POST', '/api/deployments'],
    ['GET', '/api/deployments/d-1'],
    ['GET', '/api/deployments/d-1/events'],
    ['GET', '/api/devices/cam-offline/snapshot'],
  ] as const) {
    const answer = await call(method, path, method === 'POST' ? '{}' : undefined, {}, 'wrong-token');
    assert.equal(answer.status, 401, `${method} ${path}`);
  }
});

test('bodies past the limit are refused with 413, declared or not', async () => {
  // Declared too large: refused from the header, before the body is read.
  const declared = await new Promise<number>((resolve, reject) => {
    const req = request(`${base}/api/packages`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${core.api.token}`,
        'content-type': 'application/octet-stream',
        'content-length': String(64 * 1024 * 1024 + 1),
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.write(Buffer.alloc(1024));
  });
  assert.equal(declared, 413);
  // Chunked (no Content-Length): refused once the count passes the limit.
  const chunked = await call('POST', '/api/deployments', Buffer.alloc(65 * 1024, 0x20).toString(), {
    'content-type': 'application/json',
  });
  assert.equal(chunked.status, 413);
  assert.equal(chunked.json.code, 'too-large');
});

test('bad JSON, wrong content types and invalid requests are 400/415 with a reason', async () => {
  const badJson = await call('POST', '/api/deployments', '{"package": ', {
    'content-type': 'application/json',
  });
  assert.equal(badJson.status, 400);
  assert.equal(badJson.json.code, 'bad-json');
  const wrongType = await call('POST', '/api/deployments', '{}', { 'content-type': 'text/plain' });
  assert.equal(wrongType.status, 415);
  const invalid = await postJson('/api/deployments', { package: 'abc', devices: 'everyone', extra: 1 });
  assert.equal(invalid.status, 400);
  assert.match(invalid.json.error ?? '', /package: expected the 64 lower-case hex digits/);
  assert.match(invalid.json.error ?? '', /devices/);
  const jsonPackage = await call('POST', '/api/packages', '{}', { 'content-type': 'application/json' });
  assert.equal(jsonPackage.status, 415);
  assert.equal((await call('DELETE', '/api/deployments')).status, 405);
});

test('hostile packages are refused with the reader error code and are not kept', async () => {
  const keys = managerSigningKeys(dir);
  const good = demoPackage(keys.privateKey, { version: '3' });
  const corrupt = Buffer.from(good);
  corrupt[200] = corrupt[200]! ^ 0xff;
  const foreign = demoPackage(generateKeyPairSync('ed25519').privateKey, { version: '3' });
  const refusals = [
    [corrupt, 'hash-mismatch'],
    [foreign, 'wrong-key'],
    [Buffer.from('not a package at all'), 'truncated'],
    [Buffer.concat([Buffer.from('WHTL'), Buffer.alloc(200)]), null],
  ] as const;
  for (const [bytes, code] of refusals) {
    const answer = await postPackage(bytes);
    assert.equal(answer.status, 422, JSON.stringify(answer.json));
    if (code) assert.equal(answer.json.code, code);
    else assert.ok(answer.json.code, 'a typed code');
  }
  const listed = (await call('GET', '/api/packages')).json as unknown as PackagesResponse;
  assert.deepEqual(listed.packages, []);
  const badVersion = await postPackage(demoPackage(keys.privateKey, { version: 'beta' }));
  assert.equal(badVersion.status, 422);
  assert.equal(badVersion.json.code, 'bad-package');
});

test('unknown devices and packages are refused before anything is published', async () => {
  const keys = managerSigningKeys(dir);
  const added = await postPackage(demoPackage(keys.privateKey, { version: '4' }));
  assert.equal(added.status, 201);
  const pkg = added.json as unknown as PackageView;
  assert.equal((await postPackage(demoPackage(keys.privateKey, { version: '4' }))).status, 200, 'known');
  const unknownDevice = await postJson('/api/deployments', {
    package: pkg.sha256,
    devices: ['cam-offline', 'ghost'],
  });
  assert.equal(unknownDevice.status, 422);
  assert.equal(unknownDevice.json.code, 'unknown-device');
  assert.match(unknownDevice.json.error ?? '', /ghost/);
  const unknownPackage = await postJson('/api/deployments', { package: 'a'.repeat(64), devices: 'all' });
  assert.equal(unknownPackage.status, 404);
  assert.equal(unknownPackage.json.code, 'unknown-package');
  const noneOnline = await postJson('/api/deployments', { package: pkg.sha256, devices: 'online' });
  assert.equal(noneOnline.status, 422);
  assert.equal(noneOnline.json.code, 'no-devices');
  assert.deepEqual(core.deployments.list(), []);
});

test('a deployment to an offline device leaves a retained target signed by the manager', async () => {
  const keys = managerSigningKeys(dir);
  const bytes = demoPackage(keys.privateKey, { version: '5', cpuFamily: 'x86_64' });
  const pkg = (await postPackage(bytes)).json as unknown as PackageView;
  const created = await postJson('/api/deployments', {
    package: pkg.sha256,
    devices: ['cam-offline'],
    rollback: true,
    healthSeconds: 2,
    latencyBudgetMs: 50,
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const deployment = created.json as unknown as DeploymentView;
  assert.deepEqual(
    deployment.devices.map((d) => [d.device, d.phase, d.finished]),
    [['cam-offline', 'pending', false]],
  );
  const fetched = await call('GET', `/api/deployments/${deployment.id}`);
  assert.equal(fetched.status, 200);
  assert.equal((await call('GET', '/api/deployments/d-nothing')).status, 404);

  // The device comes online later and receives the retained target.
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${core.broker.port}`, {
    username: 'cam-offline',
    password: core.store.issueCredential('cam-offline'),
  });
  try {
    const message = new Promise<Buffer>((resolve) =>
      client.once('message', (_t, payload) => resolve(payload)),
    );
    await client.subscribeAsync(deviceTopic('cam-offline', 'target'), { qos: 1 });
    const target = DeployTargetSchema.parse(JSON.parse((await message).toString('utf8')));
    assert.equal(target.deploymentId, deployment.id);
    assert.equal(target.model.sha256, pkg.sha256);
    assert.equal(target.model.bytes, bytes.length);
    assert.deepEqual(target.requires, { arch: ['x64'] });
    assert.equal(target.rollback, true);
    assert.deepEqual(target.health, { seconds: 2, latencyBudgetMs: 50 });
    assert.ok(
      verify(
        null,
        Buffer.from(pkg.sha256, 'hex'),
        keys.publicKey,
        Buffer.from(target.model.signature, 'base64'),
      ),
      'signed over the file SHA-256 with the manager key',
    );
    const download = await fetch(target.model.url);
    assert.ok(Buffer.from(await download.arrayBuffer()).equals(bytes), 'the package server serves the file');

    // The device reports its phases; the manager keeps every one of them, in order.
    for (const [phase, extra] of [
      ['downloading', {}],
      ['failed', { code: 'hash-mismatch', reason: 'the SHA-256 differs' }],
    ] as const)
      await client.publishAsync(
        deviceTopic('cam-offline', 'deploy'),
        JSON.stringify({
          v: 1,
          ts: Date.now(),
          deploymentId: deployment.id,
          modelId: pkg.modelId,
          version: pkg.modelVersion,
          phase,
          serving: 'bundled',
          ...extra,
        }),
        { qos: 1 },
      );
    const events = await waitFor('both phases stored', 10_000, async () => {
      const r = await call('GET', `/api/deployments/${deployment.id}/events`);
      const body = r.json as unknown as DeploymentEventsResponse;
      return body.events.length === 2 ? body : undefined;
    });
    assert.deepEqual(
      events.events.map((e) => [e.device, e.phase, e.code, e.reason]),
      [
        ['cam-offline', 'downloading', null, null],
        ['cam-offline', 'failed', 'hash-mismatch', 'the SHA-256 differs'],
      ],
    );
    assert.equal((await call('GET', '/api/deployments/d-nothing/events')).status, 404);
  } finally {
    await client.endAsync();
  }
});

test('the snapshot route gives the newest camera picture with its prediction', async () => {
  assert.equal((await call('GET', '/api/devices/ghost/snapshot')).json.code, 'unknown-device');
  assert.deepEqual((await call('GET', '/api/devices/cam-offline/snapshot')).json, {
    device: 'cam-offline',
    snapshot: null,
  });
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]).toString('base64');
  const prediction = { classIndex: 7, label: 'Sneaker', confidence: 0.9 };
  core.registry.ingest(
    deviceTopic('cam-offline', 'snapshot'),
    Buffer.from(JSON.stringify({ v: 1, ts: 5, jpeg, prediction })),
  );
  const answer = await call('GET', '/api/devices/cam-offline/snapshot');
  assert.equal(answer.status, 200);
  assert.deepEqual(answer.json, { device: 'cam-offline', snapshot: { v: 1, ts: 5, jpeg, prediction } });
});
