// The demo model file (whittle-int8-mlp JSON) as package content: quantize the [0, 1] image, one
// qfully_connected per layer, dequantize the logits. Weight scales are recovered from each layer's fixed-point
// multipliers (M = inputScale * weightScale / outputScale), so the runtime re-derives the same multipliers.
//
// Run as a script it writes the package the agent ships (agent/models/, see agent/config.ts):
//   node dist/optimize/package/from-int8-mlp.js --in agent/models/fashion-mlp-int8.json \
//     --out agent/models/fashion-mlp-int8.whittle [--version 1] [--data /usr/share/datasets/fashion-mnist]
// with a health-check probe: the first Fashion-MNIST test image the package itself classifies right with
// confidence >= 0.9, as the runtime computes it.
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { type EncodedTensor, encodeRaw } from '../../agent/package/encodings.js';
import type { Manifest, ManifestNode, ManifestProbe, ManifestTensor } from '../../agent/package/manifest.js';
import { readPackage } from '../../agent/package/reader.js';
import {
  decodeInt8Base64,
  decodeInt32LeBase64,
  type Int8MlpFile,
  parseInt8MlpFile,
} from '../../agent/runtime/int8-mlp-format.js';
import { PackageModel } from '../../agent/runtime/package-model.js';
import { FASHION_MNIST_DIR, loadFashionMnist } from '../datasets/fashion-mnist.js';
import { type PackageContent, writePackage } from './writer.js';

export interface Int8MlpPackageOptions {
  /** The package's model version (dotted numbers); default "1". */
  version?: string;
  probe?: ManifestProbe;
}

export function packageContentFromInt8Mlp(
  file: Int8MlpFile,
  options: Int8MlpPackageOptions = {},
): PackageContent {
  const tensors: ManifestTensor[] = [];
  const nodes: ManifestNode[] = [];
  const constants = new Map<number, EncodedTensor>();
  const add = (tensor: ManifestTensor, data?: Int8Array | Int32Array): number => {
    tensors.push(tensor);
    if (data) constants.set(tensors.length - 1, encodeRaw(data));
    return tensors.length - 1;
  };
  const { width, height, channels, scale, zeroPoint } = file.input;
  const features = width * height * channels;
  const image = add({ name: 'image', dtype: 'f32', shape: [1, features] });
  let x = add({
    name: 'image.q',
    dtype: 'i8',
    shape: [1, features],
    quant: { scale: [scale], zeroPoint: [zeroPoint] },
  });
  nodes.push({
    name: 'quantize',
    op: 'quantize_linear',
    format: 'int8',
    inputs: [image],
    outputs: [x],
    attrs: {},
  });
  let inputScale = scale;
  file.layers.forEach((layer, i) => {
    const weightScales = layer.multipliers.map(
      (m, o) => (m * 2 ** (layer.shifts[o]! - 31) * layer.outputScale) / inputScale,
    );
    const w = add(
      {
        name: `fc${i}.weight`,
        dtype: 'i8',
        shape: [layer.outChannels, layer.inChannels],
        quant: { scale: weightScales, zeroPoint: weightScales.map(() => 0), axis: 0 },
      },
      decodeInt8Base64(layer.weights),
    );
    const b = add(
      { name: `fc${i}.bias`, dtype: 'i32', shape: [layer.outChannels] },
      decodeInt32LeBase64(layer.bias),
    );
    const y = add({
      name: `fc${i}.out`,
      dtype: 'i8',
      shape: [1, layer.outChannels],
      quant: { scale: [layer.outputScale], zeroPoint: [layer.outputZeroPoint] },
    });
    nodes.push({
      name: `fc${i}`,
      op: 'qfully_connected',
      format: 'int8',
      inputs: [x, w, b],
      outputs: [y],
      attrs: { min: layer.outputMin, max: layer.outputMax },
    });
    x = y;
    inputScale = layer.outputScale;
  });
  const logits = add({ name: 'logits', dtype: 'f32', shape: [1, file.labels.length] });
  nodes.push({
    name: 'dequantize',
    op: 'dequantize_linear',
    format: 'int8',
    inputs: [x],
    outputs: [logits],
    attrs: {},
  });
  const manifest: Manifest = {
    format: 'whittle-package',
    version: 1,
    model: { id: file.id, version: options.version ?? '1', name: file.name },
    target: { deviceClass: 'any', cpuFamily: 'any' },
    ...(file.accuracy
      ? {
          accuracy: {
            dataset: file.accuracy.dataset,
            images: file.accuracy.images,
            top1: file.accuracy.int8,
          },
        }
      : {}),
    labels: [...file.labels],
    inputs: [
      {
        name: 'image',
        tensor: image,
        layout: 'NC',
        preprocessing: {
          kind: 'image',
          width,
          height,
          channels: channels === 3 ? 3 : 1,
          mean: [0],
          std: [1],
        },
      },
    ],
    outputs: [{ name: 'logits', tensor: logits }],
    ...(options.probe ? { probe: options.probe } : {}),
    tensors,
    nodes,
  };
  return { manifest, constants };
}

