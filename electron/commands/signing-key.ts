// The manager's package signing key: an Ed25519 key pair kept in the data directory (private key mode 600),
// created on first use. Agents trust its public key; `--key` overrides it for a single command.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { bundledSigningKey } from '../../optimize/package/writer.js';
import { defaultDataDir } from '../core/core.js';
import { CommandUsageError } from './command-error.js';

export function signingKeyPaths(dataDir = defaultDataDir()): { privateKey: string; publicKey: string } {
  return {
    privateKey: join(dataDir, 'package-signing-key.pem'),
    publicKey: join(dataDir, 'package-signing-key.pub.pem'),
  };
}

/** The private key from `path`, or the data directory's (created when missing). */
export function loadSigningKey(path?: string): { key: KeyObject; created: string | null } {
  const paths = signingKeyPaths();
  const file = path ?? paths.privateKey;
  if (path === undefined && !existsSync(file)) {
    const pair = generateKeyPairSync('ed25519');
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    chmodSync(file, 0o600);
    writeFileSync(paths.publicKey, pair.publicKey.export({ format: 'pem', type: 'spki' }));
    return { key: pair.privateKey, created: file };
  }
  try {
    const key = createPrivateKey(readFileSync(file, 'utf8'));
    if (key.asymmetricKeyType !== 'ed25519')
      throw new Error(`a ${key.asymmetricKeyType ?? 'non-asymmetric'} key`);
    return { key, created: null };
  } catch (error) {
    throw new CommandUsageError(
      `cannot use ${file} as an Ed25519 private signing key: ${(error as Error).message}`,
    );
  }
}

/** PEM text of the public key to verify with: `path`, else the data directory's signing key, else null. */
export function defaultVerifyKeyText(path?: string): string | null {
  if (path !== undefined) {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new CommandUsageError(`cannot read the public key ${path}: ${(error as Error).message}`);
    }
  }
  const paths = signingKeyPaths();
  if (existsSync(paths.publicKey)) return readFileSync(paths.publicKey, 'utf8');
  if (existsSync(paths.privateKey)) {
    return createPublicKey(readFileSync(paths.privateKey, 'utf8'))
      .export({ format: 'pem', type: 'spki' })
      .toString();
  }
  return null;
}

/** The signing options (--key FILE | --bundled-key), spread into a command's parseArgs options. */
export const SIGNING_OPTIONS = {
  key: { type: 'string' },
  'bundled-key': { type: 'boolean' },
} as const;

export interface SigningValues {
  key?: string | undefined;
  'bundled-key'?: boolean | undefined;
}

/** Refuses --key with --bundled-key (commands call it with their other usage checks, before any work). */
export function checkSigningOptions(values: SigningValues): void {
  if (values.key !== undefined && values['bundled-key'])
    throw new CommandUsageError('--key and --bundled-key exclude each other');
}

/** The key the signing options name: the bundled key, --key's, or the data directory's (created when missing). */
export function signingKeyOption(values: SigningValues): { key: KeyObject; created: string | null } {
  checkSigningOptions(values);
  return values['bundled-key'] ? { key: bundledSigningKey(), created: null } : loadSigningKey(values.key);
}
