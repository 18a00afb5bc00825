// The latency predictor (issue 16 point 4): a whole package's batch-1 latency on a device, from that device's
// latency table (agent/profile/latency-table.ts), before the package is ever run there.
//
// The package is built here as the runtime builds it (compile pass, kernel choice, native plan: Model), so the
// predictor sees the nodes the device will run — fused convs, the edges int8 parts add, the kernel each layer
// gets — and the plan's calls. Then:
//   - each node is matched to the table's entries of its kind: same op family and format, for a conv the same
//     kernel size and depthwise-ness, and the same kernel (e.g. the winograd path of an fp32 3x3 conv) where
//     the table has that kernel at two shapes or more;
//   - its time is interpolated over those entries by its work — MACs times the weight density (what a sparse
//     kernel reads) for convs and fully connected layers, input elements for the others — with a line fitted
//     through them (least squares on relative error, so small layers count as much as big ones);
//   - a clip the compile pass could not fuse (after a binary / ternary / fixed-point layer) is part of its
//     layer: the table's entries time those layers with their clip;
//   - each entry's time less its run's call overhead is the layer's own; the per-model overhead is the plan's
//     calls per run times the table's `call` entry plus its TypeScript steps times the `ts_step` entry.
// Ops the grid does not time are priced as a clip over the same elements and reported as `estimated`.
import type { Package } from '../../agent/package/reader.js';
import {
  type LatencyEntry,
  type LatencyOp,
  type LatencyTable,
  weightDensity,
} from '../../agent/profile/latency-table.js';
import { Model } from '../../agent/runtime/model.js';
import { hasAddend } from '../../agent/runtime/ops/residual.js';
import { elements } from '../../agent/runtime/tensor.js';
import { whittleError } from '../../native/whittle-error.js';

/** A table the predictor cannot use (it lacks the entries every prediction needs). */
export class LatencyPredictionError extends whittleError(
  'LatencyPredictionError',
  'bad-latency-prediction',
) {}

export interface LayerLatency {
  name: string;
  /** The node's op as the runtime runs it (after the compile pass). */
  op: string;
  format: string;
  ms: number;
  /** No entry of the table is of this node's kind: priced as a clip over its elements. */
  estimated?: true;
}

export interface LatencyPrediction {
  /** The whole run: the layers plus the overhead. */
  ms: number;
  layers: LayerLatency[];
  /** Plan calls and TypeScript steps per run. */
  overhead_ms: number;
}

/** The node families the table times, by the runtime's op names. */
const FAMILY: Readonly<Record<string, LatencyOp>> = {
  conv2d: 'conv2d',
  qconv2d: 'conv2d',
  fully_connected: 'fully_connected',
  qfully_connected: 'fully_connected',
  max_pool: 'max_pool',
  avg_pool: 'avg_pool',
  global_avgpool: 'global_avgpool',
  add: 'add',
  qadd: 'add',
  concat: 'concat',
  channel_shuffle: 'channel_shuffle',
  clip: 'clip',
  reshape: 'reshape',
  quantize_linear: 'quantize',
  dequantize_linear: 'dequantize',
  softmax: 'softmax',
};

/** ms = a + b * work, fitted to a group of entries. */
interface Line {
  a: number;
  b: number;
}

/** The line through entries' (work, ms) points minimizing the squared relative error, with a, b >= 0; one
 * point: through the origin. */
function fitLine(points: readonly { work: number; ms: number }[]): Line {
  if (points.length === 1 || points.every((p) => p.work === points[0]!.work)) {
    const p = points[0]!;
    return { a: 0, b: p.work > 0 ? p.ms / p.work : 0 };
  }
  // Weighted least squares, weights 1 / ms^2.
  let sw = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (const { work: x, ms: y } of points) {
    const w = 1 / Math.max(y, 1e-6) ** 2;
    sw += w;
    sx += w * x;
    sy += w * y;
    sxx += w * x * x;
    sxy += w * x * y;
  }
  const det = sw * sxx - sx * sx;
  let b = det === 0 ? 0 : (sw * sxy - sx * sy) / det;
  let a = (sy - b * sx) / sw;
  if (b < 0) {
    b = 0;
    a = sy / sw;
  } else if (a < 0) {
    a = 0;
    b = sxy / sxx;
  }
  return { a, b };
}

/** A conv / fully-connected layer's shape as the neighbours are found by (fully connected: size 1, stride 1). */
interface LayerShape {
  size: number;
  inC: number;
  outC: number;
  stride: number;
  density: number;
  kernel: string;
}

/** An entry as the predictor uses it: its own time (less its run's calls), its work and shape. */
interface Point {
  work: number;
  ms: number;
  shape?: LayerShape;
}

