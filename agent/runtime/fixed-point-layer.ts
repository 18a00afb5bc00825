// What a fixed16 / fixed8 conv2d or fully_connected layer computes with, derived once at load from its node
// and constants, shared by the native executor (native-executors.ts) and the TypeScript reference
// (reference-ops/fixed-point.ts) so that both compute the same thing bit for bit.
//
// Dynamic fixed point Q(IL.FL) (Gupta et al. 2015, Courbariaux et al. 2014; native/formats.md; the words'
// arithmetic is number/fixed-point.ts):
// a word q with fractional length FL stands for q * 2^-FL. A layer's activations are fp32 tensors in the
// graph (the IR has no 16-bit dtype), so a layer
//   1. quantizes its fp32 input to Q(input_fl) words: round to nearest (ties toward +infinity), saturated to
//      the symmetric range, NaN -> 0 (the kernels' quantizer);
//   2. runs the integer kernel: exact accumulation in units of 2^-(input_fl + weight_fl), bias added in those
//      units, one rounding shift to output_fl, saturation to the fused clamp;
//   3. writes the Q(output_fl) words back as fp32, q * 2^-output_fl, which is exact (|q| < 2^15).
// Because step 3 is exact, a next fixed-point layer whose input_fl equals this output_fl gets back exactly
// the same words in step 1: a chain of fixed-point layers (with max pooling or ReLU between them, which
// keep values on the grid) computes exactly what it would with the words kept in memory.
import { fixedPointActivations } from '../package/manifest.js';
import { numberAttr } from './attributes.js';
import type { PrepareContext } from './executor.js';
import { GraphError } from './graph-error.js';
import { type FixedPointBits, fixedPointLimit, quantizeFixedPointBias } from './number/fixed-point.js';

export interface FixedPointLayer {
  bits: FixedPointBits;
  inputFl: number;
  weightFl: number;
  outputFl: number;
  /** [outputChannels][K] words as stored in the package, in [-limit, limit]. */
  weights: Int16Array | Int8Array;
  /** [outputChannels] in accumulator units 2^-(inputFl + weightFl): BigInt64Array for 16-bit words (at most
   * 2^56 in magnitude, the qf16 kernels' bound), Int32Array for 8-bit words; undefined without a bias. */
  bias: BigInt64Array | Int32Array | undefined;
  /** The fused clamp (attributes min / max, fp32) in output words, inside the symmetric word range. */
  outputMin: number;
  outputMax: number;
}

/** The layer's fixed-point parameters, or undefined for a layer without activation fractional lengths
 * (format 1.0: fp32 activations over the exactly expanded weights). */
export function fixedPointLayer(context: PrepareContext): FixedPointLayer | undefined {
  const { node } = context;
  const activations = fixedPointActivations(node);
  if (activations === undefined) return undefined;
  const bits = node.format === 'fixed16' ? 16 : 8;
  const weights = context.decoded?.[1];
  // The reader has checked that the weights are a constant stored in the node's own format.
  if (
    weights === undefined ||
    (weights.kind !== 'fixed16' && weights.kind !== 'fixed8') ||
    weights.kind !== node.format
  )
    throw new GraphError(`${node.format} layer needs its weights stored as ${node.format}`, node.name);
  const { inputFl, outputFl } = activations;
  const weightFl = weights.fracBits;

  const floatBias = context.constants[2];
  let bias: BigInt64Array | Int32Array | undefined;
  if (node.inputs[2] !== undefined && node.inputs[2] >= 0) {
    if (!(floatBias instanceof Float32Array))
      throw new GraphError(`${node.format} layer needs a constant fp32 bias`, node.name);
    bias = quantizeFixedPointBias(floatBias, inputFl + weightFl, bits);
  }

  const limit = fixedPointLimit(bits);
  const attr = (key: string, fallback: number): number => numberAttr(node, key, fallback);
  const step = 2 ** outputFl;
  const outputMin = Math.max(-limit, Math.min(limit, Math.ceil(attr('min', -Infinity) * step)));
  const outputMax = Math.min(limit, Math.max(-limit, Math.floor(attr('max', Infinity) * step)));
  if (outputMin > outputMax)
    throw new GraphError(
      `the clamp [${attr('min', -Infinity)}, ${attr('max', Infinity)}] holds no Q(${outputFl}) value`,
      node.name,
    );
  return { bits, inputFl, weightFl, outputFl, weights: weights.values, bias, outputMin, outputMax };
}
