// The conv layers of the NAS search space (optimize/nas/space.ts) at its 28x28x1 input, as its packages run
// them: the latency table times each of them at its exact shape (an FBNet-style grid), because no cost model
// through other shapes prices them within a few %: an int8 5x5 conv between the grid's shapes took another
// blocking path and 1.4-1.7x its fitted time (docs/benchmarks.md, branch pred3). The shapes are the space's
// (a test builds random architectures' packages and finds every conv node among these points); the grid
// stays a grid of layers, so a model from elsewhere is still priced from its entries by the cost model.
//
// Agent side: no TensorFlow here. The space's shape choices live here (SPACE_SHAPES; optimize/nas/space.ts's
// SEARCH_SPACE takes them from it) and latency-graphs.ts's networks are drawn from the same.
import type { NumberFormat } from '../package/manifest.js';
import { latencyKey, type LatencyPoint } from './latency-table-schema.js';

/** The search space's shape choices (optimize/nas/space.ts SEARCH_SPACE is built from them): stem widths and
 * strides, each stage's widths, depths, kernel sizes, the fp32 pruning ratios besides 0. */
export const SPACE_SHAPES = {
  input: 28,
  stemWidths: [8, 16, 24],
  stemStrides: [1, 2],
  stageWidths: [
    [16, 24, 32],
    [32, 48, 64],
    [48, 64, 96],
  ],
  depths: [1, 2, 3],
  kernels: [3, 5],
  prunes: [0.5, 0.75],
} as const;

/** A conv layer's format in a package: the stage's, a pruned fp32 layer `sparse` at its ratio. */
interface LayerFormat {
  format: NumberFormat;
  sparsity?: number;
}

/** The formats of a stage's conv layers: every layer format of the space, fp32 pruned at each ratio too. */
const STAGE_FORMATS: readonly LayerFormat[] = [
  { format: 'f32' },
  { format: 'int8' },
  { format: 'ternary' },
  { format: 'binary' },
  ...SPACE_SHAPES.prunes.map((sparsity) => ({ format: 'sparse' as const, sparsity })),
];

/** Depthwise layers and a ShuffleNet unit's channel split run in fp32 unless their stage is int8. */
const floatOrInt8 = (f: LayerFormat): NumberFormat => (f.format === 'int8' ? 'int8' : 'f32');

/** "same" padding's output side. */
const strided = (size: number, stride: number): number => Math.ceil(size / stride);

/** Every conv layer (groups included) the search space's packages run, each shape once: the stem (3x3, each
 * width, stride and unpruned format), then per stage, from every (resolution, channels) the stages before can
 * leave, each block type, width, kernel and format, its first block (stride 2) and a further one (stride 1):
 *   - conv: k x k to the width;
 *   - dwsep: k x k depthwise, then 1x1 to the width;
 *   - fire: a 2x2 max pool first (floor), then 1x1 squeeze to a quarter, 1x1 and k x k expands to halves;
 *   - shuffle: stride 2, two branches (depthwise + 1x1; 1x1 + depthwise + 1x1) to halves; stride 1, the
 *     channel split (two grouped 1x1 convs of two channels per group) and the branch's 1x1, depthwise, 1x1. */
export function searchSpaceConvPoints(): LatencyPoint[] {
  const points = new Map<string, LatencyPoint>();
  const conv = (f: LayerFormat, kernel: number, stride: number, size: number, inC: number, outC: number) => {
    const p: LatencyPoint = { op: 'conv2d', format: f.format, kernel, stride, size, inC, outC };
    if (f.sparsity !== undefined) p.sparsity = f.sparsity;
    points.set(latencyKey(p), p);
  };
  const depthwise = (f: LayerFormat, kernel: number, stride: number, size: number, c: number) => {
    const p: LatencyPoint = {
      op: 'conv2d',
      format: floatOrInt8(f),
      kernel,
      stride,
      size,
      inC: c,
      depthwise: true,
    };
    points.set(latencyKey(p), p);
  };
  const split = (f: LayerFormat, size: number, c: number) => {
    const p: LatencyPoint = {
      op: 'conv2d',
      format: floatOrInt8(f),
      kernel: 1,
      stride: 1,
      size,
      inC: c,
      outC: c / 2,
      groups: c / 2,
    };
    points.set(latencyKey(p), p);
  };
  // (side, channels) a stage starts from.
  let starts = new Map<string, [number, number]>();
  for (const width of SPACE_SHAPES.stemWidths)
    for (const stride of SPACE_SHAPES.stemStrides) {
      for (const f of STAGE_FORMATS.slice(0, 4)) conv(f, 3, stride, SPACE_SHAPES.input, 1, width);
      const side = strided(SPACE_SHAPES.input, stride);
      starts.set(`${side}/${width}`, [side, width]);
    }
  for (const widths of SPACE_SHAPES.stageWidths) {
    const next = new Map<string, [number, number]>();
    for (const [size, inC] of starts.values())
      for (const w of widths)
        for (const k of SPACE_SHAPES.kernels)
          for (const f of STAGE_FORMATS) {
            const out = strided(size, 2);
            const pooled = Math.floor(size / 2);
            const half = w / 2;
            // conv
            conv(f, k, 2, size, inC, w);
            conv(f, k, 1, out, w, w);
            // dwsep
            depthwise(f, k, 2, size, inC);
            conv(f, 1, 1, out, inC, w);
            depthwise(f, k, 1, out, w);
            conv(f, 1, 1, out, w, w);
            // fire
            for (const from of [inC, w]) conv(f, 1, 1, pooled, from, w / 4);
            conv(f, 1, 1, pooled, w / 4, half);
            conv(f, k, 1, pooled, w / 4, half);
            // shuffle
            depthwise(f, k, 2, size, inC);
            conv(f, 1, 1, out, inC, half);
            conv(f, 1, 1, size, inC, half);
            depthwise(f, k, 2, size, half);
            conv(f, 1, 1, out, half, half);
            split(f, out, w);
            depthwise(f, k, 1, out, half);
            next.set(`${out}/${w}`, [out, w]);
            next.set(`${pooled}/${w}`, [pooled, w]);
          }
    starts = next;
  }
  return [...points.values()];
}
