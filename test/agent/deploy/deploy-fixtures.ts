// Shared by the deployment tests: signed variants of the demo model, served by the real package server.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { defaultModelPath } from '../../../agent/config.js';
import { signDigest } from '../../../agent/package/signing.js';
import type { DeployTarget } from '../../../agent/protocol/messages.js';
import type { PackageServer } from '../../../electron/core/package-server.js';

export interface SigningKeys {
  publicKey: KeyObject;
  privateKey: KeyObject;
  /** 64 hex digits of the raw public key, as an agent config takes it. */
  publicHex: string;
}

export function signingKeys(): SigningKeys {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { publicKey, privateKey, publicHex: Buffer.from(der.subarray(der.length - 32)).toString('hex') };
}

/** The demo model under another name: same weights, different bytes, so a different hash. */
export function modelVariant(name: string): Buffer {
  const json = JSON.parse(readFileSync(defaultModelPath(), 'utf8')) as { name: string; id: string };
  json.name = name;
  json.id = `fashion-${name}`;
  return Buffer.from(JSON.stringify(json));
}

export function signedTarget(
  server: PackageServer,
  bytes: Buffer,
  keys: SigningKeys,
  deploymentId: string,
  version: string,
  extra: Partial<DeployTarget> = {},
): DeployTarget {
  const sha = server.add(bytes);
  return {
    v: 1,
    deploymentId,
    model: {
      id: 'fashion',
      version,
      format: 'whittle-int8-mlp',
      url: server.urlOf(sha),
      sha256: sha,
      bytes: bytes.length,
      signature: signDigest(Buffer.from(sha, 'hex'), keys.privateKey).toString('base64'),
    },
    health: { seconds: 0.3 },
    ...extra,
  };
}
