// The reference of fixed16 / fixed8 conv2d and fully_connected layers (fixed-point-layer.ts): fp32 input ->
// Q(input_fl) words -> integer convolution with one rounding shift -> Q(output_fl) words -> fp32 output.
// Every step is the plain TypeScript twin of the native kernels (native/reference/fixed-point.ts), so the
// native executor must match it bit for bit.
import {
  type Conv2dGeometry,
  dequantize,
  fixedPointConv2dReference,
  quantizeNearest,
} from '../../../native/reference/fixed-point.js';
import type { FixedPointLayer } from '../fixed-point-layer.js';
import type { ConvGeometry } from './conv.js';

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
