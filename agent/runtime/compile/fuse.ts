// Fusions of the compile pass, on a graph already in one layout: batch norm after a conv / fully-connected
// layer folds into its weights and bias (fold-batchnorm.ts), a residual add after a conv becomes the conv's
// addend (ops/residual.ts; at load only, see fuseResidual), and a clip (ReLU, ReLU6, any clip) after a layer
// becomes its output clamp — the f32 kernels (and the compressed formats' on fp32 activations) take min/max, the int8 kernels integer output bounds; after a
// residual add, the clamp after the add (add_min / add_max). Each fusion needs the layer's output to have no
// other reader. Pairs the kernels cannot take (a leaky ReLU or sigmoid after a layer, a hard_swish, a
// residual add that broadcasts or whose other operand is computed after the conv) are reported as not
// fused. First, hard-swish as exported before opset 14 (x * HardSigmoid(x) with alpha 1/6, beta 0.5)
// becomes one hard_swish node, and GELU as exporters spell it (x * 0.5 * (1 + erf(x / sqrt 2)), or with
// tanh(sqrt(2 / pi) (x + 0.044715 x^3)) for the erf) one gelu node (fuseGelu); a mul by one constant per
// output column after a fully-connected layer folds into its weights (foldColumnScales). At load, an xnor
// layer also reads the int8 tensor before a dequantize only it reads (fuseXnorDequantize). A batch norm with
// no layer to fold into (DenseNet's pre-activation ones, after a concat) becomes a 1x1 depthwise conv
// (batchNormsAsConvs), which the native kernels and the int8 quantizer take like any other conv, with the
// ReLU after it fused as its clamp. A constant-0 pad of the image axes before an average pool (PyTorch's
// export of count_include_pad pooling: Inception's branches) becomes the pool's own padding, counted
// (fusePadIntoAvgPool).
import type { ManifestNode } from '../../package/manifest.js';
import { xnorSignZeroPoint } from '../ops/conv.js';
import { ADDEND_INPUT, hasAddend, RESIDUAL_ATTRS } from '../ops/residual.js';
import { elements } from '../tensor.js';
import { foldBatchNorm } from './fold-batchnorm.js';
import { addTensor, type CompileGraph, type CompileReport, rawConstant, readersOf } from './graph.js';

const FLOAT_LAYERS = new Set(['conv2d', 'fully_connected']);
/** The weight formats whose float conv2d / fully_connected layers take an output clamp (min / max): fp32 and
 * every compressed format on fp32 activations (ops/conv.ts, and the native format layers' outputMin /
 * outputMax). Not fixed16 / fixed8, whose layers compute in fixed point. */
const CLAMPED_FLOAT_FORMATS = new Set([
  'f32',
  'binary',
  'xnor',
  'ternary',
  'sparse',
  'codebook',
  'sparse-codebook',
  'hashed',
]);
const INT8_LAYERS = new Set(['qconv2d', 'qfully_connected']);

const bound = (node: ManifestNode, key: 'min' | 'max'): number | undefined => {
  const v = node.attrs[key];
  return typeof v === 'number' ? v : undefined;
};

/** The layer producing `t` when `t` is its only output, has no other reader than `reader` and is no graph
 * output. */
function soleProducer(
  graph: CompileGraph,
  t: number,
  reader: ManifestNode,
  readers: Map<number, ManifestNode[]>,
  producers: Map<number, ManifestNode>,
): ManifestNode | undefined {
  const producer = producers.get(t);
  if (producer === undefined || producer.outputs.length !== 1) return undefined;
  const read = readers.get(t) ?? [];
  if (read.length !== 1 || read[0] !== reader || reader.inputs.filter((i) => i === t).length !== 1)
    return undefined;
  if (graph.outputs.some((o) => o.tensor === t)) return undefined;
  return producer;
}

