// Post-training int8 quantization of an fp32 package. The fp32 graph is run on the runtime over a
// calibration set (calibrate.ts) to learn each activation's range, then rewritten node by node into the
// int8 forms the runtime executes on the native int8 kernels:
//
//   input f32 --quantize_linear--> i8 --qconv2d(+ReLU)--> i8 --max_pool--> i8 ... --qfully_connected--> i8
//             --dequantize_linear--> f32 --softmax--> f32 output
//
// Weights are symmetric int8 per output channel (zero point 0), biases int32 in the accumulator's units,
// activations asymmetric int8 per tensor with min/max ranges. qconv2d / qfully_connected keep the default
// gemmlowp requantization (a Q31 multiplier and a shift per output channel), which is what the native kernels
// take (agent/runtime/native-executors.ts int8Quantization); ONNX rounding would fall back to the reference.
// A ReLU (clip) that is the only reader of a conv / FC output is fused into it: the output range is the
// ReLU's and the clamp becomes the requantization's integer bounds.
//
// The functional zoo models (MobileNet, SqueezeNet, ShuffleNet) add:
// - grouped and depthwise convolutions: qconv2d with the same `groups` (the native int8 kernel takes them);
// - concat: an int8 concat only copies bytes, so every input must carry the output's scale and zero point.
//   A conv / FC feeding a concat is given the concat's calibrated range as its own output range (its
//   requantization then writes straight into the shared scale, as TFLite does); any other input whose
//   quantization differs is requantized (dequantize_linear + quantize_linear) to it;
// - channel_shuffle (and transpose): byte moves, int8 in, int8 out with the input's quantization;
// - global_avgpool: int8 in, int8 out with its own calibrated range (the kernel requantizes the mean from
//   the input's scale to the output's, agent/runtime ops global_avgpool);
// - add (a residual connection): qadd, int8 in, int8 out, each input rescaled from its own quantization and
//   the sum requantized to the output's calibrated range (TFLite's quantized add); an add that broadcasts,
//   or that follows a softmax, stays fp32 between dequantize_linear and quantize_linear;
// - sigmoid, hard_sigmoid, hard_swish, gelu (MobileNetV3, EfficientNet, ConvNeXt): int8 in, int8 out with the
//   output's calibrated range, through a 256-entry lookup table the runtime builds at load from the two scales;
// - x * sigmoid(x) (EfficientNet's SiLU: a mul of a tensor by its sigmoid, the sigmoid read by nothing else):
//   one silu lookup table from x's quantization to the product's, the sigmoid never written;
// - any other mul of two activations (the SE block's channel scale): qmul, each operand with its own
//   quantization and the product requantized to the output's calibrated range (TFLite's quantized mul); a mul
//   by a constant stays fp32;
// - slice and split (ShuffleNet's channel halves): byte moves with the input's quantization, as the layout ops;
// - resize (an FPN's or a segmentation head's upsampling): the input's quantization too, nearest a byte move
//   and linear a blend of raw values (weights summing to 1 keep the scale and zero point), rounded half up.
// Other fp32-only ops (sigmoid, batch_norm...) are refused, since a graph full of float islands would not be
// the int8 model the user asked for.
//
// Activation ranges are min/max by default; percentile and mse ranges (calibrate.ts) are a choice. Measured
// (docs/benchmarks.md, "int8 agreement on the conformance set"): on trained models min/max agrees with fp32
// as well or better — with 255 steps over the observed range the rounding error is already below what the
// model notices, and a clipped range saturates the large, confident activations that decide the class — and
// on the random-weight conformance models the methods differ by less than the sampling error.
// A ReLU after a residual add is fused into the qadd as after a layer: its range, and integer bounds.
import { toFloat32 } from '../../agent/package/encodings.js';
import type { Manifest, ManifestNode, TensorQuantization } from '../../agent/package/manifest.js';
import type { Package } from '../../agent/package/reader.js';
import { roundHalfAwayFromZero } from '../../agent/runtime/number/rounding.js';
import { INT8_MAX, INT8_MIN, saturate } from '../../agent/runtime/number/saturation.js';
import { elements } from '../../agent/runtime/tensor.js';
import { GraphBuilder } from '../package/graph-builder.js';
import type { PackageContent } from '../package/writer.js';
import {
  type CalibrationMethod,
  type CalibrationSet,
  collectRanges,
  exactRangeTensors,
  QuantizationError,
  type TensorRange,
  withRanges,
} from './calibrate.js';
import {
  activationQuantizationFromRange,
  type ChannelwiseWeights,
  quantizeBias,
  quantizeWeightsPerChannel,
} from './int8.js';

