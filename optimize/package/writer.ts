// Writes a signed Whittle package (docs/format.md): the manifest, one section per constant tensor in tensor
// order, the SHA-256 of everything before the trailer and an Ed25519 signature of that digest.
// The agent's reader is the authority on the format; this only lays out what it will accept.
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';

import {
  elementCount,
  encodeDecoded,
  type EncodedTensor,
  EncodingCode,
} from '../../agent/package/encodings.js';
import {
  encodeHeaderAndTable,
  encodeTrailer,
  HEADER_SIZE,
  ManifestEncoding,
  type ManifestEncodingCode,
  PACKED_SECTIONS_MINOR,
  SECTION_ENTRY_SIZE,
  sectionAlignment,
  type SectionEntry,
} from '../../agent/package/layout.js';
import { type Manifest, requiredFormatMinor } from '../../agent/package/manifest.js';
import { MANIFEST_DICTIONARY_V1 } from '../../agent/package/manifest-dictionary.js';
import type { Package } from '../../agent/package/reader.js';
import { keyId, sha256, signDigest } from '../../agent/package/signing.js';

export interface PackageContent {
  /** The manifest; `section` and `encoding` of constant tensors are filled in by the writer. */
  manifest: Manifest;
  /** Encoded data of each constant tensor, by tensor index. */
  constants: ReadonlyMap<number, EncodedTensor>;
  /** How to store the manifest (layout.ts ManifestEncoding): JSON (the default), deflated (format 1.3), or
   * deflated with the format's preset dictionary (1.5: a few hundred bytes instead of kilobytes of JSON, and
   * half the deflated size again for a small model; the compressor's small packages). */
  manifestEncoding?: ManifestEncodingCode;
  /** Pack the sections at 4-byte aligned offsets (format 1.4) instead of 64: up to 60 bytes less a section,
   * for the compressor's small packages. */
  packedSections?: boolean;
}

/** The content a read package was written from: `writePackage(packageContent(readPackage(bytes)), key)`
 * gives `bytes` back byte for byte when `key` is the signer's. Edit the manifest to re-issue a package under
 * another id, version or target. */
export function packageContent(pkg: Package): PackageContent {
  return {
    manifest: pkg.manifest,
    constants: new Map(pkg.constants.flatMap((c, i) => (c ? [[i, encodeDecoded(c)] as const] : []))),
    ...(pkg.sections[0]!.encoding !== ManifestEncoding.json
      ? { manifestEncoding: pkg.sections[0]!.encoding as ManifestEncodingCode }
      : {}),
    ...(pkg.header.minor >= PACKED_SECTIONS_MINOR ? { packedSections: true } : {}),
  };
}

/** The key the packages shipped in agent/models/ are signed with (`whittle quantize --bundled-key`): derived
 * from a fixed public seed, so each file is reproducible byte for byte. Its private half is public by
 * construction — the agent does not check the signature of the package it ships with (it is trusted as
 * shipped, like the agent's own code); every deployed package must instead be signed by the manager's key. */
export function bundledSigningKey(): KeyObject {
  const seed = createHash('sha256').update('whittle bundled model; not a secret').digest();
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
}

export function writePackage(content: PackageContent, privateKey: KeyObject): Buffer {
  const indices = [...content.constants.keys()].sort((a, b) => a - b);
  const tensors: Manifest['tensors'] = content.manifest.tensors.map((tensor) => {
    const rest = { ...tensor };
    delete rest.section;
    delete rest.encoding;
    return rest;
  });
  indices.forEach((index, i) => {
    const tensor = tensors[index];
    if (tensor === undefined)
      throw new RangeError(`constant for tensor ${index}, but the manifest has ${tensors.length}`);
    tensors[index] = { ...tensor, section: i + 1, encoding: content.constants.get(index)!.encoding };
  });
  const manifest = { ...content.manifest, tensors };
  const json = Buffer.from(JSON.stringify(manifest), 'utf8');
  const manifestEncoding = content.manifestEncoding ?? ManifestEncoding.json;
  const compact = manifestEncoding !== ManifestEncoding.json;
  const manifestBytes = !compact
    ? json
    : deflateRawSync(json, {
        level: 9,
        ...(manifestEncoding === ManifestEncoding.deflateDictionary
          ? { dictionary: MANIFEST_DICTIONARY_V1 }
          : {}),
      });
  const payloads: { entry: Omit<SectionEntry, 'offset'>; bytes: Buffer }[] = [
    {
      entry: {
        kind: 'manifest',
        length: manifestBytes.length,
        encoding: manifestEncoding,
        elements: compact ? json.length : 0,
      },
      bytes: manifestBytes,
    },
    ...indices.map((index) => {
      const encoded = content.constants.get(index)!;
      return {
        entry: {
          kind: 'tensor' as const,
          length: encoded.bytes.length,
          encoding: EncodingCode[encoded.encoding.kind],
          elements: elementCount(tensors[index]!.shape),
        },
        bytes: encoded.bytes,
      };
    }),
  ];
  // The lowest minor the package needs: one without 1.1 – 1.5 features stays byte for byte what a 1.0
  // writer made (the bundled models are reproducible from their recorded commands).
  const minor = Math.max(
    requiredFormatMinor(manifest, manifestEncoding),
    content.packedSections === true ? PACKED_SECTIONS_MINOR : 0,
  );
  const alignment = sectionAlignment(minor);
  const align = (n: number): number => Math.ceil(n / alignment) * alignment;
  let offset = align(HEADER_SIZE + payloads.length * SECTION_ENTRY_SIZE);
  const entries: SectionEntry[] = payloads.map(({ entry }) => {
    const placed = { ...entry, offset };
    offset = align(offset + entry.length);
    return placed;
  });
  const contentSize = offset;
  const content_ = Buffer.alloc(contentSize);
  encodeHeaderAndTable(contentSize, entries, minor).copy(content_, 0);
  payloads.forEach(({ bytes }, i) => bytes.copy(content_, entries[i]!.offset));
  const digest = sha256(content_);
  const trailer = encodeTrailer({
    sha256: digest,
    keyId: keyId(privateKey),
    signature: signDigest(digest, privateKey),
  });
  return Buffer.concat([content_, trailer]);
}
