// Content hash and Ed25519 signature of a package (node:crypto only). The signature is over the 32-byte
// SHA-256 of the content, so a reader can hash once and check both.
import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';

import { PackageError } from './errors.js';

export function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** The raw 32-byte Ed25519 public key (the last 32 bytes of its SPKI DER form). */
export function rawPublicKey(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new PackageError(
      'wrong-key',
      `expected an Ed25519 key but received ${key.asymmetricKeyType ?? 'a secret key'}`,
    );
  }
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** First 16 bytes of SHA-256 of the raw public key: names the signer in the trailer and in `inspect`. */
const keyIds = new WeakMap<KeyObject, Buffer>();

export function keyId(key: KeyObject): Buffer {
  let id = keyIds.get(key);
  if (id === undefined) {
    id = sha256(rawPublicKey(key)).subarray(0, 16);
    keyIds.set(key, id);
  }
  return Buffer.from(id);
}

export function signDigest(digest: Buffer, privateKey: KeyObject): Buffer {
  return sign(null, digest, privateKey);
}

export function verifyDigest(digest: Buffer, signature: Buffer, publicKey: KeyObject): boolean {
  return verify(null, digest, publicKey, signature);
}

/** A public key from PEM text or a 32-byte raw key in hex; throws PackageError('wrong-key') otherwise. */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  try {
    if (/^[0-9a-fA-F]{64}$/.test(trimmed)) {
      const prefix = Buffer.from('302a300506032b6570032100', 'hex'); // SPKI header of an Ed25519 key
      return createPublicKey({
        key: Buffer.concat([prefix, Buffer.from(trimmed, 'hex')]),
        format: 'der',
        type: 'spki',
      });
    }
    const key = createPublicKey(trimmed);
    if (key.asymmetricKeyType !== 'ed25519')
      throw new Error(`a ${key.asymmetricKeyType ?? 'non-asymmetric'} key`);
    return key;
  } catch (error) {
    throw new PackageError(
      'wrong-key',
      `expected an Ed25519 public key (PEM, or 64 hex digits) but could not read it: ${(error as Error).message}`,
    );
  }
}