/** Batch norm folded into the conv (NHWC, channel axis 3) or fully-connected layer (axis 1) before it. */
function foldedBatchNorm(
  graph: CompileGraph,
  layer: ManifestNode,
  bn: ManifestNode,
): ManifestNode | undefined {
  if (!FLOAT_LAYERS.has(layer.op) || layer.format !== 'f32' || bn.format !== 'f32') return undefined;
  if (bound(layer, 'min') !== undefined || bound(layer, 'max') !== undefined) return undefined;
  const y = graph.tensors[layer.outputs[0]!]!;
  const rank = y.shape.length;
  const axis = batchNormAxis(bn, rank);
  if (axis !== rank - 1 || (layer.op === 'conv2d' ? rank !== 4 : rank !== 2)) return undefined;
  const weights = rawConstant(graph, layer.inputs[1] ?? -1);
  const biasIndex = layer.inputs[2] ?? -1;
  const bias = biasIndex >= 0 ? rawConstant(graph, biasIndex) : null;
  const params = bn.inputs.slice(1, 5).map((i) => (i >= 0 ? rawConstant(graph, i) : undefined));
  if (
    !(weights instanceof Float32Array) ||
    !(bias === null || bias instanceof Float32Array) ||
    params.length !== 4 ||
    !params.every((p) => p instanceof Float32Array)
  )
    return undefined;
  const [gamma, beta, mean, variance] = params as Float32Array[];
  const outC = graph.tensors[layer.inputs[1]!]!.shape[0]!;
  if (elements(y.shape.slice(-1)) !== outC) return undefined;
  const epsilon = typeof bn.attrs.epsilon === 'number' ? bn.attrs.epsilon : 1e-5;
  let folded;
  try {
    folded = foldBatchNorm(weights, bias, outC, {
      gamma: gamma!,
      beta: beta!,
      mean: mean!,
      variance: variance!,
      epsilon,
    });
  } catch {
    return undefined; // inconsistent parameters: the batch_norm node keeps them and its own checks
  }
  const w = graph.tensors[layer.inputs[1]!]!;
  const wFolded = addTensor(graph, { ...w, name: `${w.name}/bn_folded` }, folded.weights);
  const bFolded = addTensor(
    graph,
    { name: `${layer.name}.bn_folded_bias`, dtype: 'f32', shape: [outC] },
    folded.bias,
  );
  return { ...layer, inputs: [layer.inputs[0]!, wFolded, bFolded], outputs: [...bn.outputs] };
}

/** The clip folded into the layer's output clamp (after a residual add: the clamp after the add), or why it
 * cannot be. */
function fusedClip(graph: CompileGraph, layer: ManifestNode, clip: ManifestNode): ManifestNode | string {
  const keys = hasAddend(layer) ? RESIDUAL_ATTRS : { min: 'min', max: 'max' };
  const layerBound = (key: 'min' | 'max') => {
    const v = layer.attrs[keys[key]];
    return typeof v === 'number' ? v : undefined;
  };
  const lows = [layerBound('min'), bound(clip, 'min')].filter((v): v is number => v !== undefined);
  const highs = [layerBound('max'), bound(clip, 'max')].filter((v): v is number => v !== undefined);
  const min = lows.length > 0 ? Math.max(...lows) : undefined;
  const max = highs.length > 0 ? Math.min(...highs) : undefined;
  if (min !== undefined && max !== undefined && min > max) return 'the clamps do not overlap';
  if (FLOAT_LAYERS.has(layer.op)) {
    if (!CLAMPED_FLOAT_FORMATS.has(layer.format) || clip.format !== 'f32')
      return `a ${layer.format} ${layer.op} takes no fused clamp in this runtime`;
  } else {
    const y = graph.tensors[layer.outputs[0]!]!;
    const z = graph.tensors[clip.outputs[0]!]!;
    if (clip.format !== 'int8' || y.dtype !== z.dtype || JSON.stringify(y.quant) !== JSON.stringify(z.quant))
      return 'the clip changes the dtype or quantization';
    if ([min, max].some((v) => v !== undefined && Number.isFinite(v) && !Number.isInteger(v)))
      return 'int8 clip bounds are not integers';
  }
  const attrs = { ...layer.attrs };
  delete attrs[keys.min];
  delete attrs[keys.max];
  if (min !== undefined && Number.isFinite(min)) attrs[keys.min] = min;
  if (max !== undefined && Number.isFinite(max)) attrs[keys.max] = max;
  return { ...layer, attrs, outputs: [...clip.outputs] };
}

