// The bounded fuzz job the suite runs for each reader (bench/fuzz.ts): every damaged input must be accepted
// or refused with a typed error, none may crash or hang, and the damage must reach the checks it is meant
// to reach. `npm run bench -- fuzz --reader NAME --iterations 200000` runs the same job longer.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type FuzzReport, runFuzz } from '../../bench/fuzz.js';

export interface FuzzJob {
  /** A reader of FUZZ_READERS: 'package', 'onnx' or 'tflite'. */
  reader: string;
  iterations: number;
  seed: number;
  timeoutMs: number;
  /** Refusals (error name or code) the mutations must reach, each with the least count: > 0 by default. */
  refusedMoreThan: Record<string, number>;
  /** Whether some damaged inputs must still be accepted (the mutations reach past the reader). */
  someAccepted: boolean;
  /** Further checks of the report. */
  check?: (report: FuzzReport) => void;
}

/** Registers the test `title`: the job's inputs with a 2 s bound on each, then the job's checks. */
export function fuzzJobTest(title: string, job: FuzzJob): void {
  test(title, { timeout: job.timeoutMs }, () => {
    const report = runFuzz(job.reader, { iterations: job.iterations, seed: job.seed, hangMs: 2000 });
    assert.equal(report.iterations, job.iterations);
    assert.deepEqual(report.failures.slice(0, 5), []);
    if (job.someAccepted)
      assert.ok(
        report.accepted > 0,
        'no damaged input was accepted: the mutations never reach past the reader',
      );
    for (const [refusal, least] of Object.entries(job.refusedMoreThan))
      assert.ok(
        (report.refused[refusal] ?? 0) > least,
        `${report.refused[refusal] ?? 0} inputs refused with ${refusal} (want more than ${least}): ${JSON.stringify(report.refused)}`,
      );
    job.check?.(report);
  });
}
