// A real serial console for tests: socat creates a pseudo-terminal pair; the test opens one end with
// serialport, and the command on the far side (a login prompt and a shell) plays the device.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { waitFor } from '../../support/stack.js';

export interface SerialConsole {
  path: string;
  stop(): Promise<void>;
}

/** Starts socat with a pseudo-terminal at `path` whose far side runs `command` (via sh -c). */
export async function startSerialConsole(command: string): Promise<SerialConsole> {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-serial-'));
  const path = join(dir, 'tty');
  const child: ChildProcess = spawn(
    'socat',
    [`PTY,link=${path},raw,echo=0`, `EXEC:${command},pty,setsid,ctty,stderr,sane`],
    { stdio: 'ignore' },
  );
  await waitFor(`socat to create ${path}`, 5000, () => (existsSync(path) ? true : undefined));
  return {
    path,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
