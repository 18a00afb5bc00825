// One layout for the whole graph. convolution and pooling run NHWC; a graph imported from NCHW (ONNX) reaches
// them through layout transposes, and a transpose that does not meet its inverse head-on (a ReLU between
// them) would run on every call. This pass walks the graph in order and carries each tensor as
// "an underlying tensor and the permutation that gives the source graph's value": transposes only compose
// permutations; layout-agnostic ops (unary, clip, quantize/dequantize, add/mul/sub/div/pow/prelu/qadd/qmul, concat,
// softmax, batch norm, instance norm, channel shuffle over an unmoved last axis, and the per-axis ops pad,
// slice, split, resize, gather, reduce_mean/reduce_max) run on the underlying tensor with their axes remapped; constants
// that meet a permuted tensor are permuted once, here (folded); a flatten feeding fully-connected layers
// permutes the layers' weight columns instead of the activations. Only a node that needs the source layout
// (and a graph output) gets a transpose, and the report says which node forced it.
import type { ManifestNode, ManifestTensor } from '../../package/manifest.js';
import { transpose, transposeShape } from '../reference-ops/layout.js';
import { allocate, elements, type TensorData } from '../tensor.js';
import {
  addTensor,
  type CompileGraph,
  type CompileReport,
  composePerm,
  formatOfDtype,
  identityPerm,
  invertPerm,
  isIdentity,
  rawConstant,
  readersOf,
} from './graph.js';

export const NCHW_TO_NHWC = [0, 2, 3, 1];
export const NHWC_TO_NCHW = [0, 3, 1, 2];

export interface LayoutOptions {
  /** 'nhwc': a 4-D NCHW graph input read only through NCHW->NHWC transposes is declared NHWC (the camera and
   * `whittle run` then write NHWC); 'keep' leaves every input as declared (a loaded model's callers feed the
   * layout its manifest names). */
  inputLayout: 'keep' | 'nhwc';
}

/** The source graph's value of a tensor: transpose(underlying tensor, perm). */
interface Placement {
  tensor: number;
  perm: number[];
}

/** Ops that compute element by element whatever the layout; their only axis (if any) lives in the tensors'
 * quantization, which `placedTensor` remaps. */
const ELEMENTWISE_UNARY = new Set([
  'clip',
  'leaky_relu',
  'sigmoid',
  'sqrt',
  'exp',
  'tanh',
  'erf',
  'hard_sigmoid',
  'hard_swish',
  'silu',
  'gelu',
  'identity',
  'quantize_linear',
  'dequantize_linear',
]);
const ELEMENTWISE_BINARY = new Set(['add', 'mul', 'sub', 'div', 'pow', 'prelu', 'qadd', 'qmul']);

/** Ops with one attribute per axis of their input (in source axis order), which follow a permutation by
 * reordering them: pads (begins then ends), resize's scales / sizes. */
const PER_AXIS = new Set(['pad', 'resize']);

/** attrs of a per-axis op with each list reordered for the underlying axes (underlying axis perm[a] takes
 * source axis a's entry). */
function perAxisAttrs(node: ManifestNode, perm: readonly number[]): ManifestNode['attrs'] {
  const rank = perm.length;
  const reorder = (values: number[]): number[] => {
    const out = [...values];
    perm.forEach((p, a) => (out[p] = values[a]!));
    return out;
  };
  const attrs = { ...node.attrs };
  for (const key of ['scales', 'sizes']) {
    const v = attrs[key];
    if (Array.isArray(v) && v.length === rank) attrs[key] = reorder(v);
  }
  const pads = attrs.pads;
  if (Array.isArray(pads) && pads.length === 2 * rank)
    attrs.pads = [...reorder(pads.slice(0, rank)), ...reorder(pads.slice(rank))];
  return attrs;
}
const FULLY_CONNECTED = new Set(['fully_connected', 'qfully_connected']);

const permOf = (node: ManifestNode, rank: number): number[] => {
  const perm = node.attrs.perm;
  return Array.isArray(perm) ? perm : identityPerm(rank).reverse();
};

const axisAttr = (node: ManifestNode, name: string, fallback: number, rank: number): number => {
  const value = node.attrs[name];
  const axis = typeof value === 'number' ? value : fallback;
  return axis < 0 ? axis + rank : axis;
};

