// The package format end to end: a package written by optimize/ reads back bit for bit on the agent side,
// and every kind of damage (a changed byte anywhere, the wrong key, truncation, another CPU family) is
// refused with its own PackageError code before anything is loaded.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';

import { encodeDecoded, toFloat32 } from '../../../agent/package/encodings.js';
import { PackageError } from '../../../agent/package/errors.js';
import { readPackage } from '../../../agent/package/reader.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { packageContent, writePackage } from '../../../optimize/package/writer.js';

const keys = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const content = samplePackageContent();
const bytes = writePackage(content, keys.privateKey);

function refused(fn: () => unknown, code: PackageError['code']): PackageError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof PackageError, `expected a PackageError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a refusal with code ${code}`);
}

describe('package round trip', () => {
  test('reads back the manifest and every encoding, and rewrites to identical bytes', () => {
    const pkg = readPackage(bytes, { publicKey: keys.publicKey });
    assert.equal(pkg.signature, 'verified');
    assert.equal(pkg.manifest.model.id, 'sample-cnn');
    const kinds = new Set(pkg.constants.filter((c) => c !== undefined).map((c) => c.kind));
    assert.deepEqual([...kinds].sort(), [
      'binary',
      'codebook',
      'fixed16',
      'fixed8',
      'hashed',
      'raw',
      'sparse',
      'sparse-codebook',
      'ternary',
      'xnor',
    ]);
    for (const [index, encoded] of content.constants) {
      const decoded = pkg.constants[index];
      assert.ok(decoded !== undefined);
      const again = encodeDecoded(decoded);
      assert.deepEqual(again.encoding, encoded.encoding);
      assert.ok(again.bytes.equals(encoded.bytes), `tensor ${index} bytes differ`);
    }
    const rewritten = writePackage(packageContent(pkg), keys.privateKey);
    assert.ok(rewritten.equals(bytes), 'rewritten package differs');
  });

  test('decoded compressed weights expand to the values the encoders meant', () => {
    const pkg = readPackage(bytes, { publicKey: keys.publicKey });
    const byName = (name: string): number => pkg.manifest.tensors.findIndex((t) => t.name === name);
    const binary = toFloat32(pkg.constants[byName('conv2.weight')]!, 8 * 3 * 3 * 4);
    // Every row is +-alpha.
    for (let r = 0; r < 8; r++) {
      const row = binary.subarray(r * 36, (r + 1) * 36);
      assert.equal(new Set(Array.from(row, Math.abs)).size, 1);
    }
    const codebook = toFloat32(pkg.constants[byName('conv4.weight')]!, 72);
    for (const v of codebook) assert.ok([-0.4, -0.1, 0.1, 0.4].some((c) => Math.fround(c) === v));
    const fixed = toFloat32(pkg.constants[byName('conv6.weight')]!, 64);
    for (const v of fixed) assert.equal(Math.round(v * 4096), v * 4096);
  });
});

describe('package refusals', () => {
  test('a changed byte anywhere in the file is refused', () => {
    // Every byte of a small package; each flip must be refused (hash, signature, key id or trailer checks).
    for (let offset = 0; offset < bytes.length; offset++) {
      const damaged = Buffer.from(bytes);
      damaged[offset]! ^= 0x01;
      assert.throws(
        () => readPackage(damaged, { publicKey: keys.publicKey }),
        (error: unknown) => error instanceof PackageError,
        `byte ${offset} changed but the package was accepted`,
      );
    }
  });

  test('content changes are reported as a hash mismatch at the trailer', () => {
    const damaged = Buffer.from(bytes);
    damaged[200]! ^= 0xff;
    const error = refused(() => readPackage(damaged, { publicKey: keys.publicKey }), 'hash-mismatch');
    assert.match(error.message, /SHA-256/);
  });

  test('a package signed by another key is refused, naming both keys', () => {
    const error = refused(() => readPackage(bytes, { publicKey: other.publicKey }), 'wrong-key');
    assert.match(error.message, /signed by key [0-9a-f]{32}, not by the trusted key [0-9a-f]{32}/);
    // A forged signature under the right key id: the signature check itself refuses it.
    const forged = writePackage(content, other.privateKey);
    const trusted = writePackage(content, keys.privateKey);
    trusted
      .subarray(trusted.length - 128 + 48, trusted.length - 128 + 64)
      .copy(forged, forged.length - 128 + 48);
    refused(() => readPackage(forged, { publicKey: keys.publicKey }), 'bad-signature');
  });

  test('no key and no allowUnsigned is refused; allowUnsigned still checks the hash', () => {
    refused(() => readPackage(bytes), 'wrong-key');
    assert.equal(readPackage(bytes, { allowUnsigned: true }).signature, 'unchecked');
  });

  test('every truncation is refused as truncated or damaged', () => {
    for (const length of [
      0,
      10,
      63,
      64,
      191,
      192,
      bytes.length - 129,
      bytes.length - 128,
      bytes.length - 1,
    ]) {
      const error = refused(
        () => readPackage(bytes.subarray(0, length), { publicKey: keys.publicKey }),
        'truncated',
      );
      assert.match(error.message, /bytes/);
    }
  });

  test('a package for another CPU family is refused before any tensor is decoded', () => {
    const { manifest, constants } = samplePackageContent();
    const armOnly = writePackage(
      { manifest: { ...manifest, target: { deviceClass: 'rpi4', cpuFamily: 'aarch64' } }, constants },
      keys.privateKey,
    );
    const error = refused(
      () => readPackage(armOnly, { publicKey: keys.publicKey, cpuFamily: 'x86_64' }),
      'wrong-cpu-family',
    );
    assert.match(error.message, /built for aarch64 \(rpi4\), this device is x86_64/);
    assert.equal(
      readPackage(armOnly, { publicKey: keys.publicKey, cpuFamily: 'aarch64' }).manifest.target.cpuFamily,
      'aarch64',
    );
  });

  test('a manifest whose sizes disagree with its section is refused naming the section', () => {
    const { manifest, constants } = samplePackageContent();
    const tensors = manifest.tensors.map((t) =>
      t.name === 'conv1.weight' ? { ...t, shape: [4, 3, 3, 2] } : t,
    );
    const index = manifest.tensors.findIndex((t) => t.name === 'conv1.weight');
    const bad = writePackage({ manifest: { ...manifest, tensors }, constants }, keys.privateKey);
    const error = refused(() => readPackage(bad, { publicKey: keys.publicKey }), 'bad-section');
    assert.match(error.message, /conv1\.weight/);
    assert.ok(error.location.section !== undefined && error.location.section > 0, String(index));
  });

  test('a graph that uses a tensor before it is produced is refused naming the layer', () => {
    const { manifest, constants } = samplePackageContent();
    const nodes = [...manifest.nodes];
    [nodes[0], nodes[1]] = [nodes[1]!, nodes[0]!];
    const bad = writePackage({ manifest: { ...manifest, nodes }, constants }, keys.privateKey);
    const error = refused(() => readPackage(bad, { publicKey: keys.publicKey }), 'bad-manifest');
    assert.equal(error.location.layer, 'conv2');
  });
});
