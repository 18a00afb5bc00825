// The ONNX importer's fuzz inputs: ONNX models (a sample package exported by Whittle's ONNX writer, a small
// CNN, a graph with the shape subgraph and Constants PyTorch's exporter writes, and the QDQ export of the
// bundled int8 LeNet-5) mutated at the byte level
// (truncation, bit flips) and at the protobuf level (huge dims, huge counts, cyclic graphs, missing inputs,
// attributes set to edge values, op types swapped, opsets changed). Every input must import or be refused
// with a typed error (a WhittleError); none may hang.
import { join } from 'node:path';

import { readPackage, readPackageFile } from '../agent/package/reader.js';
import { packageRoot } from '../agent/package-root.js';
import { WhittleError } from '../native/whittle-error.js';
import { exportOnnx } from '../optimize/onnx/export.js';
import { importOnnx } from '../optimize/onnx/import.js';
import {
  type AttributeProto,
  encodeModel,
  type ModelProto,
  type NodeProto,
  onnx,
  type TensorProto,
  tensorValueInfo,
} from '../optimize/onnx/onnx-proto.js';
import { samplePackageContent } from '../optimize/package/sample-package.js';
import { bundledSigningKey, writePackage } from '../optimize/package/writer.js';
import type { SeededRandom } from '../optimize/seeded-random.js';
import { EDGE_NUMBERS, type FuzzOptions, type FuzzReader } from './fuzz.js';

const ints = (name: string, values: number[]): TensorProto => ({
  name,
  dims: [values.length],
  dataType: 7,
  int64Data: values,
});
const floats = (name: string, dims: number[], count = dims.reduce((p, d) => p * d, 1)): TensorProto => ({
  name,
  dims,
  dataType: 1,
  floatData: Array.from({ length: count }, (_, i) => Math.sin(i)),
});
const node = (opType: string, input: string[], output: string[], attribute: AttributeProto[] = []) => ({
  opType,
  name: output[0],
  input,
  output,
  attribute,
});
const intAttr = (name: string, i: number): AttributeProto => ({ name, type: 2, i });
const intsAttr = (name: string, values: number[]): AttributeProto => ({ name, type: 7, ints: values });

function encode(
  name: string,
  nodes: NodeProto[],
  initializer: TensorProto[],
  input: number[],
  output: number[],
): Uint8Array {
  const graph = {
    name,
    node: nodes,
    initializer,
    input: [tensorValueInfo('x', input)],
    output: [tensorValueInfo('y', output)],
  };
  return encodeModel(graph, 13);
}

/** x -> Conv -> Relu -> x.view(x.size(0), -1) as PyTorch writes it (Shape, Gather, Unsqueeze, Concat,
 * Reshape, with a Constant node) -> Gemm. */
function shapeSubgraphModel(): Uint8Array {
  const zero: AttributeProto = { name: 'value', type: 4, t: { dims: [], dataType: 7, int64Data: [0] } };
  return encode(
    'shape-subgraph',
    [
      node('Conv', ['x', 'w', 'b'], ['c'], [intsAttr('pads', [1, 1, 1, 1])]),
      node('Relu', ['c'], ['r']),
      node('Shape', ['r'], ['s']),
      node('Constant', [], ['zero'], [zero]),
      node('Gather', ['s', 'zero'], ['n'], [intAttr('axis', 0)]),
      node('Unsqueeze', ['n', 'axes'], ['n1']),
      node('Concat', ['n1', 'minus1'], ['target'], [intAttr('axis', 0)]),
      node('Reshape', ['r', 'target'], ['f']),
      node('Gemm', ['f', 'fw', 'fb'], ['y'], [intAttr('transB', 1)]),
    ],
    [
      floats('w', [4, 3, 3, 3]),
      floats('b', [4]),
      floats('fw', [5, 64]),
      floats('fb', [5]),
      ints('axes', [0]),
      ints('minus1', [-1]),
    ],
    [1, 3, 4, 4],
    [1, 5],
  );
}

/** A small CNN: Conv (folding a BatchNormalization) -> Clip -> MaxPool -> depthwise Conv -> Add ->
 * GlobalAveragePool -> Flatten -> Gemm -> Softmax. */
