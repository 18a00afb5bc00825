// How every bench subcommand answers a mistyped flag or value: one line naming it and the help hint on
// stderr, exit code 2, no stack trace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { packageRoot } from '../../agent/package-root.js';

export function assertUsageError(args: readonly string[], message: RegExp): void {
  const cli = join(packageRoot(), 'dist', 'bench', 'cli.js');
  const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, message);
  assert.match(run.stderr, /see npm run bench -- --help\n$/);
  assert.doesNotMatch(run.stderr, /\n\s+at /);
}
