// `whittle train` as a user runs it: a real child process, a real SIGINT mid-epoch that leaves a checkpoint,
// `--resume` that finishes the run, and usage errors that name what was wrong.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { packageRoot } from '../../../agent/package-root.js';

const WHITTLE = join(packageRoot(), 'bin', 'whittle.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs whittle; `interruptWhen` sends SIGINT once stderr matches it. */
function whittle(args: string[], interruptWhen?: RegExp): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WHITTLE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (interruptWhen && !interrupted && interruptWhen.test(stderr)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('whittle train', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-train-cli-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  test('Ctrl-C saves a checkpoint mid-epoch and --resume finishes the run', async () => {
    const out = join(root, 'run');
    const common = [
      '--dataset',
      'fashion-mnist',
      '--limit',
      '1200',
      '--test-limit',
      '200',
      '--batch-size',
      '16',
    ];
    const first = await whittle(
      ['train', '--model', 'lenet5', '--epochs', '1', '--out', out, ...common],
      /epoch 1\/1 \[[#.]+\] [1-9]\d*\/\d+ loss/,
    );
    assert.equal(first.code, 130, first.stderr);
    assert.match(first.stderr, /interrupted, saving a checkpoint/);
    assert.match(first.stderr, /continue with --resume/);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')) as {
      epoch: number;
      batch: number;
    };
    assert.equal(state.epoch, 0);
    assert.ok(state.batch > 0, 'stopped after at least one batch');
    assert.equal(existsSync(join(out, 'model.json')), false);

    const second = await whittle(['train', '--resume', '--epochs', '1', '--out', out, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const result = JSON.parse(second.stdout) as {
      epochsRun: number;
      evaluation: { on: string; count: number };
    };
    assert.equal(result.epochsRun, 1);
    assert.deepEqual([result.evaluation.on, result.evaluation.count], ['test', 200]);
    assert.ok(existsSync(join(out, 'model.json')));
    assert.ok(existsSync(join(out, 'evaluation.json')));
  });

  test('usage and data errors print one line naming the problem and exit 1', async () => {
    const refused: [args: string[], message: RegExp][] = [
      [['--model', 'lenet5', '--dataset', 'fashion-mnist'], /whittle train: --out DIR is required/],
      [
        ['--model', 'lenet5', '--dataset', 'imagenet', '--out', join(root, 'x')],
        /whittle train: unknown dataset "imagenet"/,
      ],
      [
        ['--model', 'alexnet', '--dataset', 'fashion-mnist', '--limit', '50', '--out', join(root, 'y')],
        /whittle train: unknown model "alexnet"/,
      ],
      [
        ['--model', 'lenet5', '--dataset', 'fashion-mnist', '--epochs', 'two', '--out', join(root, 'z')],
        /--epochs: expected an integer but received "two"/,
      ],
      [
        [
          '--model',
          'lenet5',
          '--dataset',
          'fashion-mnist',
          '--lr-schedule',
          'linear',
          '--out',
          join(root, 'w'),
        ],
        /whittle train: expected lrSchedule \(--lr-schedule\) to be .* received linear/,
      ],
    ];
    for (const [args, message] of refused) {
      const run = await whittle(['train', ...args]);
      assert.equal(run.code, 1, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
    }
  });
});
