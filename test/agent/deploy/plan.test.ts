import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { ActiveState } from '../../../agent/deploy/model-store.js';
import { type DeviceState, plan } from '../../../agent/deploy/plan.js';
import { compareVersions } from '../../../agent/deploy/version.js';
import type { DeployTarget } from '../../../agent/protocol/messages.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

function target(version: string, sha = B, extra: Partial<DeployTarget> = {}): DeployTarget {
  return {
    v: 1,
    deploymentId: 'd1',
    model: {
      id: 'm',
      version,
      format: 'whittle-package',
      url: 'http://h/p',
      sha256: sha,
      bytes: 10,
      signature: `${'A'.repeat(86)}==`,
    },
    ...extra,
  };
}

function device(
  active: Partial<ActiveState> = {},
  blobs: string[] = [],
  extra: Partial<DeviceState> = {},
): DeviceState {
  return {
    active: {
      version: 1,
      current: { sha256: A, modelId: 'm', version: '1.2' },
      previous: null,
      trial: false,
      ...active,
    },
    hasBlob: (sha) => blobs.includes(sha),
    arch: 'arm64',
    memBytes: 1e9,
    hasKey: true,
    ...extra,
  };
}

const kinds = (steps: { kind: string }[]): string[] => steps.map((s) => s.kind);

test('versions compare numerically, field by field', () => {
  assert.ok(compareVersions('1.10', '1.9') > 0);
  assert.equal(compareVersions('2', '2.0.0'), 0);
  assert.ok(compareVersions('0.9.9', '1') < 0);
});

test('a new version is downloaded, verified, staged, switched to, checked and committed', () => {
  assert.deepEqual(kinds(plan(device(), target('1.3'))), [
    'download',
    'verify',
    'stage',
    'switch',
    'health-check',
    'commit',
  ]);
});

test('a blob already on disk is verified again and switched to without downloading', () => {
  assert.deepEqual(kinds(plan(device({}, [B]), target('1.3'))), [
    'verify',
    'switch',
    'health-check',
    'commit',
  ]);
});

test('the model already served needs nothing; one in an unfinished trial is checked again', () => {
  assert.deepEqual(plan(device(), target('1.2', A)), []);
  assert.deepEqual(kinds(plan(device({ trial: true }, [A]), target('1.2', A))), [
    'verify',
    'switch',
    'health-check',
    'commit',
  ]);
});

test('an older version is refused unless rollback is asked', () => {
  const refused = plan(device(), target('1.1'));
  assert.equal(refused[0]?.kind, 'refuse');
  assert.match(
    refused[0]?.kind === 'refuse' ? refused[0].reason : '',
    /older than the installed m 1.2.*rollback/,
  );
  assert.deepEqual(kinds(plan(device(), target('1.1', B, { rollback: true }))).slice(0, 1), ['download']);
});

test('another CPU, too little memory or no pinned key is refused with its code', () => {
  const code = (steps: ReturnType<typeof plan>): string =>
    steps[0]?.kind === 'refuse' ? steps[0].code : 'none';
  assert.equal(code(plan(device(), target('2', B, { requires: { arch: ['x64', 'arm'] } }))), 'wrong-cpu');
  assert.equal(code(plan(device(), target('2', B, { requires: { memBytes: 2e9 } }))), 'not-enough-memory');
  assert.equal(code(plan(device({}, [], { hasKey: false }), target('2'))), 'no-key');
});
