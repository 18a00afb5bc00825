// Small ONNX models written with the ONNX schema, for tests of the importer and the CLI.
import {
  attributeProto,
  encodeModel,
  type TensorProto,
  tensorValueInfo,
  type ValueInfoProto,
} from '../../../optimize/onnx/onnx-proto.js';

export interface NodeSpec {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, number | number[] | string | TensorProto>;
  /** An op domain other than the default one (e.g. "com.microsoft"). */
  domain?: string;
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  return { name, dims, dataType: 1, rawData: new Uint8Array(Float32Array.from(values).buffer) };
}

export function intTensor(name: string, dims: number[], values: readonly number[]): TensorProto {
  return { name, dims, dataType: 7, int64Data: [...values] };
}

export function buildModel(options: {
  nodes: NodeSpec[];
  /** A string dimension is symbolic (a dim_param). */
  inputs: { name: string; dims: (number | string)[] }[];
  outputs: { name: string; dims: (number | string)[] }[];
  initializers?: TensorProto[];
  opset?: number;
  /** Opsets of other domains the nodes use. */
  domains?: { domain: string; version: number }[];
}): Uint8Array {
  const valueInfo = (v: { name: string; dims: (number | string)[] }): ValueInfoProto =>
    tensorValueInfo(v.name, v.dims);
  const graph = {
    name: 'test-model',
    node: options.nodes.map((n) => ({
      opType: n.op,
      name: n.name,
      ...(n.domain ? { domain: n.domain } : {}),
      input: n.inputs,
      output: n.outputs,
      attribute: Object.entries(n.attrs ?? {}).map(([name, value]) => attributeProto(name, value)),
    })),
    input: options.inputs.map(valueInfo),
    output: options.outputs.map(valueInfo),
    initializer: options.initializers ?? [],
  };
  return encodeModel(graph, options.opset ?? 13, undefined, options.domains);
}
