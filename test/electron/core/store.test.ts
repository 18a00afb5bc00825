import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { Store } from '../../../electron/core/store.js';

test('issued credentials check, replaced ones stop working, unknown users fail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-store-'));
  try {
    const store = new Store(dir);
    const first = store.issueCredential('pi-1');
    assert.ok(store.checkCredential('pi-1', first));
    assert.ok(!store.checkCredential('pi-1', first + 'x'));
    assert.ok(!store.checkCredential('pi-2', first));
    const second = store.issueCredential('pi-1');
    assert.notEqual(first, second);
    assert.ok(!store.checkCredential('pi-1', first), 'the old password is revoked');
    assert.ok(store.checkCredential('pi-1', second));
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('devices persist across reopening the store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-store-'));
  try {
    const store = new Store(dir);
    store.upsertDevice('pi-1', null, 1000);
    store.upsertDevice('pi-1', null, 2000);
    store.close();
    const again = new Store(dir);
    const devices = again.devices();
    assert.deepEqual(
      devices.map((d) => [d.id, d.firstSeen, d.lastSeen]),
      [['pi-1', 1000, 2000]],
    );
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
