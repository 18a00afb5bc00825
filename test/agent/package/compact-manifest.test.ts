// The deflated manifest (package format 1.3) and the same with the preset dictionary (1.5, what the
// compressor writes): the manifest as one raw deflate stream. It reads back to the same manifest, runs the
// same, rewrites byte for byte, is stamped 1.3 / 1.5 (a package without it keeps its old minor), and every
// hostile variant is refused with a typed error; packages of the previous writers (1.2, 1.0 fixtures) still
// read, run and rewrite.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { deflateRawSync } from 'node:zlib';

import { PackageError } from '../../../agent/package/errors.js';
import { HEADER_SIZE, ManifestEncoding, TRAILER_SIZE } from '../../../agent/package/layout.js';
import { MAX_MANIFEST_BYTES } from '../../../agent/package/manifest.js';
import { MANIFEST_DICTIONARY_V1 } from '../../../agent/package/manifest-dictionary.js';
import { readPackage } from '../../../agent/package/reader.js';
import { packageRoot } from '../../../agent/package-root.js';
import { Model } from '../../../agent/runtime/model.js';
import { resign, runFuzz } from '../../../bench/fuzz.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { bundledSigningKey, packageContent, writePackage } from '../../../optimize/package/writer.js';
import { assertSamePackage } from '../../support/packages.js';

const keys = generateKeyPairSync('ed25519');
const read = (bytes: Buffer) => readPackage(bytes, { publicKey: keys.publicKey, cpuFamily: null });
const input = new Float32Array(8 * 8 * 3).map((_, i) => ((i * 37) % 11) / 10);

/** The content bytes of `pkg` changed by `edit`, signed again (so the damage reaches the section checks). */
const edited = (pkg: Buffer, edit: (content: Buffer) => Buffer): Buffer =>
  resign(edit(Buffer.from(pkg.subarray(0, pkg.length - TRAILER_SIZE))), keys.privateKey);

/** The manifest section's stored bytes replaced (its length with them; the sections after it stay put, so
 * the new bytes must fit before the next section). */
function withManifestBytes(content: Buffer, stored: Buffer, inflatedLength?: number): Buffer {
  const offset = Number(content.readBigUInt64LE(HEADER_SIZE + 8));
  const next = Number(content.readBigUInt64LE(HEADER_SIZE + 32 + 8));
  assert.ok(offset + stored.length <= next, 'the test manifest must fit its slot');
  content.fill(0, offset, next);
  stored.copy(content, offset);
  content.writeBigUInt64LE(BigInt(stored.length), HEADER_SIZE + 16);
  if (inflatedLength !== undefined) content.writeUInt32LE(inflatedLength, HEADER_SIZE + 24);
  return content;
}

