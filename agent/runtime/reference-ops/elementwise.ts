// Element-wise operators with numpy broadcasting, the unary activations, the quantized add and mul, and the
// int8 lookup table of a unary activation.
import {
  type AffineQuantization,
  type QuantizedMultiplier,
  quantizeMultiplier,
  requantizeGemmlowp,
} from '../number/requantization.js';
import { roundHalfAwayFromZero } from '../number/rounding.js';
import { intRange, saturate } from '../number/saturation.js';
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

/** The error function, to double precision well below fp32's resolution: its Maclaurin series for |v| < 2.5,
 * the continued fraction of erfc beyond (evaluated from the tail, Lentz-free: 60 terms suffice there). */
export function erf(v: number): number {
  if (Number.isNaN(v)) return v;
  const x = Math.abs(v);
  if (x < 2.5) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let term = x;
    let sum = x;
    for (let n = 1; n < 80 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(v) * ((2 / Math.sqrt(Math.PI)) * sum);
  }
  if (x > 6) return Math.sign(v);
  // erfc(x) = exp(-x^2) / sqrt(pi) * 1 / (x + (1/2) / (x + 1 / (x + (3/2) / (x + 2 / (x + ...)))))
  let fraction = x;
  for (let k = 60; k >= 1; k--) fraction = x + k / 2 / fraction;
  const erfc = Math.exp(-x * x) / Math.sqrt(Math.PI) / fraction;
  return Math.sign(v) * (1 - erfc);
}

/** The requantization of a quantized add (TFLite's): each input is rescaled onto a common grid 2^20 finer than
 * twice the larger input scale, summed, and requantized to the output. */
export interface QuantizedAddParams {
  aZeroPoint: number;
  a: QuantizedMultiplier;
  bZeroPoint: number;
  b: QuantizedMultiplier;
  outputZeroPoint: number;
  output: QuantizedMultiplier;
  min: number;
  max: number;
}

/** The left shift that puts both inputs on the common grid (QS8_ADD_LEFT_SHIFT of the native kernel). */
export const QUANTIZED_ADD_LEFT_SHIFT = 20;

/** The multipliers of a quantized add of scales a and b into scale y: a / (2 * max(a, b)) and b / (2 * max(a,
 * b)) for the inputs (shifts <= 0), 2 * max(a, b) / (2^20 * y) for the output. */
export function quantizedAddParams(
  a: AffineQuantization,
  b: AffineQuantization,
  y: AffineQuantization,
  min: number,
  max: number,
): QuantizedAddParams {
  const twiceMax = 2 * Math.max(a.scale, b.scale);
  return {
    aZeroPoint: a.zeroPoint,
    a: quantizeMultiplier(a.scale / twiceMax, 'saturate'),
    bZeroPoint: b.zeroPoint,
    b: quantizeMultiplier(b.scale / twiceMax, 'saturate'),
    outputZeroPoint: y.zeroPoint,
    output: quantizeMultiplier(twiceMax / (2 ** QUANTIZED_ADD_LEFT_SHIFT * y.scale), 'saturate'),
    min,
    max,
  };
}

/** y = clamp(outputZeroPoint + gemmlowp(gemmlowp((a - za) * 2^20, a) + gemmlowp((b - zb) * 2^20, b), output)),
 * element by element, the int32 sum wrapping as the native kernel's (qs8_add__reference). */
export function quantizedAdd(a: Numbers, b: Numbers, y: Writable, p: QuantizedAddParams): void {
  const grid = 2 ** QUANTIZED_ADD_LEFT_SHIFT;
  for (let i = 0; i < y.length; i++) {
    const sa = requantizeGemmlowp((a[i]! - p.aZeroPoint) * grid, p.a.multiplier, p.a.shift);
    const sb = requantizeGemmlowp((b[i]! - p.bZeroPoint) * grid, p.b.multiplier, p.b.shift);
    const v = requantizeGemmlowp((sa + sb) | 0, p.output.multiplier, p.output.shift) + p.outputZeroPoint;
    y[i] = saturate(v, p.min, p.max);
  }
}

/** The requantization of a quantized mul (TFLite's): the product of the two inputs' offsets from their zero
 * points, by the Q31 form of scale_a * scale_b / scale_y, plus the output's zero point, clamped. */
export interface QuantizedMulParams {
  aZeroPoint: number;
  bZeroPoint: number;
  outputZeroPoint: number;
  output: QuantizedMultiplier;
  min: number;
  max: number;
}

export function quantizedMulParams(
  a: AffineQuantization,
  b: AffineQuantization,
  y: AffineQuantization,
  min: number,
  max: number,
): QuantizedMulParams {
  return {
    aZeroPoint: a.zeroPoint,
    bZeroPoint: b.zeroPoint,
    outputZeroPoint: y.zeroPoint,
    output: quantizeMultiplier((a.scale * b.scale) / y.scale, 'saturate'),
    min,
    max,
  };
}

/** One element of a quantized mul: clamp(zy + gemmlowp((a - za) * (b - zb), output)), as the native kernel
 * (qs8_mul_channels__reference); the product of two 9-bit offsets cannot overflow int32. */
export function quantizedMul(p: QuantizedMulParams): (a: number, b: number) => number {
  const { multiplier, shift } = p.output;
  return (a, b) =>
    saturate(
      requantizeGemmlowp((a - p.aZeroPoint) * (b - p.bZeroPoint), multiplier, shift) + p.outputZeroPoint,
      p.min,
      p.max,
    );
}

/** The 256-entry table of a unary function f from int8 (or uint8) quantization x to y, indexed by the raw
 * byte of the input (q & 0xff): entry = clamp(round_half_away(f(scale_x * (q - zx)) / scale_y) + zy), f in
 * double precision. Built once at load from the tensors' calibrated scales; the reference and the native
 * kernel look up the same table, so they agree bit for bit. */
export function lookupTable(
  f: (v: number) => number,
  x: AffineQuantization,
  y: AffineQuantization,
  dtype: 'i8' | 'u8',
): Int8Array | Uint8Array {
  const [lo, hi] = intRange(dtype);
  const table = dtype === 'u8' ? new Uint8Array(256) : new Int8Array(256);
  for (let byte = 0; byte < 256; byte++) {
    const q = dtype === 'u8' ? byte : (byte << 24) >> 24;
    const v = f(x.scale * (q - x.zeroPoint)) / y.scale;
    table[byte] = Number.isNaN(v) ? y.zeroPoint : saturate(roundHalfAwayFromZero(v) + y.zeroPoint, lo, hi);
  }
  return table;
}

/** y[i] = table[x[i] & 0xff]: an int8 unary activation through its lookupTable. */
export function lookup(x: Numbers, y: Writable, table: Int8Array | Uint8Array): void {
  for (let i = 0; i < y.length; i++) y[i] = table[x[i]! & 0xff]!;
}
