import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { ConfigError, defaultModelPath, modelMemoryBudget, resolveConfig } from '../../agent/config.js';
import { PackageModel } from '../../agent/runtime/package-model.js';

test('flags override the config file, which overrides defaults', () => {
  const file = join(tmpdir(), `whittle-agent-config-${process.pid}.json`);
  writeFileSync(
    file,
    JSON.stringify({ broker: 'mqtt://10.0.0.2:1883', deviceId: 'pi-kitchen', password: 'p', fps: 15 }),
  );
  const c = resolveConfig({ fps: '10' }, file);
  assert.equal(c.broker, 'mqtt://10.0.0.2:1883');
  assert.equal(c.deviceId, 'pi-kitchen');
  assert.equal(c.username, 'pi-kitchen', 'username defaults to the device id');
  assert.equal(c.fps, 10);
  assert.equal(c.camera, 'testsrc');
});

test('bad values are refused naming the field', () => {
  assert.throws(
    () => resolveConfig({ deviceId: 'a/b' }),
    (e: Error) => e instanceof ConfigError && /deviceId/.test(e.message),
  );
  assert.throws(() => resolveConfig({ broker: 'tcp://x' }), /broker: expected mqtt/);
  assert.throws(() => resolveConfig({ fps: 'fast' }), /fps/);
});

test('a missing or malformed config file is refused naming it', () => {
  assert.throws(
    () => resolveConfig({}, '/nonexistent/agent.json'),
    /cannot read config file \/nonexistent\/agent.json/,
  );
  const file = join(tmpdir(), `whittle-agent-config-bad-${process.pid}.json`);
  writeFileSync(file, '[1,2');
  assert.throws(() => resolveConfig({}, file), new RegExp(`config file ${file} is not a JSON object`));
});

test('the default model is the bundled package; the model memory budget is a flag or a quarter of RAM', () => {
  const c = resolveConfig({ deviceId: 'd1' });
  assert.equal(c.model, defaultModelPath());
  assert.match(c.model, /\.whittle$/);
  assert.ok(
    PackageModel.load(c.model, { trust: 'shipped' }).probe,
    'the bundled package loads, with a probe',
  );
  assert.equal(modelMemoryBudget(c, 8e9), 2e9);
  const limited = resolveConfig({ deviceId: 'd1', modelMemoryBytes: '65536' });
  assert.equal(limited.modelMemoryBytes, 65536);
  assert.equal(modelMemoryBudget(limited, 8e9), 65536);
  assert.throws(() => resolveConfig({ modelMemoryBytes: '-1' }), /modelMemoryBytes/);
});

test('an unknown field is refused by name, so a misspelt one is never silently ignored', () => {
  const file = join(tmpdir(), `whittle-agent-config-unknown-${process.pid}.json`);
  writeFileSync(
    file,
    JSON.stringify({ deviceId: 'pi', dataDir: '/var/lib/x', packageKeyFile: '/etc/k.pem' }),
  );
  assert.throws(
    () => resolveConfig({}, file),
    (e: Error) => e instanceof ConfigError && /dataDir/.test(e.message) && !/packageKeyFile/.test(e.message),
  );
});