/** x permuted: y = transpose(x, perm) for data of shape `shape`. */
function permuted(shape: readonly number[], perm: readonly number[], data: TensorData): TensorData {
  const out = allocate(
    data instanceof Float32Array
      ? 'f32'
      : data instanceof Int32Array
        ? 'i32'
        : data instanceof Int8Array
          ? 'i8'
          : 'u8',
    data.length,
  );
  transpose(shape, perm, data, out);
  return out;
}

/** Columns of [outputs][features] weights reordered for features read in the underlying layout: the source
 * graph flattened transpose(u, perm) (shape `view`, batch first), the compiled graph flattens u. */
export function permuteFeatureColumns(
  weights: Float32Array | Int8Array,
  outputs: number,
  view: readonly number[],
  perm: readonly number[],
): TensorData {
  const inner = view.slice(1);
  const features = elements(inner);
  const under = transposeShape(view, invertPerm(perm)).slice(1);
  const underStrides = new Array<number>(under.length).fill(1);
  for (let i = under.length - 2; i >= 0; i--) underStrides[i] = underStrides[i + 1]! * under[i + 1]!;
  const target = new Int32Array(features);
  const index = new Array<number>(inner.length).fill(0);
  for (let k = 0; k < features; k++) {
    let u = 0;
    for (let a = 0; a < inner.length; a++) u += index[a]! * underStrides[perm[a + 1]! - 1]!;
    target[k] = u;
    for (let a = inner.length - 1; a >= 0; a--) {
      if (++index[a]! < inner[a]!) break;
      index[a] = 0;
    }
  }
  const out =
    weights instanceof Float32Array ? new Float32Array(weights.length) : new Int8Array(weights.length);
  for (let o = 0; o < outputs; o++)
    for (let k = 0; k < features; k++) out[o * features + target[k]!] = weights[o * features + k]!;
  return out;
}

/** True when transpose(x, perm) has x's memory order: the axes longer than 1 keep their order. */
function keepsMemoryOrder(shape: readonly number[], perm: readonly number[]): boolean {
  let last = -1;
  for (let a = 0; a < perm.length; a++) {
    if (shape[a] === 1) continue;
    if (perm[a]! < last) return false;
    last = perm[a]!;
  }
  return true;
}

