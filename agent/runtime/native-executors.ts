// Executors backed by the native kernel library (native/index.ts), one factory per (op, number format) pair
// the library covers (NATIVE_EXECUTORS). Each returns undefined when its kernel cannot take the node (a weight
// that is not a constant, ONNX rounding, dilated or ceil-mode pooling, ...); the registry (ops/index.ts) then
// runs the pair's TypeScript reference executor, as it does when the addon is not loadable. `whittle inspect`
// shows which kernel every layer got. Attributes are read with the checked readers the op definitions use.
import {
  createHashedFullyConnected,
  fixedPointDequantize,
  fixedPointQuantize,
  type Format as FormatKernelName,
  FORMAT_LAYERS,
  type FormatConv2dShape,
  type FormatFullyConnectedShape,
} from '../../native/formats.js';
import {
  addF32,
  type AddF32Args,
  addInt8,
  type AddInt8Args,
  avgPool2d,
  channelShuffle,
  type ChannelShuffleArgs,
  clamp,
  type ClampArgs,
  concat,
  type ConcatArgs,
  type Conv2dShape,
  createConv2dF32,
  createConv2dInt8,
  createFullyConnectedF32,
  createFullyConnectedInt8,
  dequantizeLinear,
  type DequantizeLinearArgs,
  geluF32,
  type GeluF32Args,
  globalAvgPool,
  type GlobalAvgPoolArgs,
  globalAvgPoolInt8,
  type GlobalAvgPoolInt8Args,
  hardSigmoidF32,
  hardSwishF32,
  type Int8Tensor,
  layerNormF32,
  type LayerNormF32Args,
  loadNativeBinding,
  type LookupArgs,
  lookupInt8,
  maxPool2d,
  type MulChannelsArgs,
  mulChannelsF32,
  mulChannelsInt8,
  type MulChannelsInt8Args,
  type Pool2dArgs,
  type QuantizationArgs,
  quantizeLinear,
  type QuantizeLinearArgs,
  resize,
  type ResizeArgs,
  sigmoidF32,
  slice,
  type SliceArgs,
  softmaxF32,
  type SoftmaxF32Args,
  type StepLayer,
  type Tensor,
} from '../../native/index.js';
import { copy, createOperator, type OperatorName } from '../../native/plan.js';
import type { NumberFormat } from '../package/manifest.js';
import { intAttr, intsAttr, normalizeAxis, numberAttr, stringAttr } from './attributes.js';
import type { Executor, NativeFactory, NativeStepCall, PrepareContext } from './executor.js';
import { fixedPointLayer } from './fixed-point-layer.js';
import { encodeCsr, packCodebookIndices } from './format-layouts.js';
import { quantizeMultiplier } from './number/requantization.js';
import { intRange } from './number/saturation.js';
import { xnorSignZeroPoint } from './ops/conv.js';
import { activationTable, hardSigmoidParams, qaddParams, qmulParams } from './ops/elementwise.js';
import { sliceRanges, splitSizes } from './ops/layout.js';
import { ADDEND_INPUT, hasAddend, residualParts } from './ops/residual.js';
import { type AxisTaps, resizeTaps } from './ops/resize.js';
import { globalAvgPoolMultiplier } from './reference-ops/pool.js';
import { elements, type TensorData, type TensorSpec } from './tensor.js';
import { convGeometry, poolCeilMode, poolKernel, windowAttrs } from './window.js';

let available: boolean | undefined;
export function nativeAvailable(): boolean {
  if (available === undefined) {
    try {
      loadNativeBinding();
      available = true;
    } catch {
      // Not built for this machine: the reference executors run instead (inspect names them).
      available = false;
    }
  }
  return available;
}

/** A conv or pool node's strides and paddings (ONNX order: pads top, left, bottom, right), as the native
 * shapes name them. */
function windowStridesAndPads(context: PrepareContext) {
  const { strides, pads } = windowAttrs(context.node);
  return {
    strideHeight: strides[0]!,
    strideWidth: strides[1]!,
    paddingTop: pads[0]!,
    paddingLeft: pads[1]!,
    paddingBottom: pads[2]!,
    paddingRight: pads[3]!,
  };
}

function convShape(context: PrepareContext): Required<Conv2dShape> {
  const g = convGeometry(context.node, context.inputs[0]!, context.inputs[1]!);
  return {
    batch: g.batch,
    inputHeight: g.inH,
    inputWidth: g.inW,
    inputChannels: g.inC,
    outputChannels: g.outC,
    kernelHeight: g.kh,
    kernelWidth: g.kw,
    ...windowStridesAndPads(context),
    dilationHeight: g.dilationH,
    dilationWidth: g.dilationW,
    groups: g.groups,
  };
}

/** int8 requantization parameters the native int8 layers take, or undefined when the node needs more
 * (ONNX rounding, asymmetric weights, per-channel activations). */
function int8Quantization(context: PrepareContext) {
  const [x, w] = context.inputs;
  const y = context.outputs[0]!;
  if (!x || !w || stringAttr(context.node, 'rounding', ['gemmlowp', 'onnx'], 'gemmlowp') !== 'gemmlowp')
    return undefined;
  if (w.dtype !== 'i8' || x.dtype !== y.dtype || (x.dtype !== 'i8' && x.dtype !== 'u8')) return undefined;
  const xq = x.quant;
  const wq = w.quant;
  const yq = y.quant;
  if (
    !xq ||
    !wq ||
    !yq ||
    xq.scale.length !== 1 ||
    yq.scale.length !== 1 ||
    wq.zeroPoint.some((z) => z !== 0)
  ) {
    return undefined;
  }
  const outChannels = w.shape[0]!;
  const multipliers = new Int32Array(outChannels);
  const shifts = new Int32Array(outChannels);
  for (let o = 0; o < outChannels; o++) {
    // 'saturate', as the reference executor does (ops.ts requantizer): the same package loads on both.
    const q = quantizeMultiplier(
      (xq.scale[0]! * (wq.scale.length === 1 ? wq.scale[0]! : wq.scale[o]!)) / yq.scale[0]!,
      'saturate',
    );
    multipliers[o] = q.multiplier;
    shifts[o] = q.shift;
  }
  const [lo, hi] = intRange(x.dtype);
  const min = numberAttr(context.node, 'min', lo);
  const max = numberAttr(context.node, 'max', hi);
  if (!Number.isInteger(min) || !Number.isInteger(max)) return undefined;
  return {
    activations: x.dtype === 'u8' ? ('uint8' as const) : ('int8' as const),
    inputZeroPoint: xq.zeroPoint[0]!,
    outputZeroPoint: yq.zeroPoint[0]!,
    outputMin: Math.max(lo, min),
    outputMax: Math.min(hi, max),
    multipliers,
    shifts,
  };
}

/** What the executors need of a packed layer (native/index.ts PackedLayer, formats.ts FormatLayer). */
interface Layer<T> {
  readonly kernel: string | null;
  readonly step: StepLayer;
  /** A compressed-format layer's dense weights expanded at creation (native/formats.ts FormatLayer). */
  readonly expandedBytes?: number;
  run(input: T, output: T, addend?: T): void;
}

/** One call of a one-input, one-output layer, as a plan step. */
function layerStep(layer: Layer<never>, input: ArrayBufferView, output: ArrayBufferView): NativeStepCall {
  return { layer: layer.step, inputs: [input], outputs: [output] };
}