export { type CalibrationSet, QuantizationError } from './calibrate.js';

/** The calibration method `whittle quantize` uses unless told (see the header and docs/benchmarks.md). */
export const DEFAULT_CALIBRATION_METHOD: CalibrationMethod = 'minmax';

/** fp32 ops this pass can rewrite; anything else is refused, listed by node name. */
export const QUANTIZABLE_OPS = [
  'conv2d',
  'fully_connected',
  'clip',
  'max_pool',
  'avg_pool',
  'reshape',
  'identity',
  'transpose',
  'channel_shuffle',
  'concat',
  'softmax',
  'global_avgpool',
  'add',
  'sigmoid',
  'hard_sigmoid',
  'hard_swish',
  'gelu',
  'mul',
  'slice',
  'split',
  'resize',
] as const;

export interface PtqOptions {
  /** The int8 package's model id (default: the fp32 package's id + "-int8"). */
  modelId?: string;
  /** Its version (default: the fp32 package's). */
  version?: string;
  name?: string;
  /** How activation ranges are chosen from the calibration set (calibrate.ts; default DEFAULT_CALIBRATION_METHOD). */
  calibrationMethod?: CalibrationMethod;
  /** Ranges that replace the calibrated ones, by tensor name (quantization-aware training's, qat.ts). */
  ranges?: ReadonlyMap<string, TensorRange>;
  /** Only these conv / FC layers (node names) become int8; the others (and a ReLU fused into them), in
   * whatever format the package stores them, are written as fp32 (their weights expanded) between a
   * dequantize and a quantize, for a caller that re-encodes them (XNOR-Net's binary middle layers,
   * optimize/compress: calibrated on the package as it runs them). Default: every layer. */
  layers?: ReadonlySet<string>;
  /** Write the conv / FC layers that make the logits (whose output reaches a graph output through softmax /
   * reshape / identity only) in fp32, on their dequantized int8 input (default false): the logits are then
   * not rounded to an int8 step, as TFLite / ONNX Runtime users keep a float classifier. Measured on the
   * conformance models (docs/benchmarks.md, "int8 agreement on the trained conformance exports"): +2.8 points
   * on regnet_x_400mf, +2.4 on mobilenet_v3_small, none on four others, where the error the backbone accumulates is several times the
   * logits' step. */
  floatClassifier?: boolean;
}

export interface PtqResult {
  content: PackageContent;
  /** Calibrated range of each fp32 tensor, by the fp32 package's tensor name. */
  ranges: Map<string, TensorRange>;
}

/** fp32 ops with no int8 kernel that the int8 graph keeps in fp32, between a dequantize and a quantize (their
 * operands' calibrated ranges quantize what they give): correct, not fast. */
export const FLOAT_ISLAND_OPS = [
  'sub',
  'div',
  'pow',
  'prelu',
  'sqrt',
  'exp',
  'tanh',
  'erf',
  'leaky_relu',
  'reduce_mean',
  'reduce_max',
  'pad',
  'gather',
  'expand',
  'layer_norm',
  'instance_norm',
  'batch_norm',
  'conv_transpose',
] as const;

/** The layer formats quantized: fp32, and the binary / ternary layers of BinaryConnect and TWN, whose weights
 * {-a, 0, a} per channel become int8 {-127, 0, 127} exactly (each channel's scale a / 127), stored as bit
 * planes (encodeInt8Planes) and run on the int8 kernels. */
const QUANTIZABLE_FORMATS: readonly string[] = ['f32', 'binary', 'ternary'];

const isQuantizable = (op: string): boolean =>
  (QUANTIZABLE_OPS as readonly string[]).includes(op) || (FLOAT_ISLAND_OPS as readonly string[]).includes(op);

function checkSupported(manifest: Manifest, pkg: Package, layers?: ReadonlySet<string>): void {
  const problems: { node: string; why: string }[] = [];
  for (const node of manifest.nodes) {
    const kept = layers !== undefined && !layers.has(node.name);
    if (!isQuantizable(node.op)) problems.push({ node: node.name, why: `op ${node.op} is not quantizable` });
    else if (!kept && !QUANTIZABLE_FORMATS.includes(node.format))
      problems.push({
        node: node.name,
        why: `format ${node.format} (only ${QUANTIZABLE_FORMATS.join(', ')} layers are quantized)`,
      });
    else if (node.op === 'conv2d' || node.op === 'fully_connected') {
      const [, w, b] = node.inputs;
      if (w === undefined || pkg.constants[w] === undefined)
        problems.push({ node: node.name, why: 'weights are not a constant' });
      if (b !== undefined && b >= 0 && pkg.constants[b] === undefined)
        problems.push({ node: node.name, why: 'bias is not a constant' });
    }
  }
  if (problems.length > 0)
    throw new QuantizationError(
      `cannot quantize ${problems.length} node(s): ${problems.map((p) => `${p.node} (${p.why})`).join(', ')}`,
      problems[0]!.node,
    );
}

