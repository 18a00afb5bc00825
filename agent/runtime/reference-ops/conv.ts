// Direct NHWC convolution, fp32 and integer, with groups, strides, dilations and padding (real value 0).
//   x [N][H][W][C], w [O][KH][KW][C / groups] (OHWI), bias [O], y [N][OH][OW][O]
// Output channel o belongs to group g = o / (O / groups) and reads input channels [g * Cg, (g + 1) * Cg).

import type { Numbers } from './number-arrays.js';

/** The window of a convolution or a pooling over x [N][H][W][C]: kernel kh x kw moved by the strides, dilated,
 * starting padTop / padLeft before the input, giving outH x outW positions. */
export interface WindowGeometry {
  batch: number;
  inH: number;
  inW: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  dilationH: number;
  dilationW: number;
  padTop: number;
  padLeft: number;
  outH: number;
  outW: number;
}

/** A tap of a window that falls inside the input: its index ky * kw + kx in the kernel and the input pixel
 * (n * inH + iy) * inW + ix it reads. */
export interface WindowTap {
  tap: number;
  pixel: number;
}

/** The taps of the window of output position (oy, ox) of image n that fall inside the input (padding reads
 * nothing), in kernel order. */
export function windowTaps(g: WindowGeometry, n: number, oy: number, ox: number): WindowTap[] {
  const taps: WindowTap[] = [];
  for (let ky = 0; ky < g.kh; ky++) {
    const iy = oy * g.strideH - g.padTop + ky * g.dilationH;
    if (iy < 0 || iy >= g.inH) continue;
    for (let kx = 0; kx < g.kw; kx++) {
      const ix = ox * g.strideW - g.padLeft + kx * g.dilationW;
      if (ix >= 0 && ix < g.inW) taps.push({ tap: ky * g.kw + kx, pixel: (n * g.inH + iy) * g.inW + ix });
    }
  }
  return taps;
}

export interface ConvGeometry extends WindowGeometry {
  inC: number;
  outC: number;
  groups: number;
}

/** Visits every output element with its accumulated sum of (x - xZero) * (w - wZero). */
function convolve(
  g: ConvGeometry,
  x: Numbers,
  w: Numbers,
  xZero: number,
  wZero: (o: number) => number,
  emit: (index: number, o: number, sum: number) => void,
  transformInput?: (v: number) => number,
): void {
  const cg = g.inC / g.groups;
  const og = g.outC / g.groups;
  for (let n = 0; n < g.batch; n++) {
    for (let oy = 0; oy < g.outH; oy++) {
      for (let ox = 0; ox < g.outW; ox++) {
        const outBase = ((n * g.outH + oy) * g.outW + ox) * g.outC;
        const taps = windowTaps(g, n, oy, ox);
        for (let o = 0; o < g.outC; o++) {
          const group = Math.floor(o / og);
          const wz = wZero(o);
          let sum = 0;
          for (const { tap, pixel } of taps) {
            const xBase = pixel * g.inC + group * cg;
            const wBase = (o * g.kh * g.kw + tap) * cg;
            for (let i = 0; i < cg; i++) {
              const xv = transformInput ? transformInput(x[xBase + i]!) : x[xBase + i]! - xZero;
              sum += xv * (w[wBase + i]! - wz);
            }
          }
          emit(outBase + o, o, sum);
        }
      }
    }
  }
}

export function conv2dF32(
  g: ConvGeometry,
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  min: number,
  max: number,
  y: Float32Array,
  /** XNOR-Net: activations binarized to +-1 (x < 0 -> -1); padding still contributes 0. */
  binarizeInput = false,
): void {
  convolve(
    g,
    x,
    w,
    0,
    () => 0,
    (index, o, sum) => {
      const v = sum + (bias ? bias[o]! : 0);
      y[index] = v < min ? min : v > max ? max : v;
    },
    binarizeInput ? (v) => (v < 0 ? -1 : 1) : undefined,
  );
}

/** Integer convolution: int32 sums of (x - xZero) * (w - wZero[o]) plus bias, handed to `store`. */
export function conv2dInteger(
  g: ConvGeometry,
  x: Numbers,
  xZero: number,
  w: Numbers,
  wZero: (o: number) => number,
  bias: Int32Array | undefined,
  store: (index: number, o: number, accumulator: number) => void,
): void {
  convolve(g, x, w, xZero, wZero, (index, o, sum) => store(index, o, (sum + (bias ? bias[o]! : 0)) | 0));
}