/** Runs `create` and wraps its layer; a refusal by the binding (a shape it does not take) falls back. */
function packed(kernelPrefix: string, create: () => Layer<Tensor>): Executor | undefined {
  let layer: Layer<Tensor>;
  try {
    layer = create();
  } catch {
    return undefined;
  }
  return {
    kernel: `native:${kernelPrefix} ${layer.kernel ?? ''}`.trim(),
    // Expanded weights live as long as the model: the memory report and budget count them.
    ...(layer.expandedBytes ? { scratchBytes: layer.expandedBytes } : {}),
    // The binding copies the weights in (packed, expanded or as stored); run reads the activation alone.
    ownsConstants: true,
    run: (inputs, outputs) => layer.run(inputs[0] as Tensor, outputs[0] as Tensor),
    plan: (inputs, outputs) => [layerStep(layer, inputs[0]!, outputs[0]!)],
  };
}

type Views = readonly (TensorData | undefined)[];

/** An executor of one stateless addon operator: run() calls its function node by node, plan() binds the
 * same arguments as a plan step (createOperator); `operands` lists the arrays of the arguments in the order
 * the operator takes them (native/src/binding_plan.h). */
function operatorExecutor<A extends object>(
  kernel: string,
  name: OperatorName,
  call: (args: A) => void,
  args: (inputs: Views, outputs: readonly TensorData[]) => A,
  operands: (args: A) => { inputs: readonly TensorData[]; outputs: readonly TensorData[] } = (a) => {
    const io = a as unknown as { input: TensorData; output: TensorData };
    return { inputs: [io.input], outputs: [io.output] };
  },
): Executor {
  return {
    kernel,
    run: (inputs, outputs) => call(args(inputs, outputs)),
    plan: (inputs, outputs) => {
      const bound = args(inputs, outputs);
      return [{ layer: createOperator(name, bound), ...operands(bound) }];
    },
  };
}

/** A fully-connected node's shape: x [batch][inChannels], weights [outChannels][inChannels]. */
function fullyConnectedShape(context: PrepareContext) {
  const [outChannels, inChannels] = context.inputs[1]!.shape as [number, number];
  return { batch: context.inputs[0]!.shape[0]!, inChannels, outChannels };
}

/** An int8 layer's constant weights and bias with its requantization, or undefined when the node needs the
 * reference (weights or bias not constants of the native types, a quantization the kernels do not take). */
function int8Layer(context: PrepareContext) {
  const weights = context.constants[1];
  const bias = context.constants[2];
  const quantization = int8Quantization(context);
  if (!quantization || !(weights instanceof Int8Array)) return undefined;
  if (context.node.inputs[2]! >= 0 && !(bias instanceof Int32Array)) return undefined;
  return { ...quantization, weights, bias: bias instanceof Int32Array ? bias : null };
}

/** A conv with a fused residual add (ops/residual.ts): the layer made by `create` from the conv part's context
 * and the add part's, run as run(x, y, addend) and planned with inputs [x, addend]. */
function residualConv(
  kernelPrefix: string,
  context: PrepareContext,
  create: (conv: PrepareContext, add: PrepareContext) => Layer<Tensor> | undefined,
): Executor | undefined {
  if (context.constants[ADDEND_INPUT] !== undefined) return undefined;
  const parts = residualParts(context);
  let layer: Layer<Tensor> | undefined;
  try {
    layer = create(parts.conv, parts.add);
  } catch {
    return undefined;
  }
  if (layer === undefined) return undefined;
  const bound = layer;
  return {
    kernel: `native:${kernelPrefix} ${bound.kernel ?? ''}+add`,
    run: (inputs, outputs) =>
      bound.run(inputs[0] as Tensor, outputs[0] as Tensor, inputs[ADDEND_INPUT] as Tensor),
    plan: (inputs, outputs) => [
      { layer: bound.step, inputs: [inputs[0]!, inputs[ADDEND_INPUT]!], outputs: [outputs[0]!] },
    ],
  };
}

const conv2dF32: NativeFactory = (context) => {
  if (hasAddend(context.node)) {
    return residualConv('conv2d_f32', context, (conv, add) => {
      const float = floatLayer(conv);
      if (!float) return undefined;
      const residual = {
        outputMin: numberAttr(add.node, 'min', -Infinity),
        outputMax: numberAttr(add.node, 'max', Infinity),
      };
      return createConv2dF32({ ...convShape(conv), weights: float.weights, ...float.common, residual });
    });
  }
  const float = floatLayer(context);
  if (!float) return undefined;
  return packed('conv2d_f32', () =>
    createConv2dF32({ ...convShape(context), weights: float.weights, ...float.common }),
  );
};

const fullyConnectedF32: NativeFactory = (context) => {
  const float = floatLayer(context);
  if (!float) return undefined;
  return packed('fully_connected_f32', () =>
    createFullyConnectedF32({ ...fullyConnectedShape(context), weights: float.weights, ...float.common }),
  );
};

const qconv2d: NativeFactory = (context) => {
  if (hasAddend(context.node)) {
    return residualConv('qconv2d', context, (conv, add) => {
      const int8 = int8Layer(conv);
      const residual = qaddArgs(add);
      if (!int8 || !residual) return undefined;
      return createConv2dInt8({ ...convShape(conv), ...int8, residual });
    });
  }
  const int8 = int8Layer(context);
  if (!int8) return undefined;
  return packed('qconv2d', () => createConv2dInt8({ ...convShape(context), ...int8 }));
};

const qfullyConnected: NativeFactory = (context) => {
  const int8 = int8Layer(context);
  if (!int8) return undefined;
  return packed('qfully_connected', () =>
    createFullyConnectedInt8({ ...fullyConnectedShape(context), ...int8 }),
  );
};

// ---------------------------------------------------------------------------------------------------------
// Compressed formats (native/formats.ts). The runtime hands executors the package's weights expanded to fp32
// (agent/package/encodings.ts toFloat32); each factory converts them, once at load, back into the storage
// layout its kernel reads (native/formats.md; format-layouts.ts) and checks that the conversion is lossless
// (every row of a binary layer is +-alpha, a ternary row 0 or +-alpha, a codebook at most 256 distinct
// values): anything else keeps the reference executor. fixed16 / fixed8 layers with activation fractional lengths
// (format 1.1) run on the fixed-point FormatLayers (fixedPoint below); format 1.0 fixed-point layers carry no
// activation fractional lengths, so they keep fp32 activations on the fp32 kernels over their exactly
// representable expanded weights. hashed fully-connected layers run on their own kernel (hashedFullyConnected
// below) from the package's buckets and seed, not on the fp32 one: that takes another path at batch 1 than at
// larger batches, and a hashed layer's result must not depend on the batch size.

/** The float weights, the optional float bias and the clamp of a conv2d / fully_connected node, or undefined
 * when a weight or bias is not a constant. */
function floatLayer(context: PrepareContext) {
  const weights = context.constants[1];
  const bias = context.constants[2];
  if (!(weights instanceof Float32Array) || (context.node.inputs[2]! >= 0 && !(bias instanceof Float32Array)))
    return undefined;
  return {
    weights,
    common: {
      bias: bias instanceof Float32Array ? bias : null,
      outputMin: numberAttr(context.node, 'min', -Infinity),
      outputMax: numberAttr(context.node, 'max', Infinity),
    },
  };
}

