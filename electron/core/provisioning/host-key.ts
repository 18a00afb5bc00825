// SSH host keys: the fingerprint as OpenSSH prints it, and the trust-on-first-use policy — a key is
// accepted only by the user (interactively or with --accept-host-key), then pinned; a different key on a
// later contact is refused with both fingerprints.
import { createHash } from 'node:crypto';

import { HostKeyChangedError, HostKeyNotAcceptedError } from './errors.js';

export interface HostKey {
  /** The key's algorithm as named inside the key blob: ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, ... */
  keyType: string;
  /** "SHA256:" + unpadded base64 of the SHA-256 of the key blob, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/** Where pins live (the manager's store). */
export interface HostKeyPins {
  pinnedHostKey(host: string, port: number): HostKey | undefined;
  pinHostKey(host: string, port: number, key: HostKey): void;
}

/** Decides about a key seen for the first time: true to accept (it is then pinned). */
export type AcceptHostKey = (host: string, port: number, key: HostKey) => Promise<boolean>;

export function sha256Fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** Reads the algorithm name that starts every SSH public key blob (uint32 length, then the name). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const length = keyBlob.readUInt32BE(0);
  if (length < 1 || length > 64 || 4 + length > keyBlob.length) return 'unknown';
  return keyBlob.subarray(4, 4 + length).toString('latin1');
}

export function hostKeyOf(keyBlob: Buffer): HostKey {
  return { keyType: keyTypeOf(keyBlob), fingerprint: sha256Fingerprint(keyBlob) };
}

const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9+/]{43}$/;

export function isFingerprint(text: string): boolean {
  return FINGERPRINT_PATTERN.test(text);
}

/** An acceptance rule for non-interactive use: accept exactly the fingerprint the user passed. */
export function acceptFingerprint(expected: string): AcceptHostKey {
  return (host, port, key) => {
    if (key.fingerprint === expected) return Promise.resolve(true);
    return Promise.reject(new HostKeyNotAcceptedError(host, port, key.keyType, key.fingerprint, expected));
  };
}

/** Refuses every unknown key, naming its fingerprint (for callers that cannot ask). */
export const refuseUnknownHostKey: AcceptHostKey = (host, port, key) =>
  Promise.reject(new HostKeyNotAcceptedError(host, port, key.keyType, key.fingerprint));

/**
 * Checks a presented key against the pins: resolves when it is the pinned key or a newly accepted one
 * (which is then pinned); rejects with HostKeyChangedError or HostKeyNotAcceptedError otherwise.
 */
export async function verifyHostKey(
  pins: HostKeyPins,
  host: string,
  port: number,
  keyBlob: Buffer,
  accept: AcceptHostKey,
): Promise<HostKey> {
  const presented = hostKeyOf(keyBlob);
  const pinned = pins.pinnedHostKey(host, port);
  if (pinned) {
    if (pinned.fingerprint === presented.fingerprint) return presented;
    throw new HostKeyChangedError(
      host,
      port,
      `${pinned.keyType} ${pinned.fingerprint}`,
      `${presented.keyType} ${presented.fingerprint}`,
    );
  }
  if (!(await accept(host, port, presented)))
    throw new HostKeyNotAcceptedError(host, port, presented.keyType, presented.fingerprint);
  pins.pinHostKey(host, port, presented);
  return presented;
}
