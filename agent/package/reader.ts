// Reads a package strictly: the container, then the hash and signature over all content, then the section
// table, the manifest and every tensor section. Nothing is handed to the runtime before every check passed;
// every refusal is a PackageError naming the section, layer and offset.
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';

import { type DecodedTensor, decodeTensor } from './encodings.js';
import { PackageError } from './errors.js';
import {
  decodeHeader,
  decodeSectionTable,
  decodeTrailer,
  type ManifestEncodingCode,
  type PackageHeader,
  type SectionEntry,
} from './layout.js';
import { type CpuFamily, decodeManifest, type Manifest, requiredFormatMinor } from './manifest.js';
import { keyId, sha256, verifyDigest } from './signing.js';

export type SignatureStatus =
  /** Verified against the given public key. */
  | 'verified'
  /** Hash checked, signature not checked because no key was given (inspect only; the agent always has one). */
  | 'unchecked';

export interface ReadOptions {
  /** The signer's key. Without it, `allowUnsigned` must be true and only the hash is checked. */
  publicKey?: KeyObject;
  allowUnsigned?: boolean;
  /** The CPU family the package must be built for (or 'any'); defaults to this machine's. `null` skips the
   * check (inspect on a manager machine). */
  cpuFamily?: CpuFamily | null;
}

export interface Package {
  header: PackageHeader;
  sections: readonly SectionEntry[];
  manifest: Manifest;
  /** tensors[i] for constant tensors of the manifest, undefined for activations. */
  constants: readonly (DecodedTensor | undefined)[];
  sha256: string;
  signerKeyId: string;
  signature: SignatureStatus;
  fileBytes: number;
}

export function hostCpuFamily(): CpuFamily {
  switch (process.arch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    case 'arm':
      return 'armv7';
    default:
      return 'any';
  }
}

export function readPackage(bytes: Buffer, options: ReadOptions = {}): Package {
  if (endianness() !== 'LE')
    throw new PackageError('io', 'packages are little-endian; this host is big-endian');
  const header = decodeHeader(bytes);
  const trailer = decodeTrailer(bytes, header);
  const digest = sha256(bytes.subarray(0, header.contentSize));
  if (!digest.equals(trailer.sha256)) {
    throw new PackageError(
      'hash-mismatch',
      `content SHA-256 is ${digest.toString('hex')} but the trailer records ${trailer.sha256.toString('hex')}: ` +
        `the file was damaged or altered`,
      { offset: header.contentSize + 16 },
    );
  }
  let signature: SignatureStatus;
  if (options.publicKey !== undefined) {
    const expected = keyId(options.publicKey);
    if (!expected.equals(trailer.keyId)) {
      throw new PackageError(
        'wrong-key',
        `package is signed by key ${trailer.keyId.toString('hex')}, not by the trusted key ${expected.toString('hex')}`,
        { offset: header.contentSize + 48 },
      );
    }
    if (!verifyDigest(digest, trailer.signature, options.publicKey)) {
      throw new PackageError('bad-signature', 'the Ed25519 signature does not verify with the trusted key', {
        offset: header.contentSize + 64,
      });
    }
    signature = 'verified';
  } else if (options.allowUnsigned === true) {
    signature = 'unchecked';
  } else {
    throw new PackageError('wrong-key', 'no public key given to verify the package signature');
  }
  const sections = decodeSectionTable(bytes, header);
  const manifest = decodeManifest(bytes, sections);
  // decodeSectionTable admits only the ManifestEncoding codes for the manifest section.
  const needed = requiredFormatMinor(manifest, sections[0]!.encoding as ManifestEncodingCode);
  if (header.minor < needed) {
    throw new PackageError(
      'bad-header',
      `package declares format ${header.major}.${header.minor} but uses format ${header.major}.${needed} features ` +
        '(a manifest deflated with the preset dictionary or int8 bit planes need 1.5, a deflated manifest 1.3, sparse-codebook tensors 1.2, fixed-point activation lengths 1.1)',
      { offset: 10 },
    );
  }
  const wanted = options.cpuFamily === undefined ? hostCpuFamily() : options.cpuFamily;
  const built = manifest.target.cpuFamily;
  if (wanted !== null && built !== 'any' && built !== wanted) {
    throw new PackageError(
      'wrong-cpu-family',
      `package "${manifest.model.id}" is built for ${built} (${manifest.target.deviceClass}), this device is ${wanted}`,
      { section: 0 },
    );
  }
  const constants = manifest.tensors.map((tensor) => {
    if (tensor.section === undefined || tensor.encoding === undefined) return undefined;
    const entry = sections[tensor.section]!;
    return decodeTensor(bytes, entry.offset, tensor, tensor.encoding, {
      section: tensor.section,
      offset: entry.offset,
      layer: tensor.name,
    });
  });
  return {
    header,
    sections,
    manifest,
    constants,
    sha256: digest.toString('hex'),
    signerKeyId: trailer.keyId.toString('hex'),
    signature,
    fileBytes: bytes.length,
  };
}

export function readPackageFile(path: string, options: ReadOptions = {}): Package {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new PackageError('io', `cannot read package ${path}: ${(error as Error).message}`);
  }
  return readPackage(bytes, options);
}
