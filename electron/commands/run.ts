// `whittle run PKG --input FILE [--input FILE ...] [--json] [--key PUBLIC_KEY] [--top K]`: runs a package on
// this machine with the device runtime. Each FILE is an ONNX TensorProto (.pb, the format of ONNX's test
// data) or an image (decoded and scaled by ffmpeg to the package's input preprocessing). Prints top-k for
// classifiers; --json prints every output as {name: {shape, data}}.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parseArgs } from 'node:util';

import type { ImagePreprocessing, Manifest } from '../../agent/package/manifest.js';
import { readPackageFile } from '../../agent/package/reader.js';
import { parsePublicKey } from '../../agent/package/signing.js';
import { inputInLayout } from '../../agent/runtime/compile/index.js';
import { InputError } from '../../agent/runtime/graph-error.js';
import { Model, type TensorResult } from '../../agent/runtime/model.js';
import { allocate, elements, type TensorData, type TensorSpec } from '../../agent/runtime/tensor.js';
import { decodeTensorFile } from '../../optimize/onnx/onnx-proto.js';
import { CommandUsageError } from './command-error.js';
import { defaultVerifyKeyText } from './signing-key.js';

/** Image bytes [height][width][channels] scaled by ffmpeg. */
function decodeImage(path: string, p: ImagePreprocessing): Uint8Array {
  try {
    return execFileSync(
      'ffmpeg',
      [
        '-v',
        'error',
        '-i',
        path,
        '-frames:v',
        '1',
        '-vf',
        `scale=${p.width}:${p.height}`,
        '-pix_fmt',
        p.channels === 1 ? 'gray' : 'rgb24',
        '-f',
        'rawvideo',
        '-',
      ],
      { maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new InputError(`cannot decode image ${path} with ffmpeg: ${stderr || (error as Error).message}`);
  }
}

/** An input tensor from a file, shaped and typed for `spec` (layout from the manifest). */
export function loadInput(path: string, spec: TensorSpec, input: Manifest['inputs'][number]): TensorData {
  const out = allocate(spec.dtype, elements(spec.shape));
  if (extname(path).toLowerCase() === '.pb') {
    const tensor = decodeTensorFile(readFileSync(path), path);
    if (tensor.data.length !== out.length) {
      throw new InputError(
        `${path} holds ${tensor.data.length} values (dims [${tensor.dims.join(', ')}]), input "${input.name}" needs ` +
          `${out.length} (shape [${spec.shape.join(', ')}])`,
      );
    }
    for (let i = 0; i < out.length; i++) out[i] = Number(tensor.data[i]);
    // An ONNX model's NCHW tensor for the NHWC input `whittle import` declared.
    return inputInLayout(out, tensor.dims, spec.shape, input.layout);
  }
  const p = input.preprocessing;
  if (p === undefined) {
    throw new InputError(
      `input "${input.name}" has no image preprocessing in the package; give a TensorProto .pb file`,
    );
  }
  const pixels = decodeImage(path, p);
  const c = p.channels;
  const perImage = p.width * p.height * c;
  if (pixels.length < perImage || out.length !== perImage) {
    throw new InputError(
      `image ${path} gives ${pixels.length} bytes; input "${input.name}" needs ${out.length} values per image of ${perImage}`,
    );
  }
  for (let y = 0; y < p.height; y++) {
    for (let x = 0; x < p.width; x++) {
      for (let ch = 0; ch < c; ch++) {
        const value =
          (pixels[(y * p.width + x) * c + ch]! / 255 - p.mean[ch % p.mean.length]!) /
          p.std[ch % p.std.length]!;
        const index =
          input.layout === 'NCHW' ? (ch * p.height + y) * p.width + x : (y * p.width + x) * c + ch;
        out[index] = value;
      }
    }
  }
  return out;
}

function topK(result: TensorResult, labels: readonly string[], k: number): string[] {
  const row = Array.from(result.data.subarray(0, labels.length));
  return row
    .map((score, index) => ({ score, index }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k)
    .map(({ score, index }) => `  ${labels[index]} (${index}): ${score.toPrecision(5)}`);
}

export function runCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      input: { type: 'string', multiple: true, short: 'i' },
      json: { type: 'boolean' },
      key: { type: 'string' },
      top: { type: 'string' },
      'memory-budget': { type: 'string' },
      threads: { type: 'string' },
    },
  });
  const path = positionals[0];
  if (path === undefined || positionals.length > 1)
    throw new CommandUsageError('run: expected one package file');
  const files = values.input ?? [];
  const top = values.top === undefined ? 5 : Number(values.top);
  if (!Number.isInteger(top) || top < 1)
    throw new CommandUsageError(`run: --top expects a positive integer, got "${values.top}"`);
  const keyText = defaultVerifyKeyText(values.key);
  if (keyText === null) {
    throw new CommandUsageError('run: no public key to verify the package with; give --key PUBLIC_KEY.pem');
  }
  const pkg = readPackageFile(path, { publicKey: parsePublicKey(keyText), cpuFamily: null });
  const budgetText = values['memory-budget'];
  const memoryBudgetBytes = budgetText === undefined ? undefined : Number(budgetText);
  if (memoryBudgetBytes !== undefined && (!Number.isInteger(memoryBudgetBytes) || memoryBudgetBytes < 1)) {
    throw new CommandUsageError(`run: --memory-budget expects a byte count, got "${budgetText}"`);
  }
  // A TensorProto first input with another batch size than the package's runs the model at that batch.
  const first = files[0];
  const declared = pkg.manifest.tensors[pkg.manifest.inputs[0]!.tensor]!.shape;
  let batch: number | undefined;
  if (first !== undefined && extname(first).toLowerCase() === '.pb') {
    const dims = decodeTensorFile(readFileSync(first), first).dims;
    if (dims.length === declared.length && dims.length > 0 && dims[0] !== declared[0]) batch = dims[0];
  }
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1 || threads > 64)) {
    throw new CommandUsageError(`run: --threads expects an integer in [1, 64], got "${values.threads}"`);
  }
  const model = Model.fromPackage(pkg, {
    ...(threads === undefined ? {} : { threads }),
    ...(batch === undefined ? {} : { batch }),
    ...(memoryBudgetBytes === undefined ? {} : { memoryBudgetBytes }),
  });
  const inputs = model.inputs;
  if (files.length !== inputs.length) {
    throw new CommandUsageError(
      `run: the package takes ${inputs.length} input(s) (${inputs.map((i) => i.name).join(', ')}), got ${files.length} --input`,
    );
  }
  const data = files.map((file, i) => loadInput(file, inputs[i]!.spec, pkg.manifest.inputs[i]!));
  const results = model.run(data);
  if (values.json) {
    console.log(
      JSON.stringify(
        Object.fromEntries(results.map((r) => [r.name, { shape: r.shape, data: Array.from(r.data) }])),
      ),
    );
    return 0;
  }
  const labels = pkg.manifest.labels;
  for (const result of results) {
    if (labels && labels.length > 0 && result.shape[result.shape.length - 1] === labels.length) {
      console.log(`${result.name}: top ${Math.min(top, labels.length)}`);
      for (const line of topK(result, labels, top)) console.log(line);
    } else {
      const shown = Array.from(result.data.subarray(0, 16), (v) => Number(v.toPrecision(6)));
      console.log(
        `${result.name}: ${result.dtype} [${result.shape.join(', ')}] ${shown.join(' ')}${result.data.length > 16 ? ' ...' : ''}`,
      );
    }
  }
  return 0;
}
