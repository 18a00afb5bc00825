// Shared by the deployment tests: signed variants of the bundled demo package, served by the real package
// server, and targets for them signed the way the manager signs them.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { defaultModelPath } from '../../../agent/config.js';
import { writeFileAtomicSync } from '../../../agent/deploy/atomic-file.js';
import type { CpuFamily, Manifest } from '../../../agent/package/manifest.js';
import { readPackage } from '../../../agent/package/reader.js';
import { signDigest } from '../../../agent/package/signing.js';
import { packageRoot } from '../../../agent/package-root.js';
import type { DeployTarget } from '../../../agent/protocol/messages.js';
import type { PackageServer } from '../../../electron/core/package-server.js';
import { packageContent, writePackage } from '../../../optimize/package/writer.js';

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

/** A package's bytes rewritten: its manifest changed by `edit`, its tensors encoded as stored (so the
 * weights stay bit for bit), signed again by privateKey. */
export function rewritePackage(
  bytes: Buffer,
  edit: (manifest: Manifest) => void,
  privateKey: KeyObject,
): Buffer {
  const { manifest, constants } = packageContent(
    readPackage(bytes, { allowUnsigned: true, cpuFamily: null }),
  );
  const edited = structuredClone(manifest);
  edit(edited);
  return writePackage({ manifest: edited, constants }, privateKey);
}

export interface VariantOptions {
  version?: string;
  cpuFamily?: CpuFamily;
  /** Drop the package's own health-check probe. */
  noProbe?: boolean;
  /** The package to vary; the bundled model by default. */
  base?: string;
}

/** The demo MLP as a package (784 → 128 → 10, NC layout): for tests that reshape its input freely. */
export function mlpPackagePath(): string {
  return join(packageRoot(), 'agent', 'models', 'fashion-mlp-int8.whittle');
}

/** The bundled demo model as another package (id fashion-<name>): same weights, different bytes, so a
 * different hash; signed by keys (the agent's pinned key in most tests). */
export function modelVariant(name: string, keys: SigningKeys, options: VariantOptions = {}): Buffer {
  return rewritePackage(
    readFileSync(options.base ?? defaultModelPath()),
    (manifest) => {
      manifest.model = { id: `fashion-${name}`, version: options.version ?? '1', name };
      if (options.cpuFamily !== undefined)
        manifest.target = { ...manifest.target, cpuFamily: options.cpuFamily };
      if (options.noProbe === true) delete manifest.probe;
    },
    keys.privateKey,
  );
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
      format: 'whittle-package',
      url: server.urlOf(sha),
      sha256: sha,
      bytes: bytes.length,
      signature: signDigest(Buffer.from(sha, 'hex'), keys.privateKey).toString('base64'),
    },
    health: { seconds: 0.3 },
    ...extra,
  };
}

/** A port nothing listens on (bound, read, released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** An agent config for a device without a manager: its broker address is a closed port (deployment needs no
 * broker; reports wait in the MQTT client), targets are dropped into its state directory with dropTarget. */
export async function offlineAgentConfig(
  dir: string,
  deviceId: string,
  keys: SigningKeys,
  extra: Record<string, unknown> = {},
): Promise<{ configFile: string; stateDir: string }> {
  const stateDir = join(dir, 'state');
  mkdirSync(join(stateDir, 'deploy'), { recursive: true });
  const configFile = join(dir, 'agent.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      broker: `mqtt://127.0.0.1:${await closedPort()}`,
      deviceId,
      password: 'x',
      stateDir,
      packageKey: keys.publicHex,
      snapshotSeconds: 0,
      reconnectMaxMs: 60_000,
      ...extra,
    }),
  );
  return { configFile, stateDir };
}

/** Drops a target into the agent's state directory, as provisioning does: it runs at the agent's next start. */
export function dropTarget(stateDir: string, target: DeployTarget): void {
  writeFileAtomicSync(join(stateDir, 'deploy', 'target.json'), JSON.stringify({ target, attempts: 0 }));
}

/** The deployment the agent finished last, from its deploy/last.json (what the deploy runner records there);
 * undefined before the first one finishes, or while the file cannot be read. */
export function lastDeployment(stateDir: string): { deploymentId: string; phase: string } | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, 'deploy', 'last.json'), 'utf8')) as {
      deploymentId: string;
      phase: string;
    };
  } catch {
    return undefined;
  }
}
