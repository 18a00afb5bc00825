// Signed Whittle packages of the demo model for deployment tests: the shipped MLP package
// (agent/models/fashion-mlp-int8.whittle) read by the real reader, re-issued by the real writer.
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';

import type { CpuFamily } from '../../agent/package/manifest.js';
import { readPackageFile } from '../../agent/package/reader.js';
import { packageRoot } from '../../agent/package-root.js';
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