const sameQuantization = (a: TensorQuantization, b: TensorQuantization): boolean =>
  a.scale.length === 1 &&
  b.scale.length === 1 &&
  a.scale[0] === b.scale[0] &&
  a.zeroPoint[0] === b.zeroPoint[0] &&
  a.axis === b.axis;

/** The integer bound that stands for the real bound `value` under `quant`, saturated to int8. */
function quantizedBound(value: number, scale: number, zeroPoint: number): number {
  const q = roundHalfAwayFromZero(value / scale) + zeroPoint;
  return saturate(q, INT8_MIN, INT8_MAX);
}

/** Weight scales rounded up to 6 significant digits and the weights re-rounded to them. The manifest stores
 * the scales as JSON text, where a double takes ~20 characters; 6 digits halve that (a few KB of a ~70 KB
 * LeNet-5 package) and change no weight by more than a millionth of its channel's scale. Rounding up keeps
 * every |w| / scale within 127. */
function withShortScales(q: ChannelwiseWeights, weights: Float32Array): ChannelwiseWeights {
  const inner = q.inChannels;
  const scales = q.scales.map((s) => {
    const short = Number(s.toPrecision(6));
    return short >= s ? short : Number((short + 10 ** (Math.floor(Math.log10(s)) - 5)).toPrecision(6));
  });
  const values = new Int8Array(q.values.length);
  for (let o = 0; o < q.outChannels; o++) {
    for (let i = 0; i < inner; i++) {
      const k = o * inner + i;
      values[k] = saturate(roundHalfAwayFromZero(weights[k]! / scales[o]!), -INT8_MAX, INT8_MAX);
    }
  }
  return { ...q, scales, values };
}

/** `node`'s attributes with its own fused activation bounds and its fused clip's (real `min` / `max`, the
 * tighter of the two) as the integer bounds that stand for them under the output's quantization `y`. */
function withIntegerBounds(
  node: ManifestNode,
  relu: ManifestNode | undefined,
  y: TensorQuantization,
): ManifestNode['attrs'] {
  const [scale, zeroPoint] = [y.scale[0]!, y.zeroPoint[0]!];
  const bounds = [node.attrs, relu?.attrs ?? {}];
  const lows = bounds.map((a) => a.min).filter((v): v is number => typeof v === 'number');
  const highs = bounds.map((a) => a.max).filter((v): v is number => typeof v === 'number');
  const attrs: ManifestNode['attrs'] = Object.fromEntries(
    Object.entries(node.attrs).filter(([k]) => k !== 'min' && k !== 'max'),
  );
  if (lows.length > 0) attrs.min = quantizedBound(Math.max(...lows), scale, zeroPoint);
  if (highs.length > 0) attrs.max = quantizedBound(Math.min(...highs), scale, zeroPoint);
  return attrs;
}

/** What the graph's structure and calibration decide before anything is written (the plan phase). */
interface QuantizationPlan {
  /** The ReLU (or any clip) fused into a conv / FC layer or a residual add, by that node: the node output's
   * only reader, and not a graph output. */
  fusedClips: ReadonlyMap<ManifestNode, ManifestNode>;
  /** The range each fp32 tensor is quantized with, by tensor index: its calibrated range, or for a layer
   * output that feeds a concat, the concat's (see sharedConcatRanges). */
  ranges: ReadonlyMap<number, TensorRange>;
  /** x * sigmoid(x) written as one silu node: the sigmoid, by the mul that reads it. */
  siluGates: ReadonlyMap<ManifestNode, ManifestNode>;
  /** The conv / FC layers written in fp32 however the others are (PtqOptions.floatClassifier). */
  floatLayers: ReadonlySet<ManifestNode>;
}

/** A conv / FC layer's weights as written (the quantize-layers phase): int8 per output channel with short scales, and the fp32
 * bias (quantized when the layer is written, in the units of its int8 input's scale). */
interface QuantizedLayer {
  weights: ChannelwiseWeights;
  bias: Float32Array | undefined;
}

/** The clip fused into each conv / FC layer and each add of two same-shaped tensors (a residual add, written
 * as qadd with integer bounds) that has one: the only reader of its output. */
