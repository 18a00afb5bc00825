import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { ConfigError, defaultStateDir, resolveConfig } from '../../agent/config.js';

test('the state directory defaults to one per device next to the config file', () => {
  const file = join(tmpdir(), `whittle-agent-state-${process.pid}.json`);
  writeFileSync(file, JSON.stringify({ deviceId: 'pi-1', password: 'p' }));
  assert.equal(resolveConfig({}, file).stateDir, join(tmpdir(), 'agent-state-pi-1'));
  assert.equal(resolveConfig({ stateDir: '/var/lib/whittle' }, file).stateDir, '/var/lib/whittle');
  assert.match(defaultStateDir('cam'), /whittle-agent\/cam$/);
});

test('telemetry, camera and deployment options are checked naming the field', () => {
  const c = resolveConfig({ snapshotSeconds: '2', reconnectMaxMs: '1000' });
  assert.equal(c.snapshotSeconds, 2);
  assert.equal(c.reconnectMaxMs, 1000);
  for (const [flags, field] of [
    [{ snapshotSeconds: '-1' }, 'snapshotSeconds'],
    [{ reconnectMaxMs: 'soon' }, 'reconnectMaxMs'],
    [{ reconnectMaxMs: '10' }, 'reconnectMaxMs'],
    [{ labels: '' }, 'labels'],
    [{ packageKey: '' }, 'packageKey'],
  ] as const)
    assert.throws(
      () => resolveConfig(flags),
      (e: Error) => e instanceof ConfigError && e.message.includes(field),
      JSON.stringify(flags),
    );
});
