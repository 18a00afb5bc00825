// The manager's package-signing key pair (Ed25519). Provisioning gives every device the public half so its
// agent can verify packages; the private half never leaves the manager's data directory.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SIGNING_PRIVATE_KEY_FILE = 'package-signing-key.pem';
export const SIGNING_PUBLIC_KEY_FILE = 'package-signing-key.pub.pem';

/** The public key (SPKI PEM), creating the pair on first use (private key mode 0600). */
export function managerSigningPublicKey(dataDir: string): string {
  const publicPath = join(dataDir, SIGNING_PUBLIC_KEY_FILE);
  const privatePath = join(dataDir, SIGNING_PRIVATE_KEY_FILE);
  if (existsSync(publicPath) && existsSync(privatePath)) return readFileSync(publicPath, 'utf8');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { publicKey, privateKey } = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  // 'wx': never overwrite a key another process created meanwhile; devices would stop trusting packages.
  try {
    writeFileSync(privatePath, privateKey, { mode: 0o600, flag: 'wx' });
    writeFileSync(publicPath, publicKey, { mode: 0o644, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return readFileSync(publicPath, 'utf8');
}

/** The manager's key pair as key objects (created on first use, like managerSigningPublicKey): the
 * deployment service signs each package's SHA-256 with the private half. */
export function managerSigningKeys(dataDir: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const publicKey = createPublicKey(managerSigningPublicKey(dataDir));
  const privateKey = createPrivateKey(readFileSync(join(dataDir, SIGNING_PRIVATE_KEY_FILE), 'utf8'));
  return { privateKey, publicKey };
}