function fusedClipsOf(manifest: Manifest): Map<ManifestNode, ManifestNode> {
  const readers = new Map<number, ManifestNode[]>();
  for (const node of manifest.nodes)
    for (const i of node.inputs) if (i >= 0) readers.set(i, [...(readers.get(i) ?? []), node]);
  const graphOutputs = new Set(manifest.outputs.map((o) => o.tensor));
  const fused = new Map<ManifestNode, ManifestNode>();
  const sameShapes = (node: ManifestNode): boolean =>
    new Set(node.inputs.map((t) => manifest.tensors[t]!.shape.join(','))).size === 1;
  for (const node of manifest.nodes) {
    if (node.op !== 'conv2d' && node.op !== 'fully_connected' && !(node.op === 'add' && sameShapes(node)))
      continue;
    const y = node.outputs[0]!;
    const next = readers.get(y);
    if (next?.length === 1 && next[0]!.op === 'clip' && next[0]!.format === 'f32' && !graphOutputs.has(y))
      fused.set(node, next[0]!);
  }
  return fused;
}

/** The activations the int8 graph computes through a lookup table (ops/elementwise.ts activationOp). */
const LOOKUP_ACTIVATIONS: readonly string[] = ['sigmoid', 'hard_sigmoid', 'hard_swish', 'gelu'];

/** Each mul of a tensor x by sigmoid(x) whose sigmoid has no other reader (and is not a graph output): the
 * sigmoid, by the mul. */
