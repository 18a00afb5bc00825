// The latency predictor (issue 16 point 4): a whole package's batch-1 latency on a device, from that device's
// latency table (agent/profile/latency-table.ts), before the package is ever run there.
//
// The package is built here as the runtime builds it (compile pass, kernel choice, native plan: Model), so the
// predictor sees the nodes the device will run — fused convs, the edges int8 parts add, the kernel each layer
// gets — and the plan's calls. Then:
//   - each node is matched to the table's entries of its kind: same op family and format, for a conv the same
//     kernel size, depthwise-ness or grouping, and the same kernel (e.g. the winograd path of an fp32 3x3
//     conv) where the table has that kernel at three shapes or more; a sparse conv first to the entries of
//     its own plane (kernel size, stride and output side: the sparse kernel's time per nonzero moves with the
//     plane and the channels, 3-20x between a 14x14 and a 3x3 plane), unless `sparsePlanes: false`;
//   - its time is fitted over those entries — a conv or fully-connected layer by non-negative least squares on
//     relative error over its cost features (padded MACs, a fixed cost, gathered inputs, outputs, inputs), the
//     others by a line in their input elements — and the fit is then corrected by the entries nearest the
//     node (residualCorrection: the inverse-distance weighted ratio of measured to fitted time over its four
//     nearest entries), so that a node at a grid point gets that point's time and a node between points the
//     local bias of the fit (a kernel's fixed cost on a 1x1 plane, a blocking step);
//   - a clip the compile pass could not fuse (after a binary / ternary / fixed-point layer) is part of its
//     layer: the table's entries time those layers with their clip;
//   - each entry's time less its run's call overhead is the layer's own; the run's overhead is the plan's
//     calls per run times the table's `call` entry plus its TypeScript steps times the `ts_step` entry;
//   - the per-model term: where the table has whole networks timed end to end (the default grid's `network`
//     entries, latency-graphs.ts: the table's own seeded networks of the search space's kind, never the
//     packages being predicted), a scale of the layers' predicted sum fitted on them (relative error): a
//     whole run takes its layers a few % longer than each timed alone (2.4 % on a version-3 table; presumably
//     the caches and branch history it shares among its layers; docs/benchmarks.md, branch pred3).
//     Used by default (`perModel: false` prices the layers' sum alone); a table with fewer than
//     MIN_NETWORKS networks has none. (Branch pred fitted it with terms in the calls, the nodes and the
//     weight bytes too, on a table whose layers were interpolated: it moved the packages the wrong way.)
// Ops the grid does not time are priced as a clip over the same elements and reported as `estimated`.
import type { Package } from '../../agent/package/reader.js';
import { latencyGraph } from '../../agent/profile/latency-graphs.js';
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

/** A conv / fully-connected layer as its cost features are computed (fully connected: one output pixel). */
export interface LayerShape {
  /** Output rows and columns (fully connected: 1 x 1). */
  outH: number;
  outW: number;
  inC: number;
  outC: number;
  stride: number;
  density: number;
  /** The kernel the runtime chose (LayerInfo.kernel), e.g. `native:conv2d_f32 f32_gemm_minmax_ukernel_6x32__avx512`. */
  kernel: string;
  macs: number;
  inElements: number;
}

/** Vector lanes of fp32 on an ISA named in a kernel's name (the sparse planes kernel's tile width). */
function lanesOf(kernel: string): number {
  if (/avx512/.test(kernel)) return 16;
  if (/avx2|avx/.test(kernel)) return 8;
  if (/neon|sse/.test(kernel)) return 4;
  return 1;
}

/** The sparse planes kernel's work per nonzero over an output plane of h x w (sparse_conv2d_impl.h): rows are
 * covered by tiles of 2n columns (4 rows at a time, then 1), else n columns (8, 4, then 1 rows), else one
 * column (4 then 1 rows; scalar, costed SCALAR_TILE vector ops per accumulator); a tile costs its accumulators
 * plus a load and a broadcast per nonzero. */
