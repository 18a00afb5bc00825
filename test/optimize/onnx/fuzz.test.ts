// The bounded ONNX fuzz job of the suite: mutated ONNX models (truncated, bit-flipped, huge dims and counts,
// cyclic graphs, missing inputs, edge attribute values, swapped op types, other opsets) through importOnnx.
// Every input must import or be refused with a typed error, none may hang. `npm run bench -- fuzz --reader
// onnx --iterations 200000` runs the same job longer.
import { fuzzJobTest } from '../../support/fuzz-job.js';

fuzzJobTest('1,500 fuzzed ONNX models: zero crashes, zero hangs, every rejection typed', {
  reader: 'onnx',
  iterations: 1500,
  seed: 20261206,
  timeoutMs: 180_000,
  someAccepted: true,
  // The mutations must reach the decoder, the op check, the opset check and the handlers' own checks.
  refusedMoreThan: { OnnxImportError: 0, UnsupportedOpsError: 0, UnsupportedOpsetError: 0, GraphError: 0 },
});