function siluGatesOf(manifest: Manifest): Map<ManifestNode, ManifestNode> {
  const producer = new Map<number, ManifestNode>();
  const readers = new Map<number, number>();
  for (const node of manifest.nodes) {
    for (const o of node.outputs) producer.set(o, node);
    for (const i of node.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
  }
  const graphOutputs = new Set(manifest.outputs.map((o) => o.tensor));
  const gates = new Map<ManifestNode, ManifestNode>();
  for (const node of manifest.nodes) {
    if (node.op !== 'mul' || node.inputs.length !== 2) continue;
    const [a, b] = node.inputs as [number, number];
    for (const [x, s] of [
      [a, b],
      [b, a],
    ] as const) {
      const gate = producer.get(s);
      if (gate?.op === 'sigmoid' && gate.inputs[0] === x && readers.get(s) === 1 && !graphOutputs.has(s)) {
        gates.set(node, gate);
        break;
      }
    }
  }
  return gates;
}

/** The inputs of an int8 concat must share its scale and zero point: a conv / FC layer output (after its fused
 * clip, if any) or a lookup-table activation's feeding one takes the concat's range as its own, since its
 * requantization (or table) can write any scale at no cost (the first concat wins where one feeds two). By
 * tensor index. */
function sharedConcatRanges(
  manifest: Manifest,
  ranges: ReadonlyMap<number, TensorRange>,
  fusedClips: ReadonlyMap<ManifestNode, ManifestNode>,
): Map<number, TensorRange> {
  const producer = new Map<number, ManifestNode>();
  for (const node of manifest.nodes) for (const o of node.outputs) producer.set(o, node);
  const graphOutputs = new Set(manifest.outputs.map((o) => o.tensor));
  const isLayer = (node: ManifestNode): boolean => node.op === 'conv2d' || node.op === 'fully_connected';
  const isLayerOutput = (t: number): boolean => {
    const p = producer.get(t);
    if (p === undefined) return false;
    if (isLayer(p)) return !fusedClips.has(p);
    // An int8 activation's lookup table, too, writes any output scale at no cost.
    if (LOOKUP_ACTIVATIONS.includes(p.op)) return true;
    if (p.op !== 'clip') return false;
    const layer = producer.get(p.inputs[0]!);
    return layer !== undefined && isLayer(layer) && fusedClips.get(layer) === p;
  };
  const shared = new Map<number, TensorRange>();
  for (const node of manifest.nodes) {
    if (node.op !== 'concat') continue;
    const range = ranges.get(node.outputs[0]!);
    if (range === undefined) continue;
    for (const i of node.inputs)
      if (isLayerOutput(i) && !shared.has(i) && !graphOutputs.has(i)) shared.set(i, range);
  }
  return shared;
}

/** The plan phase: which clips fuse into their layers and which range each tensor is quantized with. */
function planQuantization(
  manifest: Manifest,
  calibrated: ReadonlyMap<number, TensorRange>,
  floatClassifier: boolean,
): QuantizationPlan {
  const fusedClips = fusedClipsOf(manifest);
  const ranges = new Map(calibrated);
  for (const [t, range] of sharedConcatRanges(manifest, calibrated, fusedClips)) ranges.set(t, range);
  const logits = floatClassifier ? exactRangeTensors(manifest) : new Set<number>();
  const floatLayers = new Set(
    manifest.nodes.filter(
      (n) =>
        (n.op === 'conv2d' || n.op === 'fully_connected') && logits.has((fusedClips.get(n) ?? n).outputs[0]!),
    ),
  );
  return { fusedClips, ranges, siluGates: siluGatesOf(manifest), floatLayers };
}

/** The quantize-layers phase: every conv / FC layer's weights quantized per output channel, by layer. */
function quantizeLayers(pkg: Package): Map<ManifestNode, QuantizedLayer> {
  const { manifest } = pkg;
  const floats = (t: number): Float32Array =>
    toFloat32(pkg.constants[t]!, elements(manifest.tensors[t]!.shape));
  const layers = new Map<ManifestNode, QuantizedLayer>();
  for (const node of manifest.nodes) {
    if (node.op !== 'conv2d' && node.op !== 'fully_connected') continue;
    const w = floats(node.inputs[1]!);
    const outC = manifest.tensors[node.inputs[1]!]!.shape[0]!;
    const biasIndex = node.inputs[2] ?? -1;
    layers.set(node, {
      weights: withShortScales(quantizeWeightsPerChannel(w, outC, w.length / outC), w),
      bias: biasIndex >= 0 ? floats(biasIndex) : undefined,
    });
  }
  return layers;
}

/** The write phase: the int8 graph, node by node. Each fp32 tensor of the source graph has an int8 twin, an f32
 * twin, or both in the new graph; the other is made on demand with quantize_linear / dequantize_linear. */
class Int8GraphWriter {
  readonly builder = new GraphBuilder();
  readonly #int8Twin = new Map<number, number>();
  readonly #floatTwin = new Map<number, number>();

  constructor(
    private readonly manifest: Manifest,
    private readonly plan: QuantizationPlan,
    private readonly layers: ReadonlyMap<ManifestNode, QuantizedLayer>,
    /** The fp32 data of a constant tensor of the source graph, or undefined for an activation. */
    private readonly constantOf: (t: number) => Float32Array | undefined,
    /** The conv / FC layers to write as int8 (PtqOptions.layers); undefined: all. */
    private readonly int8Layers?: ReadonlySet<string>,
  ) {}

  /** A node with no int8 kernel, in fp32 on dequantized activations (constants copied as fp32). */
  private writeFloat(node: ManifestNode): void {
    const inputs = node.inputs.map((t) => {
      if (t < 0) return t;
      const data = this.constantOf(t);
      if (data === undefined) return this.floatOf(t);
      const source = this.manifest.tensors[t]!;
      return this.builder.constant(source.name, 'f32', [...source.shape], data);
    });
    const outputs = this.builder.emit(
      node.name,
      node.op,
      'f32',
      inputs,
      node.attrs,
      node.outputs.map(() => ({})),
    );
    node.outputs.forEach((y, k) => this.#floatTwin.set(y, outputs[k]!));
  }

  /** The new graph's f32 input tensor, the twin of the source graph's input `t`. */
  addInput(t: number): void {
    const source = this.manifest.tensors[t]!;
    this.#floatTwin.set(t, this.builder.addTensor(source.name, { dtype: 'f32', shape: [...source.shape] }));
  }

  floatTwin(t: number): number | undefined {
    return this.#floatTwin.get(t);
  }

  /** int8 parameters of fp32 tensor `t` from its planned range; `node` names the reader for the error. */
  activationQuant(t: number, node?: string): TensorQuantization {
    const range = this.plan.ranges.get(t);
    if (range === undefined)
      throw new QuantizationError(`no calibrated range for tensor ${this.manifest.tensors[t]!.name}`, node);
    const { scale, zeroPoint } = activationQuantizationFromRange(range.min, range.max);
    return { scale: [scale], zeroPoint: [zeroPoint] };
  }

  int8Of(t: number, node: string): number {
    const known = this.#int8Twin.get(t);
    if (known !== undefined) return known;
    const [q] = this.builder.emit(
      `${this.manifest.tensors[t]!.name}/quantize`,
      'quantize_linear',
      'int8',
      [this.floatOf(t)],
      {},
      [{ dtype: 'i8', quant: this.activationQuant(t, node) }],
    );
    this.#int8Twin.set(t, q!);
    return q!;
  }

  floatOf(t: number): number {
    const known = this.#floatTwin.get(t);
    if (known !== undefined) return known;
    const [f] = this.builder.emit(
      `${this.manifest.tensors[t]!.name}/dequantize`,
      'dequantize_linear',
      'int8',
      [this.#int8Twin.get(t)!],
      {},
    );
    this.#floatTwin.set(t, f!);
    return f!;
  }

  /** Every node of the source graph in order; a clip fused into its layer is written with the layer, a SiLU's
   * sigmoid with its mul. */
  writeNodes(): void {
    const fused = new Set<ManifestNode>(this.plan.siluGates.values());
    for (const node of this.manifest.nodes) {
      if (fused.has(node)) continue;
      switch (node.op) {
        case 'conv2d':
        case 'fully_connected': {
          const relu = this.plan.fusedClips.get(node);
          if (
            (this.int8Layers !== undefined && !this.int8Layers.has(node.name)) ||
            this.plan.floatLayers.has(node)
          ) {
            this.writeFloat(node);
            if (relu) this.writeFloat(relu);
          } else this.writeLayer(node, relu);
          if (relu) fused.add(relu);
          break;
        }
        case 'clip':
          this.writeClip(node);
          break;
        case 'max_pool':
        case 'avg_pool':
        case 'reshape':
        case 'identity':
        case 'transpose':
        case 'channel_shuffle':
        case 'slice':
        case 'split':
        case 'resize':
          this.writeLayout(node);
          break;
        case 'sigmoid':
        case 'hard_sigmoid':
        case 'hard_swish':
        case 'gelu':
          this.writeActivation(node);
          break;
        case 'mul':
          this.writeMul(node);
          break;
        case 'concat':
          this.writeConcat(node);
          break;
        case 'global_avgpool':
          this.writeGlobalAvgPool(node);
          break;
        case 'add': {
          const relu = this.plan.fusedClips.get(node);
          this.writeAdd(node, relu);
          if (relu) fused.add(relu);
          break;
        }
        case 'softmax':
          // No int8 softmax in the runtime: the logits are dequantized (10 values) and softmax runs in fp32.
          this.#floatTwin.set(
            node.outputs[0]!,
            this.builder.emit(node.name, 'softmax', 'f32', [this.floatOf(node.inputs[0]!)], node.attrs)[0]!,
          );
          break;
        default:
          if (!(FLOAT_ISLAND_OPS as readonly string[]).includes(node.op))
            throw new QuantizationError(`op ${node.op} is not quantizable`, node.name);
          this.writeFloat(node);
      }
    }
  }

  /** A conv / FC layer as qconv2d / qfully_connected, with `relu` (its fused clip, if any) folded into the
   * output range and the integer bounds. */
  private writeLayer(node: ManifestNode, relu: ManifestNode | undefined): void {
    const b = this.builder;
    const x = node.inputs[0]!;
    const out = relu ? relu.outputs[0]! : node.outputs[0]!;
    const xq = this.int8Of(x, node.name);
    const xScale = b.tensors[xq]!.quant!.scale[0]!;
    const { weights: q, bias } = this.layers.get(node)!;
    const outC = q.outChannels;
    const wQuant: TensorQuantization = {
      scale: [...q.scales],
      zeroPoint: new Array<number>(outC).fill(0),
      axis: 0,
    };
    const weightShape = [...this.manifest.tensors[node.inputs[1]!]!.shape];
    const wq = b.constant(`${node.name}.weight`, 'i8', weightShape, q.values, wQuant);
    const bq =
      bias !== undefined
        ? b.constant(`${node.name}.bias`, 'i32', [outC], quantizeBias(bias, xScale, q.scales))
        : -1;
    const yQuant = this.activationQuant(out, node.name);
    const attrs = withIntegerBounds(node, relu, yQuant);
    const op = node.op === 'conv2d' ? 'qconv2d' : 'qfully_connected';
    let input = xq;
    // qfully_connected reads [batch][features]; a 4-D input (a conv's output) is flattened first.
    if (op === 'qfully_connected' && b.tensors[xq]!.shape.length !== 2)
      input = b.emit(`${node.name}/flatten`, 'reshape', 'int8', [xq], { shape: [0, -1] })[0]!;
    const [yq] = b.emit(node.name, op, 'int8', [input, wq, bq], attrs, [{ dtype: 'i8', quant: yQuant }]);
    this.#int8Twin.set(out, yq!);
  }

  /** A clip on its own (not after a conv / FC): clamps the int8 values at the quantized bounds. */
  private writeClip(node: ManifestNode): void {
    const xq = this.int8Of(node.inputs[0]!, node.name);
    const { scale, zeroPoint } = this.builder.tensors[xq]!.quant!;
    const attrs: ManifestNode['attrs'] = {};
    if (typeof node.attrs.min === 'number')
      attrs.min = quantizedBound(node.attrs.min, scale[0]!, zeroPoint[0]!);
    if (typeof node.attrs.max === 'number')
      attrs.max = quantizedBound(node.attrs.max, scale[0]!, zeroPoint[0]!);
    this.#int8Twin.set(node.outputs[0]!, this.builder.emit(node.name, 'clip', 'int8', [xq], attrs)[0]!);
  }

  /** An add of two tensors of one shape as qadd, from their int8 quantizations to the sum's calibrated one
   * (a residual connection), with `relu` (its fused clip, if any) folded into the output range and the integer
   * bounds; fp32 on dequantized inputs where an input is a constant, fp32 only (after a softmax) or the
   * shapes differ (broadcasting), the fused clip then written after it in fp32. */
  private writeAdd(node: ManifestNode, relu: ManifestNode | undefined): void {
    const [a, b] = node.inputs as [number, number];
    const y = node.outputs[0]!;
    const shape = (t: number) => this.manifest.tensors[t]!.shape.join(',');
    const computed = [a, b].every((t) => this.constantOf(t) === undefined);
    if (computed && this.isInt8(a) && this.isInt8(b) && shape(a) === shape(b)) {
      const out = relu ? relu.outputs[0]! : y;
      const quant = this.activationQuant(out, node.name);
      const inputs = [this.int8Of(a, node.name), this.int8Of(b, node.name)];
      this.#int8Twin.set(
        out,
        this.builder.emit(node.name, 'qadd', 'int8', inputs, withIntegerBounds(node, relu, quant), [
          { dtype: 'i8', quant },
        ])[0]!,
      );
    } else {
      // fp32 on dequantized activations, a constant operand copied as fp32.
      this.writeFloat(node);
      if (relu) this.writeFloat(relu);
    }
  }

  /** The global average pool from the input's int8 quantization to its output's calibrated one (the kernel
   * requantizes); fp32 after a softmax, as the layout ops. */
  private writeGlobalAvgPool(node: ManifestNode): void {
    const x = node.inputs[0]!;
    const y = node.outputs[0]!;
    if (this.isInt8(x)) {
      const quant = this.activationQuant(y, node.name);
      const [yq] = this.builder.emit(
        node.name,
        'global_avgpool',
        'int8',
        [this.int8Of(x, node.name)],
        node.attrs,
        [{ dtype: 'i8', quant }],
      );
      this.#int8Twin.set(y, yq!);
    } else {
      this.#floatTwin.set(
        y,
        this.builder.emit(node.name, 'global_avgpool', 'f32', [this.floatOf(x)], node.attrs)[0]!,
      );
    }
  }

  /** Whether activation t is (or will be) int8: not one that only exists in fp32 (after a softmax). */
  private isInt8(t: number): boolean {
    return this.#int8Twin.has(t) || !this.#floatTwin.has(t);
  }

  /** Layout and selection ops keep the input's quantization (each output of a split); they stay fp32 after a
   * softmax. */
  private writeLayout(node: ManifestNode): void {
    const x = node.inputs[0]!;
    // A pool on fp32 input is made int8 too (its kernel is faster), unless only some layers are int8: then
    // it stays in the format of the layer before it.
    const int8 =
      this.isInt8(x) || ((node.op === 'max_pool' || node.op === 'avg_pool') && this.int8Layers === undefined);
    const outputs = node.outputs.map(() => ({}));
    const written = int8
      ? this.builder.emit(node.name, node.op, 'int8', [this.int8Of(x, node.name)], node.attrs, outputs)
      : this.builder.emit(node.name, node.op, 'f32', [this.floatOf(x)], node.attrs, outputs);
    node.outputs.forEach((y, k) => (int8 ? this.#int8Twin : this.#floatTwin).set(y, written[k]!));
  }

  /** sigmoid / hard_sigmoid / hard_swish / gelu from the input's int8 quantization to the output's calibrated one
   * (the runtime's lookup table); fp32 after a softmax. */
  private writeActivation(node: ManifestNode, op = node.op, x = node.inputs[0]!): void {
    const y = node.outputs[0]!;
    if (!this.isInt8(x)) {
      this.writeFloat(node);
      return;
    }
    const quant = this.activationQuant(y, node.name);
    const [yq] = this.builder.emit(node.name, op, 'int8', [this.int8Of(x, node.name)], node.attrs, [
      { dtype: 'i8', quant },
    ]);
    this.#int8Twin.set(y, yq!);
  }

  /** A mul of two activations as qmul into the output's calibrated range (x * sigmoid(x) as one silu); fp32
   * where an operand is a constant or fp32 only. */
  private writeMul(node: ManifestNode): void {
    const [a, b] = node.inputs as [number, number];
    const y = node.outputs[0]!;
    const gate = this.plan.siluGates.get(node);
    if (gate !== undefined && this.isInt8(gate.inputs[0]!)) {
      this.writeActivation(node, 'silu', gate.inputs[0]);
      return;
    }
    if (gate !== undefined) this.writeFloat(gate);
    if ([a, b].some((t) => this.constantOf(t) !== undefined || !this.isInt8(t))) {
      this.writeFloat(node);
      return;
    }
    const quant = this.activationQuant(y, node.name);
    const inputs = [this.int8Of(a, node.name), this.int8Of(b, node.name)];
    this.#int8Twin.set(
      y,
      this.builder.emit(node.name, 'qmul', 'int8', inputs, {}, [{ dtype: 'i8', quant }])[0]!,
    );
  }

  /** An int8 concat over inputs that share its quantization; after a softmax every input is float and the
   * concat stays fp32 too. */
  private writeConcat(node: ManifestNode): void {
    const b = this.builder;
    const y = node.outputs[0]!;
    if (node.inputs.every((i) => this.#floatTwin.has(i) && !this.#int8Twin.has(i))) {
      this.#floatTwin.set(
        y,
        b.emit(
          node.name,
          'concat',
          'f32',
          node.inputs.map((i) => this.floatOf(i)),
          node.attrs,
        )[0]!,
      );
      return;
    }
    const quant = this.activationQuant(y, node.name);
    const parts = node.inputs.map((i) => {
      const xq = this.#int8Twin.get(i);
      if (xq !== undefined && sameQuantization(b.tensors[xq]!.quant!, quant)) return xq;
      // An input that did not take the shared range (not a layer's output, or a layer that feeds another
      // concat first) is requantized through fp32; an fp32 one (an add's output) is quantized to it.
      return b.emit(
        `${this.manifest.tensors[i]!.name}/requantize`,
        'quantize_linear',
        'int8',
        [this.floatOf(i)],
        {},
        [{ dtype: 'i8', quant }],
      )[0]!;
    });
    this.#int8Twin.set(
      y,
      b.emit(node.name, 'concat', 'int8', parts, node.attrs, [{ dtype: 'i8', quant }])[0]!,
    );
  }
}