function planesTileOps(h: number, w: number, n: number): number {
  const SCALAR_TILE = 4;
  const rowBlocks = (sizes: readonly number[]): number[] => {
    const blocks: number[] = [];
    let left = h;
    for (const r of sizes)
      while (left >= r) {
        blocks.push(r);
        left -= r;
      }
    return blocks;
  };
  if (w >= 2 * n) return Math.ceil(w / (2 * n)) * rowBlocks([4, 1]).reduce((s, r) => s + 2 * r + 2, 0);
  if (w >= n) return Math.ceil(w / n) * rowBlocks([8, 4, 1]).reduce((s, r) => s + r + 2, 0);
  return w * rowBlocks([4, 1]).reduce((s, r) => s + SCALAR_TILE * r + 2, 0);
}

/** The multiply-adds a kernel issues for a layer, its blocking's padding included:
 *   - a GEMM microkernel `MRxNR` computes MR output pixels by NR output channels per tile, whole tiles only;
 *   - a depthwise microkernel `cN` takes channels N at a time;
 *   - the sparse planes kernel (stride 1): its tiles' vector ops per nonzero (planesTileOps);
 *   - otherwise the MACs the layer reads (times the weight density). */
function paddedMacs(s: LayerShape): number {
  const pixels = s.outH * s.outW;
  const work = s.macs * s.density;
  const tile = /_(\d+)x(\d+)(?:c\d+)?__/.exec(s.kernel);
  if (tile !== null) {
    const mr = Number(tile[1]);
    const nr = Number(tile[2]);
    return (
      (work * (Math.ceil(pixels / mr) * mr) * (Math.ceil(s.outC / nr) * nr)) / (pixels * Math.max(s.outC, 1))
    );
  }
  const channels = /_c(\d+)__/.exec(s.kernel);
  if (channels !== null) {
    const c = Number(channels[1]);
    return (work * Math.ceil(s.outC / c) * c) / Math.max(s.outC, 1);
  }
  if (/sparse_conv2d/.test(s.kernel) && s.stride === 1 && pixels > 1)
    return (work / pixels) * planesTileOps(s.outH, s.outW, lanesOf(s.kernel));
  return work;
}

/** A layer's cost features, in the order the fit takes them: padded MACs, a fixed per-call cost, the
 * per-pixel gather (output pixels x the MACs per output: an im2col's copies), the outputs written, the inputs
 * read. */
export function costFeatures(s: LayerShape): number[] {
  const pixels = s.outH * s.outW;
  const perOutput = s.macs / Math.max(pixels * s.outC, 1);
  return [paddedMacs(s), 1, pixels * perOutput, pixels * s.outC, s.inElements];
}

/** Points a group needs before its own fit is used (else a coarser group's). */
const MIN_POINTS = 3;

/** The non-negative coefficients minimizing the squared relative error of features . c against ms, over the
 * first `count` features (coordinate descent on the normal equations, columns scaled to unit norm). */
export function fitCost(points: readonly { x: readonly number[]; ms: number }[], count: number): number[] {
  if (points.length === 0) throw new LatencyPredictionError('a cost model is fitted to one entry or more');
  const p = count;
  const rows = points.map(({ x, ms }) => x.slice(0, p).map((v) => v / Math.max(ms, 1e-9)));
  const scale = Array.from({ length: p }, (_, j) => Math.sqrt(rows.reduce((s, r) => s + r[j]! ** 2, 0)) || 1);
  const a = rows.map((r) => r.map((v, j) => v / scale[j]!));
  const gram = Array.from({ length: p }, (_, i) =>
    Array.from({ length: p }, (_, j) => a.reduce((s, r) => s + r[i]! * r[j]!, 0)),
  );
  const rhs = Array.from({ length: p }, (_, j) => a.reduce((s, r) => s + r[j]!, 0));
  const c = new Array<number>(p).fill(0);
  for (let it = 0; it < 2000; it++) {
    let change = 0;
    for (let j = 0; j < p; j++) {
      if (gram[j]![j]! <= 0) continue;
      let g = rhs[j]!;
      for (let k = 0; k < p; k++) if (k !== j) g -= gram[j]![k]! * c[k]!;
      const next = Math.max(0, g / gram[j]![j]!);
      change = Math.max(change, Math.abs(next - c[j]!));
      c[j] = next;
    }
    if (change < 1e-10) break;
  }
  return c.map((v, j) => v / scale[j]!);
}

