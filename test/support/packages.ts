// Signed Whittle packages for tests: the demo model for deployment tests (the shipped MLP package,
// agent/models/fashion-mlp-int8.whittle, read by the real reader, re-issued by the real writer), and the check
// that two encodings of one package are the same package.
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';

import type { CpuFamily } from '../../agent/package/manifest.js';
import { type Package, readPackageFile } from '../../agent/package/reader.js';
import { packageRoot } from '../../agent/package-root.js';
import { Model } from '../../agent/runtime/model.js';
import { packageContent, writePackage } from '../../optimize/package/writer.js';

/** The demo MLP as a package with this id and version, signed by `privateKey`. */
export function demoPackage(
  privateKey: KeyObject,
  model: { id?: string; version?: string; cpuFamily?: CpuFamily } = {},
): Buffer {
  const path = join(packageRoot(), 'agent', 'models', 'fashion-mlp-int8.whittle');
  const content = packageContent(readPackageFile(path, { allowUnsigned: true, cpuFamily: null }));
  content.manifest.model = {
    ...content.manifest.model,
    id: model.id ?? 'fashion',
    version: model.version ?? '1',
  };
  content.manifest.target = { ...content.manifest.target, cpuFamily: model.cpuFamily ?? 'any' };
  return writePackage(content, privateKey);
}

/** Two files of one package (`plain` as the writer writes it by default, `other` in another encoding, both
 * signed by `privateKey`), read by `read`: the same manifest and constants, the same outputs on `input`, and
 * each rewrites to its own bytes. Returns both as read. */
export function assertSamePackage(
  read: (bytes: Buffer) => Package,
  plain: Buffer,
  other: Buffer,
  privateKey: KeyObject,
  input: Float32Array,
): [Package, Package] {
  const a = read(plain);
  const b = read(other);
  assert.deepEqual(b.manifest, a.manifest);
  assert.deepEqual(b.constants, a.constants);
  const [x] = Model.fromPackage(a).run([input]);
  const [y] = Model.fromPackage(b).run([input]);
  assert.deepEqual(y!.data, x!.data);
  assert.ok(writePackage(packageContent(b), privateKey).equals(other), 'rewrite differs');
  assert.ok(writePackage(packageContent(a), privateKey).equals(plain), 'plain rewrite differs');
  return [a, b];
}