/** The int8 package content of an fp32 package, calibrated on `calibration` (inputs as the fp32 model takes
 * them). Throws QuantizationError, naming the node(s), for a graph it cannot rewrite, and for an empty or
 * misshapen calibration set. Labels and input preprocessing are carried over; accuracy and probe are the
 * caller's to measure and add. Phases: check (checkSupported), calibrate (collectRanges), plan
 * (planQuantization), quantize the layers (quantizeLayers), write (Int8GraphWriter). */
export function quantizePackage(
  pkg: Package,
  calibration: CalibrationSet,
  options: PtqOptions = {},
): PtqResult {
  const { manifest } = pkg;
  checkSupported(manifest, pkg, options.layers);
  const ranges = withRanges(
    manifest,
    collectRanges(pkg, calibration, options.calibrationMethod ?? DEFAULT_CALIBRATION_METHOD),
    options.ranges,
  );
  const plan = planQuantization(manifest, ranges, options.floatClassifier === true);
  const layers = quantizeLayers(pkg);

  const writer = new Int8GraphWriter(
    manifest,
    plan,
    layers,
    (t) =>
      pkg.constants[t] === undefined
        ? undefined
        : toFloat32(pkg.constants[t], elements(manifest.tensors[t]!.shape)),
    options.layers,
  );
  const input = manifest.inputs[0]!;
  writer.addInput(input.tensor);
  writer.writeNodes();
  const content = writer.builder.finish(
    [{ name: input.name, tensor: writer.floatTwin(input.tensor)!, layout: input.layout }],
    manifest.outputs.map((o) => ({ name: o.name, tensor: writer.floatOf(o.tensor) })),
    {
      id: options.modelId ?? `${manifest.model.id}-int8`,
      version: options.version ?? manifest.model.version,
      name: options.name ?? `${manifest.model.name ?? manifest.model.id} (int8 post-training quantized)`,
      ...(manifest.labels ? { labels: manifest.labels } : {}),
    },
  );
  if (input.preprocessing) content.manifest.inputs[0]!.preprocessing = input.preprocessing;
  return {
    content,
    ranges: new Map([...ranges].map(([t, r]) => [manifest.tensors[t]!.name, r])),
  };
}
