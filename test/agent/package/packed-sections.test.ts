// Packed sections (package format 1.4): the compressor's packages place their sections at 4-byte aligned
// offsets instead of 64. Such a package is stamped 1.4, is smaller, reads to the same manifest and constants,
// runs the same and rewrites byte for byte; a packed offset under a header that declares 1.3 or less, and an
// offset that is not 4-byte aligned, are refused; packages that do not ask for packing keep 64-byte sections.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';

import { PackageError } from '../../../agent/package/errors.js';
import {
  HEADER_SIZE,
  ManifestEncoding,
  SECTION_ALIGNMENT,
  SECTION_ENTRY_SIZE,
  TRAILER_SIZE,
} from '../../../agent/package/layout.js';
import { readPackage } from '../../../agent/package/reader.js';
import { resign } from '../../../bench/fuzz.js';
import { samplePackageContent } from '../../../optimize/package/sample-package.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { assertSamePackage } from '../../support/packages.js';

const keys = generateKeyPairSync('ed25519');
const read = (bytes: Buffer) => readPackage(bytes, { publicKey: keys.publicKey, cpuFamily: null });
const input = new Float32Array(8 * 8 * 3).map((_, i) => ((i * 37) % 11) / 10);

/** `pkg` with its content changed by `edit` and signed again, so the change reaches the layout checks. */
function resigned(pkg: Buffer, edit: (content: Buffer) => void): Buffer {
  const content = Buffer.from(pkg.subarray(0, pkg.length - TRAILER_SIZE));
  edit(content);
  return resign(content, keys.privateKey);
}

function refused(bytes: Buffer, pattern: RegExp): void {
  assert.throws(
    () => read(bytes),
    (error: unknown) => {
      assert.ok(error instanceof PackageError, `expected a PackageError, got ${String(error)}`);
      assert.equal(error.code, 'bad-section-table', error.message);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

const offsetOf = (content: Buffer, section: number): number =>
  Number(content.readBigUInt64LE(HEADER_SIZE + section * SECTION_ENTRY_SIZE + 8));

describe('packed sections (format 1.4)', () => {
  const plain = writePackage(
    { ...samplePackageContent(), manifestEncoding: ManifestEncoding.deflate },
    keys.privateKey,
  );
  const packed = writePackage(
    { ...samplePackageContent(), manifestEncoding: ManifestEncoding.deflate, packedSections: true },
    keys.privateKey,
  );

  test('stamped 1.4, smaller, reads, runs and rewrites the same; unpacked packages keep 64-byte sections', () => {
    assert.equal(plain.readUInt16LE(10), 3);
    assert.equal(packed.readUInt16LE(10), 4);
    assert.ok(packed.length < plain.length, `${packed.length} vs ${plain.length} bytes`);
    const [a, b] = assertSamePackage(read, plain, packed, keys.privateKey, input);
    assert.ok(a.sections.every((s) => s.offset % SECTION_ALIGNMENT === 0));
    assert.ok(b.sections.every((s) => s.offset % 4 === 0));
    assert.ok(
      b.sections.some((s) => s.offset % SECTION_ALIGNMENT !== 0),
      'some section packed',
    );
  });

  test('a packed offset under a 1.3 header, and an offset off the 4-byte grid, are refused', () => {
    const section = read(packed).sections.findIndex((s) => s.offset % SECTION_ALIGNMENT !== 0);
    refused(
      resigned(packed, (c) => c.writeUInt16LE(3, 10)),
      new RegExp(
        `offset ${offsetOf(packed, section)} is not 64-byte aligned \\(packed sections need format 1\\.4`,
      ),
    );
    // The alignment is checked first, so a table offset 2 bytes on is refused for it alone.
    refused(
      resigned(packed, (c) =>
        c.writeBigUInt64LE(BigInt(offsetOf(c, 1) + 2), HEADER_SIZE + SECTION_ENTRY_SIZE + 8),
      ),
      /is not 4-byte aligned/,
    );
  });
});
