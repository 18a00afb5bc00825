// Integration: a deployment's outcome reaches the manager over MQTT, and the broker's ACL keeps devices
// off the manager's `target` topic. Real core, real agent, real package server.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import mqtt from 'mqtt';

import { deviceTopic } from '../../agent/protocol/messages.js';
import { startPackageServer } from '../../electron/core/package-server.js';
import { dropTarget, modelVariant, signedTarget, signingKeys } from '../agent/deploy/deploy-fixtures.js';
import { withCoreScratch } from '../support/core-scratch.js';
import { waitFor } from '../support/stack.js';
import { startAgentProcess } from './agent-process.js';

test('deployment phases and a refusal with its reason reach the manager', { timeout: 60_000 }, () =>
  withCoreScratch(
    'whittle-deploy-reports-',
    async ({ dir, log, startCore, onCleanup, fail: failWithLog }) => {
      const packages = await startPackageServer({ dir: join(dir, 'packages'), host: '127.0.0.1', port: 0 });
      onCleanup(() => packages.close());
      let stop: () => Promise<void> = () => Promise.resolve();
      onCleanup(() => stop());
      const core = await startCore();
      const keys = signingKeys();
      const stateDir = join(dir, 'agent-state');
      mkdirSync(join(stateDir, 'deploy'), { recursive: true });
      const good = signedTarget(packages, modelVariant('v2', keys), keys, 'd-good', '2', {
        health: { seconds: 0.5 },
      });
      /** The device's agent, on the same state directory every time (its installed models stay). */
      const startDeployee = () =>
        startAgentProcess(
          core,
          dir,
          'deployee',
          { stateDir, packageKey: keys.publicHex, snapshotSeconds: 0 },
          log,
        );
      dropTarget(stateDir, good);
      const agent = startDeployee();
      stop = () => agent.stop();
      const registry = core.registry;
      const fail = (err: Error): never => failWithLog(err, Infinity);
      await waitFor('the committed report', 30_000, () =>
        registry.deployments('deployee').some((r) => r.phase === 'committed') ? true : undefined,
      ).catch(fail);
      assert.deepEqual(
        registry.deployments('deployee').map((r) => r.phase),
        ['downloading', 'verified', 'staged', 'switched', 'committed'],
      );
      await waitFor('the status to name the new model', 10_000, () =>
        registry.get('deployee')?.info?.model.id === 'fashion-v2' ? true : undefined,
      ).catch(fail);

      // A corrupted package: refused, reason reported, the running model untouched.
      await agent.stop();
      const bad = signedTarget(packages, modelVariant('v3', keys), keys, 'd-bad', '3');
      bad.model.url = packages.urlOf(packages.add(modelVariant('v4', keys)));
      dropTarget(stateDir, bad);
      const again = startDeployee();
      stop = () => again.stop();
      const refusal = await waitFor('the failure report', 30_000, () =>
        registry.deployments('deployee').find((r) => r.deploymentId === 'd-bad' && r.phase === 'failed'),
      ).catch(fail);
      assert.equal(refusal.code, 'hash-mismatch');
      assert.match(refusal.reason ?? '', /SHA-256/);
      assert.equal(refusal.serving, good.model.sha256);

      // A whole, signed package built for another CPU family: the package reader's refusal, with its
      // reason, reaches the manager while the agent runs (the target arrives over MQTT, retained).
      const foreign = signedTarget(
        packages,
        modelVariant('v5', keys, { cpuFamily: process.arch === 'arm' ? 'x86_64' : 'armv7' }),
        keys,
        'd-foreign',
        '5',
      );
      await core.broker.publish(deviceTopic('deployee', 'target'), JSON.stringify(foreign), true);
      const foreignReport = await waitFor('the wrong-cpu report', 30_000, () =>
        registry.deployments('deployee').find((r) => r.deploymentId === 'd-foreign' && r.phase === 'failed'),
      ).catch(fail);
      assert.equal(foreignReport.code, 'wrong-cpu');
      assert.match(foreignReport.reason ?? '', /is built for (x86_64|armv7)/);
      assert.equal(foreignReport.serving, good.model.sha256);
    },
  ),
);

test(
  "a device may not publish on its manager's target topic, nor on unknown leaves",
  { timeout: 20_000 },
  () =>
    withCoreScratch('whittle-acl-', async ({ startCore, onCleanup }) => {
      const core = await startCore();
      const password = core.store.issueCredential('acl-device');
      const url = `mqtt://127.0.0.1:${core.broker.port}`;
      const listener = await mqtt.connectAsync(url, {
        username: 'acl-device',
        password,
        clientId: 'acl-listener',
      });
      const received: string[] = [];
      listener.on('message', (topic) => received.push(topic));
      onCleanup(() => listener.endAsync());
      await listener.subscribeAsync(deviceTopic('acl-device', 'target'), { qos: 1 });
      for (const topic of [deviceTopic('acl-device', 'target'), 'whittle/v1/devices/acl-device/anything']) {
        const sender = await mqtt.connectAsync(url, {
          username: 'acl-device',
          password,
          clientId: 'acl-sender',
          reconnectPeriod: 0,
        });
        // aedes closes the connection of a client whose publish the ACL refuses.
        const closed = new Promise<void>((resolve) => sender.once('close', () => resolve()));
        sender.publish(topic, '{"v":1}', { qos: 1 });
        await closed;
        await sender.endAsync(true);
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(received, []);
    }),
);
