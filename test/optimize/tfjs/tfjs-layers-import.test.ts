// TensorFlow.js Layers import (optimize/tfjs/): Sequential and functional models saved by tfjs (model.json +
// weights.bin) become packages whose runtime outputs match tfjs's own predictions, in both inbound_nodes
// formats (tfjs / Keras 2 nested lists, Keras 3 dicts); broken models are refused naming the layer or file.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { importTfjsLayers, TfjsImportError } from '../../../optimize/tfjs/import.js';
import { assertClose, importToRuntime, randomizeWeights, saveLikeTrain } from './tfjs-fixtures.js';

test('a tfjs Sequential CNN imports and matches tfjs predictions', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-tfjs-'));
  try {
    const net = tf.sequential();
    net.add(
      tf.layers.conv2d({ inputShape: [8, 8, 2], filters: 4, kernelSize: 3, padding: 'same', useBias: true }),
    );
    net.add(tf.layers.batchNormalization());
    net.add(tf.layers.activation({ activation: 'relu' }));
    net.add(
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'valid', activation: 'relu6' }),
    );
    net.add(tf.layers.maxPooling2d({ poolSize: 2, padding: 'same' }));
    net.add(tf.layers.flatten());
    net.add(tf.layers.dense({ units: 5, activation: 'softmax' }));
    // Non-trivial batch-norm statistics, so folding is exercised.
    const bn = net.layers[1]!;
    bn.setWeights(
      bn.getWeights().map((w, i) => tf.add(w, tf.randomUniform(w.shape, 0.1, 0.9 + i, 'float32', 11 + i))),
    );
    await net.save(
      tf.io.withSaveHandler((artifacts) => {
        writeFileSync(join(dir, 'weights.bin'), Buffer.from(artifacts.weightData as ArrayBuffer));
        writeFileSync(
          join(dir, 'model.json'),
          JSON.stringify({
            modelTopology: artifacts.modelTopology,
            weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
          }),
        );
        return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } });
      }),
    );
    const keys = generateKeyPairSync('ed25519');
    const content = importTfjsLayers(join(dir, 'model.json'), { batch: 3 });
    const model = Model.fromPackage(
      readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey }),
    );
    assert.equal(model.layers.filter((l) => l.op === 'batch_norm').length, 0);
    const input = tf.randomNormal([3, 8, 8, 2], 0, 1, 'float32', 7);
    const expected = (net.predict(input) as tf.Tensor).dataSync();
    const [actual] = model.run([input.dataSync()]);
    assert.deepEqual(actual!.shape, [3, 5]);
    for (let i = 0; i < expected.length; i++)
      assert.ok(
        Math.abs(actual!.data[i]! - expected[i]!) < 1e-5,
        `${i}: ${actual!.data[i]} vs ${expected[i]}`,
      );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const root = mkdtempSync(join(tmpdir(), 'whittle-tfjs-functional-'));
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * Two inputs and two outputs, a layer shared by both inputs, a conv output read by a batch norm and a ReLU
 * (so the batch norm cannot fold and stays a scale and shift), a three-way Add, SAME average and max pools,
 * Concatenate, Permute, Reshape, a Dense on a rank-3 input with a batch norm folded into it, and LeakyReLU.
 */