type LayerShape =
  | { layer: 'conv2d'; shape: FormatConv2dShape; rows: number; reduction: number; taps: number }
  | {
      layer: 'fullyConnected';
      shape: FormatFullyConnectedShape;
      rows: number;
      reduction: number;
      taps: number;
    };

/** The FormatLayer shape of the node (no dilation in the compressed formats), or undefined. */
function formatShape(context: PrepareContext, layer: 'conv2d' | 'fullyConnected'): LayerShape | undefined {
  const w = context.inputs[1]!;
  const rows = w.shape[0]!;
  const reduction = elements(w.shape.slice(1));
  if (layer === 'fullyConnected')
    return { layer, shape: fullyConnectedShape(context), rows, reduction, taps: 1 };
  const full = convShape(context);
  if (full.dilationHeight !== 1 || full.dilationWidth !== 1) return undefined;
  // Dilation is 1 here: the formats' binding reads every other field of the same shape.
  const shape: FormatConv2dShape = full;
  return { layer, shape, rows, reduction, taps: full.kernelHeight * full.kernelWidth };
}

/** Per row: alpha = max |w| when every weight is +-alpha (binary) or also 0 (ternary), else undefined. */
function rowScales(weights: Float32Array, rows: number, reduction: number, allowZero: boolean) {
  const alpha = new Float32Array(rows);
  for (let o = 0; o < rows; o++) {
    let a = 0;
    for (let k = 0; k < reduction; k++) a = Math.max(a, Math.abs(weights[o * reduction + k]!));
    for (let k = 0; k < reduction; k++) {
      const m = Math.abs(weights[o * reduction + k]!);
      if (m !== a && !(allowZero && m === 0)) return undefined;
    }
    alpha[o] = a;
  }
  return alpha;
}

/** Sign bits (1 = negative) of [rows][reduction] in rows of ceil(reduction / 32) words. */
function signBits(weights: Float32Array, rows: number, reduction: number, nonzeroOnly: boolean): Uint32Array {
  const words = Math.ceil(reduction / 32);
  const bits = new Uint32Array(rows * words);
  for (let o = 0; o < rows; o++) {
    for (let k = 0; k < reduction; k++) {
      const w = weights[o * reduction + k]!;
      const set = nonzeroOnly ? w !== 0 : w < 0 || Object.is(w, -0);
      if (set) bits[o * words + (k >>> 5)]! |= 1 << (k & 31);
    }
  }
  return bits;
}

/** The kernel-layout arguments of one format, from the expanded weights; undefined when lossy. */
type FormatArgs = (weights: Float32Array, s: LayerShape) => object | undefined;

const binaryArgs: FormatArgs = (weights, s) => {
  const alpha = rowScales(weights, s.rows, s.reduction, false);
  return alpha && { alpha, weightBits: signBits(weights, s.rows, s.reduction, false) };
};

const ternaryArgs: FormatArgs = (weights, s) => {
  const alpha = rowScales(weights, s.rows, s.reduction, true);
  if (!alpha) return undefined;
  const weightNonzero = signBits(weights, s.rows, s.reduction, true);
  const negative = signBits(weights, s.rows, s.reduction, false);
  // A -0 weight is a zero: its sign bit must not be set outside the nonzero plane.
  const weightSign = negative.map((v, i) => v & weightNonzero[i]!);
  return { alpha, weightNonzero, weightSign };
};

const xnorArgs: FormatArgs = (weights, s) => {
  const alpha = rowScales(weights, s.rows, s.reduction, false);
  if (!alpha) return undefined;
  const channels = s.reduction / s.taps;
  const words = Math.ceil(channels / 64);
  const weightBits = new BigUint64Array(s.rows * s.taps * words);
  for (let o = 0; o < s.rows; o++) {
    for (let t = 0; t < s.taps; t++) {
      for (let c = 0; c < channels; c++) {
        const w = weights[(o * s.taps + t) * channels + c]!;
        if (w < 0 || Object.is(w, -0))
          weightBits[(o * s.taps + t) * words + (c >>> 6)]! |= 1n << BigInt(c & 63);
      }
    }
  }
  return { alpha, weightBits, inputScaling: false };
};

const sparseArgs: FormatArgs = (weights, s) => encodeCsr(s.rows, s.reduction, weights);

const codebookArgs: FormatArgs = (weights, s) => {
  const entries = new Map<number, number>();
  const unpacked = new Uint8Array(weights.length);
  for (let i = 0; i < weights.length; i++) {
    // Keyed by bit pattern so that -0 and 0 stay distinct entries.
    const key = new Uint32Array(Float32Array.of(weights[i]!).buffer)[0]!;
    let index = entries.get(key);
    if (index === undefined) {
      if (entries.size === 256) return undefined;
      index = entries.size;
      entries.set(key, index);
    }
    unpacked[i] = index;
  }
  const codebook = new Float32Array(new Uint32Array([...entries.keys()]).buffer);
  const indexBits = Math.max(2, Math.ceil(Math.log2(Math.max(2, codebook.length))));
  return { codebook, indexBits, indices: packCodebookIndices(s.rows, s.reduction, indexBits, unpacked) };
};

type FloatFormatLayer = Layer<Float32Array>;
/** A create function of native/formats.ts; each takes its own argument type, checked by the addon. */
type FormatCreate = (args: never) => FloatFormatLayer;

/** By the package's number format: the kernels' name for it, its weight packing, its create functions. */
const FORMAT_KERNELS: Record<
  string,
  { name: FormatKernelName; args: FormatArgs; conv2d: FormatCreate; fullyConnected: FormatCreate }
> = {
  binary: { name: 'binary-weights', args: binaryArgs, ...FORMAT_LAYERS['binary-weights'] },
  ternary: { name: 'ternary', args: ternaryArgs, ...FORMAT_LAYERS.ternary },
  xnor: { name: 'xnor', args: xnorArgs, ...FORMAT_LAYERS.xnor },
  sparse: { name: 'sparse', args: sparseArgs, ...FORMAT_LAYERS.sparse },
  codebook: { name: 'codebook', args: codebookArgs, ...FORMAT_LAYERS.codebook },
  // Pruned and shared: the sparse kernels over the centroids' values (CSR fp32 at 8 bytes per nonzero, where
  // the codebook kernels would read every pruned position too).
  'sparse-codebook': { name: 'sparse', args: sparseArgs, ...FORMAT_LAYERS.sparse },
};

/** The compressed-format FormatLayer of a conv2d / fully_connected node in `context.format`. */
function formatLayer(layer: 'conv2d' | 'fullyConnected'): NativeFactory {
  return (context) => {
    const kernels = FORMAT_KERNELS[context.format];
    const float = floatLayer(context);
    const s = formatShape(context, layer);
    const x = context.inputs[0]!;
    // An xnor layer may read an int8 tensor (its dequantize fused away, compile/fuse.ts): only the zero point.
    const zeroPoint = context.format === 'xnor' ? xnorSignZeroPoint(x) : undefined;
    if (!kernels || !float || !s || (x.dtype !== 'f32' && zeroPoint === undefined)) return undefined;
    const args = kernels.args(float.weights, s);
    if (!args) return undefined;
    const create = kernels[layer] as unknown as (a: object) => FloatFormatLayer;
    const input = x.dtype === 'f32' ? {} : { inputZeroPoint: zeroPoint };
    return packed(`${kernels.name}_${layer === 'conv2d' ? 'conv2d' : 'fully_connected'}`, () =>
      create({
        ...s.shape,
        ...float.common,
        ...args,
        ...input,
        expandWeights: context.expandWeights !== false,
      }),
    );
  };
}

