// The sparse-codebook encoding (package format 1.2): a pruned and shared tensor stored as both, with
// Huffman-coded relative-index gaps and cluster indices. It round-trips exactly, beats both single encodings
// on a Deep Compression layer, refuses bad encoder input and every kind of hostile section with a typed
// error, and the format's version rules keep old packages readable.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  type DecodedTensor,
  decodeTensor,
  encodeCodebook,
  encodeDecoded,
  encodeRaw,
  encodeSparse,
  encodeSparseCodebook,
  type Encoding,
  EncodingError,
  toFloat32,
} from '../../../agent/package/encodings.js';
import { PackageError } from '../../../agent/package/errors.js';
import { TRAILER_SIZE } from '../../../agent/package/layout.js';
import { readPackage } from '../../../agent/package/reader.js';
import { packageRoot } from '../../../agent/package-root.js';
import { Model } from '../../../agent/runtime/model.js';
import { resign } from '../../../bench/fuzz.js';
import { prunedShared } from '../../../bench/sparse-codebook-sizes.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { bundledSigningKey, packageContent, writePackage } from '../../../optimize/package/writer.js';

type SparseCodebookEncoding = Extract<Encoding, { kind: 'sparse-codebook' }>;

const decode = (bytes: Buffer, shape: number[], encoding: Encoding): DecodedTensor =>
  decodeTensor(bytes, 0, { dtype: 'f32', shape }, encoding, { layer: 'w' });

