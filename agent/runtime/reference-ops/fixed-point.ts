// The reference of fixed16 / fixed8 conv2d and fully_connected layers (fixed-point-layer.ts): fp32 input ->
// Q(input_fl) words -> integer convolution with one rounding shift -> Q(output_fl) words -> fp32 output.
// The integer convolution below is the plain reference of the native qf16 / qf8 kernels
// (native/src/qf_conv2d.h, one template for both word sizes): same accumulation, same rounding shift, same saturation
// (../number/fixed-point.ts), so the native executor must match it bit for bit. Written for clarity, not speed;
// arguments are assumed valid (the native binding is where they are checked).
import type { Conv2dOutputSize, Conv2dShape } from '../../../native/index.js';
import type { FixedPointLayer } from '../fixed-point-layer.js';
import { dequantize, quantizeNearest, roundShiftSaturate } from '../number/fixed-point.js';
import type { ConvGeometry } from './conv.js';

/** NHWC convolution geometry (whittle_conv2d_geometry): see native/formats.md. The one convolution shape
 * type's fields (Conv2dShape) with defaults resolved, no dilation, the output size given and the channels
 * counted per group. */
export type Conv2dGeometry = Required<
  Pick<
    Conv2dShape,
    | 'batch'
    | 'inputHeight'
    | 'inputWidth'
    | 'kernelHeight'
    | 'kernelWidth'
    | 'strideHeight'
    | 'strideWidth'
    | 'paddingTop'
    | 'paddingLeft'
    | 'groups'
  >
> &
  Conv2dOutputSize & {
    groupInputChannels: number;
    groupOutputChannels: number;
  };

/** One fixed-point convolution: input [batch][inputHeight][inputWidth][groups * groupInputChannels],
 * weights [outputChannels][kernelHeight][kernelWidth][groupInputChannels] with weights in
 * [-limit, limit], bias [outputChannels] in accumulator units (or undefined), output
 * [batch][outputHeight][outputWidth][outputChannels]. */
export interface FixedPointConv2dArgs {
  geometry: Conv2dGeometry;
  input: Int16Array | Int8Array;
  weights: Int16Array | Int8Array;
  bias: BigInt64Array | Int32Array | undefined;
  inputFl: number;
  weightFl: number;
  outputFl: number;
  outputMin: number;
  outputMax: number;
  output: Int16Array | Int8Array;
}

/** The reference convolution over output channels [ocBegin, ocEnd) (qf16/qf8_conv2d_minmax_rndnu). */
export function fixedPointConv2dReference(args: FixedPointConv2dArgs, ocBegin = 0, ocEnd?: number): void {
  const g = args.geometry;
  const inputChannels = g.groups * g.groupInputChannels;
  const outputChannels = g.groups * g.groupOutputChannels;
  const end = ocEnd ?? outputChannels;
  const shift = args.inputFl + args.weightFl - args.outputFl;
  for (let n = 0; n < g.batch; n++) {
    for (let oy = 0; oy < g.outputHeight; oy++) {
      for (let ox = 0; ox < g.outputWidth; ox++) {
        for (let o = ocBegin; o < end; o++) {
          const group = Math.floor(o / g.groupOutputChannels);
          let acc = args.bias === undefined ? 0n : BigInt(args.bias[o]!);
          // Products are below 2^30, so a kernel row sums exactly in Number while kernelWidth *
          // groupInputChannels < 2^23; rows are added in BigInt.
          for (let ky = 0; ky < g.kernelHeight; ky++) {
            let row = 0;
            for (let kx = 0; kx < g.kernelWidth; kx++) {
              const iy = oy * g.strideHeight + ky - g.paddingTop;
              const ix = ox * g.strideWidth + kx - g.paddingLeft;
              if (iy < 0 || ix < 0 || iy >= g.inputHeight || ix >= g.inputWidth) continue; // padding is 0
              const inputBase =
                ((n * g.inputHeight + iy) * g.inputWidth + ix) * inputChannels + group * g.groupInputChannels;
              const weightBase = ((o * g.kernelHeight + ky) * g.kernelWidth + kx) * g.groupInputChannels;
              for (let i = 0; i < g.groupInputChannels; i++) {
                row += args.input[inputBase + i]! * args.weights[weightBase + i]!;
              }
            }
            acc += BigInt(row);
          }
          args.output[((n * g.outputHeight + oy) * g.outputWidth + ox) * outputChannels + o] =
            roundShiftSaturate(acc, shift, args.outputMin, args.outputMax);
        }
      }
    }
  }
}

/** The geometry of a fully-connected layer: a 1x1 convolution of a 1x1 image. */
export function fullyConnectedGeometry(
  batch: number,
  inChannels: number,
  outChannels: number,
): Conv2dGeometry {
  return {
    batch,
    inputHeight: 1,
    inputWidth: 1,
    kernelHeight: 1,
    kernelWidth: 1,
    strideHeight: 1,
    strideWidth: 1,
    paddingTop: 0,
    paddingLeft: 0,
    outputHeight: 1,
    outputWidth: 1,
    groups: 1,
    groupInputChannels: inChannels,
    groupOutputChannels: outChannels,
  };
}

/** Fully connected: input [batch][inputChannels], weights [outputChannels][inputChannels]; a 1x1
 * convolution of a 1x1 image. */
export function fixedPointFullyConnectedReference(
  batch: number,
  inputChannels: number,
  outputChannels: number,
  args: Omit<FixedPointConv2dArgs, 'geometry'>,
): void {
  fixedPointConv2dReference({
    ...args,
    geometry: fullyConnectedGeometry(batch, inputChannels, outputChannels),
  });
}

/** The kernels' geometry of an ops.ts convolution (no dilation: the caller refuses it). */
export function fixedPointGeometry(g: ConvGeometry): Conv2dGeometry {
  return {
    batch: g.batch,
    inputHeight: g.inH,
    inputWidth: g.inW,
    kernelHeight: g.kh,
    kernelWidth: g.kw,
    strideHeight: g.strideH,
    strideWidth: g.strideW,
    paddingTop: g.padTop,
    paddingLeft: g.padLeft,
    outputHeight: g.outH,
    outputWidth: g.outW,
    groups: g.groups,
    groupInputChannels: g.inC / g.groups,
    groupOutputChannels: g.outC / g.groups,
  };
}

/** x [N][H][W][C] fp32 -> y [N][OH][OW][O] fp32, computed in fixed point. */
export function fixedPointConv2d(
  layer: FixedPointLayer,
  geometry: Conv2dGeometry,
  x: Float32Array,
  y: Float32Array,
): void {
  const words = layer.bits === 16 ? new Int16Array(y.length) : new Int8Array(y.length);
  fixedPointConv2dReference({
    geometry,
    input: quantizeNearest(x, layer.inputFl, layer.bits),
    weights: layer.weights,
    bias: layer.bias,
    inputFl: layer.inputFl,
    weightFl: layer.weightFl,
    outputFl: layer.outputFl,
    outputMin: layer.outputMin,
    outputMax: layer.outputMax,
    output: words,
  });
  y.set(dequantize(words, layer.outputFl));
}