/** A hashed fully-connected layer from the decoded buckets and seed (native/formats.ts
 * createHashedFullyConnected): expanded once at load onto the fp32 operator as the other formats are (its
 * expandedBytes the layer's scratch), or a row at a time on every run (expandWeights: false, or a layer past
 * the binding's limit). */
const hashedFullyConnected: NativeFactory = (context) => {
  const hashed = context.decoded?.[1];
  const float = floatLayer(context);
  if (hashed?.kind !== 'hashed' || !float || context.inputs[0]!.dtype !== 'f32') return undefined;
  return packed('hashed_fully_connected', () =>
    createHashedFullyConnected({
      ...fullyConnectedShape(context),
      buckets: hashed.buckets,
      seed: hashed.seed,
      expandWeights: context.expandWeights !== false,
      ...float.common,
    }),
  );
};

const FORMAT_CONV2D = formatLayer('conv2d');
const FORMAT_FULLY_CONNECTED = formatLayer('fullyConnected');

interface FixedPointFormatLayer extends Layer<Int16Array | Int8Array> {
  readonly inputLength: number;
  readonly outputLength: number;
}

/** A fixed-point create function of native/formats.ts (Int16Array or Int8Array words). */
type FixedPointCreate = (args: never) => FixedPointFormatLayer;

const FIXED_POINT_KERNELS: Record<16 | 8, { conv2d: FixedPointCreate; fullyConnected: FixedPointCreate }> = {
  16: FORMAT_LAYERS.fixed16,
  8: FORMAT_LAYERS.fixed8,
};

/** The native/formats.ts name of a package number format's kernels (FORMAT_LAYERS), or undefined for a
 * format without its own FORMATS kernels (f32, int8, hashed). */
export function formatKernelName(format: NumberFormat): FormatKernelName | undefined {
  return format === 'fixed16' || format === 'fixed8' ? format : FORMAT_KERNELS[format]?.name;
}

/** A fixed16 / fixed8 layer on the qf16 / qf8 kernels: the fp32 input is quantized to Q(input_fl) words by the
 * kernels' nearest quantizer, the kernel computes in fixed point, and its Q(output_fl) words are written back
 * as fp32, exactly (fixed-point-layer.ts explains why a chain of such layers loses nothing at the
 * boundaries). The word buffers are allocated once here, so a run allocates nothing. A format 1.0 layer
 * (no fractional lengths) runs on the fp32 kernel. */
function fixedPoint(layer: 'conv2d' | 'fullyConnected'): NativeFactory {
  return (context) => {
    const fixed = fixedPointLayer(context);
    if (fixed === undefined) return layer === 'conv2d' ? conv2dF32(context) : fullyConnectedF32(context);
    const s = formatShape(context, layer);
    if (!s || context.inputs[0]!.dtype !== 'f32') return undefined;
    // Each create function takes its own word type, which `fixed` holds by construction (bits 16: Int16Array
    // weights and BigInt64Array bias; bits 8: Int8Array and Int32Array); the addon checks them again.
    const create = FIXED_POINT_KERNELS[fixed.bits][layer] as unknown as (a: object) => FixedPointFormatLayer;
    let kernelLayer: FixedPointFormatLayer;
    try {
      kernelLayer = create({
        ...s.shape,
        inputFl: fixed.inputFl,
        weightFl: fixed.weightFl,
        outputFl: fixed.outputFl,
        outputMin: fixed.outputMin,
        outputMax: fixed.outputMax,
        weights: fixed.weights,
        bias: fixed.bias ?? null,
      });
    } catch {
      // A shape the binding refuses: the reference executor computes the same fixed point.
      return undefined;
    }
    const Words = fixed.bits === 16 ? Int16Array : Int8Array;
    const inputWords = new Words(kernelLayer.inputLength);
    const outputWords = new Words(kernelLayer.outputLength);
    const name = `fixed${fixed.bits}_${layer === 'conv2d' ? 'conv2d' : 'fully_connected'}`;
    const quantize = (inputs: Views) => ({
      input: inputs[0] as Float32Array,
      output: inputWords,
      fractionalLength: fixed.inputFl,
    });
    const dequantize = (outputs: readonly TensorData[]) => ({
      input: outputWords,
      fractionalLength: fixed.outputFl,
      output: outputs[0] as Float32Array,
    });
    return {
      kernel: `native:${name} ${kernelLayer.kernel ?? ''}`.trim(),
      scratchBytes: inputWords.byteLength + outputWords.byteLength,
      run: (inputs, outputs) => {
        fixedPointQuantize(quantize(inputs));
        kernelLayer.run(inputWords, outputWords);
        fixedPointDequantize(dequantize(outputs));
      },
      // The same three calls as plan steps; the word buffers become buffers of the plan.
      plan: (inputs, outputs) => [
        {
          layer: createOperator('fixedPointQuantize', quantize(inputs)),
          inputs: [inputs[0]!],
          outputs: [inputWords],
        },
        layerStep(kernelLayer, inputWords, outputWords),
        {
          layer: createOperator('fixedPointDequantize', dequantize(outputs)),
          inputs: [outputWords],
          outputs: [outputs[0]!],
        },
      ],
    };
  };
}

function pool(kind: 'max' | 'avg'): NativeFactory {
  return (context) => {
    const x = context.inputs[0]!;
    const y = context.outputs[0]!;
    // The native pools take no dilation: those nodes keep the reference. int8 averages round half to even
    // as the reference does; count_include_pad counts the padded positions as the input's zero point.
    if (windowAttrs(context.node).dilations.some((d) => d !== 1)) return undefined;
    const includePad = kind === 'avg' && intAttr(context.node, 'count_include_pad', 0, 0, 1) === 1;
    const zeroPoints = x.quant?.zeroPoint ?? [0];
    if (includePad && x.dtype !== 'f32' && zeroPoints.length !== 1) return undefined;
    const [n, h, w, c] = x.shape as [number, number, number, number];
    const [kh, kw] = poolKernel(context.node, [1, 1]);
    const window = windowStridesAndPads(context);
    const declared = { ...window };
    // Ceil mode's extra last window (window.ts) is the floor-mode window of a larger bottom / right padding:
    // the kernels leave out padding (max ignores it, the average counts only the pixels inside), and the
    // extra window starts inside the input, so it holds at least one pixel.
    if (poolCeilMode(context.node)) {
      const [oh, ow] = [y.shape[1]!, y.shape[2]!];
      window.paddingBottom = Math.max(
        window.paddingBottom,
        (oh - 1) * window.strideHeight + kh - h - window.paddingTop,
      );
      window.paddingRight = Math.max(
        window.paddingRight,
        (ow - 1) * window.strideWidth + kw - w - window.paddingLeft,
      );
    }
    const { paddingTop, paddingLeft, paddingBottom, paddingRight } = window;
    // The kernels' count_include_pad divides by the whole window: not for the ceil-mode windows that reach
    // past the declared padding, whose positions there the reference does not count.
    if (includePad && (paddingBottom !== declared.paddingBottom || paddingRight !== declared.paddingRight))
      return undefined;
    if (paddingTop >= kh || paddingBottom >= kh || paddingLeft >= kw || paddingRight >= kw) return undefined;
    if (
      y.shape[1] !== Math.floor((h + paddingTop + paddingBottom - kh) / window.strideHeight) + 1 ||
      y.shape[2] !== Math.floor((w + paddingLeft + paddingRight - kw) / window.strideWidth) + 1
    )
      return undefined;
    const base = {
      batch: n,
      inputHeight: h,
      inputWidth: w,
      channels: c,
      windowHeight: kh,
      windowWidth: kw,
      ...window,
      ...(includePad ? { countIncludePad: true } : {}),
      ...(includePad && x.dtype !== 'f32' ? { paddingValue: zeroPoints[0]! } : {}),
    };
    return operatorExecutor<Pool2dArgs<Tensor>>(
      `native:${kind}_pool_${x.dtype}`,
      kind === 'max' ? 'maxPool2d' : 'avgPool2d',
      kind === 'max' ? maxPool2d : avgPool2d,
      (inputs, outputs) => ({ ...base, input: inputs[0] as Tensor, output: outputs[0] as Tensor }),
    );
  };
}