function refusedWeights(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof PackageError, `expected a PackageError, got ${String(error)}`);
    assert.equal(error.code, 'bad-weights', error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('sparse-codebook encoding', () => {
  test('round-trips exactly at every gap width, fillers included, and re-encodes byte for byte', () => {
    const shape = [12, 50];
    const { values, centroids } = prunedShared(600, 0.9, 16, 3);
    // Long runs of zeros (a whole empty row, a gap across a row boundary) need fillers at narrow widths.
    values.fill(0, 100, 260);
    for (let gapBits = 1; gapBits <= 8; gapBits++) {
      const encoded = encodeSparseCodebook(values, shape, centroids, { gapBits });
      const e = encoded.encoding as SparseCodebookEncoding;
      assert.equal(e.nnz, values.filter((v) => v !== 0).length);
      if (gapBits <= 4) assert.ok(e.gaps > e.nnz, `${gapBits}-bit gaps need fillers`);
      const decoded = decode(encoded.bytes, shape, encoded.encoding);
      assert.deepEqual(toFloat32(decoded, 600), values);
      const again = encodeDecoded(decoded);
      assert.deepEqual(again.encoding, encoded.encoding);
      assert.ok(again.bytes.equals(encoded.bytes), `${gapBits}-bit gaps: bytes differ`);
    }
    // An empty tensor and one of zeros only.
    for (const empty of [new Float32Array(0), new Float32Array(8)]) {
      const s = empty.length === 0 ? [0, 4] : [2, 4];
      const encoded = encodeSparseCodebook(empty, s, centroids);
      assert.deepEqual(toFloat32(decode(encoded.bytes, s, encoded.encoding), empty.length), empty);
    }
  });

  test('at 90 % sparsity and 16-32 clusters it is smaller than sparse or codebook alone', () => {
    // LeNet-300-100's first layer (300 x 784) and LeNet-5's second conv (16 x 5 x 5 x 6).
    for (const [shape, clusters] of [
      [[300, 784], 32],
      [[16, 5, 5, 6], 16],
    ] as const) {
      const n = shape.reduce((a, b) => a * b, 1);
      const { values, centroids } = prunedShared(n, 0.9, clusters, 5);
      const both = encodeSparseCodebook(values, shape, centroids).bytes.length;
      const sparse = encodeSparse(values, shape).bytes.length;
      const indices = Uint8Array.from(values, (v) => (v === 0 ? clusters : centroids.indexOf(v)));
      const codebook = encodeCodebook(Float32Array.from([...centroids, 0]), indices).bytes.length;
      assert.ok(
        both < sparse / 5 && both < 0.75 * codebook,
        `${shape.join('x')}: ${both} vs ${sparse}, ${codebook}`,
      );
      // Huffman-coded gaps and indices: about 1 bit per weight (fp32 is 32), under 0.15 byte per weight.
      assert.ok(both / n < 0.15, `${shape.join('x')}: ${(both / n).toFixed(3)} bytes per weight`);
    }
  });

  test('refuses values that are not pruned or shared, and bad options, with an EncodingError', () => {
    const centroids = Float32Array.of(-0.5, 0.5);
    const refused = (fn: () => unknown, pattern: RegExp) =>
      assert.throws(fn, (error: unknown) => error instanceof EncodingError && pattern.test(error.message));
    refused(() => encodeSparseCodebook(Float32Array.of(0, 0.5, 0.25), [3], centroids), /element 2 is 0.25/);
    refused(() => encodeSparseCodebook(Float32Array.of(0.5), [2], centroids), /1 values for shape \[2\]/);
    refused(() => encodeSparseCodebook(Float32Array.of(0.5), [1], new Float32Array(0)), /0 centroids/);
    refused(() => encodeSparseCodebook(Float32Array.of(0.5), [1], new Float32Array(257)), /257 centroids/);
    for (const gapBits of [0, 9, 2.5])
      refused(() => encodeSparseCodebook(Float32Array.of(0.5), [1], centroids, { gapBits }), /gapBits/);
  });

  describe('hostile sections are refused with bad-weights', () => {
    const shape = [4, 40];
    const { values, centroids } = prunedShared(160, 0.85, 4, 9);
    const { bytes, encoding } = encodeSparseCodebook(values, shape, centroids, { gapBits: 3 });
    const e = encoding as SparseCodebookEncoding;
    const streams = 5 * e.size + 2 ** e.gapBits;
    const gapStart = streams + e.indexStreamBytes;
    const withParams = (change: Partial<SparseCodebookEncoding>) => ({ ...e, ...change });

    test('counts the streams do not bear out', () => {
      refusedWeights(() => decode(bytes, shape, withParams({ nnz: e.nnz + 1 })), /Huffman|nonzeros/);
      refusedWeights(() => decode(bytes, shape, withParams({ nnz: e.nnz - 1 })), /Huffman|nonzeros/);
      refusedWeights(() => decode(bytes, shape, withParams({ gaps: e.gaps - 1 })), /Huffman|places/);
      refusedWeights(() => decode(bytes, shape, withParams({ nnz: 161 })), /161 nonzeros in 160 elements/);
      refusedWeights(() => decode(bytes, shape, withParams({ gaps: e.nnz - 1, nnz: e.nnz })), /cannot place/);
      refusedWeights(
        () => decode(bytes, shape, withParams({ gaps: 8 * e.gapStreamBytes + 1 })),
        /cannot hold/,
      );
    });

    test('a truncated or overlong Huffman stream', () => {
      // The index stream one byte shorter (the byte moves to the gap stream) and the other way round.
      refusedWeights(
        () =>
          decode(
            bytes,
            shape,
            withParams({ indexStreamBytes: e.indexStreamBytes - 1, gapStreamBytes: e.gapStreamBytes + 1 }),
          ),
        /Huffman stream/,
      );
      refusedWeights(
        () =>
          decode(
            bytes,
            shape,
            withParams({ indexStreamBytes: e.indexStreamBytes + 1, gapStreamBytes: e.gapStreamBytes - 1 }),
          ),
        /Huffman stream/,
      );
    });

    test('a gap that runs past the tensor, a trailing filler, an index past the codebook', () => {
      // All gaps Huffman-coded with a flat 3-bit code: symbol 6 (skip 6) forty times runs past 160 elements.
      const flat = (symbols: number[], nnz: number) => {
        const lengths = Buffer.alloc(8, 3);
        const stream = Buffer.alloc(Math.ceil((3 * symbols.length) / 8));
        symbols.forEach((s, i) => {
          for (let b = 0; b < 3; b++)
            if ((s >> (2 - b)) & 1) stream[(3 * i + b) >> 3]! |= 0x80 >> ((3 * i + b) & 7);
        });
        const indexLengths = Buffer.from([1, 0, 0, 0]); // one symbol: index 0, one bit each
        const indexStream = Buffer.alloc(Math.ceil(nnz / 8));
        const section = Buffer.concat([
          Buffer.from(centroids.buffer),
          indexLengths,
          lengths,
          indexStream,
          stream,
        ]);
        const params: SparseCodebookEncoding = {
          kind: 'sparse-codebook',
          size: 4,
          gapBits: 3,
          nnz,
          gaps: symbols.length,
          indexStreamBytes: indexStream.length,
          gapStreamBytes: stream.length,
        };
        return () => decode(section, shape, params);
      };
      assert.doesNotThrow(flat([6, 6, 7, 0], 3));
      refusedWeights(flat(new Array<number>(40).fill(6), 40), /past the 160 elements/);
      refusedWeights(flat([6, 7], 1), /ends with a filler/);
      refusedWeights(flat([7, 7, 7], 0), /ends with a filler/);
      // A gap stream with more nonzeros than nnz.
      refusedWeights(flat([0, 0, 0], 2), /more than the 2 nonzeros/);
      // An index >= the codebook size cannot be coded: the code lengths cover `size` symbols only, so the
      // bytes that would code index 4 are another (here invalid) code.
      const damaged = Buffer.from(bytes);
      damaged.fill(0xff, gapStart - e.indexStreamBytes, gapStart);
      refusedWeights(() => decode(damaged, shape, withParams({})), /Huffman/);
    });
  });

  describe('package format 1.2', () => {
    const keys = generateKeyPairSync('ed25519');

    test('a package with a sparse-codebook tensor is stamped 1.2, one without keeps its old minor', () => {
      const sample = samplePackageContent();
      assert.equal(writePackage(sample, keys.privateKey).readUInt16LE(10), 2);
      // The same network with conv9's weights stored raw (fp32): nothing of 1.1 or 1.2 left.
      const index = sample.manifest.tensors.findIndex((t) => t.name === 'conv9.weight');
      const conv9 = toFloat32(
        readPackage(writePackage(sample, keys.privateKey), { publicKey: keys.publicKey }).constants[index]!,
        576,
      );
      const constants = new Map(sample.constants).set(index, encodeRaw(conv9));
      const nodes = sample.manifest.nodes.map((n) =>
        n.name === 'conv9' ? { ...n, format: 'f32' as const } : n,
      );
      const plain = writePackage({ constants, manifest: { ...sample.manifest, nodes } }, keys.privateKey);
      assert.equal(plain.readUInt16LE(10), 0);
      assert.equal(readPackage(plain, { publicKey: keys.publicKey }).header.minor, 0);
    });

    test('a 1.2 package whose header says 1.1 is refused', () => {
      const bytes = Buffer.from(writePackage(samplePackageContent(), keys.privateKey));
      bytes.writeUInt16LE(1, 10);
      const resigned = resign(bytes.subarray(0, bytes.length - TRAILER_SIZE), keys.privateKey);
      assert.throws(
        () => readPackage(resigned, { publicKey: keys.publicKey }),
        (error: unknown) =>
          error instanceof PackageError && error.code === 'bad-header' && /1\.2 features/.test(error.message),
      );
    });

    test('a format 1.0 package written by the previous writer (987719a) still reads, runs and rewrites', () => {
      const path = join(packageRoot(), 'test/agent/package/fixtures/sample-format-1.0.whittle');
      const old = readFileSync(path);
      const pkg = readPackage(old, { allowUnsigned: true, cpuFamily: null });
      assert.equal(pkg.header.minor, 0);
      const kinds = new Set(pkg.constants.flatMap((c) => (c ? [c.kind] : [])));
      assert.equal(kinds.size, 9);
      assert.ok(!kinds.has('sparse-codebook'));
      const [probabilities] = Model.fromPackage(pkg).run([new Float32Array(8 * 8 * 3).fill(0.5)]);
      assert.ok(Math.abs(Array.from(probabilities!.data).reduce((a, b) => a + b, 0) - 1) < 1e-5);
      assert.ok(writePackage(packageContent(pkg), bundledSigningKey()).equals(old), 'rewrite differs');
    });
  });
});