/** Features a group of `n` points is fitted with: about one per two points, at least one, at most all. */
const featureCount = (n: number): number => Math.max(1, Math.min(5, Math.floor(n / 2)));

const dot = (c: readonly number[], x: readonly number[]): number => c.reduce((s, v, j) => s + v * x[j]!, 0);

/** An entry as the predictor uses it: its own time (less its run's calls), its work, and for a conv or
 * fully-connected layer its cost features. */
interface Point {
  work: number;
  ms: number;
  x?: number[];
}

/** What the predictor keeps of a table: entries by group, per-group fits, and the overhead entries. */
interface CostModel {
  callMs: number;
  tsMs: number;
  groups: Map<string, Point[]>;
  lines: Map<string, Line>;
  fits: Map<string, number[]>;
  /** The per-model term's scale (perModelTerm; null: the table has fewer than MIN_NETWORKS networks;
   * undefined: not fitted yet). */
  perModel?: number | null;
}

/** The per-model term of a table: the scale of a run's layers' predicted sum, fitted on its networks once,
 * when first asked; undefined when the table has fewer than MIN_NETWORKS of them. */
export function perModelTerm(table: LatencyTable): number | undefined {
  const model = costModel(table);
  if (model.perModel !== undefined) return model.perModel ?? undefined;
  const networks = table.entries.filter((e) => e.shape.op === 'network');
  model.perModel = null;
  if (networks.length >= MIN_NETWORKS)
    model.perModel = fitCost(
      networks.map((e) => {
        const pkg = latencyGraph(e.shape);
        const p = layerPrediction(Model.fromPackage(pkg, { batch: 1 }), pkg.constants, model, {});
        return { x: [p.layersMs], ms: Math.max(e.ms - p.overhead_ms, e.ms * 0.05) };
      }),
      1,
    )[0]!;
  return model.perModel ?? undefined;
}

/** Network entries a table needs before the per-model term is fitted. */
const MIN_NETWORKS = 6;

const models = new WeakMap<LatencyTable, CostModel>();

/** The work a non-layer entry or node is interpolated by: its input elements (conv / FC: MACs x density). */
function workOf(family: LatencyOp, macs: number, density: number, inElements: number): number {
  return family === 'conv2d' || family === 'fully_connected' ? macs * density : inElements;
}

/** The keys of the groups a node may be priced from, most specific first: for a conv or fully-connected
 * layer the kernel the runtime chose and the stride, then the kernel size class, then the family; formats
 * without entries of their own fall back to f32's. */
function groupKeys(family: LatencyOp, format: string, conv: string, stride = 1, kernel = ''): string[] {
  const own = (f: string): string[] =>
    family === 'conv2d' || family === 'fully_connected'
      ? [
          `${family}|${f}|${conv}|s${stride}|${kernel}`,
          `${family}|${f}|${conv}|s${stride}`,
          `${family}|${f}|${conv}`,
          `${family}|${f}`,
        ]
      : [`${family}|${f}|${conv}`, `${family}|${f}`];
  return format !== 'f32' && format !== 'int8' ? [...own(format), ...own('f32')] : own(format);
}

/** conv2d's kernel-size / depthwise / grouped class, e.g. `k3dw`, `k1g`; empty for other families. */
const convClass = (kernel: number | undefined, depthwise: boolean, grouped = false): string =>
  kernel === undefined ? '' : `k${kernel}${depthwise ? 'dw' : grouped ? 'g' : ''}`;

/** Sparse conv entries are matched on their kernel size, stride, depthwise-ness and output side: the sparse
 * kernel's time per nonzero depends on the plane it covers (narrow planes take its scalar columns) and grows
 * faster than the nonzeros on some planes, which no line through other shapes follows. */
const sparseKey = (kernel: number, stride: number, depthwise: boolean, side: number): string =>
  `k${kernel}s${stride}${depthwise ? 'dw' : ''}r${side}`;

/** The group of a sparse conv plane's entries (sparseKey). */
const planeGroup = (key: string): string => `conv2d|sparse|plane|${key}`;