export function sinkTransposes(graph: CompileGraph, options: LayoutOptions, report: CompileReport): void {
  const source = graph.tensors.slice();
  const sourceNodes = graph.nodes;
  const readers = readersOf(sourceNodes);
  const graphOutputs = new Set(graph.outputs.map((o) => o.tensor));
  const placement = new Map<number, Placement>();
  const materialized = new Map<number, number>();
  /** Flattened tensors whose features are in the underlying order, with the view they stand for. */
  const featureOrder = new Map<number, { view: number[]; perm: number[] }>();
  const nodeNames = new Set(sourceNodes.map((n) => n.name));
  const nodes: ManifestNode[] = [];

  const place = (t: number): Placement =>
    placement.get(t) ?? { tensor: t, perm: identityPerm(source[t]!.shape.length) };
  const uniqueNode = (name: string): string => {
    let candidate = name;
    for (let k = 1; nodeNames.has(candidate); k++) candidate = `${name}#${k}`;
    nodeNames.add(candidate);
    return candidate;
  };
  /** The tensor holding t's underlying value under `perm`: quantization axis remapped, shape permuted. */
  const placedTensor = (t: number, perm: readonly number[]): number => {
    const tensor: ManifestTensor = source[t]!;
    return addTensor(graph, {
      ...tensor,
      shape: transposeShape(tensor.shape, invertPerm(perm)),
      ...(tensor.quant?.axis !== undefined
        ? { quant: { ...tensor.quant, axis: perm[tensor.quant.axis]! } }
        : {}),
    });
  };
  /** t in the source layout: its underlying tensor when unpermuted, else a folded constant or a transpose. */
  const materialize = (t: number, why: string): number => {
    const { tensor, perm } = place(t);
    if (isIdentity(perm)) return tensor;
    const known = materialized.get(t);
    if (known !== undefined) return known;
    const data = rawConstant(graph, tensor);
    let result = t;
    if (data !== undefined) {
      result = addTensor(
        graph,
        { ...source[t]!, name: `${source[t]!.name}/folded` },
        permuted(graph.tensors[tensor]!.shape, perm, data),
      );
    } else {
      const name = uniqueNode(`${source[t]!.name}/to_layout`);
      nodes.push({
        name,
        op: 'transpose',
        format: formatOfDtype(source[t]!.dtype),
        inputs: [tensor],
        outputs: [t],
        attrs: { perm },
      });
      report.transposesLeft.push({ node: name, why });
    }
    materialized.set(t, result);
    return result;
  };
  const needs = (node: ManifestNode): string => `read by ${node.name} (${node.op}) in the source layout`;
  const emitAsIs = (node: ManifestNode, why = needs(node)): void => {
    nodes.push({ ...node, inputs: node.inputs.map((i) => (i < 0 ? i : materialize(i, why))) });
  };
  /** node on the underlying tensors `inputs`, its output placed under `perm`. */
  const emitPlaced = (node: ManifestNode, inputs: number[], perm: number[], attrs = node.attrs): void => {
    const out = node.outputs[0]!;
    const y = isIdentity(perm) ? out : placedTensor(out, perm);
    nodes.push({ ...node, inputs, outputs: [y], attrs });
    placement.set(out, { tensor: y, perm });
  };

  // Graph inputs declared NHWC where they only feed NCHW->NHWC transposes, directly or through one
  // quantize_linear each (a quantized model's first QuantizeLinear).
  const toNhwc = (n: ManifestNode): boolean =>
    n.op === 'transpose' && permOf(n, 4).join(',') === NCHW_TO_NHWC.join(',');
  const toNhwcAfter = (n: ManifestNode): boolean =>
    n.op === 'quantize_linear' &&
    n.inputs.length === 1 &&
    !graphOutputs.has(n.outputs[0]!) &&
    (readers.get(n.outputs[0]!) ?? []).length > 0 &&
    readers.get(n.outputs[0]!)!.every(toNhwc);
  graph.inputs = graph.inputs.map((input) => {
    const t = input.tensor;
    const tensor = source[t]!;
    const feeds = readers.get(t) ?? [];
    if (
      options.inputLayout !== 'nhwc' ||
      input.layout !== 'NCHW' ||
      tensor.shape.length !== 4 ||
      feeds.length === 0 ||
      graphOutputs.has(t) ||
      !feeds.every((n) => toNhwc(n) || toNhwcAfter(n))
    )
      return input;
    graph.tensors[t] = { ...tensor, name: `${tensor.name}/nchw` };
    const nhwc = addTensor(graph, { ...tensor, shape: transposeShape(tensor.shape, NCHW_TO_NHWC) });
    placement.set(t, { tensor: nhwc, perm: NHWC_TO_NCHW });
    return { ...input, tensor: nhwc, layout: 'NHWC' };
  });

  const shuffles = channelShuffles();
  const absorbed = new Set<ManifestNode>();
  for (const node of sourceNodes) {
    if (absorbed.has(node)) continue;
    const shuffle = shuffles.get(node);
    if (shuffle !== undefined) {
      const { tensor: u, perm } = place(node.inputs[0]!);
      if (perm[shuffle.axis] === perm.length - 1) {
        // The split axis is the underlying tensor's last: one channel_shuffle (native) on it.
        const out = shuffle.merge.outputs[0]!;
        const y = isIdentity(perm) ? out : placedTensor(out, perm);
        nodes.push({
          name: uniqueNode(`${shuffle.merge.name}/channel_shuffle`),
          op: 'channel_shuffle',
          format: node.format,
          inputs: [u],
          outputs: [y],
          attrs: { groups: shuffle.groups },
        });
        placement.set(out, { tensor: y, perm });
        absorbed.add(shuffle.swap).add(shuffle.merge);
        report.transposesRemoved++;
        continue;
      }
    }
    const x = node.inputs[0] ?? -1;
    const out = node.outputs[0]!;
    const xPlace = x >= 0 ? place(x) : undefined;
    const rank = x >= 0 ? source[x]!.shape.length : 0;
    const single = node.inputs.length === 1 && node.outputs.length === 1;

    if (node.op === 'transpose' && single && xPlace) {
      placement.set(out, { tensor: xPlace.tensor, perm: composePerm(xPlace.perm, permOf(node, rank)) });
      continue;
    }
    if ((ELEMENTWISE_BINARY.has(node.op) || node.op === 'concat') && node.outputs.length === 1) {
      // The layout of the first activation operand leads; constants follow it, other activations must match.
      const lead = node.inputs.find((i) => i >= 0 && rawConstant(graph, place(i).tensor) === undefined);
      const perm = lead === undefined ? undefined : place(lead).perm;
      const inputs = perm === undefined || isIdentity(perm) ? undefined : placedOperands(node, perm);
      if (perm === undefined || inputs === undefined) emitAsIs(node);
      else if (node.op === 'concat')
        emitPlaced(node, inputs, perm, {
          ...node.attrs,
          axis: perm[axisAttr(node, 'axis', 0, perm.length)]!,
        });
      else emitPlaced(node, inputs, perm);
      continue;
    }
    if (!xPlace || isIdentity(xPlace.perm) || node.outputs.length !== 1) {
      if (FULLY_CONNECTED.has(node.op) && featureOrder.has(x)) {
        const { view, perm } = featureOrder.get(x)!;
        emitFullyConnected(node, x, view, perm);
      } else emitAsIs(node);
      continue;
    }
    const { tensor: u, perm } = xPlace;

    if (ELEMENTWISE_UNARY.has(node.op) && single) {
      emitPlaced(node, [u], perm);
    } else if (node.op === 'batch_norm' && node.inputs.length === 5) {
      const axis = perm[axisAttr(node, 'axis', 1, rank)]!;
      const params = node.inputs.slice(1).map((i) => materialize(i, needs(node)));
      emitPlaced(node, [u, ...params], perm, { ...node.attrs, axis });
    } else if (node.op === 'instance_norm' && perm[0] === 0) {
      const axis = perm[axisAttr(node, 'axis', 1, rank)]!;
      const params = node.inputs.slice(1).map((i) => (i < 0 ? i : materialize(i, needs(node))));
      emitPlaced(node, [u, ...params], perm, { ...node.attrs, axis });
    } else if (PER_AXIS.has(node.op) && single) {
      emitPlaced(node, [u], perm, perAxisAttrs(node, perm));
    } else if (node.op === 'slice' && single && Array.isArray(node.attrs.axes)) {
      const axes = node.attrs.axes.map((a) => perm[a < 0 ? a + rank : a]!);
      emitPlaced(node, [u], perm, { ...node.attrs, axes });
    } else if (
      node.op === 'gather' &&
      single &&
      (node.attrs.indices_shape as number[] | undefined)?.length === 1
    ) {
      emitPlaced(node, [u], perm, { ...node.attrs, axis: perm[axisAttr(node, 'axis', 0, rank)]! });
    } else if ((node.op === 'reduce_mean' || node.op === 'reduce_max') && single) {
      const axes = (Array.isArray(node.attrs.axes) ? node.attrs.axes : identityPerm(rank)).map((a) =>
        a < 0 ? a + rank : a,
      );
      const kept = node.attrs.keepdims !== 0;
      // Without keepdims the reduced axes leave the permutation; the others keep their order.
      const gone = axes.map((a) => perm[a]!);
      const outPerm = kept
        ? perm
        : perm.filter((_, a) => !axes.includes(a)).map((p) => p - gone.filter((g) => g < p).length);
      emitPlaced(node, [u], outPerm, { ...node.attrs, axes: gone });
    } else if (node.op === 'softmax' && single && node.attrs.coerce2d !== 1) {
      emitPlaced(node, [u], perm, { ...node.attrs, axis: perm[axisAttr(node, 'axis', -1, rank)]! });
    } else if (node.op === 'channel_shuffle' && single && perm[rank - 1] === rank - 1) {
      emitPlaced(node, [u], perm);
    } else if (node.op === 'reshape' && single) {
      emitReshape(node, u, perm);
    } else if (FULLY_CONNECTED.has(node.op) && perm[0] === 0 && foldableWeights(node, x)) {
      emitFullyConnected(node, u, source[x]!.shape, perm);
    } else {
      emitAsIs(node);
    }
  }

  // Graph outputs keep their tensors (callers hold their indices): where the value moved to another tensor,
  // its producer writes the output tensor instead (same shape and dtype), or else a copy does.
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  const taken = new Set(graph.outputs.map((o) => o.tensor));
  graph.outputs = graph.outputs.map((output) => {
    const t = materialize(output.tensor, 'a graph output, returned in the source layout');
    const [a, b] = [graph.tensors[t]!, source[output.tensor]!];
    if (
      t !== output.tensor &&
      produced.has(t) &&
      !taken.has(t) &&
      a.dtype === b.dtype &&
      a.shape.join(',') === b.shape.join(',') &&
      JSON.stringify(a.quant) === JSON.stringify(b.quant)
    ) {
      const rename = (i: number): number => (i === t ? output.tensor : i);
      for (const [k, n] of nodes.entries())
        nodes[k] = { ...n, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) };
      produced.delete(t);
      return output;
    }
    if (t !== output.tensor && !graph.constants.has(t)) {
      nodes.push({
        name: uniqueNode(`${output.name}/output`),
        op: 'identity',
        format: formatOfDtype(source[output.tensor]!.dtype),
        inputs: [t],
        outputs: [output.tensor],
        attrs: {},
      });
      return output;
    }
    return { ...output, tensor: t };
  });
  graph.nodes = nodes;
  const before = sourceNodes.filter((n) => n.op === 'transpose' && !absorbed.has(n)).length;
  report.transposesRemoved += Math.max(0, before - nodes.filter((n) => n.op === 'transpose').length);

  /** ShuffleNet's channel shuffle as exported: reshape splitting axis a into [groups][c / groups], transpose
   * swapping the two, reshape back, each the only reader of the one before. By the first reshape. */
  function channelShuffles(): Map<
    ManifestNode,
    { axis: number; groups: number; swap: ManifestNode; merge: ManifestNode }
  > {
    const found = new Map<
      ManifestNode,
      { axis: number; groups: number; swap: ManifestNode; merge: ManifestNode }
    >();
    const only = (t: number): ManifestNode | undefined => {
      const read = readers.get(t) ?? [];
      return read.length === 1 && !graphOutputs.has(t) ? read[0] : undefined;
    };
    for (const split of sourceNodes) {
      if (split.op !== 'reshape' || split.inputs.length !== 1) continue;
      const xShape = source[split.inputs[0]!]!.shape;
      const splitShape = source[split.outputs[0]!]!.shape;
      if (splitShape.length !== xShape.length + 1) continue;
      const axis = xShape.findIndex((d, i) => d !== splitShape[i]);
      if (axis < 0) continue;
      const groups = splitShape[axis]!;
      const sameElsewhere =
        xShape.slice(0, axis).join(',') === splitShape.slice(0, axis).join(',') &&
        xShape.slice(axis + 1).join(',') === splitShape.slice(axis + 2).join(',') &&
        groups * splitShape[axis + 1]! === xShape[axis];
      const swap = only(split.outputs[0]!);
      if (!sameElsewhere || swap?.op !== 'transpose' || swap.inputs.length !== 1) continue;
      const swapPerm = permOf(swap, splitShape.length);
      const swapped = identityPerm(splitShape.length);
      [swapped[axis], swapped[axis + 1]] = [axis + 1, axis];
      const merge = only(swap.outputs[0]!);
      if (
        swapPerm.join(',') !== swapped.join(',') ||
        merge?.op !== 'reshape' ||
        source[merge.outputs[0]!]!.shape.join(',') !== xShape.join(',')
      )
        continue;
      found.set(split, { axis, groups, swap, merge });
    }
    return found;
  }

  /** Operands of an element-wise binary op or concat under `perm`: activations already placed so, constants
   * permuted here; undefined when an activation sits in another layout (or broadcasts across ranks). */
  function placedOperands(node: ManifestNode, perm: number[]): number[] | undefined {
    const rank = perm.length;
    const inverse = invertPerm(perm);
    const result: number[] = [];
    for (const i of node.inputs) {
      if (i < 0) return undefined;
      const p = place(i);
      const data = rawConstant(graph, p.tensor);
      if (data === undefined) {
        if (source[i]!.shape.length !== rank || p.perm.join(',') !== perm.join(',')) return undefined;
        result.push(p.tensor);
        continue;
      }
      if (!isIdentity(p.perm) || source[i]!.shape.length > rank) return undefined;
      // Broadcasting aligns trailing axes: a lower-rank constant gains leading 1s before it is permuted.
      const shape = [...new Array<number>(rank - source[i]!.shape.length).fill(1), ...source[i]!.shape];
      result.push(
        addTensor(
          graph,
          { ...source[i]!, name: `${source[i]!.name}/placed`, shape: transposeShape(shape, inverse) },
          permuted(shape, inverse, data),
        ),
      );
    }
    return result;
  }

  /** A reshape of a permuted tensor: the same reshape of the underlying one where that keeps the element
   * order, or a flatten whose only readers are fully-connected layers (their weight columns follow). */
  function emitReshape(node: ManifestNode, u: number, perm: number[]): void {
    const x = node.inputs[0]!;
    const out = node.outputs[0]!;
    const view = source[x]!.shape;
    const target = node.attrs.shape;
    if (!Array.isArray(target)) return emitAsIs(node);
    // A 0 in the target copies the input's dimension; the underlying input's may differ, so spell it out.
    const under = graph.tensors[u]!.shape;
    const resolved =
      node.attrs.allowzero === 1
        ? target
        : target.map((d, i) => (d === 0 && under[i] !== view[i] ? view[i]! : d));
    const attrs = { ...node.attrs, shape: resolved };
    if (keepsMemoryOrder(view, perm)) {
      nodes.push({ ...node, inputs: [u], attrs });
      return;
    }
    const flat = source[out]!.shape;
    const feeds = readers.get(out) ?? [];
    if (
      perm[0] === 0 &&
      flat.length === 2 &&
      flat[0] === view[0] &&
      !graphOutputs.has(out) &&
      feeds.length > 0 &&
      feeds.every((n) => FULLY_CONNECTED.has(n.op) && foldableWeights(n, out))
    ) {
      nodes.push({ ...node, inputs: [u], attrs });
      featureOrder.set(out, { view: [...view], perm });
      return;
    }
    emitAsIs(node);
  }

  /** True when `node` (fully-connected) reads `x` once, as its activation, with raw constant 2-D weights. */
  function foldableWeights(node: ManifestNode, x: number): boolean {
    const w = node.inputs[1] ?? -1;
    const data = w >= 0 ? rawConstant(graph, w) : undefined;
    return (
      node.inputs[0] === x &&
      node.inputs.filter((i) => i === x).length === 1 &&
      data !== undefined &&
      (data instanceof Float32Array || data instanceof Int8Array) &&
      source[w]!.shape.length === 2 &&
      source[w]!.shape[1] === elements(source[x]!.shape) / source[x]!.shape[0]!
    );
  }

  /** A fully-connected layer reading its features in the underlying order of `view` under `perm`. */
  function emitFullyConnected(node: ManifestNode, x: number, view: readonly number[], perm: number[]): void {
    const w = node.inputs[1]!;
    const tensor = source[w]!;
    const weights = permuteFeatureColumns(
      rawConstant(graph, w) as Float32Array | Int8Array,
      tensor.shape[0]!,
      view,
      perm,
    );
    const folded = addTensor(graph, { ...tensor, name: `${tensor.name}/feature_order` }, weights);
    const rest = node.inputs.slice(2).map((i) => (i < 0 ? i : materialize(i, needs(node))));
    nodes.push({ ...node, inputs: [x, folded, ...rest] });
  }
}

/** Data given with explicit `dims` (an ONNX TensorProto) for a graph input of shape `shape` in `layout`: an
 * NHWC input (an NCHW model's, declared NHWC at import) given NCHW data is transposed; data already in the
 * input's shape is taken as is, which is also the reading when both orders give the same shape. The
 * result has the input's layout. */
export function inputInLayout(
  data: TensorData,
  dims: readonly number[],
  shape: readonly number[],
  layout: string,
): TensorData {
  // The batch (dimension 0) may differ from the declared one: the runtime then runs at the data's batch.
  const inner = (d: readonly number[]): string => d.slice(1).join(',');
  const asNchw = shape.length === 4 ? transposeShape(shape, NHWC_TO_NCHW) : [];
  if (layout !== 'NHWC' || dims.length !== 4 || inner(dims) === inner(shape) || inner(dims) !== inner(asNchw))
    return data;
  return permuted(dims, NCHW_TO_NHWC, data);
}