/** The layer op and format whose kernels take each kind of residual add as an addend. */
const RESIDUAL_LAYERS: Record<string, { op: string; format: string }> = {
  add: { op: 'conv2d', format: 'f32' },
  qadd: { op: 'qconv2d', format: 'int8' },
};

/** Why the add (reading `layer`'s output `t`) cannot become `layer`'s addend, or undefined when it can. */
function residualProblem(
  graph: CompileGraph,
  add: ManifestNode,
  t: number,
  layer: ManifestNode,
  order: Map<ManifestNode, number>,
  readers: Map<number, ManifestNode[]>,
  producers: Map<number, ManifestNode>,
): string | undefined {
  const wanted = RESIDUAL_LAYERS[add.op]!;
  if (layer.op !== wanted.op || layer.format !== wanted.format || add.format !== wanted.format)
    return `no ${layer.format} ${layer.op} kernel takes an addend`;
  if (hasAddend(layer)) return 'it already takes an addend';
  if (soleProducer(graph, t, add, readers, producers) === undefined)
    return 'its output has another reader (or is a graph output)';
  const other = add.inputs[add.inputs[0] === t ? 1 : 0]!;
  const [y, z, sum] = [t, other, add.outputs[0]!].map((i) => graph.tensors[i]!);
  if (y!.shape.join(',') !== z!.shape.join(',') || y!.shape.join(',') !== sum!.shape.join(','))
    return `the add broadcasts [${z!.shape.join(', ')}] to [${y!.shape.join(', ')}]`;
  if (y!.dtype !== z!.dtype) return `the operands' dtypes differ (${y!.dtype}, ${z!.dtype})`;
  if (graph.constants.has(other)) return 'the other operand is a constant';
  const source = producers.get(other);
  if (source !== undefined && order.get(source)! > order.get(layer)!)
    return `the other operand (${z!.name}) is computed after ${layer.name}`;
  if (wanted.format === 'int8' && (y!.quant?.scale.length !== 1 || y!.quant.zeroPoint.length !== 1))
    return 'the conv output is not quantized per tensor';
  return undefined;
}

/** Residual adds after a conv become the conv's addend (ops/residual.ts): the fused node runs where the conv
 * ran, so the add's other operand must be computed before it. Of two conv operands, the later one takes the
 * add. */
function fuseResidualAdds(graph: CompileGraph, report: CompileReport, enabled: boolean): void {
  const readers = readersOf(graph.nodes);
  const producers = new Map<number, ManifestNode>();
  for (const node of graph.nodes) for (const o of node.outputs) producers.set(o, node);
  const order = new Map(graph.nodes.map((node, i) => [node, i]));
  const replaced = new Map<ManifestNode, ManifestNode>();
  const removed = new Set<ManifestNode>();
  for (const add of graph.nodes) {
    if (RESIDUAL_LAYERS[add.op] === undefined || add.inputs.length !== 2 || add.inputs.some((i) => i < 0))
      continue;
    const layers = add.inputs
      .map((t) => ({ t, layer: producers.get(t) }))
      .filter((c): c is { t: number; layer: ManifestNode } => {
        const op = c.layer?.op ?? '';
        return FLOAT_LAYERS.has(op) || INT8_LAYERS.has(op);
      })
      .sort((a, b) => order.get(b.layer)! - order.get(a.layer)!);
    if (layers.length === 0) continue;
    if (!enabled) {
      report.notFused.push({ node: add.name, why: 'residual add fusion is off (fuseResidual: false)' });
      continue;
    }
    const problems: string[] = [];
    for (const { t, layer } of layers) {
      const problem = replaced.has(layer)
        ? 'it already takes another add'
        : residualProblem(graph, add, t, layer, order, readers, producers);
      if (problem !== undefined) {
        problems.push(`${layer.name}: ${problem}`);
        continue;
      }
      const other = add.inputs[add.inputs[0] === t ? 1 : 0]!;
      const attrs = { ...layer.attrs };
      for (const key of ['min', 'max'] as const) {
        const v = bound(add, key);
        if (v !== undefined) attrs[RESIDUAL_ATTRS[key]] = v;
      }
      if (layer.format === 'int8') {
        const q = graph.tensors[t]!.quant!;
        attrs[RESIDUAL_ATTRS.scale] = q.scale[0]!;
        attrs[RESIDUAL_ATTRS.zeroPoint] = q.zeroPoint[0]!;
      }
      const inputs = [0, 1, 2].map((k) => layer.inputs[k] ?? -1);
      inputs[ADDEND_INPUT] = other;
      replaced.set(layer, { ...layer, inputs, attrs, outputs: [...add.outputs] });
      removed.add(add);
      report.fused.push({ node: add.name, into: layer.name });
      break;
    }
    if (!removed.has(add))
      report.notFused.push({ node: add.name, why: `residual add not fused: ${problems.join('; ')}` });
  }
  graph.nodes = graph.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
}