function classifierModel(): Uint8Array {
  return encode(
    'classifier',
    [
      node('Conv', ['x', 'w1'], ['c1'], [intsAttr('pads', [1, 1, 1, 1]), intsAttr('kernel_shape', [3, 3])]),
      node('BatchNormalization', ['c1', 'g', 'beta', 'mean', 'var'], ['n1']),
      node('Clip', ['n1', 'lo', 'hi'], ['a1']),
      node('MaxPool', ['a1'], ['p1'], [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2])]),
      node('Conv', ['p1', 'w2', 'b2'], ['c2'], [intAttr('group', 8), intsAttr('pads', [1, 1, 1, 1])]),
      node('Add', ['c2', 'p1'], ['s2']),
      node('GlobalAveragePool', ['s2'], ['g2']),
      node('Flatten', ['g2'], ['f']),
      node('Gemm', ['f', 'fw', 'fb'], ['logits'], [intAttr('transB', 1)]),
      node('Softmax', ['logits'], ['y'], [intAttr('axis', 1)]),
    ],
    [
      floats('w1', [8, 3, 3, 3]),
      ...['g', 'beta', 'mean'].map((name) => floats(name, [8])),
      { name: 'var', dims: [8], dataType: 1, floatData: Array.from({ length: 8 }, () => 1) },
      { name: 'lo', dims: [], dataType: 1, floatData: [0] },
      { name: 'hi', dims: [], dataType: 1, floatData: [6] },
      floats('w2', [8, 1, 3, 3]),
      floats('b2', [8]),
      floats('fw', [4, 8]),
      floats('fb', [4]),
    ],
    [1, 3, 8, 8],
    [1, 4],
  );
}

const OP_TYPES = [
  'Conv',
  'Gemm',
  'MatMul',
  'Reshape',
  'Concat',
  'Gather',
  'Slice',
  'Transpose',
  'MaxPool',
  'Add',
  'Shape',
  'Squeeze',
  'Unsqueeze',
  'Range',
  'ConstantOfShape',
  'Softmax',
  'Flatten',
  'QLinearConv',
  'DequantizeLinear',
  'QuantizeLinear',
  'BatchNormalization',
  'Pad',
  'Clip',
];

