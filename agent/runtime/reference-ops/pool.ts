// NHWC pooling. x [N][H][W][C] -> y [N][OH][OW][C]; windows may hang over the input (padding and ceil
// mode). Max pooling ignores padded positions; average pooling divides by the window elements inside the
// input, or by the whole window when countIncludePad (positions past the padded input never count), the
// padded positions then adding padValue each (0; an int8 tensor's zero point, its real 0).

import {
  type QuantizedMultiplier,
  quantizeMultiplier,
  requantizeGemmlowp,
} from '../number/requantization.js';
import { saturate } from '../number/saturation.js';
import { type WindowGeometry, windowTaps } from './conv.js';
import type { Numbers, Writable } from './number-arrays.js';

/** A pooling window (the convolution's WindowGeometry) over every channel; padBottom / padRight bound the
 * padded input that countIncludePad counts. */
export interface PoolGeometry extends WindowGeometry {
  channels: number;
  padBottom: number;
  padRight: number;
}

export function maxPool(g: PoolGeometry, x: Numbers, y: Writable, min = -Infinity, max = Infinity): void {
  for (let n = 0; n < g.batch; n++) {
    for (let oy = 0; oy < g.outH; oy++) {
      for (let ox = 0; ox < g.outW; ox++) {
        const taps = windowTaps(g, n, oy, ox);
        for (let c = 0; c < g.channels; c++) {
          let best = -Infinity;
          for (const { pixel } of taps) {
            const v = x[pixel * g.channels + c]!;
            if (v > best || Number.isNaN(v)) best = v;
          }
          y[((n * g.outH + oy) * g.outW + ox) * g.channels + c] = best < min ? min : best > max ? max : best;
        }
      }
    }
  }
}

/** `round` turns the float mean into the output value (identity for fp32; rounding for integers). */
export function averagePool(
  g: PoolGeometry,
  x: Numbers,
  y: Writable,
  countIncludePad: boolean,
  round: (mean: number, sum: number, count: number) => number = (mean) => mean,
  padValue = 0,
): void {
  for (let n = 0; n < g.batch; n++) {
    for (let oy = 0; oy < g.outH; oy++) {
      for (let ox = 0; ox < g.outW; ox++) {
        for (let c = 0; c < g.channels; c++) {
          let sum = 0;
          let inside = 0;
          let padded = 0;
          for (let ky = 0; ky < g.kh; ky++) {
            const iy = oy * g.strideH - g.padTop + ky * g.dilationH;
            if (iy >= g.inH + g.padBottom) continue;
            for (let kx = 0; kx < g.kw; kx++) {
              const ix = ox * g.strideW - g.padLeft + kx * g.dilationW;
              if (ix >= g.inW + g.padRight) continue;
              padded++;
              if (iy < 0 || iy >= g.inH || ix < 0 || ix >= g.inW) continue;
              sum += x[((n * g.inH + iy) * g.inW + ix) * g.channels + c]!;
              inside++;
            }
          }
          const count = countIncludePad ? padded : inside;
          if (countIncludePad) sum += (padded - inside) * padValue;
          y[((n * g.outH + oy) * g.outW + ox) * g.channels + c] =
            count === 0 ? 0 : round(sum / count, sum, count);
        }
      }
    }
  }
}

/** The Q31 multiplier of an int8 global average pool over `pixels` values, inputScale / (outputScale *
 * pixels), saturated as the runtime derives every multiplier from a package's scales. */
export function globalAvgPoolMultiplier(
  inputScale: number,
  outputScale: number,
  pixels: number,
): QuantizedMultiplier {
  return quantizeMultiplier(inputScale / (outputScale * pixels), 'saturate');
}

/** The int8 / uint8 global average pool from one per-tensor quantization to another, as the native kernel
 * computes it (native/src/qs8_ops.h qs8_global_avgpool_params): over x [N][pixels][C], the exact int32 sum of
 * (x - inputZeroPoint) is requantized by the Q31 form of inputScale / (outputScale * pixels) (gemmlowp
 * rounding), offset by outputZeroPoint and saturated to [min, max]. */
export function globalAveragePoolInt8(
  batch: number,
  pixels: number,
  channels: number,
  x: Numbers,
  y: Writable,
  q: {
    inputZeroPoint: number;
    outputZeroPoint: number;
    multiplier: QuantizedMultiplier;
    min: number;
    max: number;
  },
): void {
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      let sum = 0;
      for (let p = 0; p < pixels; p++) sum += x[(n * pixels + p) * channels + c]! - q.inputZeroPoint;
      const v = requantizeGemmlowp(sum, q.multiplier.multiplier, q.multiplier.shift) + q.outputZeroPoint;
      y[n * channels + c] = saturate(v, q.min, q.max);
    }
  }
}