/** One rewrite pass: `visit` sees each node with `sole(t)`, the producer of t when the node is its only
 * reader (soleProducer), and may `fuse` a producer into it (the producer dropped, the node replaced);
 * `fused(n)` tells whether n was already dropped. The graph's nodes are rewritten after the pass. */
function rewritePass(
  graph: CompileGraph,
  visit: (
    node: ManifestNode,
    sole: (t: number) => ManifestNode | undefined,
    fuse: (producer: ManifestNode, replacement: ManifestNode) => void,
    fused: (n: ManifestNode) => boolean,
  ) => void,
): void {
  const readers = readersOf(graph.nodes);
  const producers = new Map<number, ManifestNode>();
  for (const node of graph.nodes) for (const o of node.outputs) producers.set(o, node);
  const removed = new Set<ManifestNode>();
  const replaced = new Map<ManifestNode, ManifestNode>();
  for (const node of graph.nodes) {
    visit(
      node,
      (t) => (t < 0 ? undefined : soleProducer(graph, t, node, readers, producers)),
      (producer, replacement) => {
        removed.add(producer);
        replaced.set(node, replacement);
      },
      (n) => removed.has(n),
    );
  }
  graph.nodes = graph.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
}

/** The channel axis of a batch_norm node over a tensor of `rank`. */
function batchNormAxis(bn: ManifestNode, rank: number): number {
  const axis = typeof bn.attrs.axis === 'number' ? bn.attrs.axis : 1;
  return axis < 0 ? axis + rank : axis;
}

/** An fp32 batch_norm over the channels of an NHWC tensor, left after folding, as the 1x1 depthwise conv2d
 * it is: y = x * s + (beta - mean * s), s = gamma / sqrt(variance + epsilon) (foldBatchNorm of unit
 * weights). Parameters that are not constants, or inconsistent, keep the batch_norm node. */
function batchNormsAsConvs(graph: CompileGraph): void {
  graph.nodes = graph.nodes.map((bn) => {
    if (bn.op !== 'batch_norm' || bn.format !== 'f32') return bn;
    const x = graph.tensors[bn.inputs[0] ?? -1];
    if (x?.shape.length !== 4 || batchNormAxis(bn, 4) !== 3) return bn;
    const channels = x.shape[3]!;
    const params = bn.inputs.slice(1, 5).map((i) => (i >= 0 ? rawConstant(graph, i) : undefined));
    if (params.length !== 4 || !params.every((p) => p instanceof Float32Array)) return bn;
    const [gamma, beta, mean, variance] = params as Float32Array[];
    let folded;
    try {
      folded = foldBatchNorm(new Float32Array(channels).fill(1), null, channels, {
        gamma: gamma!,
        beta: beta!,
        mean: mean!,
        variance: variance!,
        epsilon: typeof bn.attrs.epsilon === 'number' ? bn.attrs.epsilon : 1e-5,
      });
    } catch {
      return bn;
    }
    const weights = addTensor(
      graph,
      { name: `${bn.name}.depthwise_weights`, dtype: 'f32', shape: [channels, 1, 1, 1] },
      folded.weights,
    );
    const bias = addTensor(
      graph,
      { name: `${bn.name}.depthwise_bias`, dtype: 'f32', shape: [channels] },
      folded.bias,
    );
    return {
      ...bn,
      op: 'conv2d',
      inputs: [bn.inputs[0]!, weights, bias],
      attrs: { strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0], groups: channels },
    };
  });
}