/** What the predictor keeps of a table: entries by group, per-group lines, and the overhead entries. */
interface CostModel {
  callMs: number;
  tsMs: number;
  groups: Map<string, Point[]>;
  lines: Map<string, Line>;
}

/** How far apart two layer shapes are: log ratios of side, channels and density, a stride that differs, a
 * kernel the runtime chose differently. */
function shapeDistance(a: LayerShape, b: LayerShape): number {
  const log = (x: number, y: number): number => Math.abs(Math.log(Math.max(x, 1e-3) / Math.max(y, 1e-3)));
  return (
    log(a.size, b.size) +
    log(a.inC, b.inC) +
    log(a.outC, b.outC) +
    log(a.density, b.density) +
    (a.stride === b.stride ? 0 : 3) +
    (a.kernel === b.kernel ? 0 : 0.5)
  );
}

/** Neighbours taken into a conv / fully-connected layer's time. */
const NEIGHBOURS = 2;

/** A layer's time from the entries nearest its shape, each scaled by the work ratio, weighted by closeness. */
function nearest(points: readonly Point[], shape: LayerShape, work: number): number {
  const ranked = points
    .map((p) => ({ p, d: shapeDistance(shape, p.shape!) }))
    .sort((x, y) => x.d - y.d)
    .slice(0, NEIGHBOURS);
  let sum = 0;
  let weights = 0;
  for (const { p, d } of ranked) {
    const w = 1 / (d + 0.05);
    sum += w * (p.work > 0 ? (p.ms * work) / p.work : p.ms);
    weights += w;
  }
  return sum / weights;
}

const models = new WeakMap<LatencyTable, CostModel>();

/** The work an entry or node is interpolated by. */
function workOf(family: LatencyOp, macs: number, density: number, inElements: number): number {
  return family === 'conv2d' || family === 'fully_connected' ? macs * density : inElements;
}

/** The keys of the groups a node may be priced from, most specific first. */
function groupKeys(family: LatencyOp, format: string, conv: string): string[] {
  const keys = [`${family}|${format}|${conv}`, `${family}|${format}`];
  if (format !== 'f32' && format !== 'int8') keys.push(`${family}|f32|${conv}`, `${family}|f32`);
  return keys;
}

/** conv2d's kernel-size / depthwise class, e.g. `k3dw`; empty for other families. */
const convClass = (kernel: number | undefined, depthwise: boolean): string =>
  kernel === undefined ? '' : `k${kernel}${depthwise ? 'dw' : ''}`;

function costModel(table: LatencyTable): CostModel {
  const cached = models.get(table);
  if (cached !== undefined) return cached;
  const byOp = (op: LatencyOp): LatencyEntry | undefined => table.entries.find((e) => e.shape.op === op);
  const call = byOp('call');
  if (call === undefined)
    throw new LatencyPredictionError('the latency table has no "call" entry (the cost of a plan call)');
  const callMs = call.ms;
  const tsMs = byOp('ts_step')?.ms ?? callMs;
  const groups = new Map<string, Point[]>();
  for (const e of table.entries) {
    const family = e.shape.op;
    if (family === 'call' || family === 'ts_step') continue;
    const own = Math.max(e.ms - e.calls * callMs, e.ms * 0.05);
    const point: Point = { work: workOf(family, e.macs, e.density, e.in_elements), ms: own };
    if (family === 'conv2d' || family === 'fully_connected')
      point.shape = {
        size: e.shape.size ?? 1,
        inC: e.shape.inC ?? 1,
        outC: e.shape.outC ?? e.shape.inC ?? 1,
        stride: e.shape.stride ?? 1,
        density: e.density,
        kernel: e.kernel,
      };
    const conv = convClass(e.shape.kernel, e.shape.depthwise === true && family === 'conv2d');
    const keys = groupKeys(family, e.format, family === 'conv2d' ? conv : '').slice(0, 2);
    for (const key of keys) {
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = []));
      group.push(point);
    }
  }
  const model: CostModel = { callMs, tsMs, groups, lines: new Map() };
  models.set(table, model);
  return model;
}

/** The time of `work` from the first group of `keys` that has entries: from the nearest entries for a conv or
 * fully-connected layer (`shape`), along the group's line otherwise; undefined when no group has entries. */
function interpolate(
  model: CostModel,
  keys: readonly string[],
  work: number,
  shape?: LayerShape,
): number | undefined {
  for (const key of keys) {
    const group = model.groups.get(key);
    if (group === undefined) continue;
    if (shape !== undefined) return nearest(group, shape, work);
    let line = model.lines.get(key);
    if (line === undefined) model.lines.set(key, (line = fitLine(group)));
    return line.a + line.b * work;
  }
  return undefined;
}