function functionalNet(): tf.LayersModel {
  const a = tf.input({ shape: [6, 6, 3], name: 'image_a' });
  const b = tf.input({ shape: [6, 6, 3], name: 'image_b' });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor =>
    layer.apply(x) as tf.SymbolicTensor;
  const shared = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'shared_conv' });
  const ca = apply(shared, a);
  const cb = apply(shared, b);
  const normed = apply(tf.layers.batchNormalization({ name: 'standalone_bn' }), ca);
  const clipped = apply(tf.layers.reLU({ maxValue: 6 }), ca);
  const sum = apply(tf.layers.add(), [normed, clipped, cb]);
  const avg = apply(tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }), sum);
  const max = apply(tf.layers.maxPooling2d({ poolSize: 2, padding: 'same' }), sum);
  const both = apply(tf.layers.concatenate({ axis: -1 }), [avg, max]);
  const gated = apply(tf.layers.multiply(), [
    both,
    apply(tf.layers.activation({ activation: 'sigmoid' }), both),
  ]);
  const channelsFirst = apply(tf.layers.permute({ dims: [3, 1, 2] }), gated);
  const rows = apply(tf.layers.reshape({ targetShape: [8, 9] }), channelsFirst);
  const projected = apply(tf.layers.dense({ units: 5, name: 'per_row_dense' }), rows);
  const flat = apply(
    tf.layers.flatten(),
    apply(tf.layers.batchNormalization({ name: 'dense_bn' }), projected),
  );
  const probs = apply(tf.layers.dense({ units: 4, activation: 'softmax', name: 'probs' }), flat);
  const features = apply(tf.layers.leakyReLU({ alpha: 0.2, name: 'features' }), flat);
  return tf.model({ inputs: [a, b], outputs: [probs, features] });
}

async function checkAgainstTfjs(net: tf.LayersModel, modelJson: string): Promise<void> {
  const model = importToRuntime(modelJson, { batch: 2 });
  assert.deepEqual(
    model.manifest.inputs.map((i) => i.name),
    ['image_a', 'image_b'],
  );
  assert.deepEqual(
    model.manifest.outputs.map((o) => o.name),
    ['probs', 'features'],
  );
  // shared_conv runs twice; standalone_bn (no layer of its own input to fold into) is a 1x1 depthwise conv;
  // dense_bn folds into per_row_dense.
  assert.deepEqual(
    model.layers.filter((l) => l.op === 'conv2d').map((l) => l.name),
    ['shared_conv', 'shared_conv (call 1)', 'standalone_bn'],
  );
  assert.equal(model.layers.filter((l) => l.op === 'batch_norm').length, 0);
  const inputs = [11, 12].map((seed) => tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', seed));
  const expected = net.predict(inputs) as tf.Tensor[];
  const actual = model.run(inputs.map((t) => t.dataSync()));
  for (let k = 0; k < 2; k++) {
    assert.deepEqual(actual[k]!.shape, expected[k]!.shape);
    assertClose(expected[k]!.dataSync(), actual[k]!.data, `output ${k}`);
  }
  tf.dispose([...inputs, ...expected]);
  await Promise.resolve();
}

test('a functional model with shared layers, merges and two inputs/outputs matches tfjs', async () => {
  const net = functionalNet();
  randomizeWeights(net, 3);
  await checkAgainstTfjs(net, await saveLikeTrain(net, join(root, 'functional')));
});

/** Rewrites a tfjs functional topology the way Keras 3 writes it: inbound_nodes as dicts, batch_shape. */
function toKeras3(topology: { class_name: string; config: FunctionalConfig }): unknown {
  const tensor = (ref: unknown[]): unknown => ({
    class_name: '__keras_tensor__',
    config: { shape: null, dtype: 'float32', keras_history: ref.slice(0, 3) },
  });
  return {
    class_name: 'Functional',
    config: {
      ...topology.config,
      layers: topology.config.layers.map((layer) => {
        const { batch_input_shape: shape, ...config } = layer.config;
        return {
          ...layer,
          config: shape === undefined ? config : { ...config, batch_shape: shape },
          inbound_nodes: layer.inbound_nodes.map((call) => ({
            args: call.length === 1 ? [tensor(call[0]!)] : [call.map(tensor)],
            kwargs: {},
          })),
        };
      }),
    },
  };
}

interface FunctionalConfig {
  layers: { class_name: string; config: Record<string, unknown>; inbound_nodes: unknown[][][] }[];
  input_layers: unknown[];
  output_layers: unknown[];
}

/** Saves `net` and returns a function that writes a modified copy of its model.json and imports it. */
async function editable(
  net: tf.LayersModel,
  name: string,
): Promise<
  (edit: (json: { modelTopology: { class_name: string; config: FunctionalConfig } }) => void) => string
> {
  const dir = join(root, name);
  const file = await saveLikeTrain(net, dir);
  const original = readFileSync(file, 'utf8');
  return (edit) => {
    const json = JSON.parse(original) as { modelTopology: { class_name: string; config: FunctionalConfig } };
    edit(json);
    writeFileSync(file, JSON.stringify(json));
    return file;
  };
}

test('the Keras 3 inbound_nodes format imports the same model', async () => {
  const net = functionalNet();
  randomizeWeights(net, 4);
  const write = await editable(net, 'keras3');
  const file = write((json) => {
    json.modelTopology = toKeras3(json.modelTopology) as typeof json.modelTopology;
  });
  assert.match(readFileSync(file, 'utf8'), /__keras_tensor__/);
  await checkAgainstTfjs(net, file);
});

test("tensorflowjs_converter's model_config wrapper around the topology is read", async () => {
  const net = functionalNet();
  randomizeWeights(net, 5);
  const write = await editable(net, 'converter');
  const file = write((json) => {
    json.modelTopology = {
      keras_version: '2.15.0',
      backend: 'tensorflow',
      model_config: json.modelTopology,
    } as unknown as typeof json.modelTopology;
  });
  await checkAgainstTfjs(net, file);
});

/** input -> conv1 -> relu -> conv2 -> dense: small enough to break by hand. */
function chainNet(): tf.LayersModel {
  const input = tf.input({ shape: [4, 4, 2], name: 'x' });
  const conv1 = tf.layers.conv2d({ filters: 3, kernelSize: 3, name: 'conv1' }).apply(input);
  const relu = tf.layers.reLU({ name: 'relu' }).apply(conv1);
  const conv2 = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'conv2' }).apply(relu);
  const flat = tf.layers.flatten({ name: 'flat' }).apply(conv2);
  const out = tf.layers.dense({ units: 2, name: 'out' }).apply(flat) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