/** A constant-0 pad of the image axes (NHWC) before an fp32 avg_pool that reads it alone, as the pool's
 * padding with count_include_pad: the padded zeros are then counted in each window, as the pad made them.
 * The pool's own padding must be counted too (or be none), for the windows to divide by the same count. */
function fusePadIntoAvgPool(graph: CompileGraph, report: CompileReport): void {
  rewritePass(graph, (node, sole, fuse) => {
    if (node.op !== 'avg_pool' || node.format !== 'f32') return;
    const pad = sole(node.inputs[0] ?? -1);
    if (pad?.op !== 'pad' || pad.format !== 'f32' || pad.inputs.length !== 1) return;
    const pads = pad.attrs.pads;
    const mode = pad.attrs.mode ?? 'constant';
    const value = pad.attrs.value ?? 0;
    if (!Array.isArray(pads) || pads.length !== 8 || mode !== 'constant' || value !== 0) return;
    const [n0, top, left, c0, n1, bottom, right, c1] = pads;
    if ([n0, c0, n1, c1].some((p) => p !== 0)) return;
    const own = Array.isArray(node.attrs.pads) ? node.attrs.pads : [0, 0, 0, 0];
    const counted = node.attrs.count_include_pad === 1;
    if (own.length !== 4 || (!counted && own.some((p) => p !== 0))) {
      report.notFused.push({ node: pad.name, why: `${node.name} leaves its own padding out of the average` });
      return;
    }
    const added = [top!, left!, bottom!, right!];
    fuse(pad, {
      ...node,
      inputs: [pad.inputs[0]!],
      attrs: { ...node.attrs, pads: own.map((p, i) => p + added[i]!), count_include_pad: 1 },
    });
    report.fused.push({ node: pad.name, into: node.name });
  });
}

/** x * hard_sigmoid(x) (alpha 1/6, beta 1/2; the gate read by the mul alone) as one hard_swish node. */
function fuseHardSwish(graph: CompileGraph, report: CompileReport): void {
  rewritePass(graph, (node, sole, fuse, fused) => {
    if (node.op !== 'mul' || node.format !== 'f32' || node.inputs.length !== 2) return;
    const [a, b] = node.inputs as [number, number];
    const gate = [a, b]
      .map((t) => ({ t, p: sole(t) }))
      .find(
        ({ t, p }) =>
          p?.op === 'hard_sigmoid' &&
          p.inputs[0] === (t === a ? b : a) &&
          Math.abs(Number(p.attrs.alpha ?? 0.2) - 1 / 6) < 1e-7 &&
          Number(p.attrs.beta ?? 0.5) === 0.5 &&
          !fused(p),
      );
    if (gate?.p === undefined) return;
    fuse(gate.p, { ...node, op: 'hard_swish', inputs: [gate.p.inputs[0]!], attrs: {} });
    report.fused.push({ node: gate.p.name, into: node.name });
  });
}

/** The value of a one-element raw constant, or undefined. */
function scalarOf(graph: CompileGraph, t: number): number | undefined {
  const data = t < 0 ? undefined : rawConstant(graph, t);
  return data !== undefined && data.length === 1 ? Number(data[0]) : undefined;
}

/** Whether `value` is `want` up to fp32 rounding of the exporter's constant. */
const near = (value: number | undefined, want: number): boolean =>
  value !== undefined && Math.abs(value - want) <= 1e-6 * Math.abs(want);

/** GELU spelled with element-wise ops, as PyTorch's exporter writes nn.GELU before opset 20 (and TensorFlow's
 * graphs): the final mul of x, 0.5 and the gate 1 + erf(x / sqrt 2) (x / sqrt 2 also as x * (1 / sqrt 2)), or
 * 1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)) (x^3 as pow(x, 3) or x * x * x), grouped either way, becomes
 * one gelu node (approximate 'none' or 'tanh'). Every node but the last must be read by the pattern alone;
 * each constant is a one-element fp32 tensor. */