const globalAvgPoolF32: NativeFactory = (context) => {
  const [n, h, w, c] = context.inputs[0]!.shape as [number, number, number, number];
  if (h * w > 65536) return undefined;
  return operatorExecutor<GlobalAvgPoolArgs<Float32Array>>(
    'native:global_avgpool_f32',
    'globalAvgPool',
    globalAvgPool,
    (inputs, outputs) => ({
      batch: n,
      pixels: h * w,
      channels: c,
      input: inputs[0] as Float32Array,
      output: outputs[0] as Float32Array,
    }),
  );
};

const globalAvgPoolRequantized: NativeFactory = (context) => {
  const x = context.inputs[0]!;
  const y = context.outputs[0]!;
  const [n, h, w, c] = x.shape as [number, number, number, number];
  if (h * w > 65536) return undefined;
  const { multiplier, shift } = globalAvgPoolMultiplier(x.quant!.scale[0]!, y.quant!.scale[0]!, h * w);
  const args = {
    batch: n,
    pixels: h * w,
    channels: c,
    inputZeroPoint: x.quant!.zeroPoint[0]!,
    outputZeroPoint: y.quant!.zeroPoint[0]!,
    multiplier,
    shift,
  };
  return operatorExecutor<GlobalAvgPoolInt8Args<Int8Tensor>>(
    'native:global_avgpool_int8',
    'globalAvgPool',
    globalAvgPoolInt8,
    (inputs, outputs) => ({ ...args, input: inputs[0] as Int8Tensor, output: outputs[0] as Int8Tensor }),
  );
};

/** The scales, zero points and channel run of an int8 tensor's quantization as quantizeLinear /
 * dequantizeLinear take them, or undefined where the kernel's layout cannot state it (a scale count that is
 * not the axis' size, a zero point outside the dtype). */
// The layout of quantize_linear / dequantize_linear's int8 side `spec` as the native operator takes it, or
// undefined where the operator is not used: a constant input (folded instead), an empty tensor, zero points
// outside the int8 range or scales that do not match the axis.
function quantizationLayout(context: PrepareContext, spec: TensorSpec): QuantizationArgs | undefined {
  if (context.constants[0] !== undefined || elements(spec.shape) === 0) return undefined;
  const { scale, zeroPoint, axis } = spec.quant!;
  const [lo, hi] = intRange(spec.dtype);
  if (scale.length !== zeroPoint.length || zeroPoint.some((z) => z < lo || z > hi)) return undefined;
  if (scale.length > 1 && (axis === undefined || spec.shape[axis] !== scale.length)) return undefined;
  return {
    scales: Float64Array.from(scale),
    zeroPoints: Int32Array.from(zeroPoint),
    ...(scale.length > 1 ? { inner: elements(spec.shape.slice(axis! + 1)) } : {}),
  };
}

const quantizeLinearInt8: NativeFactory = (context) => {
  const layout = quantizationLayout(context, context.outputs[0]!);
  if (layout === undefined) return undefined;
  return operatorExecutor<QuantizeLinearArgs<Int8Tensor>>(
    'native:quantize_linear_int8',
    'quantizeLinear',
    quantizeLinear,
    (inputs, outputs) => ({ ...layout, input: inputs[0] as Float32Array, output: outputs[0] as Int8Tensor }),
  );
};

const dequantizeLinearInt8: NativeFactory = (context) => {
  const x = context.inputs[0]!;
  if (x.dtype === 'i32') return undefined;
  const layout = quantizationLayout(context, x);
  if (layout === undefined) return undefined;
  return operatorExecutor<DequantizeLinearArgs<Int8Tensor>>(
    'native:dequantize_linear_int8',
    'dequantizeLinear',
    dequantizeLinear,
    (inputs, outputs) => ({ ...layout, input: inputs[0] as Int8Tensor, output: outputs[0] as Float32Array }),
  );
};

/** The quantization arguments of the addon's int8 add for a qadd node (without its tensors), or undefined
 * when the kernel cannot take it (a constant operand, a zero point outside the dtype's range). */
function qaddArgs(context: PrepareContext) {
  const [a, b] = context.inputs as [TensorSpec, TensorSpec];
  const y = context.outputs[0]!;
  const [lo, hi] = intRange(y.dtype);
  const zeroPoints = [a, b, y].map((t) => t.quant!.zeroPoint[0]!);
  if (context.constants.some((c) => c !== undefined) || zeroPoints.some((z) => z < lo || z > hi))
    return undefined;
  const p = qaddParams(context.node, a, b, y);
  return {
    aZeroPoint: p.aZeroPoint,
    aMultiplier: p.a.multiplier,
    aShift: p.a.shift,
    bZeroPoint: p.bZeroPoint,
    bMultiplier: p.b.multiplier,
    bShift: p.b.shift,
    outputZeroPoint: p.outputZeroPoint,
    outputMultiplier: p.output.multiplier,
    outputShift: p.output.shift,
    outputMin: p.min,
    outputMax: p.max,
  };
}

const qaddInt8: NativeFactory = (context) => {
  const args = qaddArgs(context);
  if (!args) return undefined;
  return operatorExecutor<AddInt8Args<Int8Tensor>>(
    'native:qadd_int8',
    'add',
    addInt8,
    (inputs, outputs) => ({
      ...args,
      a: inputs[0] as Int8Tensor,
      b: inputs[1] as Int8Tensor,
      output: outputs[0] as Int8Tensor,
    }),
    (a) => ({ inputs: [a.a, a.b], outputs: [a.output] }),
  );
};

const addF32Same: NativeFactory = (context) => {
  const [a, b] = context.inputs as [TensorSpec, TensorSpec];
  if (
    a.dtype !== 'f32' ||
    a.shape.join(',') !== b.shape.join(',') ||
    context.constants.some((c) => c !== undefined)
  )
    return undefined;
  return operatorExecutor<AddF32Args>(
    'native:add_f32',
    'add',
    addF32,
    (inputs, outputs) => ({
      a: inputs[0] as Float32Array,
      b: inputs[1] as Float32Array,
      output: outputs[0] as Float32Array,
    }),
    (args) => ({ inputs: [args.a, args.b], outputs: [args.output] }),
  );
};

