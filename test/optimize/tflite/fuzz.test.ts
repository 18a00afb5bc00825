// The bounded TFLite fuzz job of the suite: 5,000 damaged .tflite files through the reader and the
// importer. Every input must import or be refused with a typed error, none may hang.
// `npm run bench -- fuzz --reader tflite --iterations 200000` runs the same job longer.
import { fuzzJobTest } from '../../support/fuzz-job.js';

fuzzJobTest('5,000 fuzzed TFLite files: zero crashes, zero hangs, every rejection typed', {
  reader: 'tflite',
  iterations: 5_000,
  seed: 20261206,
  timeoutMs: 120_000,
  // The damage must reach past the verifier into the graph checks, and some inputs must still import.
  someAccepted: true,
  refusedMoreThan: { TfliteImportError: 1000 },
});