function fuseGelu(graph: CompileGraph, report: CompileReport): void {
  const readers = readersOf(graph.nodes);
  const producers = new Map<number, ManifestNode>();
  for (const node of graph.nodes) for (const o of node.outputs) producers.set(o, node);
  const graphOutputs = new Set(graph.outputs.map((o) => o.tensor));
  const used = new Set<ManifestNode>();
  /** The f32 node producing t when t is read once (by the pattern) and is no graph output. */
  const inner = (t: number, op: string): ManifestNode | undefined => {
    const p = producers.get(t);
    if (p?.op !== op || p.format !== 'f32' || used.has(p) || graphOutputs.has(t)) return undefined;
    return readers.get(t)?.length === 1 ? p : undefined;
  };
  /** A binary node's operand other than its one-element constant near `want`. */
  const byScalar = (node: ManifestNode, want: number): number | undefined => {
    if (node.inputs.length !== 2) return undefined;
    const [a, b] = node.inputs as [number, number];
    if (near(scalarOf(graph, b), want)) return a;
    return near(scalarOf(graph, a), want) ? b : undefined;
  };
  /** x^3 as pow(x, 3), or as x * (x * x) in either order. */
  const cubeNodes = (t: number, x: number): ManifestNode[] | undefined => {
    const pow = inner(t, 'pow');
    if (pow !== undefined)
      return pow.inputs[0] === x && scalarOf(graph, pow.inputs[1]!) === 3 ? [pow] : undefined;
    const outer = inner(t, 'mul');
    if (outer === undefined || !outer.inputs.includes(x)) return undefined;
    const square = inner(outer.inputs[outer.inputs[0] === x ? 1 : 0]!, 'mul');
    return square?.inputs.every((i) => i === x) ? [outer, square] : undefined;
  };
  /** The nodes of the gate 1 + erf(x / sqrt 2) or 1 + tanh(...) of x producing t, and its form. */
  const gateOf = (t: number, x: number): { nodes: ManifestNode[]; approximate: string } | undefined => {
    const add = inner(t, 'add');
    const u = add && byScalar(add, 1);
    if (add === undefined || u === undefined) return undefined;
    const erf = inner(u, 'erf');
    if (erf !== undefined) {
      const div = inner(erf.inputs[0]!, 'div');
      const mul = inner(erf.inputs[0]!, 'mul');
      const scaled =
        div !== undefined && div.inputs[0] === x && near(scalarOf(graph, div.inputs[1]!), Math.SQRT2)
          ? div
          : mul !== undefined && byScalar(mul, Math.SQRT1_2) === x
            ? mul
            : undefined;
      return scaled && { nodes: [add, erf, scaled], approximate: 'none' };
    }
    const tanh = inner(u, 'tanh');
    const scale = tanh && inner(tanh.inputs[0]!, 'mul');
    const sumT = scale && byScalar(scale, Math.sqrt(2 / Math.PI));
    const sum = sumT === undefined ? undefined : inner(sumT, 'add');
    if (tanh === undefined || scale === undefined || sum === undefined || !sum.inputs.includes(x))
      return undefined;
    const cubic = inner(sum.inputs[sum.inputs[0] === x ? 1 : 0]!, 'mul');
    const cubeT = cubic && byScalar(cubic, 0.044715);
    const cube = cubeT === undefined ? undefined : cubeNodes(cubeT, x);
    return cube && { nodes: [add, tanh, scale, sum, cubic!, ...cube], approximate: 'tanh' };
  };
  /** The GELU ending in mul node `last`: x, its form and the nodes before `last`. */
  const match = (last: ManifestNode) => {
    if (last.op !== 'mul' || last.format !== 'f32' || last.inputs.length !== 2) return undefined;
    const half = byScalar(last, 0.5);
    if (half !== undefined) {
      // (x * gate) * 0.5
      const product = inner(half, 'mul');
      for (const [x, g] of product ? [product.inputs, [...product.inputs].reverse()] : []) {
        const gate = gateOf(g!, x!);
        if (gate) return { x: x!, approximate: gate.approximate, nodes: [product!, ...gate.nodes] };
      }
      return undefined;
    }
    // (x * 0.5) * gate
    for (const [h, g] of [last.inputs, [...last.inputs].reverse()]) {
      const halfNode = inner(h!, 'mul');
      const x = halfNode && byScalar(halfNode, 0.5);
      const gate = x === undefined ? undefined : gateOf(g!, x);
      if (gate) return { x: x!, approximate: gate.approximate, nodes: [halfNode!, ...gate.nodes] };
    }
    return undefined;
  };
  const replaced = new Map<ManifestNode, ManifestNode>();
  for (const node of graph.nodes) {
    const gelu = match(node);
    if (gelu === undefined) continue;
    const [x, y] = [graph.tensors[gelu.x]!, graph.tensors[node.outputs[0]!]!];
    if (x.dtype !== 'f32' || x.shape.join(',') !== y.shape.join(',')) continue;
    for (const n of gelu.nodes) {
      used.add(n);
      report.fused.push({ node: n.name, into: node.name });
    }
    const attrs: ManifestNode['attrs'] = gelu.approximate === 'tanh' ? { approximate: 'tanh' } : {};
    replaced.set(node, { ...node, op: 'gelu', inputs: [gelu.x], attrs });
  }
  graph.nodes = graph.nodes.filter((n) => !used.has(n)).map((n) => replaced.get(n) ?? n);
}

