// `whittle import MODEL.onnx|MODEL.tflite|model.json --out PKG [--key PRIVATE_KEY] [--id ID] [--labels FILE] [--batch N]
// [--input-shape NAME=D0,D1,...]...`: converts a model to a signed package. Unsupported ops are all listed
// before anything is written; --input-shape fixes an ONNX input's symbolic dimensions (repeat it per input).
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
      'input-shape': { type: 'string', multiple: true },
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
  const inputShapes = new Map<string, number[]>();
  for (const spec of values['input-shape'] ?? []) {
    const eq = spec.lastIndexOf('=');
    const dims = spec
      .slice(eq + 1)
      .split(',')
      .map(Number);
    if (eq <= 0 || dims.some((d) => !Number.isInteger(d) || d < 1))
      throw new CommandUsageError(
        `import: --input-shape expects NAME=D0,D1,... with positive integers (e.g. input=1,3,224,224), got "${spec}"`,
      );
    inputShapes.set(spec.slice(0, eq), dims);
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
      ...(inputShapes.size > 0 ? { inputShapes } : {}),
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
