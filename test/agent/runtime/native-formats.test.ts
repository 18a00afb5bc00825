// The compressed formats on the native kernels (native/formats.ts) against the TypeScript reference
// executors: every conv2d / fully_connected layer of the sample package (every encoding) reports a native
// kernel and agrees with the reference, alone and in the whole network; where the reference is exact (dyadic
// inputs and weights, so that no fp32 sum rounds) fixed point and xnor agree bit for bit.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';

import {
  type EncodedTensor,
  encodeRaw,
  encodeWeights,
  type WeightEncodingOptions,
} from '../../../agent/package/encodings.js';
import type { ManifestNode, ManifestTensor } from '../../../agent/package/manifest.js';
import { type Package, readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { type PackageContent, writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

const keys = generateKeyPairSync('ed25519');
const sign = (content: PackageContent): Package =>
  readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey });
const random = new SeededRandom(44);
const normal = (n: number): Float32Array => Float32Array.from({ length: n }, () => random.normal());
/** Multiples of 2^-4 in [-4, 4]: products with fixed-point weights and their sums stay exact in fp32. */
const dyadic = (n: number): Float32Array =>
  Float32Array.from({ length: n }, () => Math.round(Math.max(-4, Math.min(4, random.normal())) * 16) / 16);

/** Expected native kernel prefix per compressed format of the sample package. */
const KERNELS: Record<string, string> = {
  binary: 'native:binary-weights_conv2d',
  ternary: 'native:ternary_conv2d',
  codebook: 'native:codebook_conv2d',
  sparse: 'native:sparse_conv2d',
  'sparse-codebook': 'native:sparse_conv2d',
  fixed16: 'native:conv2d_f32',
  fixed8: 'native:conv2d_f32',
  xnor: 'native:xnor_conv2d',
  hashed: 'native:hashed_fully_connected',
};

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): number {
  assert.equal(actual.length, expected.length, what);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const error = Math.abs(actual[i]! - e) / Math.max(1, Math.abs(e));
    worst = Math.max(worst, error);
    assert.ok(error <= 1e-5, `${what}[${i}]: native ${actual[i]} vs reference ${e}`);
  }
  return worst;
}

/** The sample package cut down to one of its nodes: graph input = the node's input, output = its output. */
function singleNode(content: PackageContent, node: ManifestNode): PackageContent {
  const constants = new Map([...content.constants].filter(([i]) => node.inputs.includes(i)));
  return {
    constants,
    manifest: {
      ...content.manifest,
      inputs: [{ name: 'x', tensor: node.inputs[0]!, layout: 'NHWC' }],
      outputs: [{ name: 'y', tensor: node.outputs[0]! }],
      nodes: [node],
    },
  };
}