/** A mul of an fp32 fully-connected layer's output (directly, or through the reshape that gives it back its
 * leading axes: ops from MatMul, optimize/onnx/ops/matmul.ts) by a constant of one value per output column
 * (shape [..., 1, O]: ConvNeXt's layer scale) folds into the layer's weight rows and bias: w[o][k] * c[o],
 * b[o] * c[o], as batch norm folds (fp32 rounding aside). The layer must have no clamp, its output and the
 * reshape's no other reader. */
function foldColumnScales(graph: CompileGraph, report: CompileReport): void {
  const readers = readersOf(graph.nodes);
  const producers = new Map<number, ManifestNode>();
  for (const node of graph.nodes) for (const o of node.outputs) producers.set(o, node);
  const replaced = new Map<ManifestNode, ManifestNode>();
  const removed = new Set<ManifestNode>();
  for (const mul of graph.nodes) {
    if (mul.op !== 'mul' || mul.format !== 'f32' || mul.inputs.length !== 2) continue;
    const [a, b] = mul.inputs as [number, number];
    const [c, t] = rawConstant(graph, a) instanceof Float32Array ? [a, b] : [b, a];
    const scale = rawConstant(graph, c);
    if (!(scale instanceof Float32Array) || rawConstant(graph, t) !== undefined) continue;
    let reshape = soleProducer(graph, t, mul, readers, producers);
    const layer =
      reshape?.op === 'reshape'
        ? soleProducer(graph, reshape.inputs[0]!, reshape, readers, producers)
        : reshape;
    if (reshape?.op !== 'reshape') reshape = undefined;
    if (layer === undefined || replaced.has(layer) || removed.has(layer)) continue;
    if (layer.op !== 'fully_connected' || layer.format !== 'f32') continue;
    if (bound(layer, 'min') !== undefined || bound(layer, 'max') !== undefined) continue;
    const weights = rawConstant(graph, layer.inputs[1] ?? -1);
    const biasIndex = layer.inputs[2] ?? -1;
    const bias = biasIndex >= 0 ? rawConstant(graph, biasIndex) : null;
    if (!(weights instanceof Float32Array) || !(bias === null || bias instanceof Float32Array)) continue;
    const [outC, k] = graph.tensors[layer.inputs[1]!]!.shape as [number, number];
    const [cShape, tShape, yShape] = [c, t, mul.outputs[0]!].map((i) => graph.tensors[i]!.shape);
    if (
      scale.length !== outC ||
      cShape!.at(-1) !== outC ||
      cShape!.length > tShape!.length ||
      tShape!.at(-1) !== outC ||
      tShape!.join(',') !== yShape!.join(',')
    )
      continue;
    const w = graph.tensors[layer.inputs[1]!]!;
    const scaled = weights.map((v, i) => v * scale[Math.floor(i / k)]!);
    const wScaled = addTensor(graph, { ...w, name: `${w.name}/scaled` }, scaled);
    const bScaled =
      bias === null
        ? -1
        : addTensor(
            graph,
            { name: `${layer.name}.scaled_bias`, dtype: 'f32', shape: [outC] },
            bias.map((v, o) => v * scale[o]!),
          );
    const inputs = [layer.inputs[0]!, wScaled, bScaled];
    if (reshape === undefined) {
      replaced.set(layer, { ...layer, inputs, outputs: [...mul.outputs] });
    } else {
      replaced.set(layer, { ...layer, inputs });
      replaced.set(reshape, { ...reshape, outputs: [...mul.outputs] });
    }
    removed.add(mul);
    report.fused.push({ node: mul.name, into: layer.name });
  }
  graph.nodes = graph.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
}

