// scripts/cross-build-addon.sh: the addon for arm64 and armv7, built with Debian's cross compilers
// against Node's headers, loads on its CPU (under qemu) with every symbol but Node's own resolved.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';

const root = packageRoot();
const script = join(root, 'scripts', 'cross-build-addon.sh');
const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

const TARGETS = [
  { arch: 'arm64', triplet: 'aarch64-linux-gnu', qemu: 'qemu-aarch64-static', machine: 'AArch64' },
  { arch: 'armv7', triplet: 'arm-linux-gnueabihf', qemu: 'qemu-arm-static', machine: 'ARM' },
] as const;

// Loads a stand-in for Node's napi_* symbols globally, then the addon with RTLD_NOW: every other symbol
// (C and C++ runtime, libm, pthreads) must resolve against the target's libraries.
const LOADER = `#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
  if (argc != 3 || !dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL)) { printf("stub: %s\\n", dlerror()); return 2; }
  void *addon = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
  if (!addon) { printf("dlopen: %s\\n", dlerror()); return 1; }
  printf("%s\\n", dlsym(addon, "napi_register_module_v1") ? "registers" : "no napi_register_module_v1");
  return 0;
}
`;

describe('cross-built native addon', () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-cross-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an unknown target is refused naming the choices', () => {
    const r = spawnSync('bash', [script, 'sparc'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unknown target "sparc": expected x64, arm64, armv7 or native/);
  });

  for (const t of TARGETS) {
    const missing = [`${t.triplet}-g++`, `${t.triplet}-gcc`, t.qemu, 'nm'].filter((tool) => !has(tool));
    test(
      `the ${t.arch} addon builds and loads under ${t.qemu}`,
      {
        skip: missing.length ? `missing ${missing.join(', ')} (see scripts/setup.sh)` : false,
        timeout: 900_000,
      },
      () => {
        execFileSync('bash', [script, t.arch], {
          cwd: root,
          stdio: ['ignore', 'ignore', 'pipe'],
          maxBuffer: 64 << 20,
        });
        const addon = join(root, 'build', 'addon', t.arch, 'whittle_native.node');
        const header = execFileSync('readelf', ['-h', addon], { encoding: 'utf8' });
        assert.match(header, new RegExp(`Machine:\\s+${t.machine}`));
        const napi = [
          ...new Set(
            execFileSync('nm', ['-D', '--undefined-only', addon], { encoding: 'utf8' })
              .split('\n')
              .map((l) => l.trim().split(/\s+/).pop()!.replace(/@.*/, ''))
              .filter((s) => s.startsWith('napi_')),
          ),
        ];
        assert.ok(napi.length > 0, 'the addon calls Node-API');
        writeFileSync(
          join(dir, `stub-${t.arch}.c`),
          napi.map((s) => `int ${s}(void) { return 0; }\n`).join(''),
        );
        writeFileSync(join(dir, 'loader.c'), LOADER);
        execFileSync(`${t.triplet}-gcc`, [
          '-shared',
          '-fPIC',
          '-o',
          join(dir, `stub-${t.arch}.so`),
          join(dir, `stub-${t.arch}.c`),
        ]);
        execFileSync(`${t.triplet}-gcc`, [
          '-o',
          join(dir, `loader-${t.arch}`),
          join(dir, 'loader.c'),
          '-ldl',
        ]);
        const run = spawnSync(
          t.qemu,
          ['-L', `/usr/${t.triplet}`, join(dir, `loader-${t.arch}`), join(dir, `stub-${t.arch}.so`), addon],
          { encoding: 'utf8' },
        );
        assert.equal(run.stdout.trim(), 'registers', run.stdout + run.stderr);
      },
    );
  }
});
