// scripts/arm-sysroot.sh: a sysroot is used only when every file matches its manifest; a damaged one is
// refused by --check and rebuilt by a plain run; a cached .deb whose SHA256 differs from the package
// index is refused, and the failed rebuild leaves nothing half-made under the sysroot's name. Runs on
// hard-linked copies of the cached sysroot, indexes and .debs (a damaged file is replaced, never written
// through a link), offline (ARM_SYSROOT_OFFLINE=1): no download.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { packageRoot } from '../../agent/package-root.js';

const root = packageRoot();
const script = join(root, 'scripts', 'arm-sysroot.sh');
const cache = join(root, 'build', 'sysroot');
const ARCH = 'armhf';

function run(args: string[], sysrootDir = cache): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('bash', [script, ...args], {
    encoding: 'utf8',
    env: { ...process.env, SYSROOT_DIR: sysrootDir, ARM_SYSROOT_OFFLINE: '1' },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Replaces a file of a hard-linked copy by new content of the same mode (the original keeps its bytes). */
function replaceFile(path: string, content: string): void {
  const { mode } = statSync(path);
  rmSync(path);
  writeFileSync(path, content, { mode });
}

test('an unknown architecture is refused naming the choices', () => {
  const r = spawnSync('bash', [script, 'mips'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unknown architecture "mips": expected arm64 or armhf/);
});

const cached = run(['--check', ARCH]);
const skip =
  cached.status === 0
    ? false
    : `no cached ${ARCH} sysroot to copy (${cached.stderr.trim()}); see scripts/setup.sh`;
if (skip) console.log(`# skipping sysroot damage tests: ${skip}`);

describe(`a damaged ${ARCH} sysroot`, { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-sysroot-'));
  const copy = (name: string): string => {
    const base = join(dir, name);
    execFileSync('mkdir', ['-p', join(base, '.apt'), join(base, '.debs')]);
    execFileSync('cp', ['-al', join(cache, ARCH), join(base, ARCH)]);
    execFileSync('cp', ['-al', join(cache, '.apt', ARCH), join(base, '.apt', ARCH)]);
    execFileSync('cp', ['-al', join(cache, '.debs', ARCH), join(base, '.debs', ARCH)]);
    return base;
  };
  const node = (base: string): string => join(base, ARCH, 'usr', 'bin', 'node');
  let original: Buffer;
  before(() => {
    original = readFileSync(node(cache));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is refused by --check: a changed file, a missing file, no manifest', () => {
    const changed = copy('changed');
    replaceFile(node(changed), 'not node');
    const r1 = run(['--check', ARCH], changed);
    assert.equal(r1.status, 1);
    assert.match(
      r1.stderr,
      /not a usable sysroot: files differ from the manifest: \.\/usr\/bin\/node: FAILED/,
    );
    assert.match(r1.stderr, new RegExp(`rebuild it with scripts/arm-sysroot.sh ${ARCH}`));

    const missing = copy('missing');
    const lib = join(missing, ARCH, 'usr', 'lib', 'arm-linux-gnueabihf');
    const libnode = readdirSync(lib).find((f) => f.startsWith('libnode.so.'))!;
    rmSync(join(lib, libnode));
    const r2 = run(['--check', ARCH], missing);
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, new RegExp(`files differ from the manifest: .*${libnode.replace(/\./g, '\\.')}`));

    const unfinished = copy('unfinished');
    rmSync(join(unfinished, ARCH, '.whittle-sysroot-manifest'));
    const r3 = run(['--check', ARCH], unfinished);
    assert.equal(r3.status, 1);
    assert.match(r3.stderr, /no manifest .*never finished/);
  });

  test('is rebuilt from the verified .debs by a plain run, then passes --check', { timeout: 300_000 }, () => {
    const base = copy('rebuilt');
    replaceFile(node(base), 'not node');
    const foreign = (): string =>
      execFileSync('dpkg', ['--print-foreign-architectures'], { encoding: 'utf8' });
    const foreignBefore = foreign();
    const r = run([ARCH], base);
    // apt ran with ARCH as its native architecture in a private world: dpkg was never told about it.
    assert.equal(foreign(), foreignBefore);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /is not usable \(files differ from the manifest.*\): rebuilding/);
    assert.match(r.stdout, /ready: \d+ packages/);
    assert.deepEqual(readFileSync(node(base)), original);
    assert.equal(run(['--check', ARCH], base).status, 0);
  });

  test('a cached .deb whose SHA256 differs from the index is refused; nothing half-made is left', () => {
    const base = copy('bad-deb');
    replaceFile(node(base), 'not node');
    const debs = join(base, '.debs', ARCH);
    // The first package extracted (they go in name order), so the refusal comes before any work.
    const first = readdirSync(debs).sort()[0]!;
    replaceFile(join(debs, first), 'not a deb');
    const r = run([ARCH], base);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      new RegExp(`the cached ${first.replace(/[.+~]/g, '\\$&')} does not match the index's SHA256: refused`),
    );
    assert.match(r.stderr, new RegExp(`${first.split('_')[0]!}: no cached \\.deb with the index's SHA256`));
    // The damaged sysroot is still refused, and no temporary tree is left next to it.
    assert.equal(run(['--check', ARCH], base).status, 1);
    assert.deepEqual(
      readdirSync(base).filter((f) => f.includes('building')),
      [],
    );
    assert.ok(existsSync(join(base, ARCH)));
  });
});