const clampAny: NativeFactory = (context) => {
  const x = context.inputs[0]!;
  const min = numberAttr(context.node, 'min', -Infinity);
  const max = numberAttr(context.node, 'max', Infinity);
  if (x.dtype === 'i32' || x.dtype === 'bool' || min > max) return undefined;
  if (x.dtype !== 'f32') {
    const [lo, hi] = intRange(x.dtype); // i8 or u8 here
    if ((Number.isFinite(min) && !Number.isInteger(min)) || (Number.isFinite(max) && !Number.isInteger(max)))
      return undefined;
    const args = { min: Math.max(lo, min), max: Math.min(hi, max) };
    if (args.min > hi || args.max < lo) return undefined;
    return operatorExecutor<ClampArgs<Int8Tensor>>(
      `native:clamp_${x.dtype}`,
      'clamp',
      clamp,
      (inputs, outputs) => ({
        input: inputs[0] as Int8Tensor,
        output: outputs[0] as Int8Tensor,
        ...args,
      }),
    );
  }
  return operatorExecutor<ClampArgs<Float32Array>>('native:clamp_f32', 'clamp', clamp, (inputs, outputs) => ({
    input: inputs[0] as Float32Array,
    output: outputs[0] as Float32Array,
    min,
    max,
  }));
};

const softmaxLastAxis: NativeFactory = (context) => {
  const x = context.inputs[0]!;
  const rank = x.shape.length;
  const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', -1), rank);
  const coerce = intAttr(context.node, 'coerce2d', 0, 0, 1) === 1;
  if (!coerce && axis !== rank - 1) return undefined;
  const channels = elements(x.shape.slice(axis));
  if (channels === 0) return undefined;
  const rows = elements(x.shape) / channels;
  return operatorExecutor<SoftmaxF32Args>('native:softmax_f32', 'softmax', softmaxF32, (inputs, outputs) => ({
    rows,
    channels,
    input: inputs[0] as Float32Array,
    output: outputs[0] as Float32Array,
  }));
};

const concatAnyAxis: NativeFactory = (context) => {
  const specs = context.inputs as TensorSpec[];
  const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', 0), specs[0]!.shape.length);
  const rows = elements(specs[0]!.shape.slice(0, axis));
  const channels = specs.map((s) => elements(s.shape.slice(axis)));
  if (
    rows === 0 ||
    channels.some((c) => c === 0) ||
    specs.some((s) => s.dtype === 'i32' || s.dtype === 'bool')
  )
    return undefined;
  return operatorExecutor<ConcatArgs<Tensor>>(
    `native:concat_${specs[0]!.dtype}`,
    'concat',
    concat,
    (inputs, outputs) => ({
      rows,
      channels,
      inputs: specs.map((_, i) => (context.constants[i] ?? inputs[i]) as Tensor),
      output: outputs[0] as Tensor,
    }),
    (args) => ({ inputs: args.inputs, outputs: [args.output] }),
  );
};

const channelShuffleAny: NativeFactory = (context) => {
  const x = context.inputs[0]!;
  if (x.dtype === 'i32' || x.dtype === 'bool') return undefined;
  const groups = intAttr(context.node, 'groups', 1, 1);
  const channels = x.shape[x.shape.length - 1]!;
  return operatorExecutor<ChannelShuffleArgs<Tensor>>(
    `native:channel_shuffle_${x.dtype}`,
    'channelShuffle',
    channelShuffle,
    (inputs, outputs) => ({
      rows: elements(x.shape) / channels,
      groups,
      groupChannels: channels / groups,
      input: inputs[0] as Tensor,
      output: outputs[0] as Tensor,
    }),
  );
};

/** reshape / identity: the same bytes in another place (native copy, so that a flatten does not split a
 * plan). A constant input is copied from the constant. */
const copyAny: NativeFactory = (context) => {
  const x = context.inputs[0]!;
  if (x.dtype !== 'f32' && x.dtype !== 'i8' && x.dtype !== 'u8') return undefined;
  if (elements(x.shape) === 0) return undefined;
  return operatorExecutor<{ input: Tensor; output: Tensor }>(
    `native:copy_${x.dtype}`,
    'copy',
    copy,
    (inputs, outputs) => ({
      input: (context.constants[0] ?? inputs[0]) as Tensor,
      output: outputs[0] as Tensor,
    }),
  );
};

// fp32 sigmoid, hard_sigmoid, hard_swish, the channel-broadcast mul, slice and split (issue 14: the
// conformance models' SE blocks, hard-swish activations and ShuffleNet's channel halves on the native plan).

const sigmoidNative: NativeFactory = () =>
  operatorExecutor<{ input: Float32Array; output: Float32Array }>(
    'native:sigmoid_f32',
    'sigmoid',
    sigmoidF32,
    (inputs, outputs) => ({ input: inputs[0] as Float32Array, output: outputs[0] as Float32Array }),
  );

/** hard_sigmoid or hard_swish: clamp(alpha * x + beta, 0, 1), times x for hard_swish. */
const hardSigmoidNative: NativeFactory = (context) => {
  const swish = context.node.op === 'hard_swish';
  const params = hardSigmoidParams(context.node);
  return operatorExecutor<{ input: Float32Array; output: Float32Array; alpha: number; beta: number }>(
    `native:${context.node.op}_f32`,
    swish ? 'hardSwish' : 'hardSigmoid',
    swish ? hardSwishF32 : hardSigmoidF32,
    (inputs, outputs) => ({
      ...params,
      input: inputs[0] as Float32Array,
      output: outputs[0] as Float32Array,
    }),
  );
};

/** fp32 gelu (ops/elementwise.ts geluOf), exact or tanh form. */
const geluNative: NativeFactory = (context) => {
  const tanh = stringAttr(context.node, 'approximate', ['none', 'tanh'], 'none') === 'tanh';
  return operatorExecutor<GeluF32Args>('native:gelu_f32', 'gelu', geluF32, (inputs, outputs) => ({
    input: inputs[0] as Float32Array,
    output: outputs[0] as Float32Array,
    tanh,
  }));
};

/** fp32 layer_norm over the last axis (ConvNeXt's, channels-last; its channels-first form is the same once the
 * compile pass has the tensor NHWC) with constant scale and bias; other axes keep the reference. */
const layerNormNative: NativeFactory = (context) => {
  const shape = context.inputs[0]!.shape;
  const axis = normalizeAxis(context.node, intAttr(context.node, 'axis', -1), shape.length);
  const [scale, bias] = [context.constants[1], context.constants[2]];
  const hasBias = context.node.inputs[2] !== undefined && context.node.inputs[2] >= 0;
  if (axis !== shape.length - 1 || elements(shape) === 0) return undefined;
  if (!(scale instanceof Float32Array) || (hasBias && !(bias instanceof Float32Array))) return undefined;
  const channels = shape[axis]!;
  const args = {
    rows: elements(shape) / channels,
    channels,
    scale,
    ...(bias instanceof Float32Array ? { bias } : {}),
    epsilon: numberAttr(context.node, 'epsilon', 1e-5),
  };
  return operatorExecutor<LayerNormF32Args>(
    'native:layer_norm_f32',
    'layerNorm',
    layerNormF32,
    (inputs, outputs) => ({
      ...args,
      input: inputs[0] as Float32Array,
      output: outputs[0] as Float32Array,
    }),
  );
};