function refused(bytes: Buffer, code: string, pattern: RegExp): void {
  assert.throws(
    () => read(bytes),
    (error: unknown) => {
      assert.ok(error instanceof PackageError, `expected a PackageError, got ${String(error)}`);
      assert.equal(error.code, code, error.message);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('deflated manifest (format 1.3)', () => {
  const plain = writePackage(samplePackageContent(), keys.privateKey);
  const compact = writePackage(
    { ...samplePackageContent(), manifestEncoding: ManifestEncoding.deflate },
    keys.privateKey,
  );

  test('reads to the same manifest and constants, runs the same, rewrites byte for byte, stamped 1.3', () => {
    assert.equal(plain.readUInt16LE(10), 2);
    assert.equal(compact.readUInt16LE(10), 3);
    assert.ok(compact.length < plain.length, `${compact.length} vs ${plain.length} bytes`);
    const [a, b] = assertSamePackage(read, plain, compact, keys.privateKey, input);
    assert.equal(b.sections[0]!.encoding, ManifestEncoding.deflate);
    assert.equal(b.sections[0]!.elements, a.sections[0]!.length);
  });

  test('hostile deflated manifests are refused with a typed error naming the fault', () => {
    const offset = Number(compact.readBigUInt64LE(HEADER_SIZE + 8));
    const length = Number(compact.readBigUInt64LE(HEADER_SIZE + 16));
    const recorded = compact.readUInt32LE(HEADER_SIZE + 24);
    const stream = Buffer.from(compact.subarray(offset, offset + length));
    const json = Buffer.from(JSON.stringify(read(plain).manifest));
    // The recorded inflated length too small, too large, zero, over the limit.
    refused(
      edited(compact, (c) => withManifestBytes(c, stream, recorded - 1)),
      'bad-manifest',
      /does not inflate to its recorded/,
    );
    refused(
      edited(compact, (c) => withManifestBytes(c, stream, recorded + 1)),
      'bad-manifest',
      /inflates to \d+ bytes, not its recorded/,
    );
    refused(
      edited(compact, (c) => withManifestBytes(c, stream, 0)),
      'bad-section-table',
      /deflated JSON/,
    );
    refused(
      edited(compact, (c) => withManifestBytes(c, stream, MAX_MANIFEST_BYTES + 1)),
      'bad-manifest',
      /more than 16777216/,
    );
    // Bytes after the stream, a truncated stream, a corrupt one.
    refused(
      edited(compact, (c) => withManifestBytes(c, Buffer.concat([stream, Buffer.from([0, 1, 2])]))),
      'bad-manifest',
      /deflate stream ends after \d+ of its section's \d+ bytes/,
    );
    refused(
      edited(compact, (c) => withManifestBytes(c, stream.subarray(0, stream.length - 3))),
      'bad-manifest',
      /does not inflate/,
    );
    refused(
      edited(compact, (c) => withManifestBytes(c, Buffer.alloc(stream.length, 0xff))),
      'bad-manifest',
      /does not inflate/,
    );
    // A bomb: 1 MiB of zeros deflated to ~1 KiB (in the plain package's larger slot); the recorded 1,000
    // bytes stop the inflater there.
    const bomb = deflateRawSync(Buffer.alloc(1 << 20));
    refused(
      edited(plain, (c) => {
        c.writeUInt32LE(ManifestEncoding.deflate, HEADER_SIZE + 4);
        return withManifestBytes(c, bomb, 1000);
      }),
      'bad-manifest',
      /does not inflate to its recorded 1000 bytes/,
    );
    // Deflated JSON that is not a manifest; plain JSON marked deflated; a deflated manifest under a 1.2 header;
    // an unknown manifest encoding; a JSON manifest with an element count.
    const notManifest = Buffer.from('{"format":"whittle-package"}');
    refused(
      edited(compact, (c) => withManifestBytes(c, deflateRawSync(notManifest), notManifest.length)),
      'bad-manifest',
      /does not match the schema/,
    );
    refused(
      edited(plain, (c) => {
        c.writeUInt32LE(ManifestEncoding.deflate, HEADER_SIZE + 4);
        c.writeUInt32LE(json.length, HEADER_SIZE + 24);
        return c;
      }),
      'bad-manifest',
      /does not inflate/,
    );
    refused(
      edited(compact, (c) => {
        c.writeUInt16LE(2, 10);
        return c;
      }),
      'bad-header',
      /uses format 1\.3 features \(.*a deflated manifest 1\.3/,
    );
    for (const [encoding, elements] of [
      [3, recorded],
      [ManifestEncoding.json, 5],
    ] as const)
      refused(
        edited(compact, (c) => {
          c.writeUInt32LE(encoding, HEADER_SIZE + 4);
          c.writeUInt32LE(elements, HEADER_SIZE + 24);
          return c;
        }),
        'bad-section-table',
        new RegExp(`not encoding ${encoding} with ${elements} elements`),
      );
  });

  test('3,000 fuzzed deflated manifests and sparse-codebook sections: every one refused or read, typed', () => {
    const report = runFuzz('package', {
      iterations: 3000,
      seed: 20261207,
      hangMs: 2000,
      strategies: ['resigned-deflated-manifest', 'resigned-sparse-codebook'],
    });
    assert.deepEqual(report.failures.slice(0, 5), []);
    assert.deepEqual(Object.keys(report.byStrategy).sort(), [
      'resigned-deflated-manifest',
      'resigned-sparse-codebook',
    ]);
    for (const code of ['bad-manifest', 'bad-header', 'bad-weights'])
      assert.ok((report.refused[code] ?? 0) > 0, `${code}: ${JSON.stringify(report.refused)}`);
  });

  test('packages of the previous writers (1.2 at 5e0af07, 1.0 at 987719a) still read, run and rewrite', () => {
    for (const [file, minor] of [
      ['sample-format-1.2.whittle', 2],
      ['sample-format-1.0.whittle', 0],
    ] as const) {
      const old = readFileSync(join(packageRoot(), 'test/agent/package/fixtures', file));
      const pkg = readPackage(old, { allowUnsigned: true, cpuFamily: null });
      assert.equal(pkg.header.minor, minor);
      assert.equal(pkg.sections[0]!.encoding, ManifestEncoding.json);
      const [probabilities] = Model.fromPackage(pkg).run([new Float32Array(8 * 8 * 3).fill(0.5)]);
      assert.ok(Math.abs(Array.from(probabilities!.data).reduce((a, b) => a + b, 0) - 1) < 1e-5);
      assert.ok(
        writePackage(packageContent(pkg), bundledSigningKey()).equals(old),
        `${file}: rewrite differs`,
      );
    }
  });
});

describe('manifest deflated with the preset dictionary (format 1.5)', () => {
  const content = (): ReturnType<typeof samplePackageContent> => samplePackageContent();
  const deflated = writePackage(
    { ...content(), manifestEncoding: ManifestEncoding.deflate, packedSections: true },
    keys.privateKey,
  );
  const withDictionary = writePackage(
    { ...content(), manifestEncoding: ManifestEncoding.deflateDictionary, packedSections: true },
    keys.privateKey,
  );
  const manifestLength = (pkg: Buffer): number => Number(pkg.readBigUInt64LE(HEADER_SIZE + 16));

  test('the dictionary is frozen: its bytes are part of the format', () => {
    // Editing manifest-dictionary.ts would make every 1.5 package written before unreadable: a better
    // dictionary is a new encoding and a new minor, never an edit.
    assert.equal(MANIFEST_DICTIONARY_V1.length, 4060);
    assert.equal(
      createHash('sha256').update(MANIFEST_DICTIONARY_V1).digest('hex'),
      'bef482885f69c448d7047410316b8d8771aebeb8db0ba0064ffaedaaa6a640ff',
    );
  });

  test('reads to the same manifest and constants, runs the same, rewrites byte for byte, stamped 1.5', () => {
    assert.equal(withDictionary.readUInt16LE(10), 5);
    const [a, b] = assertSamePackage(read, deflated, withDictionary, keys.privateKey, input);
    assert.equal(b.sections[0]!.encoding, ManifestEncoding.deflateDictionary);
    assert.equal(b.sections[0]!.elements, a.sections[0]!.elements);
    // The sample's manifest is small and full of the schema's strings: the dictionary takes a large part off.
    assert.ok(
      manifestLength(withDictionary) < 0.8 * manifestLength(deflated),
      `${manifestLength(withDictionary)} vs ${manifestLength(deflated)} bytes`,
    );
  });

  test('hostile variants are refused with a typed error naming the fault', () => {
    refused(
      edited(withDictionary, (c) => {
        c.writeUInt16LE(4, 10);
        return c;
      }),
      'bad-header',
      /uses format 1\.5 features \(a manifest deflated with the preset dictionary or int8 bit planes need 1\.5/,
    );
    // The stream read without the dictionary it references.
    refused(
      edited(withDictionary, (c) => {
        c.writeUInt32LE(ManifestEncoding.deflate, HEADER_SIZE + 4);
        return c;
      }),
      'bad-manifest',
      /does not inflate to its recorded/,
    );
    refused(
      edited(withDictionary, (c) => {
        c.writeUInt32LE(0, HEADER_SIZE + 24);
        return c;
      }),
      'bad-section-table',
      /with the preset dictionary/,
    );
  });
});
