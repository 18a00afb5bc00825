// resize: nearest or (multi)linear resampling along every axis of any tensor, ONNX's Resize (and Upsample)
// with the coordinate transformations and nearest roundings that exporters write. Attributes: scales (one
// per axis) or sizes (the output shape, which then sets the scales; a 0 keeps the input's size on that axis, as
// the importer writes the batch axis so that a package built at another batch size resizes each image alike),
// mode, coordinate_transformation_mode, nearest_mode. Anything else is refused by name.
import type { ManifestNode } from '../../package/manifest.js';
import { expect, input, intListAttr, pick, stringAttr } from '../attributes.js';
import { type ExecutorFactory, f32AndInt8, type OpDefinition } from '../executor.js';
import { gatherElements, stridesOf } from '../reference-ops/layout.js';
import { elements } from '../tensor.js';

export const RESIZE_MODES = ['nearest', 'linear'] as const;
export const COORDINATE_MODES = [
  'half_pixel',
  'pytorch_half_pixel',
  'align_corners',
  'asymmetric',
  'tf_half_pixel_for_nn',
] as const;
export const NEAREST_MODES = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'] as const;

/** Output shape and per-axis scale of a resize node over x. */
function resizeGeometry(node: ManifestNode, shape: readonly number[]) {
  const rank = shape.length;
  const sizes = intListAttr(node, 'sizes', []);
  const rawScales = node.attrs.scales;
  let scales: number[];
  let out: number[];
  if (sizes.length > 0) {
    expect(
      sizes.length === rank && sizes.every((s) => s >= 0),
      node,
      `sizes must be ${rank} integers, each positive or 0 (the input's size)`,
    );
    out = sizes.map((s, a) => (s === 0 ? shape[a]! : s));
    scales = out.map((s, a) => s / shape[a]!);
  } else {
    expect(
      Array.isArray(rawScales) &&
        rawScales.length === rank &&
        rawScales.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0),
      node,
      `resize needs ${rank} positive scales or sizes, got ${JSON.stringify(rawScales)}`,
    );
    scales = rawScales;
    out = shape.map((d, a) => Math.floor(d * scales[a]!));
  }
  expect(
    out.every((d) => d > 0 && d <= 1 << 24),
    node,
    `resize output [${out.join(', ')}] is empty or too large`,
  );
  return {
    out,
    scales,
    mode: stringAttr(node, 'mode', RESIZE_MODES, 'nearest'),
    coordinates: stringAttr(node, 'coordinate_transformation_mode', COORDINATE_MODES, 'half_pixel'),
    nearest: stringAttr(node, 'nearest_mode', NEAREST_MODES, 'round_prefer_floor'),
  };
}

type Geometry = ReturnType<typeof resizeGeometry>;

/** The input coordinate of output coordinate o along an axis of `size` resized by `scale` to `length` = size *
 * scale, unrounded (as ONNX defines align_corners and pytorch_half_pixel with given scales). */
function sourceCoordinate(g: Geometry, o: number, size: number, length: number, scale: number): number {
  switch (g.coordinates) {
    case 'half_pixel':
      return (o + 0.5) / scale - 0.5;
    case 'pytorch_half_pixel':
      return length > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case 'align_corners':
      return length === 1 ? 0 : (o * (size - 1)) / (length - 1);
    case 'asymmetric':
      return o / scale;
    case 'tf_half_pixel_for_nn':
      return (o + 0.5) / scale;
  }
}

function roundNearest(mode: Geometry['nearest'], v: number): number {
  switch (mode) {
    case 'floor':
      return Math.floor(v);
    case 'ceil':
      return Math.ceil(v);
    case 'round_prefer_ceil':
      return Math.floor(v + 0.5);
    case 'round_prefer_floor':
      return v === Math.floor(v) + 0.5 ? Math.floor(v) : Math.round(v);
  }
}

/** Along one axis, for each output index: the input indices it reads (lo, and hi for linear; hi = lo for
 * nearest) and the weight of hi (1 - weight is lo's; 0 for nearest). */
export interface AxisTaps {
  lo: Int32Array;
  hi: Int32Array;
  weight: Float64Array;
}