/** int8 / uint8 sigmoid, hard_sigmoid, hard_swish, silu, gelu: the node's 256-entry table (ops/elementwise.ts
 * activationTable, the reference's own), looked up byte by byte. */
const lookupNative: NativeFactory = (context) => {
  const table = activationTable(context);
  return operatorExecutor<LookupArgs<Int8Tensor>>(
    `native:${context.node.op}_int8`,
    'lookup',
    lookupInt8,
    (inputs, outputs) => ({ input: inputs[0] as Int8Tensor, output: outputs[0] as Int8Tensor, table }),
  );
};

/** The mul operands as the native mulChannels takes them: two tensors of one shape (rows = pixels = 1), or
 * [N, ..., C] by [N, 1, ..., 1, C] (either operand the broadcast one: the SE block's scale), with `big` the
 * index of the full one; undefined for other broadcasts (the reference runs them). */
function channelBroadcast(context: PrepareContext) {
  const specs = context.inputs as [TensorSpec, TensorSpec];
  if (specs.some((t) => elements(t.shape) === 0)) return undefined;
  const y = context.outputs[0]!.shape;
  const big = specs[0].shape.join(',') === y.join(',') ? 0 : 1;
  const full = specs[big].shape;
  const part = specs[1 - big]!.shape;
  if (full.join(',') !== y.join(',')) return undefined;
  if (part.join(',') === full.join(',')) return { big, rows: 1, pixels: 1, channels: elements(full) };
  const rank = full.length;
  if (
    rank < 3 ||
    part.length !== rank ||
    part[0] !== full[0] ||
    part[rank - 1] !== full[rank - 1] ||
    part.slice(1, -1).some((d) => d !== 1)
  )
    return undefined;
  return { big, rows: full[0]!, pixels: elements(full.slice(1, -1)), channels: full[rank - 1]! };
}

/** fp32 mul of two tensors of one shape, or of [N, ..., C] by [N, 1, ..., 1, C] (channelBroadcast). Other
 * broadcasts keep the reference. */
const mulChannels: NativeFactory = (context) => {
  const layout = channelBroadcast(context);
  if (layout === undefined || context.inputs.some((t) => t!.dtype !== 'f32')) return undefined;
  const { big, ...shape } = layout;
  const operand = (inputs: Views, i: number) => (context.constants[i] ?? inputs[i]) as Float32Array;
  return operatorExecutor<MulChannelsArgs>(
    'native:mul_f32',
    'mulChannels',
    mulChannelsF32,
    (inputs, outputs) => ({
      ...shape,
      a: operand(inputs, big),
      b: operand(inputs, 1 - big),
      output: outputs[0] as Float32Array,
    }),
    (args) => ({ inputs: [args.a, args.b], outputs: [args.output] }),
  );
};

/** qmul on the layouts of channelBroadcast, the full operand first (the quantized mul is symmetric in its
 * operands once each keeps its own zero point). */
const qmulChannels: NativeFactory = (context) => {
  const layout = channelBroadcast(context);
  const y = context.outputs[0]!;
  const [lo, hi] = intRange(y.dtype);
  const specs = context.inputs as [TensorSpec, TensorSpec];
  if (
    layout === undefined ||
    [...specs, y].some((t) => t.quant!.zeroPoint[0]! < lo || t.quant!.zeroPoint[0]! > hi)
  )
    return undefined;
  const { big, ...shape } = layout;
  const p = qmulParams(context.node, specs[big]!, specs[1 - big]!, y);
  const args = {
    ...shape,
    aZeroPoint: p.aZeroPoint,
    bZeroPoint: p.bZeroPoint,
    outputZeroPoint: p.outputZeroPoint,
    multiplier: p.output.multiplier,
    shift: p.output.shift,
    outputMin: p.min,
    outputMax: p.max,
  };
  const operand = (inputs: Views, i: number) => (context.constants[i] ?? inputs[i]) as Int8Tensor;
  return operatorExecutor<MulChannelsInt8Args<Int8Tensor>>(
    'native:qmul_int8',
    'mulChannels',
    mulChannelsInt8,
    (inputs, outputs) => ({
      ...args,
      a: operand(inputs, big),
      b: operand(inputs, 1 - big),
      output: outputs[0] as Int8Tensor,
    }),
    (a) => ({ inputs: [a.a, a.b], outputs: [a.output] }),
  );
};

/** The slice of one axis that takes `first` and `length` of x's `shape[axis]` as rows of contiguous runs. */
function sliceRows(shape: readonly number[], axis: number, first: number, length: number) {
  const inner = elements(shape.slice(axis + 1));
  return {
    rows: elements(shape.slice(0, axis)),
    inputRow: shape[axis]! * inner,
    offset: first * inner,
    outputElements: elements(shape.slice(0, axis)) * length * inner,
  };
}

/** An executor of one or more slices of the same input (slice: one; split: one per output). */
function slicesExecutor(
  context: PrepareContext,
  kernel: string,
  parts: readonly { rows: number; inputRow: number; offset: number; outputElements: number }[],
): Executor | undefined {
  const x = context.inputs[0]!;
  if (x.dtype !== 'f32' && x.dtype !== 'i8' && x.dtype !== 'u8') return undefined;
  if (elements(x.shape) === 0 || parts.some((p) => p.outputElements === 0)) return undefined;
  const args = (inputs: Views, outputs: readonly TensorData[]) =>
    parts.map(({ rows, inputRow, offset }, k): SliceArgs<Tensor> => ({
      rows,
      inputRow,
      offset,
      input: (context.constants[0] ?? inputs[0]) as Tensor,
      output: outputs[k] as Tensor,
    }));
  return {
    kernel: `native:${kernel}_${x.dtype}`,
    run: (inputs, outputs) => args(inputs, outputs).forEach((a) => slice(a)),
    plan: (inputs, outputs) =>
      args(inputs, outputs).map((a) => ({
        layer: createOperator('slice', a),
        inputs: [a.input],
        outputs: [a.output],
      })),
  };
}

/** A slice of step 1 along at most one axis (every other axis whole). */
const sliceNative: NativeFactory = (context) => {
  const shape = context.inputs[0]!.shape;
  const { first, step, length } = sliceRanges(context.node, shape);
  const cut = shape.map((_, a) => a).filter((a) => length[a] !== shape[a]);
  if (step.some((s) => s !== 1) || cut.length > 1) return undefined;
  const axis = cut[0] ?? 0;
  return slicesExecutor(context, 'slice', [sliceRows(shape, axis, first[axis]!, length[axis]!)]);
};

const splitNative: NativeFactory = (context) => {
  const shape = context.inputs[0]!.shape;
  const { axis, sizes } = splitSizes(context.node, shape, context.outputs.length);
  const starts = sizes.map((_, k) => sizes.slice(0, k).reduce((p, s) => p + s, 0));
  return slicesExecutor(
    context,
    'split',
    sizes.map((size, k) => sliceRows(shape, axis, starts[k]!, size)),
  );
};

/** resize (issue 14: an FPN's and a segmentation head's upsampling) on the native 2-D resize: the node's taps
 * (ops/resize.ts resizeTaps) where at most two adjacent axes move, every other axis keeping its size with each
 * output index reading its own input index (NHWC's H and W; NCHW's too, channels folded into the batch). */
