// `whittle import MODEL.onnx|MODEL.tflite|model.json --out PKG [--key PRIVATE_KEY] [--id ID] [--labels FILE] [--batch N]`:
// converts a model to a signed package. Unsupported ops are all listed before anything is written.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { parseArgs } from 'node:util';

import { readPackage } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { importOnnx } from '../../optimize/onnx/import.js';
import { writePackage } from '../../optimize/package/writer.js';
import { importTflite } from '../../optimize/tflite/import.js';
import { isTflite } from '../../optimize/tflite/reader.js';
import { CommandUsageError } from './command-error.js';
import { loadSigningKey } from './signing-key.js';

export async function importCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: 'string', short: 'o' },
      key: { type: 'string' },
      id: { type: 'string' },
      labels: { type: 'string' },
      batch: { type: 'string' },
    },
  });
  const source = positionals[0];
  if (source === undefined || positionals.length > 1)
    throw new CommandUsageError('import: expected one model file');
  if (values.out === undefined) throw new CommandUsageError('import: --out PKG is required');
  const batch = values.batch === undefined ? undefined : Number(values.batch);
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1)) {
    throw new CommandUsageError(`import: --batch expects a positive integer, got "${values.batch}"`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(source);
  } catch (error) {
    throw new CommandUsageError(`import: cannot read ${source}: ${(error as Error).message}`);
  }
  const labels =
    values.labels === undefined
      ? undefined
      : readFileSync(values.labels, 'utf8')
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== '');
  const id = values.id ?? basename(source, extname(source));
  let content;
  if (extname(source).toLowerCase() === '.json') {
    const { importTfjsLayers } = await import('../../optimize/tfjs/import.js');
    content = importTfjsLayers(source, {
      modelId: id,
      ...(labels ? { labels } : {}),
      ...(batch ? { batch } : {}),
    });
  } else if (extname(source).toLowerCase() === '.tflite' || isTflite(bytes)) {
    content = importTflite(bytes, {
      source,
      modelId: id,
      ...(labels ? { labels } : {}),
      ...(batch ? { batch } : {}),
    });
  } else {
    content = importOnnx(bytes, {
      source,
      modelId: id,
      ...(labels ? { labels } : {}),
      ...(batch ? { batch } : {}),
    });
  }
  const { key, created } = loadSigningKey(values.key);
  const pkg = writePackage(content, key);
  // Read it back through the agent's reader and runtime before writing: a package that would be refused
  // on the device is never written.
  const model = Model.fromPackage(readPackage(pkg, { allowUnsigned: true, cpuFamily: null }));
  writeFileSync(values.out, pkg);
  if (created) console.error(`whittle import: created the package signing key ${created}`);
  console.log(
    `whittle import: ${source} -> ${values.out} (${pkg.length} bytes, ${model.layers.length} layers, ` +
      `${model.layers.reduce((s, l) => s + l.macs, 0)} MACs, arena ${model.plan.arenaBytes} bytes)`,
  );
  return 0;
}
