// The binary container of a Whittle package (docs/format.md): a fixed header, a section table, the sections,
// and a signature trailer. This file holds the byte layout and its encoder/decoder side by side; what the
// sections mean (manifest, weights) is manifest.ts and encodings.ts.
//
//   [0, 64)                   header
//   [64, 64 + 32 * count)     section table, one 32-byte entry per section
//   ...                       sections, each at a 64-byte aligned offset (so arrays can be used in place; 1.4: 4-byte
//                             aligned in a packed package), in table order, not overlapping
//   [contentSize, +128)       trailer: SHA-256 of bytes [0, contentSize) and an Ed25519 signature of it
import { PackageError } from './errors.js';

export const MAGIC = Buffer.from('WHTLPKG\0', 'latin1');
export const TRAILER_MAGIC = Buffer.from('WHTLSIG\0', 'latin1');
export const FORMAT_MAJOR = 1;
// The newest minor this code writes. 1.1: fixed16 / fixed8 layers may carry activation fractional lengths
// (input_fl, output_fl; manifest.ts). 1.2: the sparse-codebook tensor encoding (encodings.ts) and the
// sparse-codebook number format. 1.3: the manifest section may be deflated (ManifestEncoding). 1.4: sections
// may be packed, at 4-byte aligned offsets (sectionAlignment): a compressed small model's 64-byte padding is
// a few percent of its file. 1.5: the manifest may be deflated with the format's preset dictionary
// (ManifestEncoding.deflateDictionary, manifest-dictionary.ts), and an int8 tensor may be stored as binary or
// ternary bit planes (encodings.ts encodeInt8Planes). The writer
// stamps the lowest minor whose features a package uses (manifest.ts requiredFormatMinor), so a package
// without them stays byte for byte what a 1.0 writer made.
export const FORMAT_MINOR = 5;
export const HEADER_SIZE = 64;
export const SECTION_ENTRY_SIZE = 32;
export const TRAILER_SIZE = 128;
export const SECTION_ALIGNMENT = 64;
/** The alignment of a packed package's sections (format 1.4): enough for a 4-byte element's typed array. */
export const PACKED_SECTION_ALIGNMENT = 4;
/** The first minor whose sections may be packed. */
export const PACKED_SECTIONS_MINOR = 4;

/** The section alignment a package of format minor `minor` must keep: 64 bytes, or 4 from 1.4 on. */
export function sectionAlignment(minor: number): number {
  return minor >= PACKED_SECTIONS_MINOR ? PACKED_SECTION_ALIGNMENT : SECTION_ALIGNMENT;
}
export const SIGNATURE_ALGORITHM_ED25519 = 1;
/** Limits that keep every size far from overflow and every allocation bounded. */
export const MAX_SECTIONS = 65536;
export const MAX_PACKAGE_BYTES = 2 ** 31 - 1;

export const SectionKind = { manifest: 1, tensor: 2 } as const;
/** The manifest section's table encoding: UTF-8 JSON, or (1.3) that JSON as one raw deflate stream (RFC 1951)
 * whose inflated byte length is the entry's element count, or (1.5) the same with the format's preset
 * dictionary (manifest-dictionary.ts). */
export const ManifestEncoding = { json: 0, deflate: 1, deflateDictionary: 2 } as const;
export type ManifestEncodingCode = (typeof ManifestEncoding)[keyof typeof ManifestEncoding];
/** The first minor whose manifest may be deflated with the preset dictionary, and whose int8 tensors may be
 * bit planes. */
export const MANIFEST_DICTIONARY_MINOR = 5;
export type SectionKindName = keyof typeof SectionKind;

export interface PackageHeader {
  major: number;
  minor: number;
  /** Bytes covered by the hash: everything before the trailer. */
  contentSize: number;
  sectionCount: number;
}

export interface SectionEntry {
  kind: SectionKindName;
  /** Absolute byte offset in the file. */
  offset: number;
  length: number;
  /** Weight encoding code (encodings.ts) for tensor sections, 0 for the manifest. */
  encoding: number;
  /** Logical elements of the tensor, 0 for the manifest. */
  elements: number;
}

export interface PackageTrailer {
  algorithm: number;
  sha256: Buffer;
  /** First 16 bytes of SHA-256 of the signer's raw 32-byte Ed25519 public key. */
  keyId: Buffer;
  signature: Buffer;
}

/** A u64 field as a number, refused above `limit` (so no precision is lost and no size can overflow). */
function readU64(bytes: Buffer, offset: number, limit: number, what: string, section?: number): number {
  const value = bytes.readBigUInt64LE(offset);
  if (value > BigInt(limit)) {
    throw new PackageError(
      section === undefined ? 'bad-header' : 'bad-section-table',
      `${what} is ${value}, more than the limit ${limit}`,
      { offset, ...(section === undefined ? {} : { section }) },
    );
  }
  return Number(value);
}

