// Data movement: transpose, concat, channel shuffle. Element-type generic (any indexable arrays).

import type { Numbers, Writable } from './number-arrays.js';

export function transposeShape(shape: readonly number[], perm: readonly number[]): number[] {
  return perm.map((p) => shape[p]!);
}

/** y = x with axes permuted: y's axis i is x's axis perm[i]. */
export function transpose(shape: readonly number[], perm: readonly number[], x: Numbers, y: Writable): void {
  const rank = shape.length;
  const strides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1]! * shape[i + 1]!;
  const outShape = transposeShape(shape, perm);
  const outStrides = perm.map((p) => strides[p]!);
  const index = new Array<number>(rank).fill(0);
  let source = 0;
  for (let i = 0; i < y.length; i++) {
    y[i] = x[source]!;
    for (let d = rank - 1; d >= 0; d--) {
      index[d]! += 1;
      source += outStrides[d]!;
      if (index[d]! < outShape[d]!) break;
      source -= outStrides[d]! * outShape[d]!;
      index[d] = 0;
    }
  }
}

/** Concatenation along `axis` of tensors that agree on every other dimension. */
export function concat(
  shapes: readonly (readonly number[])[],
  axis: number,
  xs: readonly Numbers[],
  y: Writable,
): void {
  const outer = shapes[0]!.slice(0, axis).reduce((p, d) => p * d, 1);
  const inners = shapes.map((s) => s.slice(axis).reduce((p, d) => p * d, 1));
  let at = 0;
  for (let o = 0; o < outer; o++) {
    xs.forEach((x, t) => {
      const inner = inners[t]!;
      for (let i = 0; i < inner; i++) y[at++] = x[o * inner + i]!;
    });
  }
}

/** ShuffleNet channel shuffle of [rows][groups * groupChannels]: output channel j * groups + g is input
 * channel g * groupChannels + j. */
export function channelShuffle(
  rows: number,
  groups: number,
  groupChannels: number,
  x: Numbers,
  y: Writable,
): void {
  const channels = groups * groupChannels;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      for (let j = 0; j < groupChannels; j++)
        y[r * channels + j * groups + g] = x[r * channels + g * groupChannels + j]!;
    }
  }
}

/** Softmax over `axis`: y = exp(x - max) / sum exp(x - max), computed in double. */
export function softmax(shape: readonly number[], axis: number, x: Numbers, y: Writable): void {
  const outer = shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const length = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * length * inner + i;
      let max = -Infinity;
      for (let j = 0; j < length; j++) max = Math.max(max, x[base + j * inner]!);
      let sum = 0;
      for (let j = 0; j < length; j++) sum += Math.exp(x[base + j * inner]! - max);
      for (let j = 0; j < length; j++) y[base + j * inner] = Math.exp(x[base + j * inner]! - max) / sum;
    }
  }
}

/** Row-major strides of `shape`. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let a = shape.length - 2; a >= 0; a--) strides[a] = strides[a + 1]! * shape[a + 1]!;
  return strides;
}

/** y over outShape, each element read from x at the offset `source` gives for its multi-index (a negative
 * offset writes `fill`): the one loop of pad, slice, gather and resize. `source` may reuse no array it gets. */
export function gatherElements(
  outShape: readonly number[],
  x: Numbers,
  y: Writable,
  source: (index: readonly number[]) => number,
  fill = 0,
): void {
  const rank = outShape.length;
  const index = new Array<number>(rank).fill(0);
  const total = outShape.reduce((p, d) => p * d, 1);
  for (let i = 0; i < total; i++) {
    const at = source(index);
    y[i] = at < 0 ? fill : x[at]!;
    for (let d = rank - 1; d >= 0; d--) {
      if (++index[d]! < outShape[d]!) break;
      index[d] = 0;
    }
  }
}
