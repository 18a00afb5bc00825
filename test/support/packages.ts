// Signed Whittle packages of the demo model for deployment tests: the real writer, the real reader.
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { CpuFamily } from '../../agent/package/manifest.js';
import { packageRoot } from '../../agent/package-root.js';
import { parseInt8MlpFile } from '../../agent/runtime/int8-mlp-format.js';
import { packageContentFromInt8Mlp } from '../../optimize/package/from-int8-mlp.js';
import { writePackage } from '../../optimize/package/writer.js';

/** The demo MLP as a package with this id and version, signed by `privateKey`. */
export function demoPackage(
  privateKey: KeyObject,
  model: { id?: string; version?: string; cpuFamily?: CpuFamily } = {},
): Buffer {
  // The trained demo model in its source form; the agent's bundled package is made from the same file.
  const path = join(packageRoot(), 'agent', 'models', 'fashion-mlp-int8.json');
  const content = packageContentFromInt8Mlp(parseInt8MlpFile(readFileSync(path, 'utf8'), path));
  content.manifest.model = {
    ...content.manifest.model,
    id: model.id ?? 'fashion',
    version: model.version ?? '1',
  };
  content.manifest.target = { ...content.manifest.target, cpuFamily: model.cpuFamily ?? 'any' };
  return writePackage(content, privateKey);
}
