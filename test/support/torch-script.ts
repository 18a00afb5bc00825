// PyTorch scripts the tests run with Debian's python3-torch (/usr/bin/python3: its packages do not load under
// the python3 first on PATH): a scratch directory for what they write, and the float32 files read back.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PYTHON = '/usr/bin/python3';

/** Whether /usr/bin/python3 imports these modules (e.g. ['torch', 'torchvision']). */
export const pythonHas = (modules: readonly string[]): boolean =>
  spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}`], { stdio: 'ignore' }).status === 0;

/** Runs `script` with a scratch directory as its first argument (then `args`), calls `use` with the directory
 * and a reader of the float32 files the script wrote there, and removes the directory. */
export function withTorchScript<T>(
  script: string,
  args: readonly string[],
  use: (dir: string, floats: (name: string) => Float32Array) => T,
): T {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-torch-'));
  try {
    execFileSync(PYTHON, ['-c', script, dir, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const floats = (name: string): Float32Array => {
      const bytes = readFileSync(join(dir, name));
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4).slice();
    };
    return use(dir, floats);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