/** The fitted cost model of a table (cached per table). */
export function costModel(table: LatencyTable): CostModel {
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
    if (family === 'call' || family === 'ts_step' || family === 'network') continue;
    const own = Math.max(e.ms - e.calls * callMs, e.ms * 0.05);
    const point: Point = { work: workOf(family, e.macs, e.density, e.in_elements), ms: own };
    const layer = family === 'conv2d' || family === 'fully_connected';
    const outC = e.shape.depthwise === true ? (e.shape.inC ?? 1) : (e.shape.outC ?? 1);
    if (layer) {
      const pixels = family === 'conv2d' ? e.out_elements / Math.max(outC, 1) : 1;
      const side = Math.round(Math.sqrt(pixels));
      point.x = costFeatures({
        outH: side,
        outW: side,
        inC: e.shape.inC ?? 1,
        outC,
        stride: e.shape.stride ?? 1,
        density: e.density,
        kernel: e.kernel,
        macs: e.macs,
        inElements: e.in_elements,
      });
    }
    const conv = convClass(
      e.shape.kernel,
      e.shape.depthwise === true && family === 'conv2d',
      (e.shape.groups ?? 1) > 1,
    );
    const keys = groupKeys(family, e.format, family === 'conv2d' ? conv : '', e.shape.stride ?? 1, e.kernel);
    const into = keys.slice(0, layer ? 4 : 2);
    if (family === 'conv2d' && e.format === 'sparse' && e.macs > 0) {
      const pixels = e.out_elements / Math.max(outC, 1);
      const side = Math.round(Math.sqrt(pixels));
      into.unshift(
        planeGroup(sparseKey(e.shape.kernel ?? 1, e.shape.stride ?? 1, e.shape.depthwise === true, side)),
      );
    }
    for (const key of into) {
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = []));
      group.push(point);
    }
  }
  const model: CostModel = { callMs, tsMs, groups, lines: new Map(), fits: new Map() };
  models.set(table, model);
  return model;
}

/** Where an entry or a layer sits among its group's entries: the logs of its shape features (a conv or fully
 * connected layer's padded MACs, gathered inputs, outputs and inputs; another node's work). */
const place = (work: number, x?: readonly number[]): number[] =>
  (x === undefined ? [work] : [x[0]!, x[2]!, x[3]!, x[4]!]).map((v) => Math.log(Math.max(v, 1)));

/** Entries whose residuals correct a prediction (residualCorrection). */
const NEIGHBOURS = 4;

/** The group's fit at `at`, corrected by how far the entries nearest to it sit from the same fit: the
 * inverse-distance weighted geometric mean of their measured / fitted ratios over the NEIGHBOURS nearest
 * (distance in `place` space). At an entry the prediction is its measured time; between entries the fit's
 * local bias (a kernel's fixed cost on small planes, a blocking step) is carried over from the neighbours. */
function residualCorrection(
  group: readonly Point[],
  fitted: (p: Point) => number,
  at: readonly number[],
): number {
  const near = group
    .map((p) => ({ p, d2: place(p.work, p.x).reduce((s, v, j) => s + (v - at[j]!) ** 2, 0) }))
    .sort((a, b) => a.d2 - b.d2)
    .slice(0, NEIGHBOURS);
  let sw = 0;
  let sl = 0;
  for (const { p, d2 } of near) {
    const f = fitted(p);
    if (!(f > 0) || !(p.ms > 0)) continue;
    const w = 1 / (d2 + 1e-3);
    sw += w;
    sl += w * Math.log(p.ms / f);
  }
  return sw > 0 ? Math.exp(sl / sw) : 1;
}

/** The time of `work` from the first group of `keys` that has entries: a conv or fully-connected layer
 * (`x`, its features) from the first group of MIN_POINTS entries or more (else the largest) through its
 * fitted costs, the others along the group's line; then corrected by the nearest entries' residuals
 * (residualCorrection); undefined when no group has entries. */
