// The first of a downloaded package's two checks, shared by a deployment's verify step and a measurement
// the manager asks for: the file is the one the manager named (its SHA-256) and the manager signed that hash
// with the key this device pins. The second check, the package's embedded signature, is the loader's.
import type { KeyObject } from 'node:crypto';

import { verifyDigest } from '../package/signing.js';
import { DeployError } from './errors.js';
import { sha256File } from './model-store.js';

/** Rejects with DeployError hash-mismatch or bad-signature (no key pinned is a bad signature too). */
export async function checkSignedFile(
  path: string,
  expected: { sha256: string; signature: string },
  publicKey: KeyObject | null,
  signal?: AbortSignal,
): Promise<void> {
  const actual = await sha256File(path, signal);
  if (actual !== expected.sha256)
    throw new DeployError(
      'hash-mismatch',
      `the downloaded file's SHA-256 is ${actual}; the manager says ${expected.sha256}`,
    );
  if (
    !publicKey ||
    !verifyDigest(Buffer.from(actual, 'hex'), Buffer.from(expected.signature, 'base64'), publicKey)
  )
    throw new DeployError(
      'bad-signature',
      `the signature of ${expected.sha256} does not verify against the pinned package key`,
    );
}
