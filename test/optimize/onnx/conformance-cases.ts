// Finds and runs the ONNX project's backend node tests (Debian's libonnx-testdata) through the importer,
// the package writer/reader and the runtime. Shared by the conformance test and its skip list.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readPackage } from '../../../agent/package/reader.js';
import { inputInLayout } from '../../../agent/runtime/compile/index.js';
import { Model } from '../../../agent/runtime/model.js';
import type { TensorData } from '../../../agent/runtime/tensor.js';
import { importOnnx, SUPPORTED_ONNX_OPS } from '../../../optimize/onnx/import.js';
import { decodeModel, decodeTensorFile, type OnnxTensor } from '../../../optimize/onnx/onnx-proto.js';
import { writePackage } from '../../../optimize/package/writer.js';

export const NODE_TESTS = '/usr/share/libonnx-testdata/data/node';

/** Inputs that are parameters of the op (weights, scales, zero points, shapes): a deployable model has
 * them as initializers, so the harness freezes them as constants. Everything else stays a runtime input. */
const PARAMETER_INPUTS: Record<string, (index: number) => boolean> = {
  Conv: (i) => i >= 1,
  QLinearConv: (i) => i >= 1,
  ConvInteger: (i) => i >= 1,
  Gemm: (i) => i >= 1,
  QLinearMatMul: (i) => i !== 0 && i !== 3,
  MatMulInteger: (i) => i >= 2,
  Clip: (i) => i >= 1,
  Dropout: (i) => i >= 1,
  Reshape: (i) => i >= 1,
  BatchNormalization: (i) => i >= 1,
  QuantizeLinear: (i) => i >= 1,
  DequantizeLinear: (i) => i >= 1,
  Pad: (i) => i >= 1,
};

export interface ConformanceCase {
  name: string;
  dir: string;
  opTypes: string[];
}

/** Every node test whose model uses only supported ops. */
export function applicableCases(): ConformanceCase[] {
  if (!existsSync(NODE_TESTS)) return [];
  return readdirSync(NODE_TESTS)
    .sort()
    .flatMap((name) => {
      const dir = join(NODE_TESTS, name);
      const file = join(dir, 'model.onnx');
      if (!existsSync(file)) return [];
      const model = decodeModel(readFileSync(file), file);
      const opTypes = [...new Set((model.graph?.node ?? []).map((n) => n.opType ?? ''))];
      return opTypes.length > 0 && opTypes.every((op) => SUPPORTED_ONNX_OPS.includes(op))
        ? [{ name, dir, opTypes }]
        : [];
    });
}

export interface CaseResult {
  outputs: { name: string; ok: boolean; detail: string }[];
}

const keys = generateKeyPairSync('ed25519');

function toTyped(tensor: OnnxTensor): TensorData {
  return tensor.data instanceof Float32Array ||
    tensor.data instanceof Int8Array ||
    tensor.data instanceof Uint8Array ||
    tensor.data instanceof Int32Array
    ? tensor.data
    : Int32Array.from(tensor.data);
}

/** Imports, packages, loads and runs one case; compares every output (exact for integers, rtol 1e-3 and
 * atol 1e-7 for floats, as ONNX's backend tests do). Throws whatever the importer or runtime throws. */
export function runCase(c: ConformanceCase): CaseResult {
  const modelBytes = readFileSync(join(c.dir, 'model.onnx'));
  const model = decodeModel(modelBytes, c.name);
  const graph = model.graph!;
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  const graphInputs = (graph.input ?? []).map((i) => i.name ?? '').filter((n) => !initializers.has(n));
  const set = join(c.dir, 'test_data_set_0');
  const inputs = graphInputs.map((_, i) =>
    decodeTensorFile(readFileSync(join(set, `input_${i}.pb`)), `input_${i}.pb`),
  );
  const node = graph.node![0]!;
  const isParameter = PARAMETER_INPUTS[node.opType ?? ''] ?? (() => false);
  const frozen = new Map<string, OnnxTensor>();
  const live: TensorData[] = [];
  graphInputs.forEach((name, i) => {
    const position = (node.input ?? []).indexOf(name);
    if (graph.node!.length === 1 && position >= 0 && isParameter(position)) frozen.set(name, inputs[i]!);
    else live.push(toTyped(inputs[i]!));
  });
  const content = importOnnx(modelBytes, { constantInputs: frozen, source: c.name });
  const pkg = readPackage(writePackage(content, keys.privateKey), { publicKey: keys.publicKey });
  const runtime = Model.fromPackage(pkg);
  // The ONNX test data is NCHW; an image input the importer declared NHWC takes it transposed.
  const liveDims = graphInputs.flatMap((name, i) => (frozen.has(name) ? [] : [inputs[i]!.dims]));
  const results = runtime.run(
    live.map((data, k) => {
      const input = pkg.manifest.inputs[k]!;
      return inputInLayout(data, liveDims[k]!, runtime.specs[input.tensor]!.shape, input.layout);
    }),
  );
  const outputs = (graph.output ?? []).map((o, i) => {
    const expected = decodeTensorFile(readFileSync(join(set, `output_${i}.pb`)), `output_${i}.pb`);
    const actual = results.find((r) => r.name === o.name);
    if (!actual) return { name: o.name ?? '', ok: false, detail: 'missing output' };
    if (actual.shape.join(',') !== expected.dims.join(',')) {
      return {
        name: actual.name,
        ok: false,
        detail: `shape [${actual.shape.join(', ')}] vs [${expected.dims.join(', ')}]`,
      };
    }
    const integer = !(expected.data instanceof Float32Array);
    let worst = 0;
    let worstAt = -1;
    for (let k = 0; k < actual.data.length; k++) {
      const a = actual.data[k]!;
      const e = Number(expected.data[k]);
      const bad = integer
        ? a !== e
        : !(Math.abs(a - e) <= 1e-7 + 1e-3 * Math.abs(e)) && !(Number.isNaN(a) && Number.isNaN(e));
      if (bad && (worstAt < 0 || Math.abs(a - e) > worst)) {
        worst = Math.abs(a - e);
        worstAt = k;
      }
    }
    return {
      name: actual.name,
      ok: worstAt < 0,
      detail:
        worstAt < 0
          ? 'equal'
          : `element ${worstAt}: ${actual.data[worstAt]} vs ${String(expected.data[worstAt])} (max |diff| ${worst})`,
    };
  });
  return { outputs };
}