describe('compressed formats on the native kernels', () => {
  const content = samplePackageContent();
  const pkg = sign(content);

  test('every conv2d / fully_connected layer of the sample package runs on a native kernel', () => {
    const native = Model.fromPackage(pkg);
    const reference = Model.fromPackage(pkg, { referenceOnly: true });
    for (const layer of native.layers) {
      if (layer.op !== 'conv2d' && layer.op !== 'fully_connected') continue;
      const prefix = KERNELS[layer.format] ?? `native:${layer.op}_f32`;
      assert.ok(layer.kernel.startsWith(prefix), `${layer.name} (${layer.format}): ${layer.kernel}`);
    }
    assert.ok(reference.layers.every((l) => l.kernel.startsWith('reference:')));
  });

  test('each layer alone: native equals the reference within 1e-5 relative, 1 and 2 threads', () => {
    for (const node of content.manifest.nodes) {
      if (node.op !== 'conv2d' && node.op !== 'fully_connected') continue;
      const one = sign(singleNode(content, node));
      const reference = Model.fromPackage(one, { referenceOnly: true });
      const x = normal(content.manifest.tensors[node.inputs[0]!]!.shape.reduce((a, b) => a * b, 1));
      const expected = reference.run([x])[0]!.data;
      for (const threads of [1, 2]) {
        const native = Model.fromPackage(one, { threads });
        assert.ok(
          native.layers[0]!.kernel.startsWith(KERNELS[node.format] ?? 'native:'),
          `${node.name}: ${native.layers[0]!.kernel}`,
        );
        assertClose(native.run([x])[0]!.data, expected, `${node.name} (${node.format}), ${threads} threads`);
      }
    }
  });

  test('the whole sample network: native equals the reference within 1e-5, batch 1 and 3', () => {
    for (const batch of [1, 3]) {
      const x = normal(batch * 8 * 8 * 3);
      const expected = Model.fromPackage(pkg, { batch, referenceOnly: true }).run([x])[0]!.data;
      assertClose(Model.fromPackage(pkg, { batch }).run([x])[0]!.data, expected, `batch ${batch}`);
    }
  });

  test('fixed16, fixed8 and xnor are bit-exact where the reference is exact', () => {
    // One conv2d per format over [1, 6, 6, 8] with a 3x3 kernel, padding 1; dyadic biases.
    const cases: {
      format: ManifestNode['format'];
      values?: (v: Float32Array) => Float32Array;
      options?: WeightEncodingOptions;
    }[] = [
      { format: 'fixed16', options: { fracBits: 8 } },
      { format: 'fixed8', options: { fracBits: 6 } },
      // alpha = mean |w| = 0.5 exactly: every partial sum of +-0.5 * +-1 is exact.
      { format: 'xnor', values: (v) => v.map((w) => (w < 0 ? -0.5 : 0.5)) },
    ];
    for (const { format, values = (v: Float32Array): Float32Array => v, options } of cases) {
      const tensors: ManifestTensor[] = [
        { name: 'x', dtype: 'f32', shape: [1, 6, 6, 8] },
        { name: 'w', dtype: 'f32', shape: [8, 3, 3, 8] },
        { name: 'b', dtype: 'f32', shape: [8] },
        { name: 'y', dtype: 'f32', shape: [1, 6, 6, 8] },
      ];
      const weights = Float32Array.from(normal(8 * 72), (v) => v * 0.3);
      const constants = new Map<number, EncodedTensor>([
        [1, encodeWeights(format, values(weights), [8, 3, 3, 8], options)],
        [2, encodeRaw(dyadic(8))],
      ]);
      const one = sign({
        constants,
        manifest: {
          ...content.manifest,
          inputs: [{ name: 'x', tensor: 0, layout: 'NHWC' }],
          outputs: [{ name: 'y', tensor: 3 }],
          tensors,
          nodes: [
            {
              name: `conv_${format}`,
              op: 'conv2d',
              format,
              inputs: [0, 1, 2],
              outputs: [3],
              attrs: { pads: [1, 1, 1, 1] },
            },
          ],
        },
      });
      const x = dyadic(6 * 6 * 8);
      const native = Model.fromPackage(one);
      assert.ok(native.layers[0]!.kernel.startsWith(KERNELS[format]!), native.layers[0]!.kernel);
      const expected = Model.fromPackage(one, { referenceOnly: true }).run([x])[0]!.data;
      assert.deepEqual(Array.from(native.run([x])[0]!.data), Array.from(expected), format);
    }
  });

  /** One node over constants 1 (weights, `encoded`) and 2 (bias) in a package of its own; `relu`: an fp32
   * ReLU (clip, min 0) after it, named 'relu'. */
  function oneLayer(
    op: 'conv2d' | 'fully_connected',
    format: ManifestNode['format'],
    shapes: { x: number[]; w: number[]; y: number[] },
    encoded: EncodedTensor,
    attrs: ManifestNode['attrs'] = {},
    relu = false,
  ): Package {
    const reluNode: ManifestNode[] = relu
      ? [{ name: 'relu', op: 'clip', format: 'f32', inputs: [3], outputs: [4], attrs: { min: 0 } }]
      : [];
    return sign({
      constants: new Map<number, EncodedTensor>([
        [1, encoded],
        [2, encodeRaw(normal(shapes.w[0]!))],
      ]),
      manifest: {
        ...content.manifest,
        inputs: [{ name: 'x', tensor: 0, layout: 'NHWC' }],
        outputs: [{ name: 'y', tensor: relu ? 4 : 3 }],
        tensors: [
          { name: 'x', dtype: 'f32', shape: shapes.x },
          { name: 'w', dtype: 'f32', shape: shapes.w },
          { name: 'b', dtype: 'f32', shape: [shapes.w[0]!] },
          { name: 'y', dtype: 'f32', shape: shapes.y },
          ...(relu ? [{ name: 'r', dtype: 'f32' as const, shape: shapes.y }] : []),
        ],
        nodes: [{ name: `${op}_${format}`, op, format, inputs: [0, 1, 2], outputs: [3], attrs }, ...reluNode],
      },
    });
  }

  test('a ReLU after a compressed fp32-activation layer fuses into its clamp; fixed point keeps it', () => {
    const shape = [12, 70];
    const cases: [ManifestNode['format'], EncodedTensor, boolean][] = [
      ['xnor', encodeWeights('xnor', normal(12 * 70), shape), true],
      ['ternary', encodeWeights('ternary', normal(12 * 70), shape), true],
      ['fixed16', encodeWeights('fixed16', dyadic(12 * 70), shape, { fracBits: 12 }), false],
    ];
    for (const [format, encoded, fuses] of cases) {
      const pkg = oneLayer(
        'fully_connected',
        format,
        { x: [3, 70], w: shape, y: [3, 12] },
        encoded,
        {},
        true,
      );
      const model = Model.fromPackage(pkg);
      assert.deepEqual(
        model.compileReport.fused,
        fuses ? [{ node: 'relu', into: `fully_connected_${format}` }] : [],
        format,
      );
      const x = dyadic(3 * 70);
      const out = model.run([x])[0]!.data;
      assert.ok(
        out.every((v) => v >= 0),
        format,
      );
      const expected = Model.fromPackage(pkg, { compile: false, referenceOnly: true }).run([x])[0]!.data;
      assertClose(out, expected, `fully_connected ${format} + relu`);
    }
  });

  test('fully_connected in every compressed format runs natively and matches the reference', () => {
    const shape = [12, 70];
    // [format, the kernel it runs on, the weights as stored (pruned, shared) and the encoder's options]
    const cases: [
      ManifestNode['format'],
      string,
      ((v: Float32Array) => Float32Array)?,
      WeightEncodingOptions?,
    ][] = [
      ['binary', 'native:binary-weights_fully_connected'],
      ['ternary', 'native:ternary_fully_connected'],
      ['xnor', 'native:xnor_fully_connected'],
      ['sparse', 'native:sparse_fully_connected', (v) => v.map((w) => (Math.abs(w) < 0.8 ? 0 : w))],
      [
        'codebook',
        'native:codebook_fully_connected',
        undefined,
        { centroids: Float32Array.of(-1, -0.25, 0.25, 1, 2) },
      ],
      [
        'sparse-codebook',
        'native:sparse_fully_connected',
        (v) => v.map((w) => (Math.abs(w) < 0.8 ? 0 : Math.sign(w) * (Math.abs(w) < 1.2 ? 1 : 1.5))),
        { centroids: Float32Array.of(-1.5, -1, 1, 1.5) },
      ],
      ['fixed16', 'native:fully_connected_f32', undefined, { fracBits: 12 }],
      ['fixed8', 'native:fully_connected_f32', undefined, { fracBits: 5 }],
    ];
    for (const [format, kernel, values = (v: Float32Array): Float32Array => v, options] of cases) {
      const one = oneLayer(
        'fully_connected',
        format,
        { x: [3, 70], w: shape, y: [3, 12] },
        encodeWeights(format, values(normal(12 * 70)), shape, options),
        {
          min: -0.5,
        },
      );
      const native = Model.fromPackage(one);
      assert.ok(native.layers[0]!.kernel.startsWith(kernel), `${format}: ${native.layers[0]!.kernel}`);
      const x = normal(3 * 70);
      const expected = Model.fromPackage(one, { referenceOnly: true }).run([x])[0]!.data;
      assertClose(native.run([x])[0]!.data, expected, `fully_connected ${format}`);
    }
  });

  test('binary-weight, ternary and codebook layers run on the dense fp32 kernels, their expanded weights in the memory report', () => {
    const w = [16, 3, 3, 8];
    const weights = 16 * 3 * 3 * 8;
    const codebook = {
      centroids: Float32Array.of(-1, -0.25, 0.25, 1, 2),
      indices: Uint8Array.from({ length: weights }, (_, i) => (i * 7) % 5),
    };
    const cases: [ManifestNode['format'], WeightEncodingOptions?][] = [
      ['binary'],
      ['ternary'],
      ['codebook', codebook],
    ];
    for (const [format, options] of cases) {
      const encoded = encodeWeights(format, normal(weights), w, options);
      const one = oneLayer('conv2d', format, { x: [1, 6, 6, 8], w, y: [1, 6, 6, 16] }, encoded, {
        pads: [1, 1, 1, 1],
      });
      const model = Model.fromPackage(one);
      // The fp32 operators' microkernels (f32_igemm_..., f32_gemm_...), not the format's own variants.
      assert.match(
        model.layers[0]!.kernel,
        /^native:[\w-]+_conv2d f32_/,
        `${format}: ${model.layers[0]!.kernel}`,
      );
      assert.equal(model.scratchBytes, weights * 4, format);
      // expandWeights: false keeps the format's own kernels on the compressed weights, and nothing extra.
      const compact = Model.fromPackage(one, { expandWeights: false });
      assert.doesNotMatch(compact.layers[0]!.kernel, / f32_/, compact.layers[0]!.kernel);
      assert.equal(compact.scratchBytes, 0);
      const x = normal(6 * 6 * 8);
      assertClose(model.run([x])[0]!.data, compact.run([x])[0]!.data, `${format} expanded vs compact`);
      const reference = Model.fromPackage(one, { referenceOnly: true });
      assert.equal(reference.scratchBytes, 0);
      assertClose(model.run([x])[0]!.data, reference.run([x])[0]!.data, `${format} expanded vs reference`);
      const needed = model.plan.arenaBytes + model.weightBytes + model.scratchBytes;
      assert.throws(
        () => Model.fromPackage(one, { memoryBudgetBytes: needed - 1 }),
        (error: Error) => error.name === 'MemoryBudgetError' && /expanded weights/.test(error.message),
      );
      assert.doesNotThrow(() => Model.fromPackage(one, { memoryBudgetBytes: needed }));
    }
  });

  test('a layer outside what the compressed kernels take (dilation) keeps the reference executor', () => {
    const w = [4, 3, 3, 4];
    const one = oneLayer(
      'conv2d',
      'binary',
      { x: [1, 7, 7, 4], w, y: [1, 3, 3, 4] },
      encodeWeights('binary', normal(144), w),
      {
        dilations: [2, 2],
      },
    );
    const model = Model.fromPackage(one);
    assert.equal(model.layers[0]!.kernel, 'reference:conv2d_binary');
    // The reference executor reads the runtime's fp32 expansion of the weights: it is kept.
    assert.equal(model.heldWeightBytes, Model.fromPackage(one, { referenceOnly: true }).heldWeightBytes);
    assert.equal(model.heldWeightBytes, (144 + 4) * 4);
    const x = normal(7 * 7 * 4);
    assert.deepEqual(
      Array.from(model.run([x])[0]!.data),
      Array.from(Model.fromPackage(one, { referenceOnly: true }).run([x])[0]!.data),
    );
  });

  test('a compressed constant that only native layers read is held once, by the native layer', () => {
    // A hashed fully-connected layer (20 x 300, 750 buckets): its fp32 expansion (constantData) is what the
    // reference reads; the native layer expands its own at load (scratchBytes) and the runtime's is dropped.
    const w = [20, 300];
    const one = oneLayer(
      'fully_connected',
      'hashed',
      { x: [2, 300], w, y: [2, 20] },
      encodeWeights('hashed', normal(6000), w, { hashed: { buckets: 750, seed: 5 } }),
    );
    const bias = 20 * 4;
    const reference = Model.fromPackage(one, { referenceOnly: true, batch: 2 });
    assert.equal(reference.heldWeightBytes, 6000 * 4 + bias);
    assert.equal(reference.scratchBytes, 0);
    const native = Model.fromPackage(one, { batch: 2 });
    assert.match(native.layers[0]!.kernel, /^native:hashed_fully_connected f32_/);
    assert.equal(native.heldWeightBytes, bias);
    assert.equal(native.weightBytes, 6000 * 4 + bias);
    assert.equal(native.scratchBytes, 6000 * 4);
    const compact = Model.fromPackage(one, { batch: 2, expandWeights: false });
    assert.equal(compact.heldWeightBytes + compact.scratchBytes, bias);
    const x = normal(2 * 300);
    const expected = reference.run([x])[0]!.data;
    assertClose(native.run([x])[0]!.data, expected, 'hashed, expanded');
    assertClose(compact.run([x])[0]!.data, expected, 'hashed, on the fly');
    // Node by node (the executors' run, not the plan) reads no dropped constant either.
    assertClose(
      Model.fromPackage(one, { batch: 2, nodeByNode: true }).run([x])[0]!.data,
      expected,
      'node by node',
    );
  });

  test('an xnor layer reads an int8 producer without its dequantize, with the same results', () => {
    // q (int8, scale 0.05, zero point 3) -> dequantize_linear -> xnor layer, against the same layer fed the
    // dequantized fp32 values. Weights +-0.5 (alpha 0.5) and dyadic biases: the reference is exact too.
    const cases: {
      op: 'conv2d' | 'fully_connected';
      x: number[];
      w: number[];
      y: number[];
      attrs: ManifestNode['attrs'];
    }[] = [
      // 32 input channels: the half-word VPOPCNTDQ path; 9 x 11 with padding: interior runs and borders.
      {
        op: 'conv2d',
        x: [1, 9, 11, 32],
        w: [64, 3, 3, 32],
        y: [1, 9, 11, 64],
        attrs: { pads: [1, 1, 1, 1] },
      },
      { op: 'fully_connected', x: [2, 130], w: [21, 130], y: [2, 21], attrs: {} },
    ];
    const zeroPoint = 3;
    for (const c of cases) {
      const n = c.x.reduce((a, b) => a * b, 1);
      const weights = normal(c.w.reduce((a, b) => a * b, 1)).map((v) => (v < 0 ? -0.5 : 0.5));
      const bias = dyadic(c.w[0]!);
      const tensors: ManifestTensor[] = [
        { name: 'x', dtype: 'f32', shape: c.x },
        { name: 'w', dtype: 'f32', shape: c.w },
        { name: 'b', dtype: 'f32', shape: [c.w[0]!] },
        { name: 'y', dtype: 'f32', shape: c.y },
        { name: 'q', dtype: 'i8', shape: c.x, quant: { scale: [0.05], zeroPoint: [zeroPoint] } },
      ];
      const layer: ManifestNode = {
        name: 'layer',
        op: c.op,
        format: 'xnor',
        inputs: [0, 1, 2],
        outputs: [3],
        attrs: c.attrs,
      };
      const dequantize: ManifestNode = {
        name: 'deq',
        op: 'dequantize_linear',
        format: 'int8',
        inputs: [4],
        outputs: [0],
        attrs: {},
      };
      /** The layer fed by graph input `input` (0: x fp32; 4: q int8 through the dequantize). */
      const build = (input: 0 | 4): Package =>
        sign({
          constants: new Map<number, EncodedTensor>([
            [1, encodeWeights('xnor', weights, c.w)],
            [2, encodeRaw(bias)],
          ]),
          manifest: {
            ...content.manifest,
            inputs: [{ name: input === 0 ? 'x' : 'q', tensor: input, layout: 'NHWC' }],
            outputs: [{ name: 'y', tensor: 3 }],
            tensors,
            nodes: input === 0 ? [layer] : [dequantize, layer],
          },
        });
      const fromInt8 = build(4);
      const fromFloat = build(0);
      // Every int8 value, the zero point itself (x = +0: bit 0) among them.
      const q = Int8Array.from({ length: n }, (_, i) =>
        i % 7 === 0 ? zeroPoint : ((i * 37 + 11) % 256) - 128,
      );
      const x = Float32Array.from(q, (v) => 0.05 * (v - zeroPoint));
      const expected = Array.from(Model.fromPackage(fromFloat).run([x])[0]!.data);
      for (const threads of [1, 2]) {
        const native = Model.fromPackage(fromInt8, { threads, batch: c.x[0]! });
        assert.deepEqual(
          native.layers.map((l) => l.op),
          [c.op],
          `${c.op}: the dequantize is fused into the layer`,
        );
        assert.match(native.layers[0]!.kernel, /^native:xnor_/);
        assert.deepEqual(Array.from(native.run([q])[0]!.data), expected, `${c.op}, ${threads} threads`);
      }
      for (const options of [{ referenceOnly: true }, { nodeByNode: true }]) {
        const model = Model.fromPackage(fromInt8, { ...options, batch: c.x[0]! });
        assert.deepEqual(
          Array.from(model.run([q])[0]!.data),
          expected,
          `${c.op}, ${JSON.stringify(options)}`,
        );
      }
    }
  });
});
