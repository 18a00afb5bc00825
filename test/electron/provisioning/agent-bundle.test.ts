// The agent as shipped: one esbuild bundle plus the addon for the device's CPU, runnable with no
// node_modules next to it.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { packageVersion } from '../../../agent/package-root.js';
import { ADDON_RELATIVE_PATH, buildAgentBundle } from '../../../electron/core/provisioning/agent-bundle.js';

const canBuildArm64 = spawnSync('sh', ['-c', 'command -v aarch64-linux-gnu-g++']).status === 0;

describe('agent bundle', () => {
  test(
    'x64: one .mjs under 5 MB that runs from an unpacked tarball without node_modules',
    { skip: process.arch === 'x64' ? false : 'needs an x64 machine' },
    async () => {
      const bundle = await buildAgentBundle('x64', false);
      const unpacked = mkdtempSync(join(tmpdir(), 'whittle-bundle-run-'));
      try {
        assert.ok(bundle.hasAddon);
        assert.ok(bundle.bundleBytes < 5 * 2 ** 20, `${bundle.bundleBytes} bytes`);
        execFileSync('tar', ['-xzf', bundle.tarball, '-C', unpacked]);
        assert.equal(existsSync(join(unpacked, 'node_modules')), false);
        const manifest = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8')) as { name: string };
        assert.equal(manifest.name, 'whittle');
        const version = execFileSync(process.execPath, [join(unpacked, 'agent', 'cli.mjs'), '--version'], {
          cwd: unpacked,
          encoding: 'utf8',
        });
        assert.equal(version.trim(), packageVersion());
        // The agent's own loader finds and loads the shipped addon.
        const r = spawnSync(
          process.execPath,
          [
            '-e',
            `if (typeof require(${JSON.stringify(join(unpacked, ADDON_RELATIVE_PATH))}).Conv2d !== 'function') ` +
              `process.exit(3)`,
          ],
          { encoding: 'utf8' },
        );
        assert.equal(r.status, 0, r.stderr);
      } finally {
        rmSync(unpacked, { recursive: true, force: true });
        bundle.remove();
      }
      assert.equal(existsSync(bundle.dir), false);
    },
  );

  test(
    'arm64: ships the cross-compiled AArch64 addon',
    { skip: canBuildArm64 ? false : 'aarch64-linux-gnu-g++ is missing', timeout: 900_000 },
    async () => {
      const lines: string[] = [];
      const bundle = await buildAgentBundle('arm64', false, (l) => lines.push(l));
      try {
        const addon = join(bundle.dir, 'app', ADDON_RELATIVE_PATH);
        assert.ok(statSync(addon).size > 0);
        assert.match(execFileSync('readelf', ['-h', addon], { encoding: 'utf8' }), /Machine:\s+AArch64/);
      } finally {
        bundle.remove();
      }
    },
  );
});