const resizeNative: NativeFactory = (context) => {
  const x = context.inputs[0]!;
  if (x.dtype !== 'f32' && x.dtype !== 'i8' && x.dtype !== 'u8') return undefined;
  const taps = resizeTaps(context.node, x.shape);
  // A leading axis of 1 so that any one moving axis has a neighbour before it.
  const identity: AxisTaps = { lo: Int32Array.of(0), hi: Int32Array.of(0), weight: Float64Array.of(0) };
  const shape = [1, ...x.shape];
  const out = [1, ...taps.out];
  const axes = [identity, ...taps.axes];
  const kept = (a: number) =>
    out[a] === shape[a] && axes[a]!.lo.every((i, o) => i === o && axes[a]!.weight[o] === 0);
  const moving = shape.map((_, a) => a).filter((a) => !kept(a));
  if (moving.length > 2 || (moving.length === 2 && moving[1] !== moving[0]! + 1)) return undefined;
  const h = moving.length === 2 ? moving[0]! : Math.max(0, (moving[0] ?? 1) - 1);
  const w = h + 1;
  const pairs = (t: AxisTaps) => {
    const pair = new Uint32Array(2 * t.lo.length);
    t.lo.forEach((lo, o) => {
      pair[2 * o] = lo;
      pair[2 * o + 1] = t.hi[o]!;
    });
    return pair;
  };
  const fixed = {
    batch: elements(shape.slice(0, h)),
    inputHeight: shape[h]!,
    inputWidth: shape[w]!,
    channels: elements(shape.slice(w + 1)),
    rows: pairs(axes[h]!),
    columns: pairs(axes[w]!),
    ...(taps.mode === 'linear' ? { rowWeights: axes[h]!.weight, columnWeights: axes[w]!.weight } : {}),
  };
  return operatorExecutor<ResizeArgs<Tensor>>(
    `native:resize_${taps.mode === 'linear' ? 'bilinear' : 'nearest'}_${x.dtype}`,
    'resize',
    resize,
    (inputs, outputs) => ({
      ...fixed,
      input: (context.constants[0] ?? inputs[0]) as Tensor,
      output: outputs[0] as Tensor,
    }),
  );
};

/** A transpose that swaps two blocks of axes ([rows][A][B] -> [rows][B][A] once axes of size 1 are dropped and
 * axes that stay adjacent are merged: NHWC -> NCHW, NCHW -> NHWC, a matrix transpose) is a channel shuffle with
 * A groups of B channels; any other permutation keeps the reference. */
export function blockSwap(shape: readonly number[], perm: readonly number[]) {
  // The axes longer than 1, numbered in input order, as the output orders them.
  const long = shape.map((_, a) => a).filter((a) => shape[a]! > 1);
  const order = perm.filter((p) => shape[p]! > 1).map((p) => long.indexOf(p));
  // Runs of input axes that stay adjacent in the output, in output order.
  const runs: number[][] = [];
  for (const p of order) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[last.length - 1] === p - 1) last.push(p);
    else runs.push([p]);
  }
  const size = (run: readonly number[]) => elements(run.map((p) => shape[long[p]!]!));
  const byInput = [...runs].sort((a, b) => a[0]! - b[0]!);
  const total = elements(shape);
  if (runs.length <= 1) return { rows: 1, groups: 1, groupChannels: total };
  const [first, second, third] = runs;
  if (runs.length === 2) return { rows: 1, groups: size(byInput[0]!), groupChannels: size(byInput[1]!) };
  if (runs.length === 3 && first === byInput[0] && second === byInput[2] && third === byInput[1])
    return { rows: size(first!), groups: size(third!), groupChannels: size(second!) };
  return undefined;
}

const transposeNative: NativeFactory = (context) => {
  const x = context.inputs[0]!;
  if (x.dtype !== 'f32' && x.dtype !== 'i8' && x.dtype !== 'u8') return undefined;
  const perm = intsAttr(context.node, 'perm', x.shape.length, [...x.shape.keys()].reverse());
  const swap = blockSwap(x.shape, perm);
  if (swap === undefined || elements(x.shape) === 0) return undefined;
  return operatorExecutor<ChannelShuffleArgs<Tensor>>(
    `native:transpose_${x.dtype}`,
    'channelShuffle',
    channelShuffle,
    (inputs, outputs) => ({
      ...swap,
      input: (context.constants[0] ?? inputs[0]) as Tensor,
      output: outputs[0] as Tensor,
    }),
  );
};

/** op -> format -> native executor factory: the one list of the native executors. The registry
 * (ops/index.ts) joins each with the reference executor of its pair. */
export const NATIVE_EXECUTORS: Readonly<
  Record<string, Readonly<Partial<Record<NumberFormat, NativeFactory>>>>
> = {
  conv2d: {
    f32: conv2dF32,
    fixed16: fixedPoint('conv2d'),
    fixed8: fixedPoint('conv2d'),
    binary: FORMAT_CONV2D,
    xnor: FORMAT_CONV2D,
    ternary: FORMAT_CONV2D,
    sparse: FORMAT_CONV2D,
    codebook: FORMAT_CONV2D,
    'sparse-codebook': FORMAT_CONV2D,
  },
  fully_connected: {
    f32: fullyConnectedF32,
    fixed16: fixedPoint('fullyConnected'),
    fixed8: fixedPoint('fullyConnected'),
    binary: FORMAT_FULLY_CONNECTED,
    xnor: FORMAT_FULLY_CONNECTED,
    ternary: FORMAT_FULLY_CONNECTED,
    sparse: FORMAT_FULLY_CONNECTED,
    codebook: FORMAT_FULLY_CONNECTED,
    'sparse-codebook': FORMAT_FULLY_CONNECTED,
    hashed: hashedFullyConnected,
  },
  qconv2d: { int8: qconv2d },
  qfully_connected: { int8: qfullyConnected },
  max_pool: { f32: pool('max'), int8: pool('max') },
  avg_pool: { f32: pool('avg'), int8: pool('avg') },
  global_avgpool: { f32: globalAvgPoolF32, int8: globalAvgPoolRequantized },
  quantize_linear: { int8: quantizeLinearInt8 },
  dequantize_linear: { int8: dequantizeLinearInt8 },
  add: { f32: addF32Same },
  qadd: { int8: qaddInt8 },
  clip: { f32: clampAny, int8: clampAny },
  softmax: { f32: softmaxLastAxis },
  concat: { f32: concatAnyAxis, int8: concatAnyAxis },
  channel_shuffle: { f32: channelShuffleAny, int8: channelShuffleAny },
  reshape: { f32: copyAny, int8: copyAny },
  identity: { f32: copyAny, int8: copyAny },
  sigmoid: { f32: sigmoidNative, int8: lookupNative },
  hard_sigmoid: { f32: hardSigmoidNative, int8: lookupNative },
  hard_swish: { f32: hardSigmoidNative, int8: lookupNative },
  silu: { int8: lookupNative },
  gelu: { f32: geluNative, int8: lookupNative },
  layer_norm: { f32: layerNormNative },
  mul: { f32: mulChannels },
  qmul: { int8: qmulChannels },
  slice: { f32: sliceNative, int8: sliceNative },
  split: { f32: splitNative, int8: splitNative },
  resize: { f32: resizeNative, int8: resizeNative },
  transpose: { f32: transposeNative, int8: transposeNative },
};