/** Predicts `input`'s batch-1 latency on the device `table` was measured on (see the file comment). A Model
 * is used as built (its batch must be 1); a Package is built here at batch 1. */
export function predictLatency(input: Package | Model, table: LatencyTable): LatencyPrediction {
  const model = input instanceof Model ? input : Model.fromPackage(input, { batch: 1 });
  if (model.batch !== 1)
    throw new LatencyPredictionError(
      `the predictor prices batch-1 runs; the model is built at batch ${model.batch}`,
    );
  const cost = costModel(table);
  const { manifest, specs } = model;
  const constants = input instanceof Model ? undefined : input.constants;
  const producers = new Map<number, number>();
  manifest.nodes.forEach((n, i) => n.outputs.forEach((t) => producers.set(t, i)));
  const layers: LayerLatency[] = [];
  manifest.nodes.forEach((node) => {
    const info = model.layers.find((l) => l.name === node.name)!;
    const family = FAMILY[node.op];
    const inElements = node.inputs
      .slice(0, family === 'conv2d' || family === 'fully_connected' ? 1 : undefined)
      .reduce((s, t) => s + (t >= 0 && constants?.[t] === undefined ? elements(specs[t]!.shape) : 0), 0);
    // A clip after a layer that kept it unfused: timed with that layer by the table.
    if (node.op === 'clip') {
      const producer = producers.get(node.inputs[0]!);
      const before = producer === undefined ? undefined : manifest.nodes[producer];
      const f = before === undefined ? undefined : FAMILY[before.op];
      if (
        (f === 'conv2d' || f === 'fully_connected') &&
        before!.format !== 'f32' &&
        before!.format !== 'int8'
      ) {
        layers.push({ name: node.name, op: node.op, format: node.format, ms: 0 });
        return;
      }
    }
    let ms: number | undefined;
    if (family !== undefined) {
      const w = node.inputs[1];
      const weights = family === 'conv2d' || family === 'fully_connected' ? w : undefined;
      const density =
        weights === undefined || constants === undefined
          ? 1
          : weightDensity(constants[weights], elements(specs[weights]!.shape));
      const shape = weights === undefined ? undefined : specs[weights]!.shape;
      const depthwise =
        family === 'conv2d' && shape?.[3] === 1 && (specs[node.inputs[0]!]!.shape[3] ?? 1) > 1;
      const conv = family === 'conv2d' ? convClass(shape?.[1], depthwise) : '';
      const work = workOf(family, info.macs, density, inElements);
      const x = specs[node.inputs[0]!]!.shape;
      const y = specs[node.outputs[0]!]!.shape;
      const strides = node.attrs.strides;
      const layerShape: LayerShape | undefined =
        family === 'conv2d'
          ? {
              size: x[1] ?? 1,
              inC: x[3] ?? 1,
              outC: y[3] ?? 1,
              stride: Array.isArray(strides) ? (strides[0] ?? 1) : 1,
              density,
              kernel: info.kernel,
            }
          : family === 'fully_connected'
            ? { size: 1, inC: x[1] ?? 1, outC: y[1] ?? 1, stride: 1, density, kernel: info.kernel }
            : undefined;
      ms = interpolate(cost, groupKeys(family, node.format, conv), work, layerShape);
      // A residual add fused into the conv: the add's time over the conv's output.
      if (ms !== undefined && family === 'conv2d' && hasAddend(node)) {
        const out = elements(specs[node.outputs[0]!]!.shape);
        ms += interpolate(cost, groupKeys('add', node.format === 'int8' ? 'int8' : 'f32', ''), 2 * out) ?? 0;
      }
    }
    if (ms !== undefined) {
      layers.push({ name: node.name, op: node.op, format: node.format, ms: Math.max(0, ms) });
      return;
    }
    const out = node.outputs.reduce((s, t) => s + elements(specs[t]!.shape), 0);
    const proxy = interpolate(cost, groupKeys('clip', node.format === 'int8' ? 'int8' : 'f32', ''), out) ?? 0;
    layers.push({
      name: node.name,
      op: node.op,
      format: node.format,
      ms: Math.max(0, proxy),
      estimated: true,
    });
  });
  const { nativeCalls, typescriptNodes } = model.execution;
  const overhead = nativeCalls * cost.callMs + typescriptNodes.length * cost.tsMs;
  return { ms: layers.reduce((s, l) => s + l.ms, 0) + overhead, layers, overhead_ms: overhead };
}
