// A latency "measured on this machine's runtime" is timed on the threads the agent runs packages on
// (AGENT_THREADS), whatever the measuring process set the kernel library's pool to for training, and that
// process's count is put back afterwards, also when the measurement fails.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { readPackageFile } from '../../agent/package/reader.js';
import { packageRoot } from '../../agent/package-root.js';
import { GraphError } from '../../agent/runtime/graph-error.js';
import { AGENT_THREADS, withThreads } from '../../agent/runtime/model.js';
import { getThreads, setThreads } from '../../native/index.js';
import { firstImages, loadDataset } from '../../optimize/datasets/dataset-spec.js';
import { compareLatency } from '../../optimize/evaluate-package.js';
import { measuredEstimator } from '../../optimize/plan/estimator.js';
import { DEFAULT_TRAINING_THREADS } from '../../optimize/train/native-backend.js';

const demo = () =>
  readPackageFile(join(packageRoot(), 'agent', 'models', 'fashion-mlp-int8.whittle'), {
    allowUnsigned: true,
    cpuFamily: null,
  });

describe('latency measured on the agent threads', () => {
  const set = firstImages(loadDataset('fashion-mnist').test!, 10);
  before(() => setThreads(DEFAULT_TRAINING_THREADS));

  test('the agent runs packages on one thread, the pool as it starts', () => {
    assert.equal(AGENT_THREADS, 1);
  });

  test('withThreads sets the pool for the call and puts the count back, also when the call throws', () => {
    assert.equal(
      withThreads(AGENT_THREADS, () => getThreads()),
      AGENT_THREADS,
    );
    assert.equal(getThreads(), DEFAULT_TRAINING_THREADS);
    assert.throws(
      () =>
        withThreads(3, () => {
          assert.equal(getThreads(), 3);
          throw new Error('measurement failed');
        }),
      /measurement failed/,
    );
    assert.equal(getThreads(), DEFAULT_TRAINING_THREADS);
    for (const bad of [0, 65, 1.5])
      assert.throws(() => withThreads(bad, () => undefined), GraphError, `threads ${bad}`);
    assert.equal(getThreads(), DEFAULT_TRAINING_THREADS);
  });

  test("compareLatency and the planner's measuring estimator leave a trainer's pool as they found it", () => {
    const [latency] = compareLatency([demo()], set, 5);
    assert.ok(latency!.medianMs > 0);
    assert.equal(getThreads(), DEFAULT_TRAINING_THREADS);
    compareLatency([demo()], set, 5, 3);
    assert.equal(getThreads(), DEFAULT_TRAINING_THREADS);
    const [estimate] = measuredEstimator(set, { rounds: 1, runs: 2 }).estimate([demo()]);
    assert.ok(estimate!.ms > 0 && estimate!.layers.length > 0);
    assert.equal(getThreads(), DEFAULT_TRAINING_THREADS);
    assert.throws(() => compareLatency([demo()], set, 5, 0), GraphError);
    assert.equal(getThreads(), DEFAULT_TRAINING_THREADS);
  });
});
