// The plain fp32 convolution the compressed-format kernel tests compare against: float64 over dense
// weights, with the scale of each output's rounding error. Slow and obvious on purpose.
import type { FormatConv2dShape } from '../../native/formats.js';

/** Plain NHWC conv2d in float64 over dense weights [outputChannels][kh][kw][inputChannels / groups]; padding
 * reads 0. Returns the output and, per output, sum |w * x| + |bias| (the scale of the rounding error). */
export function denseConv2d(
  s: FormatConv2dShape,
  input: ArrayLike<number>,
  weights: ArrayLike<number>,
  bias: ArrayLike<number> | null,
): { output: Float64Array; magnitude: Float64Array; outputHeight: number; outputWidth: number } {
  const sh = s.strideHeight ?? 1;
  const sw = s.strideWidth ?? 1;
  const pt = s.paddingTop ?? 0;
  const pl = s.paddingLeft ?? 0;
  const groups = s.groups ?? 1;
  const oh = Math.floor((s.inputHeight + pt + (s.paddingBottom ?? 0) - s.kernelHeight) / sh) + 1;
  const ow = Math.floor((s.inputWidth + pl + (s.paddingRight ?? 0) - s.kernelWidth) / sw) + 1;
  const cinG = s.inputChannels / groups;
  const coutG = s.outputChannels / groups;
  const output = new Float64Array(s.batch * oh * ow * s.outputChannels);
  const magnitude = new Float64Array(output.length);
  for (let n = 0; n < s.batch; n++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let o = 0; o < s.outputChannels; o++) {
          const g = Math.floor(o / coutG);
          const b = bias === null ? 0 : (bias[o] ?? 0);
          let sum = b;
          let mag = Math.abs(b);
          for (let ky = 0; ky < s.kernelHeight; ky++) {
            const y = oy * sh - pt + ky;
            if (y < 0 || y >= s.inputHeight) continue;
            for (let kx = 0; kx < s.kernelWidth; kx++) {
              const x = ox * sw - pl + kx;
              if (x < 0 || x >= s.inputWidth) continue;
              for (let i = 0; i < cinG; i++) {
                const v =
                  input[((n * s.inputHeight + y) * s.inputWidth + x) * s.inputChannels + g * cinG + i] ?? 0;
                const w = weights[((o * s.kernelHeight + ky) * s.kernelWidth + kx) * cinG + i] ?? 0;
                sum += v * w;
                mag += Math.abs(v * w);
              }
            }
          }
          const at = ((n * oh + oy) * ow + ox) * s.outputChannels + o;
          output[at] = sum;
          magnitude[at] = mag;
        }
      }
    }
  }
  return { output, magnitude, outputHeight: oh, outputWidth: ow };
}
