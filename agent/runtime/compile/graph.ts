// The graph the compile pass rewrites: the manifest's tensors, nodes, inputs and outputs, with the data of
// the constants it may rewrite (raw values; a compressed constant is `opaque` and is never touched). Tensor
// indices of the source graph stay valid: the pass only appends tensors and leaves dead ones behind, so
// callers holding a tensor index of the manifest (a graph input, the camera's tensor) still find it.
import type { Manifest, ManifestNode, ManifestTensor, NumberFormat } from '../../package/manifest.js';
import type { TensorData } from '../tensor.js';

export interface CompileGraph {
  tensors: ManifestTensor[];
  nodes: ManifestNode[];
  inputs: Manifest['inputs'];
  outputs: Manifest['outputs'];
  /** Constant tensors by index: raw values the pass can permute or fold, or 'opaque' (compressed). */
  constants: Map<number, TensorData | 'opaque'>;
}

/** What the pass did and what it could not do, node by node (shown by `whittle inspect`). */
export interface CompileReport {
  /** Layout transposes of the source graph that no longer run (cancelled, sunk, folded into weights). */
  transposesRemoved: number;
  /** Transposes still in the compiled graph, each with the reason it stays. */
  transposesLeft: { node: string; why: string }[];
  /** Nodes merged into another: an activation or batch norm into a conv / fully-connected layer. */
  fused: { node: string; into: string }[];
  /** Fusion candidates the kernels cannot take, and why they stay separate nodes. */
  notFused: { node: string; why: string }[];
  /** Set when the pass could not take the graph at all: the graph then runs as stored. */
  skipped?: string;
}

export const emptyReport = (): CompileReport => ({
  transposesRemoved: 0,
  transposesLeft: [],
  fused: [],
  notFused: [],
});

export const identityPerm = (rank: number): number[] => [...Array(rank).keys()];

export const isIdentity = (perm: readonly number[]): boolean => perm.every((p, i) => p === i);

/** transpose(transpose(x, first), then) = transpose(x, composed). */
export const composePerm = (first: readonly number[], then: readonly number[]): number[] =>
  then.map((q) => first[q]!);

export const invertPerm = (perm: readonly number[]): number[] => {
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return inverse;
};

export const formatOfDtype = (dtype: ManifestTensor['dtype']): NumberFormat =>
  dtype === 'f32' ? 'f32' : 'int8';

/** Readers of each tensor: the nodes that take it as an input (in graph order). */
export function readersOf(nodes: readonly ManifestNode[]): Map<number, ManifestNode[]> {
  const readers = new Map<number, ManifestNode[]>();
  for (const node of nodes)
    for (const i of node.inputs) if (i >= 0) readers.set(i, [...(readers.get(i) ?? []), node]);
  return readers;
}

/** The raw data of constant `t`, or undefined for an activation or a compressed constant. */
export function rawConstant(graph: CompileGraph, t: number): TensorData | undefined {
  const data = graph.constants.get(t);
  return data === undefined || data === 'opaque' ? undefined : data;
}

/** Appends a tensor (a fresh name) and returns its index; with `data`, a raw constant. */
export function addTensor(graph: CompileGraph, tensor: ManifestTensor, data?: TensorData): number {
  const names = new Set(graph.tensors.map((t) => t.name));
  let name = tensor.name;
  for (let k = 1; names.has(name); k++) name = `${tensor.name}#${k}`;
  // A new tensor's data is raw and not in the package's sections.
  const rest = { ...tensor, name };
  delete rest.section;
  delete rest.encoding;
  graph.tensors.push(rest);
  const index = graph.tensors.length - 1;
  if (data !== undefined) graph.constants.set(index, data);
  return index;
}
