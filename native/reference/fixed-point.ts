// Plain reference of the fixed-point Q(IL.FL) formats (native/src/qf16_conv2d.h, qf8_conv2d.h): the
// quantizers the trainer uses (round to nearest, stochastic rounding) and the conv2d / fully-connected
// kernels. Bit-exact with the C code: same counter-based random stream, same rounding, same saturation.
// Written for clarity, not speed; arguments are assumed valid (the native binding is where they are checked).
//
// A value q with fractional length fl means q * 2^-fl. A layer's accumulator sum(x * w) + bias has
// fl = inputFl + weightFl and reaches the output by shift = inputFl + weightFl - outputFl:
//   shift > 0  floor((acc + 2^(shift-1)) / 2^shift)  (round to nearest, ties toward +infinity)
//   shift <= 0 acc * 2^-shift                        (exact; |acc| is first clamped to 2^24, which
//                                                      saturates anyway)
// then clamped to [outputMin, outputMax].

/** Word sizes of the fixed-point formats. */
export type FixedPointBits = 8 | 16;

/** Largest magnitude the quantizers produce: symmetric ranges, so weights never hit -2^(bits-1). */
export function fixedPointLimit(bits: FixedPointBits): number {
  return bits === 16 ? 32767 : 127;
}

/** Chris Wellons' lowbias32 integer hash, in 32-bit arithmetic exactly as the C code. */
function lowbias32(value: number): number {
  let x = value >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** The uniform draw number `index` of stream `seed`: in [0, 1) on a 2^-24 grid (whittle_fixed_point_uniform24). */
export function uniform24(seed: number, index: number): number {
  return (lowbias32((index >>> 0) ^ lowbias32(seed)) >>> 8) * 2 ** -24;
}

/** floor(value) saturated to [-limit, limit]; NaN -> 0. */
function saturateFloor(value: number, limit: number): number {
  if (Number.isNaN(value)) return 0;
  if (value >= limit) return limit;
  if (value <= -limit) return -limit;
  return Math.floor(value);
}

/** Round to nearest (ties toward +infinity) with saturation: q with q * 2^-fl nearest to each input.
 * input is read as float32 (pass a Float32Array for values the C side will see). */
export function quantizeNearest(
  input: ArrayLike<number>,
  fractionalLength: number,
  bits: FixedPointBits,
): Int16Array | Int8Array {
  const output = bits === 16 ? new Int16Array(input.length) : new Int8Array(input.length);
  const scale = 2 ** fractionalLength;
  for (let i = 0; i < input.length; i++) {
    output[i] = saturateFloor(Math.fround(input[i]!) * scale + 0.5, fixedPointLimit(bits));
  }
  return output;
}

/** Stochastic rounding (Gupta et al. 2015): floor(x * 2^fl + u_i) with u_i = uniform24(seed, firstIndex + i),
 * saturated. Unbiased: E[q * 2^-fl] = x (up to 2^-24 of a step) inside the range. Counter-based, so any
 * split of an array gives the same bits as one call, and the C quantizer gives the same bits too. */
export function quantizeStochastic(
  input: ArrayLike<number>,
  fractionalLength: number,
  bits: FixedPointBits,
  seed: number,
  firstIndex = 0,
): Int16Array | Int8Array {
  const output = bits === 16 ? new Int16Array(input.length) : new Int8Array(input.length);
  const scale = 2 ** fractionalLength;
  for (let i = 0; i < input.length; i++) {
    const u = uniform24(seed, (firstIndex + i) >>> 0);
    output[i] = saturateFloor(Math.fround(input[i]!) * scale + u, fixedPointLimit(bits));
  }
  return output;
}

/** q * 2^-fl as float32. */
export function dequantize(input: ArrayLike<number>, fractionalLength: number): Float32Array {
  const output = new Float32Array(input.length);
  const scale = 2 ** -fractionalLength;
  for (let i = 0; i < input.length; i++) output[i] = input[i]! * scale;
  return output;
}

/** The straight-through gradient of either quantizer inside its range, 0 where it saturates (the usual
 * estimator when training through fixed-point rounding). */
export function quantizeGradientMask(
  input: ArrayLike<number>,
  fractionalLength: number,
  bits: FixedPointBits,
): Uint8Array {
  const limit = fixedPointLimit(bits) * 2 ** -fractionalLength;
  return Uint8Array.from({ length: input.length }, (_, i) => (Math.abs(input[i]!) <= limit ? 1 : 0));
}

/** The accumulator (in units of 2^-(inputFl + weightFl)) moved to the output format, saturated. */
export function roundShiftSaturate(acc: bigint, shift: number, outputMin: number, outputMax: number): number {
  let value: bigint;
  if (shift > 0) {
    value = (acc + (1n << BigInt(shift - 1))) >> BigInt(shift); // BigInt >> floors, like C's on int64
  } else {
    const limit = 1n << 24n;
    const clamped = acc < -limit ? -limit : acc > limit ? limit : acc;
    value = clamped * (1n << BigInt(-shift));
  }
  if (value < BigInt(outputMin)) return outputMin;
  if (value > BigInt(outputMax)) return outputMax;
  return Number(value);
}

/** NHWC convolution geometry (whittle_conv2d_geometry): see native/reference/formats.md. */
export interface Conv2dGeometry {
  batch: number;
  inputHeight: number;
  inputWidth: number;
  kernelHeight: number;
  kernelWidth: number;
  strideHeight: number;
  strideWidth: number;
  paddingTop: number;
  paddingLeft: number;
  outputHeight: number;
  outputWidth: number;
  groups: number;
  groupInputChannels: number;
  groupOutputChannels: number;
}

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