function zeroes(bytes: Buffer, start: number, end: number): number {
  for (let i = start; i < end; i++) if (bytes[i] !== 0) return i;
  return -1;
}

export function decodeHeader(bytes: Buffer): PackageHeader {
  if (bytes.length < HEADER_SIZE + TRAILER_SIZE) {
    throw new PackageError(
      'truncated',
      `file is ${bytes.length} bytes, shorter than a header and a trailer (${HEADER_SIZE + TRAILER_SIZE})`,
    );
  }
  if (bytes.length > MAX_PACKAGE_BYTES) {
    throw new PackageError('bad-header', `file is ${bytes.length} bytes, more than ${MAX_PACKAGE_BYTES}`);
  }
  if (!bytes.subarray(0, 8).equals(MAGIC)) {
    throw new PackageError('bad-magic', 'not a Whittle package: the file does not start with "WHTLPKG\\0"', {
      offset: 0,
    });
  }
  const major = bytes.readUInt16LE(8);
  const minor = bytes.readUInt16LE(10);
  if (major !== FORMAT_MAJOR) {
    throw new PackageError(
      'unsupported-version',
      `package format ${major}.${minor} is not supported by this agent (reads ${FORMAT_MAJOR}.x)`,
      { offset: 8 },
    );
  }
  const headerSize = bytes.readUInt32LE(12);
  if (headerSize !== HEADER_SIZE) {
    throw new PackageError('bad-header', `header size is ${headerSize}, expected ${HEADER_SIZE}`, {
      offset: 12,
    });
  }
  const contentSize = readU64(bytes, 16, MAX_PACKAGE_BYTES, 'content size');
  if (contentSize + TRAILER_SIZE !== bytes.length) {
    throw new PackageError(
      contentSize + TRAILER_SIZE > bytes.length ? 'truncated' : 'bad-header',
      `header says ${contentSize} content bytes + ${TRAILER_SIZE} trailer bytes = ` +
        `${contentSize + TRAILER_SIZE}, but the file is ${bytes.length} bytes`,
      { offset: 16 },
    );
  }
  const sectionCount = bytes.readUInt32LE(24);
  if (sectionCount < 1 || sectionCount > MAX_SECTIONS) {
    throw new PackageError('bad-header', `section count ${sectionCount} is outside [1, ${MAX_SECTIONS}]`, {
      offset: 24,
    });
  }
  const tableEnd = HEADER_SIZE + sectionCount * SECTION_ENTRY_SIZE;
  if (tableEnd > contentSize) {
    throw new PackageError(
      'truncated',
      `the section table of ${sectionCount} entries ends at ${tableEnd}, past the content (${contentSize} bytes)`,
      { offset: 24 },
    );
  }
  const nonZero = zeroes(bytes, 28, HEADER_SIZE);
  if (nonZero >= 0) {
    throw new PackageError('bad-header', 'reserved header bytes must be zero', { offset: nonZero });
  }
  return { major, minor, contentSize, sectionCount };
}

