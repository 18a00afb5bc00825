// The manager's command line as a user runs it: `node bin/whittle.js …` in a child process, with a private
// data dir (so a test never touches the user's signing key) and a fresh Ed25519 key pair as PEM files.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { packageRoot } from '../../agent/package-root.js';

export interface CliRun {
  status: number;
  stdout: string;
  stderr: string;
}

export interface CliSandbox {
  /** A temporary directory for the test's files; removed by cleanup(). */
  dir: string;
  privateKey: string;
  publicKey: string;
  whittle: (...args: string[]) => CliRun;
  cleanup: () => void;
}

export function cliSandbox(prefix: string, timeoutMs = 60_000): CliSandbox {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const env = { ...process.env, XDG_DATA_HOME: join(dir, 'data') };
  const cli = join(packageRoot(), 'bin', 'whittle.js');
  const keys = generateKeyPairSync('ed25519');
  const privateKey = join(dir, 'key.pem');
  const publicKey = join(dir, 'key.pub.pem');
  writeFileSync(privateKey, keys.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  writeFileSync(publicKey, keys.publicKey.export({ format: 'pem', type: 'spki' }));
  return {
    dir,
    privateKey,
    publicKey,
    whittle: (...args) => {
      const result = spawnSync(process.execPath, [cli, ...args], {
        env,
        encoding: 'utf8',
        timeout: timeoutMs,
      });
      return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
