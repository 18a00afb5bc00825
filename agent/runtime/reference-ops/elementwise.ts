// Element-wise operators with numpy broadcasting, and the unary activations.
import { broadcastStrides } from './matmul.js';
import type { Numbers, Writable } from './number-arrays.js';

/** y[i] = f(a[i'], b[i'']) over outShape, a and b broadcast to it. */
export function binaryBroadcast(
  aShape: readonly number[],
  a: Numbers,
  bShape: readonly number[],
  b: Numbers,
  outShape: readonly number[],
  y: Writable,
  f: (x: number, y: number) => number,
): void {
  const as = broadcastStrides(aShape, outShape);
  const bs = broadcastStrides(bShape, outShape);
  const rank = outShape.length;
  const index = new Array<number>(rank).fill(0);
  let ai = 0;
  let bi = 0;
  const total = outShape.reduce((p, d) => p * d, 1);
  for (let i = 0; i < total; i++) {
    y[i] = f(a[ai]!, b[bi]!);
    for (let d = rank - 1; d >= 0; d--) {
      index[d]! += 1;
      ai += as[d]!;
      bi += bs[d]!;
      if (index[d]! < outShape[d]!) break;
      ai -= as[d]! * outShape[d]!;
      bi -= bs[d]! * outShape[d]!;
      index[d] = 0;
    }
  }
}

export function unary(x: Numbers, y: Writable, f: (v: number) => number): void {
  for (let i = 0; i < y.length; i++) y[i] = f(x[i]!);
}

export const sigmoid = (v: number): number =>
  v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v));