/** An xnor layer reads the int8 tensor before a dequantize that only it reads (the int8 stem of an XNOR-Net
 * feeding its first binary layer): the layer needs only the signs, and scale * (q - zeroPoint) < 0 exactly
 * when q < zeroPoint for the positive per-tensor scales xnorSignZeroPoint accepts, so the results are
 * unchanged and the dequantize's pass over the tensor is gone. (The runtime's xnor layers take no input
 * scaling K, which would need the fp32 values: native-executors.ts passes inputScaling false.) */
function fuseXnorDequantize(graph: CompileGraph, report: CompileReport): void {
  rewritePass(graph, (node, sole, fuse) => {
    if (!FLOAT_LAYERS.has(node.op) || node.format !== 'xnor') return;
    const dequantize = sole(node.inputs[0] ?? -1);
    if (dequantize?.op !== 'dequantize_linear') return;
    const q = dequantize.inputs[0] ?? -1;
    if (q < 0 || xnorSignZeroPoint(graph.tensors[q]!) === undefined) return;
    fuse(dequantize, { ...node, inputs: [q, ...node.inputs.slice(1)] });
    report.fused.push({ node: dequantize.name, into: node.name });
  });
}

/** The fusions. Residual adds are fused at load only (`fuseResidual` true; false: reported as switched off,
 * for A/B runs): a package stores conv and add apart, as the quantizer and the exporters read them. */
export function fuseLayers(graph: CompileGraph, report: CompileReport, fuseResidual?: boolean): void {
  fuseHardSwish(graph, report);
  fusePadIntoAvgPool(graph, report);
  fuseGelu(graph, report);
  foldColumnScales(graph, report);
  for (const kind of ['batch_norm', 'residual', 'clip'] as const) {
    if (kind === 'residual') {
      if (fuseResidual !== undefined) fuseResidualAdds(graph, report, fuseResidual);
      // Also at load only: a stored package keeps the dequantize, which readers before this fusion need.
      if (fuseResidual === true) fuseXnorDequantize(graph, report);
      continue;
    }
    const readers = readersOf(graph.nodes);
    const producers = new Map<number, ManifestNode>();
    for (const node of graph.nodes) for (const o of node.outputs) producers.set(o, node);
    const replaced = new Map<ManifestNode, ManifestNode>();
    const removed = new Set<ManifestNode>();
    for (const node of graph.nodes) {
      const x = node.inputs[0] ?? -1;
      if (x < 0) continue;
      const layer = soleProducer(graph, x, node, readers, producers);
      if (layer === undefined || replaced.has(layer)) continue;
      const isLayer = FLOAT_LAYERS.has(layer.op) || INT8_LAYERS.has(layer.op);
      if (!isLayer) continue;
      if (node.op !== kind) {
        if (kind === 'clip' && ['leaky_relu', 'sigmoid', 'hard_swish'].includes(node.op))
          report.notFused.push({ node: node.name, why: `no ${layer.op} kernel takes a fused ${node.op}` });
        continue;
      }
      const fused =
        kind === 'batch_norm' ? foldedBatchNorm(graph, layer, node) : fusedClip(graph, layer, node);
      if (fused === undefined) continue;
      if (typeof fused === 'string') {
        report.notFused.push({ node: node.name, why: fused });
        continue;
      }
      replaced.set(layer, fused);
      removed.add(node);
      report.fused.push({ node: node.name, into: layer.name });
    }
    graph.nodes = graph.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
    // What did not fold is a conv of its own, before the clips fuse (a ReLU after it becomes its clamp).
    if (kind === 'batch_norm') batchNormsAsConvs(graph);
  }
}