/** The key the bundled package is signed with: derived from a fixed public seed, so the file is
 * reproducible byte for byte. Its private half is public by construction — the agent does not check the
 * signature of the package it ships with (it is trusted as shipped, like the agent's own code); every
 * deployed package must instead be signed by the manager's key. */
export function bundledSigningKey(): KeyObject {
  const seed = createHash('sha256').update('whittle bundled model; not a secret').digest();
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
}

/** The first test image the package classifies as its true label with confidence >= minConfidence. */
export function probeFromTestSet(
  packageBytes: Buffer,
  images: { count: number; pixels: Uint8Array; labels: Uint8Array },
  minConfidence = 0.9,
): ManifestProbe {
  const model = PackageModel.fromPackage(readPackage(packageBytes, { allowUnsigned: true, cpuFamily: null }));
  const { width, height, channels } = model.input;
  const size = width * height * channels;
  if (images.pixels.length !== images.count * size)
    throw new RangeError(
      `Expected images of ${size} bytes for the probe but received ${images.pixels.length / images.count}`,
    );
  // The first image right with minConfidence; failing that (a weakly trained model), the image it gets right
  // with the highest confidence — the runtime is deterministic, so any right answer is a valid probe.
  let best: { index: number; confidence: number } | undefined;
  for (let i = 0; i < images.count; i++) {
    const frame = images.pixels.subarray(i * size, (i + 1) * size);
    const result = model.infer(frame);
    if (result.classIndex !== images.labels[i]) continue;
    if (result.confidence >= minConfidence)
      return { input: Buffer.from(frame).toString('base64'), expectedClass: result.classIndex };
    if (best === undefined || result.confidence > best.confidence)
      best = { index: i, confidence: result.confidence };
  }
  if (best === undefined) throw new RangeError('no test image is classified right: no probe can be made');
  const frame = images.pixels.subarray(best.index * size, (best.index + 1) * size);
  return { input: Buffer.from(frame).toString('base64'), expectedClass: images.labels[best.index]! };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      in: { type: 'string' },
      out: { type: 'string' },
      version: { type: 'string' },
      data: { type: 'string' },
    },
  });
  if (values.in === undefined || values.out === undefined)
    throw new RangeError('Expected --in <model.json> and --out <package.whittle>');
  const file = parseInt8MlpFile(readFileSync(values.in, 'utf8'), values.in);
  const key = bundledSigningKey();
  const options = values.version === undefined ? {} : { version: values.version };
  const probe = probeFromTestSet(
    writePackage(packageContentFromInt8Mlp(file, options), key),
    loadFashionMnist('test', values.data ?? FASHION_MNIST_DIR),
  );
  const bytes = writePackage(packageContentFromInt8Mlp(file, { ...options, probe }), key);
  writeFileSync(values.out, bytes);
  console.log(`wrote ${values.out} (${bytes.length} bytes, probe class ${probe.expectedClass})`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main();
  } catch (err) {
    console.error(`from-int8-mlp: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
