// The native resize (native/src: whittle_resize_nearest, the fp32 and int8 bilinear kernels) against the
// reference executor (agent/runtime/ops/resize.ts) over every coordinate transformation and nearest rounding,
// up- and down-sampling, 1 to 40 channels, fp32 / int8 / uint8: fp32 within 1e-5, integers bit for bit. And the
// native transpose (the channel-shuffle kernel) on the permutations that swap two blocks of axes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { ManifestNode, NumberFormat } from '../../../agent/package/manifest.js';
import type { PrepareContext } from '../../../agent/runtime/executor.js';
import { blockSwap, nativeAvailable } from '../../../agent/runtime/native-executors.js';
import { EXECUTORS, OPS } from '../../../agent/runtime/ops/index.js';
import { COORDINATE_MODES, NEAREST_MODES } from '../../../agent/runtime/ops/resize.js';
import { allocate, elements, type TensorData, type TensorSpec } from '../../../agent/runtime/tensor.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

const random = new SeededRandom(1414);
const skip = nativeAvailable() ? false : 'the native addon is not built for this machine';

/** Runs `op` on x with the reference and the native executor of its (op, format) pair; undefined when the
 * native factory refuses the node. */
function both(op: 'resize' | 'transpose', attrs: ManifestNode['attrs'], x: TensorSpec, data: TensorData) {
  const format: NumberFormat = x.dtype === 'f32' ? 'f32' : 'int8';
  const entry = EXECUTORS.find((e) => e.op === op && e.format === format)!;
  const node: ManifestNode = { name: op, op, format, inputs: [0], outputs: [1], attrs };
  const outputs = OPS[op]!.infer(node, [x], [x]);
  const context: PrepareContext = { node, format, inputs: [x], outputs, constants: [undefined] };
  const native = entry.native!(context);
  if (native === undefined) return undefined;
  const expected = allocate(outputs[0]!.dtype, elements(outputs[0]!.shape));
  const actual = allocate(outputs[0]!.dtype, elements(outputs[0]!.shape));
  entry.reference(context).run([data], [expected]);
  native.run([data], [actual]);
  return { kernel: native.kernel, expected, actual };
}

function randomData(spec: TensorSpec): TensorData {
  const n = elements(spec.shape);
  if (spec.dtype === 'f32') return Float32Array.from({ length: n }, () => random.normal());
  if (spec.dtype === 'i8') return Int8Array.from({ length: n }, () => random.int(-128, 127));
  return Uint8Array.from({ length: n }, () => random.int(0, 255));
}

function assertAgree(actual: TensorData, expected: TensorData, what: string): void {
  for (let i = 0; i < expected.length; i++) {
    if (expected instanceof Float32Array) {
      const error = Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!));
      assert.ok(error <= 1e-5, `${what} [${i}]: native ${actual[i]} vs reference ${expected[i]}`);
    } else
      assert.equal(actual[i], expected[i], `${what} [${i}]: native ${actual[i]} vs reference ${expected[i]}`);
  }
}

const spec = (dtype: 'f32' | 'i8' | 'u8', shape: number[]): TensorSpec =>
  dtype === 'f32'
    ? { dtype, shape }
    : { dtype, shape, quant: { scale: [0.05], zeroPoint: [dtype === 'i8' ? 3 : 120] } };

// [input N, H, W] -> output sizes (up, down, mixed, one row) or scales.
const GEOMETRIES: {
  input: [number, number, number];
  out: { sizes?: [number, number]; scales?: [number, number] };
}[] = [
  { input: [1, 4, 5], out: { scales: [2, 2] } },
  { input: [2, 3, 3], out: { sizes: [7, 5] } },
  { input: [1, 9, 8], out: { sizes: [4, 3] } },
  { input: [1, 5, 6], out: { sizes: [10, 2] } },
  { input: [1, 1, 4], out: { sizes: [3, 4] } },
];
const CHANNELS = [1, 3, 8, 17, 40];

function resizeAttrs(g: (typeof GEOMETRIES)[number], channels: number, extra: ManifestNode['attrs']) {
  return g.out.sizes
    ? { sizes: [g.input[0], g.out.sizes[0], g.out.sizes[1], channels], ...extra }
    : { scales: [1, g.out.scales![0], g.out.scales![1], 1], ...extra };
}

