// encodeWeights, the one function that stores a weight tensor in a number format: every format's section
// decodes to the encoding of that format and gives back the values it can hold exactly, and a call that
// lacks what a format needs is refused with an EncodingError that names it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  decodeTensor,
  encodeWeights,
  EncodingError,
  toFloat32,
  type WeightEncodingOptions,
} from '../../../agent/package/encodings.js';
import { NUMBER_FORMATS, type NumberFormat } from '../../../agent/package/number-formats.js';

const shape = [2, 4];
// Exactly representable by every format below: +-0.5 (binary, xnor, ternary: alpha 0.5), multiples of 2^-4
// (fixed point), centroids (codebook), zeros where pruned (sparse, sparse-codebook).
const signs = Float32Array.of(0.5, -0.5, -0.5, 0.5, 0.5, 0.5, -0.5, -0.5);
const pruned = Float32Array.of(0.5, 0, 0, -0.5, 0, 0.5, 0, -0.5);
const centroids = Float32Array.of(-0.5, 0, 0.5);

const cases: Record<Exclude<NumberFormat, 'int8' | 'hashed'>, [Float32Array, WeightEncodingOptions?]> = {
  f32: [Float32Array.of(0.1, -2, 3.5, 0, 1e-3, 7, -7, 0.25)],
  fixed16: [Float32Array.of(0.0625, -2, 3.5, 0, 1, 7, -7, 0.25), { fracBits: 8 }],
  fixed8: [Float32Array.of(0.0625, -2, 3.5, 0, 1, 1.5, -1.5, 0.25), { fracBits: 4 }],
  binary: [signs],
  xnor: [signs],
  ternary: [pruned],
  sparse: [pruned],
  codebook: [pruned, { centroids }],
  'sparse-codebook': [pruned, { centroids }],
};

describe('encodeWeights', () => {
  test('every fp32-valued format round-trips the values it holds exactly, in its own encoding', () => {
    for (const [format, [values, options]] of Object.entries(cases)) {
      const encoded = encodeWeights(format as NumberFormat, values, shape, options);
      assert.equal(encoded.encoding.kind, format === 'f32' ? 'raw' : format);
      const decoded = decodeTensor(encoded.bytes, 0, { dtype: 'f32', shape }, encoded.encoding, {});
      assert.deepEqual(Array.from(toFloat32(decoded, 8)), Array.from(values), format);
    }
  });

  test('codebook indices default to the nearest centroid; given ones are kept', () => {
    const values = Float32Array.of(0.4, -0.3, 0.1, -0.1, 0.26, 0.24, -0.6, 9);
    const nearest = encodeWeights('codebook', values, shape, { centroids });
    const decode = (e: typeof nearest): number[] =>
      Array.from(toFloat32(decodeTensor(e.bytes, 0, { dtype: 'f32', shape }, e.encoding, {}), 8));
    assert.deepEqual(decode(nearest), [0.5, -0.5, 0, 0, 0.5, 0, -0.5, 0.5]);
    const indices = Uint8Array.of(0, 0, 1, 1, 2, 2, 0, 1);
    assert.deepEqual(
      decode(encodeWeights('codebook', values, shape, { centroids, indices })),
      [-0.5, -0.5, 0, 0, 0.5, 0.5, -0.5, 0],
    );
  });

  test('int8 is stored raw from int8 values; hashed takes its buckets and seed', () => {
    const q = Int8Array.of(1, -2, 3, -4, 5, -6, 7, -8);
    const int8 = encodeWeights('int8', q, shape);
    assert.equal(int8.encoding.kind, 'raw');
    assert.deepEqual(Array.from(new Int8Array(int8.bytes.buffer, int8.bytes.byteOffset, 8)), Array.from(q));
    const hashed = encodeWeights('hashed', signs, shape, { hashed: { buckets: 3, seed: 9 } });
    assert.deepEqual(hashed.encoding, { kind: 'hashed', buckets: 3, seed: 9 });
    assert.equal(hashed.bytes.length, 3 * 4);
  });

  test('every number format is covered by a case above', () => {
    assert.deepEqual(
      [...NUMBER_FORMATS].sort(),
      [...Object.keys(cases), 'int8', 'hashed'].sort(),
      'a new format needs a case in encodeWeights and here',
    );
  });

  test('refuses a call that lacks what its format needs, naming it', () => {
    const refused = (fn: () => unknown, pattern: RegExp): void => {
      assert.throws(fn, (error: unknown) => {
        assert.ok(error instanceof EncodingError, String(error));
        assert.equal(error.code, 'bad-encoder-input');
        assert.match(error.message, pattern);
        return true;
      });
    };
    refused(() => encodeWeights('fixed16', signs, shape), /fixed16 weights need fracBits/);
    refused(() => encodeWeights('codebook', signs, shape), /codebook weights need centroids/);
    refused(() => encodeWeights('sparse-codebook', pruned, shape), /sparse-codebook weights need centroids/);
    refused(() => encodeWeights('hashed', signs, shape), /hashed weights need hashed buckets and seed/);
    refused(() => encodeWeights('int8', signs, shape), /int8 weights take Int8Array values/);
    refused(() => encodeWeights('binary', Int8Array.of(1, 2), shape), /binary weights take Float32Array/);
    refused(
      () => encodeWeights('codebook', signs, shape, { centroids: new Float32Array(0) }),
      /1 to 256 centroids, not 0/,
    );
  });
});
