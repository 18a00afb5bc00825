// The agent as shipped to a device: one esbuild bundle of agent/cli.ts (no node_modules), the bundled
// model, and the native addon built for the device's CPU, laid out like a Whittle checkout so the agent's
// own file lookups (package.json named "whittle", native/build/Release/whittle_native.node) work as is.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { packageRoot, packageVersion } from '../../../agent/package-root.js';
import type { AddonArch } from './device-probe.js';
import { AgentBundleError } from './errors.js';

const execFileAsync = promisify(execFile);

export const ADDON_RELATIVE_PATH = 'native/build/Release/whittle_native.node';

export interface AgentBundle {
  /** A temporary directory holding the layout; remove() deletes it. */
  dir: string;
  /** The same layout as one .tar.gz, for a single upload. */
  tarball: string;
  arch: AddonArch;
  /** false: the addon is missing and must be built on the device (see addonSourceTarball). */
  hasAddon: boolean;
  bundleBytes: number;
  remove(): void;
}

/** Where a prebuilt addon for `arch` is looked for, in order. */
export function addonCandidates(arch: AddonArch, root = packageRoot()): string[] {
  const crossBuilt = join(root, 'build', 'addon', arch, 'whittle_native.node');
  // node-gyp's build is for this machine's CPU only.
  if (arch === 'x64' && process.arch === 'x64' && process.platform === 'linux')
    return [join(root, ADDON_RELATIVE_PATH), crossBuilt];
  return [crossBuilt];
}

// esbuild is a development dependency: provisioning runs from a Whittle checkout, not a packaged app.
type EsbuildModule = typeof import('esbuild');

async function loadEsbuild(): Promise<EsbuildModule> {
  try {
    return await import('esbuild');
  } catch (err) {
    throw new AgentBundleError(
      `cannot load esbuild to bundle the agent (${(err as Error).message}); run npm ci in the Whittle checkout`,
    );
  }
}

const CROSS_COMPILERS: Record<AddonArch, string> = {
  x64: 'g++',
  arm64: 'aarch64-linux-gnu-g++',
  armv7: 'arm-linux-gnueabihf-g++',
};

function crossCompilerPresent(arch: AddonArch): boolean {
  if (arch === 'x64' && process.arch !== 'x64') return false;
  return spawnSync('sh', ['-c', `command -v ${CROSS_COMPILERS[arch]}`], { stdio: 'ignore' }).status === 0;
}

/** Bundles the agent and picks the addon for `arch`; `allowMissingAddon` when the device can build it. */
export async function buildAgentBundle(
  arch: AddonArch,
  allowMissingAddon: boolean,
  progress?: (line: string) => void,
): Promise<AgentBundle> {
  const root = packageRoot();
  const entry = join(root, 'agent', 'cli.ts');
  if (!existsSync(entry))
    throw new AgentBundleError(
      `the agent's sources are missing (${entry}); provisioning needs a Whittle checkout`,
    );
  let addon = addonCandidates(arch, root).find((p) => existsSync(p));
  // A cross-built addon may be older than the sources; the script rebuilds only what changed (3 s if nothing).
  if ((arch !== 'x64' || !addon) && crossCompilerPresent(arch)) {
    progress?.(`cross-compiling the native addon for ${arch} (scripts/cross-build-addon.sh ${arch})`);
    // Asynchronous: a 40 s compile must not freeze the manager (or the Electron window).
    await execFileAsync('bash', [join(root, 'scripts', 'cross-build-addon.sh'), arch], {
      cwd: root,
      maxBuffer: 64 << 20,
    }).catch((err: { stderr?: string; message: string }) => {
      throw new AgentBundleError(
        `cross-compiling the addon for ${arch} failed: ${(err.stderr || err.message).trim().split('\n').slice(-5).join('\n  ')}`,
      );
    });
    addon = addonCandidates(arch, root).find((p) => existsSync(p));
  }
  if (!addon && !allowMissingAddon)
    throw new AgentBundleError(
      `no native addon for ${arch}: looked for ${addonCandidates(arch, root).join(', ')}. Build it with ` +
        `scripts/cross-build-addon.sh ${arch} (needs the Debian package ${arch === 'armv7' ? 'g++-arm-linux-gnueabihf' : arch === 'arm64' ? 'g++-aarch64-linux-gnu' : 'g++'}), ` +
        `or install gcc, g++ and Node's headers on the device so it can build its own`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'whittle-agent-bundle-'));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    const esbuild = await loadEsbuild();
    const outfile = join(dir, 'app', 'agent', 'cli.mjs');
    const result = await esbuild.build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node18',
      minify: true,
      legalComments: 'none',
      logLevel: 'silent',
      // CommonJS dependencies (mqtt's) call require(); an ES module has none of its own.
      banner: {
        js: "import { createRequire as __whittleRequire } from 'node:module'; const require = __whittleRequire(import.meta.url);",
      },
    });
    if (result.errors.length)
      throw new AgentBundleError(`bundling the agent failed: ${result.errors.map((e) => e.text).join('; ')}`);
    writeFileSync(
      join(dir, 'app', 'package.json'),
      `${JSON.stringify({ name: 'whittle', version: packageVersion(), private: true, type: 'module' }, null, 2)}\n`,
    );
    cpSync(join(root, 'agent', 'models'), join(dir, 'app', 'agent', 'models'), { recursive: true });
    if (addon) {
      mkdirSync(join(dir, 'app', 'native', 'build', 'Release'), { recursive: true });
      copyFileSync(addon, join(dir, 'app', ADDON_RELATIVE_PATH));
    }
    const tarball = join(dir, 'agent.tar.gz');
    execFileSync('tar', ['-czf', tarball, '-C', join(dir, 'app'), '.']);
    return { dir, tarball, arch, hasAddon: addon !== undefined, bundleBytes: statSync(outfile).size, remove };
  } catch (err) {
    remove();
    if (err instanceof AgentBundleError) throw err;
    throw new AgentBundleError(`cannot build the agent bundle: ${(err as Error).message}`);
  }
}

/** The addon's sources, node-addon-api's headers and the build script, as one tarball for the device. */
export function addonSourceTarball(dir: string): string {
  const root = packageRoot();
  const out = join(dir, 'addon-src.tar.gz');
  const staging = join(dir, 'addon-src');
  mkdirSync(join(staging, 'scripts'), { recursive: true });
  cpSync(join(root, 'native', 'src'), join(staging, 'native', 'src'), { recursive: true });
  cpSync(join(root, 'node_modules', 'node-addon-api'), join(staging, 'node_modules', 'node-addon-api'), {
    recursive: true,
    filter: (p) => !p.includes(`${join('node-addon-api', 'doc')}`),
  });
  copyFileSync(
    join(root, 'scripts', 'cross-build-addon.sh'),
    join(staging, 'scripts', 'cross-build-addon.sh'),
  );
  execFileSync('tar', ['-czf', out, '-C', staging, '.']);
  return out;
}