test('a cycle, a dangling input, unknown layers and shape mismatches are refused naming the layers', async () => {
  const write = await editable(chainNet(), 'broken');
  const layer = (json: { modelTopology: { config: FunctionalConfig } }, name: string) =>
    json.modelTopology.config.layers.find((l) => l.config.name === name)!;
  const refused = (file: string, pattern: RegExp): void =>
    assert.throws(
      () => importTfjsLayers(file),
      (e: unknown) => e instanceof TfjsImportError && pattern.test(e.message),
    );

  refused(
    write((json) => {
      layer(json, 'conv1').inbound_nodes = [[['conv2', 0, 0, {}]]];
    }),
    /the layer graph has a cycle through conv1, relu, conv2/,
  );
  refused(
    write((json) => {
      layer(json, 'relu').inbound_nodes = [[['conv_1', 0, 0, {}]]];
    }),
    /layer relu reads conv_1, which is not a layer of this model/,
  );
  refused(
    write((json) => {
      layer(json, 'relu').inbound_nodes = [[['conv1', 1, 0, {}]]];
    }),
    /layer relu reads call 1 of conv1, which has no such call/,
  );
  refused(
    write((json) => {
      json.modelTopology.config.output_layers = [['gone', 0, 0]];
    }),
    /output_layers reads gone/,
  );
  // Every unsupported layer (and activation) is listed in one message, before anything is built.
  refused(
    write((json) => {
      layer(json, 'relu').class_name = 'LSTM';
      layer(json, 'flat').class_name = 'Lambda';
      layer(json, 'conv2').config.activation = 'tanh';
    }),
    /3 unsupported layer\(s\): relu \(LSTM\), conv2 \(Conv2D with activation "tanh"\), flat \(Lambda\)/,
  );
  refused(
    write((json) => {
      layer(json, 'conv2').config.filters = 5;
    }),
    /layer conv2 \(Conv2D\): the kernel has 2 filters but filters is 5/,
  );
  refused(
    write((json) => {
      layer(json, 'out').config.units = 3;
    }),
    /layer out \(Dense\): kernel has 2 outputs but units is 3/,
  );
  refused(
    write((json) => {
      layer(json, 'conv1').config.kernel_size = [2, 2];
    }),
    /layer conv1 \(Conv2D\): kernel_size is 2x2 but the kernel weight is 3x3/,
  );
  refused(
    write((json) => {
      layer(json, 'conv2').config.padding = 'causal';
    }),
    /layer conv2 \(Conv2D\): padding "causal" is not supported/,
  );
  refused(
    write((json) => {
      json.modelTopology.class_name = 'Bidirectional';
    }),
    /topology class Bidirectional is not supported/,
  );
});

