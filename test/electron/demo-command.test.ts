// `whittle demo` as a user runs it: by default it makes the labelled Fashion-MNIST video once (cached under
// the data directory), prints a per-second line with the live accuracy, restarts its local agent after a
// kill -9 and says so, and stops cleanly on Ctrl-C. `--camera testsrc` prints no accuracy.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../agent/package-root.js';

/** The per-second line of a labelled device: both figures, each labelled. */
const ACCURACY_LINE =
  /acc \d+\.\d % over [\d,]+ frames \(last 30 s\), running \d+\.\d % over [\d,]+ frames$/m;

interface Demo {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the output from `from` on once `pattern` matches it; rejects after timeoutMs. */
  waitFor: (pattern: RegExp, timeoutMs: number, from?: number) => Promise<string>;
  exited: Promise<number | null>;
}

function startDemo(dataDir: string, ...extra: string[]): Demo {
  const child = spawn(
    process.execPath,
    [
      join(packageRoot(), 'bin', 'whittle.js'),
      'demo',
      ...['--data-dir', dataDir, '--port', '0', '--mqtt-port', '0', '--package-port', '0'],
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (t: string) => (text += t));
  child.stderr.on('data', (t: string) => (text += t));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => text,
    exited,
    waitFor: async (pattern, timeoutMs, from = 0) => {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(text.slice(from))) {
        if (Date.now() > deadline || child.exitCode !== null)
          assert.fail(`no ${pattern} in ${timeoutMs} ms; the demo printed:\n${text.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      return text.slice(from);
    },
  };
}

/** The pid of the demo's local agent: the process running with its config file. */
function localAgentPid(dataDir: string): number {
  const config = join(dataDir, 'local-agent.json');
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes(config) && argv.some((a) => a.endsWith('whittle-agent.js'))) return Number(entry);
    } catch {
      // the process ended meanwhile
    }
  }
  return assert.fail(`no process runs the agent config ${config}`);
}

test(
  'whittle demo: a labelled video by default, live accuracy per second, a killed agent restarted within 10 s',
  { timeout: 120_000 },
  async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'whittle-demo-'));
    const demo = startDemo(dataDir);
    try {
      await demo.waitFor(
        /made the labelled demo video \(10000 Fashion-MNIST test images at 30 fps\)/,
        60_000,
      );
      assert.ok(existsSync(join(dataDir, 'demo-video', 'fashion-mnist-test-30fps.mp4.labels.json')));
      await demo.waitFor(ACCURACY_LINE, 30_000);

      const killedAt = Date.now();
      const mark = demo.output().length;
      process.kill(localAgentPid(dataDir), 'SIGKILL');
      await demo.waitFor(
        /the local agent died \(killed by SIGKILL after [\d.]+ s\); restarting it in/,
        10_000,
        mark,
      );
      const restarted = await demo.waitFor(
        /the local agent is running again \(pid \d+, restart 1\)/,
        10_000,
        mark,
      );
      assert.match(restarted, / offline$/m, 'the gap shows as offline');
      const afterRestart = demo.output().length;
      await demo.waitFor(ACCURACY_LINE, Math.max(0, 10_000 - (Date.now() - killedAt)), afterRestart);
      t.diagnostic(`accuracy line again ${Date.now() - killedAt} ms after the kill`);
    } finally {
      demo.child.kill('SIGINT');
    }
    assert.equal(await demo.exited, 0, demo.output().slice(-2000));
    assert.match(demo.output(), /whittle: stopping/);

    // A camera without labels: the demo says so and prints no accuracy.
    const plain = startDemo(dataDir, '--camera', 'testsrc');
    try {
      await plain.waitFor(/the camera has no labels: no live accuracy/, 20_000);
      await plain.waitFor(/ fps .* rss \d+ MB/, 30_000);
    } finally {
      plain.child.kill('SIGINT');
    }
    assert.equal(await plain.exited, 0);
    assert.doesNotMatch(plain.output(), /acc \d/);
    rmSync(dataDir, { recursive: true, force: true });
  },
);