/** A resize node over x of `shape`: its output shape, mode, and the taps of every axis (the one place the
 * coordinate transformations and roundings are applied; the reference and the native executors read these). */
export function resizeTaps(node: ManifestNode, shape: readonly number[]) {
  const g = resizeGeometry(node, shape);
  const clampTo = (i: number, size: number) => Math.min(size - 1, Math.max(0, i));
  const axes = shape.map((size, a): AxisTaps => {
    const length = g.out[a]!;
    const taps = { lo: new Int32Array(length), hi: new Int32Array(length), weight: new Float64Array(length) };
    for (let o = 0; o < length; o++) {
      const c = sourceCoordinate(g, o, size, size * g.scales[a]!, g.scales[a]!);
      if (g.mode === 'nearest') {
        taps.lo[o] = taps.hi[o] = clampTo(roundNearest(g.nearest, c), size);
      } else {
        const clamped = Math.min(size - 1, Math.max(0, c));
        const lo = Math.floor(clamped);
        taps.lo[o] = lo;
        taps.hi[o] = clampTo(lo + 1, size);
        taps.weight[o] = clamped - lo;
      }
    }
    return taps;
  });
  return { out: g.out, mode: g.mode, axes };
}

const run: ExecutorFactory = (context) => {
  const shape = context.inputs[0]!.shape;
  const { out, mode, axes } = resizeTaps(context.node, shape);
  const strides = stridesOf(shape);
  if (mode === 'nearest') {
    // Per axis: the input row of each output row (element offset along the axis).
    const rows = axes.map((t, a) => t.lo.map((i) => i * strides[a]!));
    const source = (index: readonly number[]): number => {
      let at = 0;
      for (let a = 0; a < index.length; a++) at += rows[a]![index[a]!]!;
      return at;
    };
    return {
      kernel: `reference:resize_${context.format}`,
      run: (inputs, outputs) => gatherElements(out, pick(context, inputs, 0)!, outputs[0]!, source),
    };
  }
  // Linear: per axis, the two input rows around each output row and the weight of the second; axes kept at
  // their size with an exact coordinate interpolate nothing.
  const taps = axes.map((t, a) =>
    Array.from(t.lo, (lo, o) => ({ lo: lo * strides[a]!, hi: t.hi[o]! * strides[a]!, w: t.weight[o]! })),
  );
  const moving = shape.map((_, a) => a).filter((a) => taps[a]!.some((t) => t.w !== 0));
  const corners = 1 << moving.length;
  return {
    kernel: `reference:resize_${context.format}`,
    run: (inputs, outputs) => {
      const x = pick(context, inputs, 0)!;
      const y = outputs[0]!;
      const index = new Array<number>(shape.length).fill(0);
      const integer = !(y instanceof Float32Array);
      for (let i = 0; i < y.length; i++) {
        let base = 0;
        for (let a = 0; a < shape.length; a++) base += taps[a]![index[a]!]!.lo;
        let sum = 0;
        for (let corner = 0; corner < corners; corner++) {
          let at = base;
          let weight = 1;
          moving.forEach((a, k) => {
            const t = taps[a]![index[a]!]!;
            if ((corner >> k) & 1) {
              at += t.hi - t.lo;
              weight *= t.w;
            } else weight *= 1 - t.w;
          });
          if (weight !== 0) sum += weight * x[at]!;
        }
        // Math.round: halves up, as the native int8 kernels round (native/src/qs8_ops.h).
        y[i] = integer ? Math.round(sum) : sum;
        for (let a = shape.length - 1; a >= 0; a--) {
          if (++index[a]! < out[a]!) break;
          index[a] = 0;
        }
      }
    },
  };
};

const resize: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    expect(elements(x.shape) > 0, node, 'resize of an empty tensor');
    return [{ ...x, shape: resizeGeometry(node, x.shape).out }];
  },
  macs: (node, _inputs, outputs) => elements(outputs[0]!.shape) * (node.attrs.mode === 'linear' ? 4 : 0),
  executors: f32AndInt8(run),
};

export const RESIZE_OPS = { resize } satisfies Record<string, OpDefinition>;
