// int8 bit planes (package format 1.5): an int8 tensor whose rows are {-a, 0, a} (ternary) or {-a, a}
// (binary) — what int8 quantization makes of trained ternary / binary weights — is stored in the binary /
// ternary layouts, a as the row's alpha, and expanded to int8 at load. The encoder finds such tensors and
// nothing else, the reader gives back the int8 values and refuses magnitudes that are not int8, and such a
// package is stamped 1.5.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';

import { decodeTensor, encodeInt8Planes, encodingAllows, toInt8 } from '../../../agent/package/encodings.js';
import { PackageError } from '../../../agent/package/errors.js';
import { requiredFormatMinor } from '../../../agent/package/manifest.js';
import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import { samplePlanarInt8Content } from '../../../optimize/package/sample-package.js';
import { packageContent, writePackage } from '../../../optimize/package/writer.js';

const ternaryRows = Int8Array.from([
  ...[127, 0, -127, 0, 0, 127, -127, 127, 0, 0, 127, -127, 0, 127, 0, 0, -127, 127, 0, 0],
  ...[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  ...[5, -5, 0, 5, 0, 0, -5, 0, 5, 5, 0, 0, -5, 0, 0, 5, 0, -5, 0, 5],
]);
const shape = [3, 20];

function decoded(bytes: Buffer, kind: 'binary' | 'ternary', dtype: 'i8' | 'f32' = 'i8') {
  return decodeTensor(bytes, 0, { dtype, shape }, { kind }, { section: 1 });
}

describe('int8 bit planes (format 1.5)', () => {
  test('ternary and binary int8 rows are stored as planes and decode to the same int8 values', () => {
    const ternary = encodeInt8Planes(ternaryRows, shape)!;
    assert.equal(ternary.encoding.kind, 'ternary');
    assert.ok(ternary.bytes.length < ternaryRows.length, `${ternary.bytes.length} bytes`);
    assert.deepEqual(toInt8(decoded(ternary.bytes, 'ternary'), ternaryRows.length), ternaryRows);

    const signs = ternaryRows.map((v, i) => (i % 3 === 0 ? -90 : 90));
    const binary = encodeInt8Planes(signs, shape)!;
    assert.equal(binary.encoding.kind, 'binary');
    assert.deepEqual(toInt8(decoded(binary.bytes, 'binary'), signs.length), signs);
  });

  test('anything else stays raw: two magnitudes in a row, -128, planes no smaller than the bytes', () => {
    const twoMagnitudes = Int8Array.from(ternaryRows);
    twoMagnitudes[3] = 64;
    assert.equal(encodeInt8Planes(twoMagnitudes, shape), undefined);
    const minimum = Int8Array.from(ternaryRows.map((v) => (v === 127 ? -128 : v === -127 ? 0 : v)));
    assert.equal(encodeInt8Planes(minimum, shape), undefined);
    // One weight a row: 4 bytes of alpha and 8 of planes against 1 byte.
    assert.equal(encodeInt8Planes(Int8Array.of(127, -127, 0), [3, 1]), undefined);
  });

  test('an int8 plane whose magnitude is not an int8 value is refused', () => {
    const ternary = encodeInt8Planes(ternaryRows, shape)!;
    for (const alpha of [127.5, 128, -1, Number.NaN]) {
      const bytes = Buffer.from(ternary.bytes);
      bytes.writeFloatLE(alpha, 4);
      assert.throws(
        () => decoded(bytes, 'ternary'),
        (e: unknown) =>
          e instanceof PackageError &&
          e.code === 'bad-weights' &&
          /row 1's magnitude .* is not an integer in \[0, 127\]/.test(e.message),
      );
      // The same planes of an fp32 tensor take any alpha (BinaryConnect / TWN on fp32 activations).
      assert.equal(decoded(bytes, 'ternary', 'f32').kind, 'ternary');
    }
    assert.ok(encodingAllows({ kind: 'ternary' }, 'i8') && encodingAllows({ kind: 'binary' }, 'i8'));
    assert.ok(!encodingAllows({ kind: 'xnor' }, 'i8') && !encodingAllows({ kind: 'ternary' }, 'i32'));
  });

  test('an int8 layer with planar weights: stamped 1.5, round trip, the same outputs as its raw twin', () => {
    const build = (planes: boolean): Buffer => writePackage(samplePlanarInt8Content(planes), keys.privateKey);
    const keys = generateKeyPairSync('ed25519');
    const read = (bytes: Buffer) => readPackage(bytes, { publicKey: keys.publicKey, cpuFamily: null });
    const planar = read(build(true));
    const raw = read(build(false));
    const w = planar.manifest.tensors.findIndex((t) => t.name === 'w');
    assert.equal(planar.manifest.tensors[w]!.encoding?.kind, 'ternary');
    assert.equal(planar.header.minor, 5);
    assert.equal(requiredFormatMinor(raw.manifest), 0);
    assert.ok(writePackage(packageContent(planar), keys.privateKey).equals(build(true)));
    const input = Float32Array.from({ length: 20 }, (_, i) => ((i * 7) % 11) / 10 - 0.4);
    const [a] = Model.fromPackage(planar).run([input]);
    const [b] = Model.fromPackage(raw).run([input]);
    assert.deepEqual(Array.from(a!.data), Array.from(b!.data));
  });
});