export function decodeSectionTable(bytes: Buffer, header: PackageHeader): SectionEntry[] {
  const entries: SectionEntry[] = [];
  let previousEnd = HEADER_SIZE + header.sectionCount * SECTION_ENTRY_SIZE;
  for (let index = 0; index < header.sectionCount; index++) {
    const at = HEADER_SIZE + index * SECTION_ENTRY_SIZE;
    const location = { section: index, offset: at };
    const kindCode = bytes.readUInt32LE(at);
    const kind =
      kindCode === SectionKind.manifest ? 'manifest' : kindCode === SectionKind.tensor ? 'tensor' : null;
    if (kind === null) {
      throw new PackageError('bad-section-table', `unknown section kind ${kindCode}`, location);
    }
    if ((index === 0) !== (kind === 'manifest')) {
      throw new PackageError(
        'bad-section-table',
        index === 0 ? 'section 0 must be the manifest' : 'only section 0 may be a manifest',
        location,
      );
    }
    const encoding = bytes.readUInt32LE(at + 4);
    const offset = readU64(bytes, at + 8, header.contentSize, 'section offset', index);
    const length = readU64(bytes, at + 16, header.contentSize, 'section length', index);
    const elements = bytes.readUInt32LE(at + 24);
    const reserved = bytes.readUInt32LE(at + 28);
    if (reserved !== 0) {
      throw new PackageError('bad-section-table', 'reserved field must be zero', {
        ...location,
        offset: at + 28,
      });
    }
    const alignment = sectionAlignment(header.minor);
    if (offset % alignment !== 0) {
      throw new PackageError(
        'bad-section-table',
        `offset ${offset} is not ${alignment}-byte aligned` +
          (alignment === SECTION_ALIGNMENT && offset % PACKED_SECTION_ALIGNMENT === 0
            ? ` (packed sections need format 1.${PACKED_SECTIONS_MINOR}; the header declares 1.${header.minor})`
            : ''),
        location,
      );
    }
    if (offset < previousEnd) {
      throw new PackageError(
        'bad-section-table',
        `section starts at ${offset}, before the end of the previous one or the table (${previousEnd})`,
        location,
      );
    }
    if (offset + length > header.contentSize) {
      throw new PackageError(
        'truncated',
        `section [${offset}, ${offset + length}) runs past the content (${header.contentSize} bytes)`,
        location,
      );
    }
    const gap = zeroes(bytes, previousEnd, offset);
    if (gap >= 0)
      throw new PackageError('bad-section-table', 'padding between sections must be zero', { offset: gap });
    if (
      kind === 'manifest' &&
      (encoding === ManifestEncoding.json
        ? elements !== 0
        : (encoding !== ManifestEncoding.deflate && encoding !== ManifestEncoding.deflateDictionary) ||
          elements === 0)
    ) {
      throw new PackageError(
        'bad-section-table',
        `the manifest section is JSON (encoding ${ManifestEncoding.json}, no element count) or deflated JSON ` +
          `(encoding ${ManifestEncoding.deflate}, or ${ManifestEncoding.deflateDictionary} with the preset ` +
          'dictionary; its inflated length as the element count), not encoding ' +
          `${encoding} with ${elements} elements`,
        location,
      );
    }
    entries.push({ kind, offset, length, encoding, elements });
    previousEnd = offset + length;
  }
  const tail = zeroes(bytes, previousEnd, header.contentSize);
  if (tail >= 0)
    throw new PackageError('bad-section-table', 'bytes after the last section must be zero', {
      offset: tail,
    });
  return entries;
}

export function decodeTrailer(bytes: Buffer, header: PackageHeader): PackageTrailer {
  const at = header.contentSize;
  if (!bytes.subarray(at, at + 8).equals(TRAILER_MAGIC)) {
    throw new PackageError('bad-signature', 'the signature trailer does not start with "WHTLSIG\\0"', {
      offset: at,
    });
  }
  const algorithm = bytes.readUInt32LE(at + 8);
  if (algorithm !== SIGNATURE_ALGORITHM_ED25519) {
    throw new PackageError('bad-signature', `unknown signature algorithm ${algorithm} (1 = Ed25519)`, {
      offset: at + 8,
    });
  }
  const reserved = bytes.readUInt32LE(at + 12);
  if (reserved !== 0)
    throw new PackageError('bad-signature', 'reserved trailer field must be zero', { offset: at + 12 });
  return {
    algorithm,
    sha256: Buffer.from(bytes.subarray(at + 16, at + 48)),
    keyId: Buffer.from(bytes.subarray(at + 48, at + 64)),
    signature: Buffer.from(bytes.subarray(at + 64, at + 128)),
  };
}

/** Header + section table + zero padding for the given sections (offsets already assigned). */
export function encodeHeaderAndTable(
  contentSize: number,
  sections: readonly SectionEntry[],
  minor: number = FORMAT_MINOR,
): Buffer {
  const bytes = Buffer.alloc(HEADER_SIZE + sections.length * SECTION_ENTRY_SIZE);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt16LE(FORMAT_MAJOR, 8);
  bytes.writeUInt16LE(minor, 10);
  bytes.writeUInt32LE(HEADER_SIZE, 12);
  bytes.writeBigUInt64LE(BigInt(contentSize), 16);
  bytes.writeUInt32LE(sections.length, 24);
  sections.forEach((section, index) => {
    const at = HEADER_SIZE + index * SECTION_ENTRY_SIZE;
    bytes.writeUInt32LE(SectionKind[section.kind], at);
    bytes.writeUInt32LE(section.encoding, at + 4);
    bytes.writeBigUInt64LE(BigInt(section.offset), at + 8);
    bytes.writeBigUInt64LE(BigInt(section.length), at + 16);
    bytes.writeUInt32LE(section.elements, at + 24);
  });
  return bytes;
}

export function encodeTrailer(trailer: Omit<PackageTrailer, 'algorithm'>): Buffer {
  const bytes = Buffer.alloc(TRAILER_SIZE);
  TRAILER_MAGIC.copy(bytes, 0);
  bytes.writeUInt32LE(SIGNATURE_ALGORITHM_ED25519, 8);
  trailer.sha256.copy(bytes, 16);
  trailer.keyId.copy(bytes, 48);
  trailer.signature.copy(bytes, 64);
  return bytes;
}