function interpolate(
  model: CostModel,
  keys: readonly string[],
  work: number,
  x?: readonly number[],
): number | undefined {
  if (x !== undefined) {
    const present = keys.filter((k) => model.groups.has(k));
    if (present.length === 0) return undefined;
    const key =
      present.find((k) => model.groups.get(k)!.length >= MIN_POINTS) ??
      present.reduce((best, k) => (model.groups.get(k)!.length > model.groups.get(best)!.length ? k : best));
    const group = model.groups.get(key)!;
    let fit = model.fits.get(key);
    if (fit === undefined) {
      const points = group.map((p) => ({ x: p.x!, ms: p.ms }));
      model.fits.set(key, (fit = fitCost(points, featureCount(points.length))));
    }
    const c = fit;
    return dot(c, x) * residualCorrection(group, (p) => dot(c, p.x!), place(work, x));
  }
  for (const key of keys) {
    const group = model.groups.get(key);
    if (group === undefined) continue;
    let line = model.lines.get(key);
    if (line === undefined) model.lines.set(key, (line = fitLine(group)));
    const l = line;
    return (l.a + l.b * work) * residualCorrection(group, (p) => l.a + l.b * p.work, place(work));
  }
  return undefined;
}

/** What a prediction goes through besides the layers' fitted costs. */
export interface PredictOptions {
  /** The per-model term fitted on the table's networks (where it has MIN_NETWORKS of them; default true). */
  perModel?: boolean;
  /** Sparse convs priced from the entries of their own plane (planeGroup; default true). */
  sparsePlanes?: boolean;
}

/** Predicts `input`'s batch-1 latency on the device `table` was measured on (see the file comment). A Model
 * is used as built (its batch must be 1); a Package is built here at batch 1. */
export function predictLatency(
  input: Package | Model,
  table: LatencyTable,
  options: PredictOptions = {},
): LatencyPrediction {
  const model = input instanceof Model ? input : Model.fromPackage(input, { batch: 1 });
  if (model.batch !== 1)
    throw new LatencyPredictionError(
      `the predictor prices batch-1 runs; the model is built at batch ${model.batch}`,
    );
  const cost = costModel(table);
  const p = layerPrediction(model, input instanceof Model ? undefined : input.constants, cost, options);
  const scale = options.perModel === false ? undefined : perModelTerm(table);
  if (scale === undefined)
    return { ms: p.layersMs + p.overhead_ms, layers: p.layers, overhead_ms: p.overhead_ms };
  const layers = p.layers.map((l) => ({ ...l, ms: l.ms * scale }));
  return { ms: p.layersMs * scale + p.overhead_ms, layers, overhead_ms: p.overhead_ms };
}

/** Each node's time from the table's layer entries and the plan's call overhead, before the per-model term.
 * `constants` (a package's) gives the sparse layers' densities (without them: dense). */
function layerPrediction(
  model: Model,
  constants: Package['constants'] | undefined,
  cost: CostModel,
  options: PredictOptions,
): { layers: LayerLatency[]; layersMs: number; overhead_ms: number } {
  const { manifest, specs } = model;
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
      const grouped = family === 'conv2d' && !depthwise && Number(node.attrs.groups ?? 1) > 1;
      const conv = family === 'conv2d' ? convClass(shape?.[1], depthwise, grouped) : '';
      const work = workOf(family, info.macs, density, inElements);
      const x = specs[node.inputs[0]!]!.shape;
      const y = specs[node.outputs[0]!]!.shape;
      const strides = node.attrs.strides;
      const stride = family === 'conv2d' && Array.isArray(strides) ? (strides[0] ?? 1) : 1;
      const layer =
        family === 'conv2d' || family === 'fully_connected'
          ? costFeatures({
              outH: family === 'conv2d' ? (y[1] ?? 1) : 1,
              outW: family === 'conv2d' ? (y[2] ?? 1) : 1,
              inC: x[x.length - 1] ?? 1,
              outC: y[y.length - 1] ?? 1,
              stride,
              density,
              kernel: info.kernel,
              macs: info.macs,
              inElements,
            })
          : undefined;
      const keys = groupKeys(family, node.format, conv, stride, info.kernel);
      const plane =
        family === 'conv2d' && node.format === 'sparse' && options.sparsePlanes !== false
          ? [planeGroup(sparseKey(shape?.[1] ?? 1, stride, depthwise, y[2] ?? 1))]
          : [];
      ms = interpolate(cost, [...plane, ...keys], work, layer);
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
  return { layers, layersMs: layers.reduce((s, l) => s + l.ms, 0), overhead_ms: overhead };
}