export function onnxReader(random: SeededRandom, _options: FuzzOptions): FuzzReader {
  const key = bundledSigningKey();
  // The sample packages' export also carries ops the importer lacks (their binarized layers): refusals.
  const seeds = [
    exportOnnx(readPackage(writePackage(samplePackageContent(1), key), { allowUnsigned: true })),
    shapeSubgraphModel(),
    shapeSubgraphModel(),
    classifierModel(),
    classifierModel(),
    // A quantized model: the bundled int8 LeNet-5's QDQ export (uint8 activations), for the QDQ rewrite.
    exportOnnx(
      readPackageFile(join(packageRoot(), 'agent', 'models', 'fashion-lenet5-int8.whittle'), {
        allowUnsigned: true,
        cpuFamily: null,
      }),
      { activations: 'u8' },
    ),
  ];
  const pickSeed = (): Uint8Array => seeds[random.int(0, seeds.length - 1)]!;
  const edge = (): number =>
    EDGE_NUMBERS[random.int(0, EDGE_NUMBERS.length - 1)]! * (random.next() < 0.3 ? -1 : 1);
  /** A decoded seed changed by `change`, encoded again. */
  const mutated = (change: (model: ModelProto, nodes: NodeProto[]) => void): Buffer => {
    const model = onnx.ModelProto.decode(pickSeed());
    change(model, model.graph?.node ?? []);
    return Buffer.from(onnx.ModelProto.encode(model).finish());
  };
  const anyNode = (nodes: NodeProto[]): NodeProto | undefined =>
    nodes[random.int(0, Math.max(0, nodes.length - 1))];
  const strategies: Record<string, () => Buffer> = {
    truncate: () => {
      const bytes = pickSeed();
      return Buffer.from(bytes.subarray(0, random.int(0, bytes.length - 1)));
    },
    'flip-bits': () => {
      const bytes = Buffer.from(pickSeed());
      for (let k = random.int(1, 8); k > 0; k--)
        bytes[random.int(0, bytes.length - 1)]! ^= 1 << random.int(0, 7);
      return bytes;
    },
    'huge-dims': () =>
      mutated((model) => {
        const graph = model.graph!;
        const tensors = [...(graph.initializer ?? [])];
        const infos = [...(graph.input ?? []), ...(graph.output ?? [])];
        if (random.next() < 0.5 && tensors.length > 0) {
          const t = tensors[random.int(0, tensors.length - 1)]!;
          const dims = (t.dims ?? []).map(Number);
          if (dims.length === 0) dims.push(edge());
          else dims[random.int(0, dims.length - 1)] = edge();
          t.dims = dims;
        } else if (infos.length > 0) {
          const dim = infos[random.int(0, infos.length - 1)]!.type?.tensorType?.shape?.dim ?? [];
          if (dim.length > 0)
            dim[random.int(0, dim.length - 1)] =
              random.next() < 0.3 ? { dimParam: 'n' } : { dimValue: edge() };
        }
      }),
    'huge-counts': () =>
      mutated((model, nodes) => {
        const node = anyNode(nodes);
        if (!node) return;
        if (random.next() < 0.5) {
          // Many inputs or outputs on one node.
          const names = [...(node.input ?? [])];
          const k = random.int(50, 2000);
          for (let i = 0; i < k; i++) names.push(names[0] ?? 'x');
          node.input = names;
        } else {
          // An attribute list far longer than any kernel.
          node.attribute = [
            ...(node.attribute ?? []),
            {
              name: ['kernel_shape', 'pads', 'strides', 'perm', 'shape'][random.int(0, 4)]!,
              type: 7,
              ints: Array.from({ length: random.int(3, 5000) }, () => edge()),
            },
          ];
          void model;
        }
      }),
    cyclic: () =>
      mutated((_model, nodes) => {
        // A node reads the output of a node after it (or its own).
        if (nodes.length === 0) return;
        const i = random.int(0, nodes.length - 1);
        const j = random.int(i, nodes.length - 1);
        const input = [...(nodes[i]!.input ?? [])];
        input[random.int(0, Math.max(0, input.length - 1))] = nodes[j]!.output?.[0] ?? '';
        nodes[i]!.input = input;
      }),
    'missing-inputs': () =>
      mutated((model, nodes) => {
        const node = anyNode(nodes);
        const pick = random.int(0, 2);
        if (pick === 0 && node)
          node.input = (node.input ?? []).slice(0, random.int(0, (node.input ?? []).length));
        else if (pick === 1 && node)
          node.input = (node.input ?? []).map((n) => (random.next() < 0.5 ? `missing_${n}` : n));
        else model.graph!.initializer = (model.graph!.initializer ?? []).filter(() => random.next() < 0.7);
      }),
    attributes: () =>
      mutated((_model, nodes) => {
        const node = anyNode(nodes);
        if (!node) return;
        const names = [
          'axis',
          'group',
          'kernel_shape',
          'strides',
          'pads',
          'dilations',
          'perm',
          'transB',
          'alpha',
          'auto_pad',
          'to',
          'value',
          'allowzero',
          'ceil_mode',
        ];
        const name = names[random.int(0, names.length - 1)]!;
        const kind = random.int(0, 3);
        const others = (node.attribute ?? []).filter((a) => a.name !== name);
        node.attribute = [
          ...others,
          kind === 0
            ? { name, type: 2, i: edge() }
            : kind === 1
              ? {
                  name,
                  type: 7,
                  ints: Array.from({ length: random.int(0, 6) }, () =>
                    random.next() < 0.5 ? edge() : random.int(-2, 3),
                  ),
                }
              : kind === 2
                ? { name, type: 1, f: random.next() < 0.5 ? Number.NaN : edge() }
                : { name, type: 3, s: new TextEncoder().encode(['SAME_UPPER', 'x', ''][random.int(0, 2)]) },
        ];
      }),
    'swap-op': () =>
      mutated((_model, nodes) => {
        const node = anyNode(nodes);
        if (node) node.opType = OP_TYPES[random.int(0, OP_TYPES.length - 1)]!;
      }),
    opset: () =>
      mutated((model) => {
        model.opsetImport = [
          { domain: random.next() < 0.2 ? 'com.example' : '', version: random.int(-1, 25) },
        ];
      }),
  };
  return {
    strategies,
    target: (bytes) => void importOnnx(bytes, { source: 'fuzz.onnx' }),
    typedErrors: [WhittleError],
  };
}