test('a weight file shorter or longer than the manifest, or missing, is refused', async () => {
  const dir = join(root, 'weights');
  const file = await saveLikeTrain(chainNet(), dir);
  const weights = join(dir, 'weights.bin');
  const bytes = readFileSync(weights);
  writeFileSync(weights, bytes.subarray(0, bytes.length - 4));
  assert.throws(
    () => importTfjsLayers(file),
    (e: unknown) =>
      e instanceof TfjsImportError &&
      new RegExp(
        `weights.bin holds ${bytes.length - 4} bytes but the weights manifest declares ${bytes.length} .*truncated`,
      ).test(e.message),
  );
  writeFileSync(weights, Buffer.concat([bytes, Buffer.alloc(8)]));
  assert.throws(() => importTfjsLayers(file), /holds \d+ bytes but the weights manifest declares/);
  rmSync(weights);
  assert.throws(() => importTfjsLayers(file), /cannot read the weight file .*weights\.bin/);
});

test('weights quantized to uint8, uint16 and float16 expand as tfjs expands them', async () => {
  const dir = join(root, 'quantized');
  const file = await saveLikeTrain(chainNet(), dir);
  const json = JSON.parse(readFileSync(file, 'utf8')) as tf.io.ModelJSON;
  const bytes = readFileSync(join(dir, 'weights.bin'));
  const group = json.weightsManifest[0]!;
  const chunks: Buffer[] = [];
  let offset = 0;
  group.weights.forEach((spec, i) => {
    const n = spec.shape.reduce((p, d) => p * d, 1);
    const values = Array.from({ length: n }, (_, k) => bytes.readFloatLE(offset + 4 * k));
    offset += 4 * n;
    const kind = (['uint8', 'uint16', 'float16'] as const)[i % 3]!;
    if (kind === 'float16') {
      // Truncating float32 -> half: both importers decode the same bits, so the rounding does not matter.
      const out = Buffer.alloc(2 * n);
      values.forEach((v, k) => out.writeUInt16LE(floatToHalfBits(v), 2 * k));
      spec.quantization = { dtype: 'float16' };
      chunks.push(out);
      return;
    }
    const levels = kind === 'uint8' ? 255 : 65535;
    const min = Math.min(...values);
    const scale = (Math.max(...values) - min) / levels || 1;
    const out = Buffer.alloc((kind === 'uint8' ? 1 : 2) * n);
    values.forEach((v, k) => {
      const q = Math.round((v - min) / scale);
      if (kind === 'uint8') out[k] = q;
      else out.writeUInt16LE(q, 2 * k);
    });
    spec.quantization = { dtype: kind, scale, min };
    chunks.push(out);
  });
  const weightData = Buffer.concat(chunks);
  writeFileSync(join(dir, 'weights.bin'), weightData);
  writeFileSync(file, JSON.stringify(json));
  // tfjs's own loader is the reference for what the quantized bytes mean.
  const reference = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: group.weights,
      weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.length),
    }),
  );
  const model = importToRuntime(file, { batch: 2 });
  const input = tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 8);
  const [actual] = model.run([input.dataSync()]);
  assertClose((reference.predict(input) as tf.Tensor).dataSync(), actual!.data, 'quantized weights');
});

/** float32 -> IEEE half bits, truncating the mantissa (normal numbers and zero only, enough for weights). */
function floatToHalfBits(value: number): number {
  const f = new DataView(new ArrayBuffer(4));
  f.setFloat32(0, value);
  const bits = f.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  if (exponent <= 0) return sign;
  return sign | (Math.min(exponent, 30) << 10) | ((bits >>> 13) & 0x3ff);
}
