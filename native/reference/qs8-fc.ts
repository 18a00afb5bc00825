// Plain reference of the int8 fully-connected kernel (native/src/qs8_fc.c): every optimized variant must
// match it bit for bit. Written for clarity, not speed; the requantization is the runtime's
// (agent/runtime/number/requantization.ts). Arguments are assumed valid (the native binding checks them).
import { requantizeGemmlowp } from '../../agent/runtime/number/requantization.js';
import type { FullyConnectedS8Args } from '../index.js';

/** output[b][o] = clamp(outputZeroPoint + requantize(bias[o] + sum_i (input[b][i] - inputZeroPoint) *
 * weights[o][i])). Shapes: input [batch][inChannels], weights [outChannels][inChannels], bias, multipliers,
 * shifts [outChannels], output [batch][outChannels]. */
export function fullyConnectedS8Reference(args: FullyConnectedS8Args): void {
  const { batch, inChannels, outChannels, input, inputZeroPoint, weights, bias, multipliers, shifts } = args;
  const { outputZeroPoint, outputMin, outputMax, output } = args;
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outChannels; o++) {
      // |sum| < 2^31 for inChannels <= 65536, so double arithmetic is exact here.
      let sum = 0;
      for (let i = 0; i < inChannels; i++) {
        sum += (input[b * inChannels + i]! - inputZeroPoint) * weights[o * inChannels + i]!;
      }
      const accumulator = (sum + bias[o]!) | 0; // int32 add, wrapping like the C kernel
      const value = requantizeGemmlowp(accumulator, multipliers[o]!, shifts[o]!) + outputZeroPoint;
      output[b * outChannels + o] = Math.min(outputMax, Math.max(outputMin, value));
    }
  }
}
