// The window of a convolution or pooling node (strides, dilations, pads in ONNX order: top, left, bottom,
// right) and its output size, read once with the checked attribute readers; the reference executors (ops/)
// and the native ones (native-executors.ts) take their geometry from here.
import type { ManifestNode } from '../package/manifest.js';
import { expect, intAttr, intsAttr } from './attributes.js';
import type { ConvGeometry } from './reference-ops/conv.js';
import type { PoolGeometry } from './reference-ops/pool.js';
import type { TensorSpec } from './tensor.js';

export interface Window {
  strides: number[];
  dilations: number[];
  pads: number[];
}

export function windowAttrs(node: ManifestNode): Window {
  return {
    strides: intsAttr(node, 'strides', 2, [1, 1], 1),
    dilations: intsAttr(node, 'dilations', 2, [1, 1], 1),
    pads: intsAttr(node, 'pads', 4, [0, 0, 0, 0]),
  };
}

function windowOutput(
  node: ManifestNode,
  size: number,
  kernel: number,
  stride: number,
  dilation: number,
  padA: number,
  padB: number,
  ceil: boolean,
): number {
  const span = dilation * (kernel - 1) + 1;
  const room = size + padA + padB - span;
  expect(room >= 0, node, `a window of ${span} does not fit an input of ${size} padded by ${padA}+${padB}`);
  let out = (ceil ? Math.ceil(room / stride) : Math.floor(room / stride)) + 1;
  // Ceil mode: the last window must start inside the input or the leading padding.
  if (ceil && (out - 1) * stride >= size + padA) out--;
  return out;
}

/** SAME padding (TensorFlow's, ONNX's SAME_UPPER) of an inH x inW input: [top, left, bottom, right], the
 * output ceil(size / stride), the odd pixel of padding at the bottom / right. */
export function samePads(
  inH: number,
  inW: number,
  kh: number,
  kw: number,
  strides: readonly number[],
  dilations: readonly number[],
): number[] {
  const total = [inH, inW].map((size, i) =>
    Math.max(
      0,
      (Math.ceil(size / strides[i]!) - 1) * strides[i]! +
        ((i === 0 ? kh : kw) - 1) * dilations[i]! +
        1 -
        size,
    ),
  );
  const small = total.map((t) => Math.floor(t / 2));
  return [small[0]!, small[1]!, total[0]! - small[0]!, total[1]! - small[1]!];
}

/** Whether a pooling node rounds its output size up (ONNX ceil_mode). */
export const poolCeilMode = (node: ManifestNode): boolean => intAttr(node, 'ceil_mode', 0, 0, 1) === 1;

/** A conv or pool window over an inH x inW input and its output size. Pools read ceil_mode (after the window
 * attributes); a conv has none. */
function windowGeometry(node: ManifestNode, inH: number, inW: number, kh: number, kw: number, pool: boolean) {
  const { strides, dilations, pads } = windowAttrs(node);
  const ceil = pool && poolCeilMode(node);
  return {
    strideH: strides[0]!,
    strideW: strides[1]!,
    dilationH: dilations[0]!,
    dilationW: dilations[1]!,
    padTop: pads[0]!,
    padLeft: pads[1]!,
    padBottom: pads[2]!,
    padRight: pads[3]!,
    outH: windowOutput(node, inH, kh, strides[0]!, dilations[0]!, pads[0]!, pads[2]!, ceil),
    outW: windowOutput(node, inW, kw, strides[1]!, dilations[1]!, pads[1]!, pads[3]!, ceil),
  };
}

export function convGeometry(node: ManifestNode, x: TensorSpec, w: TensorSpec): ConvGeometry {
  expect(x.shape.length === 4, node, `input must be NHWC (rank 4), got [${x.shape.join(', ')}]`);
  expect(w.shape.length === 4, node, `weights must be OHWI (rank 4), got [${w.shape.join(', ')}]`);
  const [batch, inH, inW, inC] = x.shape as [number, number, number, number];
  const [outC, kh, kw, cg] = w.shape as [number, number, number, number];
  const groups = intAttr(node, 'groups', 1, 1);
  expect(
    inC === cg * groups,
    node,
    `input channels ${inC} != groups ${groups} x weight input channels ${cg}`,
  );
  expect(
    outC % groups === 0 && outC > 0,
    node,
    `output channels ${outC} are not a multiple of groups ${groups}`,
  );
  return { batch, inH, inW, inC, outC, kh, kw, groups, ...windowGeometry(node, inH, inW, kh, kw, false) };
}

/** The pooling window's size (attribute kernel). */
export const poolKernel = (node: ManifestNode, fallback: number[]): [number, number] =>
  intsAttr(node, 'kernel', 2, fallback, 1) as [number, number];

export function poolGeometry(node: ManifestNode, x: TensorSpec): PoolGeometry {
  expect(x.shape.length === 4, node, `input must be NHWC (rank 4), got [${x.shape.join(', ')}]`);
  const [batch, inH, inW, channels] = x.shape as [number, number, number, number];
  const [kh, kw] = poolKernel(node, [0, 0]);
  return { batch, inH, inW, channels, kh, kw, ...windowGeometry(node, inH, inW, kh, kw, true) };
}