describe('native resize', () => {
  const modes: ManifestNode['attrs'][] = [
    ...COORDINATE_MODES.flatMap((c) =>
      NEAREST_MODES.map((n) => ({ mode: 'nearest', coordinate_transformation_mode: c, nearest_mode: n })),
    ),
    ...COORDINATE_MODES.map((c) => ({ mode: 'linear', coordinate_transformation_mode: c })),
  ];
  for (const dtype of ['f32', 'i8', 'u8'] as const) {
    test(
      `${dtype}: every mode, up- and down-sampling, 1 to 40 channels, agrees with the reference`,
      { skip },
      () => {
        let blended = 0;
        for (const attrs of modes) {
          for (const g of GEOMETRIES) {
            for (const channels of CHANNELS) {
              const x = spec(dtype, [...g.input, channels]);
              const what = `${dtype} ${JSON.stringify(attrs)} ${x.shape.join('x')} ${JSON.stringify(g.out)}`;
              const r = both('resize', resizeAttrs(g, channels, attrs), x, randomData(x));
              if (r === undefined) {
                // tf_half_pixel_for_nn (made for nearest) puts every unscaled axis half a step on: rounded up,
                // channel c reads c + 1; linear, it blends c and c + 1. Not a 2-D resize: the reference keeps it.
                assert.ok(
                  attrs.coordinate_transformation_mode === 'tf_half_pixel_for_nn' &&
                    (attrs.mode === 'linear' ||
                      attrs.nearest_mode === 'ceil' ||
                      attrs.nearest_mode === 'round_prefer_ceil') &&
                    (channels > 1 || g.input[0] > 1),
                  `${what}: the native factory refused it`,
                );
                continue;
              }
              assert.match(
                r.kernel,
                attrs.mode === 'linear' ? /native:resize_bilinear/ : /native:resize_nearest/,
              );
              assertAgree(r.actual, r.expected, what);
              if (attrs.mode === 'linear' && r.expected.some((v) => !Number.isInteger(v))) blended++;
            }
          }
        }
        // The bilinear cases blend: the fp32 outputs are not copies of input values.
        if (dtype === 'f32') assert.ok(blended > 0);
      },
    );
  }

  test('int8 halves round up (JavaScript Math.round) in both executors', { skip }, () => {
    // A column of two rows upsampled 2x with align_corners: the middle of the 3 rows is the halfway point.
    for (const [a, b, mid] of [
      [1, 2, 2],
      [-2, -1, -1],
      [-3, 4, 1],
    ] as const) {
      const x = spec('i8', [1, 2, 1, 1]);
      const attrs = { sizes: [1, 3, 1, 1], mode: 'linear', coordinate_transformation_mode: 'align_corners' };
      const r = both('resize', attrs, x, Int8Array.of(a, b))!;
      assert.deepEqual([...r.expected], [a, mid, b]);
      assert.deepEqual([...r.actual], [a, mid, b]);
    }
  });

  test('NCHW (the resized axes last, channels folded into the batch) runs natively too', { skip }, () => {
    for (const dtype of ['f32', 'i8'] as const) {
      const x = spec(dtype, [2, 5, 4, 6]);
      const r = both('resize', { sizes: [2, 5, 9, 13], mode: 'linear' }, x, randomData(x))!;
      assertAgree(r.actual, r.expected, `${dtype} NCHW`);
    }
  });

  test('a resize of three axes, or of two apart, keeps the reference', { skip }, () => {
    const x = spec('f32', [1, 4, 4, 3]);
    assert.equal(both('resize', { scales: [1, 2, 2, 2], mode: 'nearest' }, x, randomData(x)), undefined);
    assert.equal(both('resize', { scales: [1, 2, 1, 2], mode: 'nearest' }, x, randomData(x)), undefined);
  });
});

describe('native transpose', () => {
  test('block swaps run on the channel-shuffle kernel and agree with the reference', { skip }, () => {
    const cases: [number[], number[]][] = [
      [
        [2, 3, 4, 5],
        [0, 3, 1, 2],
      ], // NHWC -> NCHW
      [
        [2, 3, 4, 5],
        [0, 2, 3, 1],
      ], // NCHW -> NHWC
      [
        [1, 6, 7, 21],
        [0, 3, 1, 2],
      ], // a segmentation output, batch 1
      [
        [6, 7],
        [1, 0],
      ],
      [
        [3, 1, 5],
        [1, 0, 2],
      ], // only a size-1 axis moves: a copy
      [
        [2, 3, 4],
        [0, 1, 2],
      ],
    ];
    for (const dtype of ['f32', 'i8', 'u8'] as const) {
      for (const [shape, perm] of cases) {
        const x = spec(dtype, shape);
        const r = both('transpose', { perm }, x, randomData(x));
        assert.ok(r, `${dtype} ${shape.join('x')} perm ${perm.join(',')}: refused`);
        assertAgree(r.actual, r.expected, `${dtype} ${shape.join('x')} perm ${perm.join(',')}`);
      }
    }
  });

  test('other permutations keep the reference', () => {
    assert.equal(blockSwap([2, 3, 4], [2, 0, 1]) !== undefined, true); // [A][B] -> [B][A] with A = 2x3
    assert.equal(blockSwap([2, 3, 4], [1, 0, 2]), undefined);
    assert.equal(blockSwap([2, 3, 4, 5], [3, 1, 2, 0]), undefined);
    assert.deepEqual(blockSwap([2, 3, 4, 5], [0, 3, 1, 2]), { rows: 2, groups: 12, groupChannels: 5 });
  });
});
