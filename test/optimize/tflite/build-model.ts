// Small networks written both as TFLite flatbuffers (optimize/tflite/writer.ts, NHWC) and as ONNX models
// (../onnx/build-model.ts, NCHW) with the same weights, so the tests can check that the two importers give
// the same outputs; and the fully-int8 TFLite form of a float network, quantized as the TFLite converter
// does (per-channel symmetric int8 filters, int32 bias at input x filter scale, int8 activations over the
// ranges the float network reaches on calibration inputs, QUANTIZE in and DEQUANTIZE out).
import { samePads } from '../../../agent/runtime/window.js';
import type { TensorProto } from '../../../optimize/onnx/onnx-proto.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import {
  ActivationFunctionType,
  BuiltinOperator,
  Padding,
  TensorType,
} from '../../../optimize/tflite/reader.js';
import type {
  TfliteModelSpec,
  TfliteOperatorSpec,
  TfliteTensorSpec,
} from '../../../optimize/tflite/writer.js';
import { buildModel, floatTensor, intTensor, type NodeSpec } from '../onnx/build-model.js';

type Act = 'relu' | 'relu6';
export type Layer =
  | { kind: 'conv'; out: number; k: number; stride?: number; same?: boolean; act?: Act }
  | { kind: 'dwconv'; k: number; stride?: number; same?: boolean; act?: Act }
  | { kind: 'pad'; amount: number }
  | { kind: 'maxpool' | 'avgpool'; k: number; stride: number }
  | { kind: 'fc'; out: number; act?: Act }
  | { kind: 'mean' }
  | { kind: 'softmax' }
  | { kind: 'logistic' }
  | { kind: 'hardswish' }
  | { kind: 'mul-const' }
  | { kind: 'residual'; layers: Layer[] }
  | { kind: 'concat'; layers: Layer[] };

export interface Network {
  /** NHWC input shape. */
  input: [number, number, number, number];
  layers: Layer[];
}

export const LENET: Network = {
  input: [1, 28, 28, 1],
  layers: [
    { kind: 'conv', out: 6, k: 5, act: 'relu' },
    { kind: 'maxpool', k: 2, stride: 2 },
    { kind: 'conv', out: 16, k: 5, act: 'relu' },
    { kind: 'avgpool', k: 2, stride: 2 },
    { kind: 'fc', out: 32, act: 'relu' },
    { kind: 'fc', out: 10 },
    { kind: 'softmax' },
  ],
};

export const MOBILENET_BLOCK: Network = {
  input: [1, 12, 12, 8],
  layers: [
    { kind: 'conv', out: 16, k: 3, stride: 2, same: true, act: 'relu6' },
    {
      kind: 'residual',
      layers: [
        { kind: 'conv', out: 32, k: 1, act: 'relu6' },
        { kind: 'pad', amount: 1 },
        { kind: 'dwconv', k: 3, act: 'relu6' },
        { kind: 'conv', out: 16, k: 1 },
      ],
    },
    { kind: 'concat', layers: [{ kind: 'dwconv', k: 3, stride: 1, same: true, act: 'relu' }] },
    { kind: 'mean' },
    { kind: 'fc', out: 5 },
  ],
};

/** The same block with the ops Arm NN 20.08's TfLite parser may lack, for the importer-only tests. */
export const MOBILENET_V3_BLOCK: Network = {
  input: [1, 8, 8, 4],
  layers: [
    { kind: 'conv', out: 8, k: 3, same: true },
    { kind: 'hardswish' },
    { kind: 'dwconv', k: 3, same: true },
    { kind: 'logistic' },
    { kind: 'mul-const' },
    { kind: 'mean' },
    { kind: 'fc', out: 3 },
    { kind: 'softmax' },
  ],
};

const ACT = { relu: ActivationFunctionType.RELU, relu6: ActivationFunctionType.RELU6 } as const;

interface Shaped {
  /** Tensor index in the TFLite spec. */
  t: number;
  /** ONNX value name. */
  v: string;
  /** NHWC shape (or [N, C] after an fc / mean). */
  shape: number[];
}

/** A float network with seeded random weights as TFLite (NHWC) and ONNX (NCHW). */
export function buildNetwork(net: Network, seed: number): { tflite: TfliteModelSpec; onnx: Uint8Array } {
  const random = new SeededRandom(seed);
  const tensors: TfliteTensorSpec[] = [];
  const operators: TfliteOperatorSpec[] = [];
  const nodes: NodeSpec[] = [];
  const inits: TensorProto[] = [];
  let count = 0;
  const tensor = (
    name: string,
    shape: number[],
    data?: ArrayLike<number>,
    type = TensorType.FLOAT32,
  ): number => {
    tensors.push({ name, type, shape, ...(data ? { data } : {}) });
    return tensors.length - 1;
  };
  const weights = (n: number, fanIn: number) =>
    Float32Array.from({ length: n }, () => random.normal() * Math.sqrt(2 / fanIn));
  const onnxAct = (act: Act | undefined, v: string, name: string): string => {
    if (act === undefined) return v;
    if (act === 'relu') nodes.push({ op: 'Relu', name: `${name}_relu`, inputs: [v], outputs: [`${v}_a`] });
    else {
      inits.push(floatTensor(`${name}_lo`, [], [0]), floatTensor(`${name}_hi`, [], [6]));
      nodes.push({
        op: 'Clip',
        name: `${name}_clip`,
        inputs: [v, `${name}_lo`, `${name}_hi`],
        outputs: [`${v}_a`],
      });
    }
    return `${v}_a`;
  };

  const apply = (x: Shaped, layer: Layer): Shaped => {
    const name = `${layer.kind}${count++}`;
    const [n, h, w, c] = x.shape as [number, number, number, number];
    switch (layer.kind) {
      case 'conv':
      case 'dwconv': {
        const depthwise = layer.kind === 'dwconv';
        const out = depthwise ? c : layer.out;
        const stride = layer.stride ?? 1;
        const pads = layer.same ? samePads(h, w, layer.k, layer.k, [stride, stride], [1, 1]) : [0, 0, 0, 0];
        const oh = Math.floor((h + pads[0]! + pads[2]! - layer.k) / stride) + 1;
        const ow = Math.floor((w + pads[1]! + pads[3]! - layer.k) / stride) + 1;
        const fanIn = layer.k * layer.k * (depthwise ? 1 : c);
        const filter = weights(out * layer.k * layer.k * (depthwise ? 1 : c), fanIn);
        const bias = Float32Array.from({ length: out }, () => random.normal() * 0.1);
        // TFLite: OHWI, or [1, kh, kw, C] depthwise. ONNX: OIHW, or [C, 1, kh, kw].
        const tfliteFilter = depthwise ? [1, layer.k, layer.k, c] : [out, layer.k, layer.k, c];
        const fw = tensor(`${name}/filter`, tfliteFilter, filter);
        const fb = tensor(`${name}/bias`, [out], bias);
        const y = tensor(name, [n, oh, ow, out]);
        operators.push({
          op: depthwise ? BuiltinOperator.DEPTHWISE_CONV_2D : BuiltinOperator.CONV_2D,
          inputs: [x.t, fw, fb],
          outputs: [y],
          options: {
            padding: layer.same ? Padding.SAME : Padding.VALID,
            strideH: stride,
            strideW: stride,
            activation: layer.act ? ACT[layer.act] : 0,
            ...(depthwise ? { depthMultiplier: 1 } : {}),
          },
        });
        const oihw = new Float32Array(filter.length);
        const ci = depthwise ? 1 : c;
        for (let o = 0; o < out; o++)
          for (let i = 0; i < ci; i++)
            for (let p = 0; p < layer.k * layer.k; p++)
              oihw[(o * ci + i) * layer.k * layer.k + p] = depthwise
                ? filter[p * c + o]!
                : filter[(o * layer.k * layer.k + p) * c + i]!;
        inits.push(
          floatTensor(`${name}_w`, [out, ci, layer.k, layer.k], oihw),
          floatTensor(`${name}_b`, [out], bias),
        );
        nodes.push({
          op: 'Conv',
          name,
          inputs: [x.v, `${name}_w`, `${name}_b`],
          outputs: [name],
          attrs: {
            kernel_shape: [layer.k, layer.k],
            strides: [stride, stride],
            pads,
            group: depthwise ? c : 1,
          },
        });
        return { t: y, v: onnxAct(layer.act, name, name), shape: [n, oh, ow, out] };
      }
      case 'pad': {
        const a = layer.amount;
        const paddings = tensor(`${name}/paddings`, [4, 2], [0, 0, a, a, a, a, 0, 0], TensorType.INT32);
        const y = tensor(name, [n, h + 2 * a, w + 2 * a, c]);
        operators.push({ op: BuiltinOperator.PAD, inputs: [x.t, paddings], outputs: [y] });
        inits.push(intTensor(`${name}_pads`, [8], [0, 0, a, a, 0, 0, a, a]));
        nodes.push({ op: 'Pad', name, inputs: [x.v, `${name}_pads`], outputs: [name] });
        return { t: y, v: name, shape: [n, h + 2 * a, w + 2 * a, c] };
      }
      case 'maxpool':
      case 'avgpool': {
        const oh = Math.floor((h - layer.k) / layer.stride) + 1;
        const ow = Math.floor((w - layer.k) / layer.stride) + 1;
        const y = tensor(name, [n, oh, ow, c]);
        operators.push({
          op: layer.kind === 'maxpool' ? BuiltinOperator.MAX_POOL_2D : BuiltinOperator.AVERAGE_POOL_2D,
          inputs: [x.t],
          outputs: [y],
          options: {
            padding: Padding.VALID,
            strideH: layer.stride,
            strideW: layer.stride,
            filterH: layer.k,
            filterW: layer.k,
          },
        });
        nodes.push({
          op: layer.kind === 'maxpool' ? 'MaxPool' : 'AveragePool',
          name,
          inputs: [x.v],
          outputs: [name],
          attrs: { kernel_shape: [layer.k, layer.k], strides: [layer.stride, layer.stride] },
        });
        return { t: y, v: name, shape: [n, oh, ow, c] };
      }
      case 'fc': {
        const k = x.shape.slice(1).reduce((p, q) => p * q, 1);
        const wt = weights(layer.out * k, k);
        const bias = Float32Array.from({ length: layer.out }, () => random.normal() * 0.1);
        const fw = tensor(`${name}/weights`, [layer.out, k], wt);
        const fb = tensor(`${name}/bias`, [layer.out], bias);
        const y = tensor(name, [n, layer.out]);
        operators.push({
          op: BuiltinOperator.FULLY_CONNECTED,
          inputs: [x.t, fw, fb],
          outputs: [y],
          options: { activation: layer.act ? ACT[layer.act] : 0 },
        });
        // ONNX flattens NCHW: the same weights with the feature order (h, w, c) -> (c, h, w).
        const [hh, ww, cc] = x.shape.length === 4 ? [h, w, c] : [1, 1, k];
        const gemmW = new Float32Array(wt.length);
        for (let o = 0; o < layer.out; o++)
          for (let ch = 0; ch < cc; ch++)
            for (let p = 0; p < hh * ww; p++) gemmW[o * k + ch * hh * ww + p] = wt[o * k + p * cc + ch]!;
        inits.push(
          floatTensor(`${name}_w`, [layer.out, k], gemmW),
          floatTensor(`${name}_b`, [layer.out], bias),
        );
        nodes.push({ op: 'Flatten', name: `${name}_flatten`, inputs: [x.v], outputs: [`${name}_flat`] });
        nodes.push({
          op: 'Gemm',
          name,
          inputs: [`${name}_flat`, `${name}_w`, `${name}_b`],
          outputs: [name],
          attrs: { transB: 1 },
        });
        return { t: y, v: onnxAct(layer.act, name, name), shape: [n, layer.out] };
      }
      case 'mean': {
        const axes = tensor(`${name}/axes`, [2], [1, 2], TensorType.INT32);
        const y = tensor(name, [n, c]);
        operators.push({
          op: BuiltinOperator.MEAN,
          inputs: [x.t, axes],
          outputs: [y],
          options: { keepDims: false },
        });
        nodes.push({ op: 'GlobalAveragePool', name, inputs: [x.v], outputs: [`${name}_pooled`] });
        nodes.push({ op: 'Flatten', name: `${name}_flatten`, inputs: [`${name}_pooled`], outputs: [name] });
        return { t: y, v: name, shape: [n, c] };
      }
      case 'softmax':
      case 'logistic': {
        const y = tensor(name, x.shape);
        const softmax = layer.kind === 'softmax';
        operators.push({
          op: softmax ? BuiltinOperator.SOFTMAX : BuiltinOperator.LOGISTIC,
          inputs: [x.t],
          outputs: [y],
          ...(softmax ? { options: { beta: 1 } } : {}),
        });
        nodes.push({ op: softmax ? 'Softmax' : 'Sigmoid', name, inputs: [x.v], outputs: [name] });
        return { t: y, v: name, shape: x.shape };
      }
      case 'hardswish': {
        const y = tensor(name, x.shape);
        operators.push({ op: BuiltinOperator.HARD_SWISH, inputs: [x.t], outputs: [y] });
        // x * clip(x + 3, 0, 6) / 6 in ONNX ops the importer has.
        inits.push(
          floatTensor(`${name}_3`, [], [3]),
          floatTensor(`${name}_0`, [], [0]),
          floatTensor(`${name}_6`, [], [6]),
          floatTensor(`${name}_sixth`, [], [1 / 6]),
        );
        nodes.push(
          { op: 'Add', name: `${name}_add`, inputs: [x.v, `${name}_3`], outputs: [`${name}_p3`] },
          {
            op: 'Clip',
            name: `${name}_clip`,
            inputs: [`${name}_p3`, `${name}_0`, `${name}_6`],
            outputs: [`${name}_r6`],
          },
          {
            op: 'Mul',
            name: `${name}_scale`,
            inputs: [`${name}_r6`, `${name}_sixth`],
            outputs: [`${name}_g`],
          },
          { op: 'Mul', name, inputs: [x.v, `${name}_g`], outputs: [name] },
        );
        return { t: y, v: name, shape: x.shape };
      }
      case 'mul-const': {
        // A per-channel scale (an SE block's multiply with constant weights).
        const scale = Float32Array.from({ length: c }, () => 0.5 + random.next());
        const s = tensor(`${name}/scale`, [c], scale);
        const y = tensor(name, x.shape);
        operators.push({ op: BuiltinOperator.MUL, inputs: [x.t, s], outputs: [y], options: {} });
        inits.push(floatTensor(`${name}_s`, [1, c, 1, 1], scale));
        nodes.push({ op: 'Mul', name, inputs: [x.v, `${name}_s`], outputs: [name] });
        return { t: y, v: name, shape: x.shape };
      }
      case 'residual':
      case 'concat': {
        const branch = layer.layers.reduce(apply, x);
        const residual = layer.kind === 'residual';
        const shape = residual ? x.shape : [n, h, w, c + branch.shape[3]!];
        const y = tensor(name, shape);
        operators.push({
          op: residual ? BuiltinOperator.ADD : BuiltinOperator.CONCATENATION,
          inputs: [x.t, branch.t],
          outputs: [y],
          options: residual ? {} : { axis: 3 },
        });
        nodes.push({
          op: residual ? 'Add' : 'Concat',
          name,
          inputs: [x.v, branch.v],
          outputs: [name],
          ...(residual ? {} : { attrs: { axis: 1 } }),
        });
        return { t: y, v: name, shape };
      }
    }
  };

  const input = tensor('input', [...net.input]);
  const out = net.layers.reduce(apply, { t: input, v: 'input', shape: [...net.input] });
  const [n, h, w, c] = net.input;
  const onnx = buildModel({
    nodes,
    inputs: [{ name: 'input', dims: [n, c, h, w] }],
    outputs: [{ name: out.v, dims: out.shape }],
    initializers: inits,
  });
  return { tflite: { tensors, inputs: [input], outputs: [out.t], operators }, onnx };
}

/** Symmetric int8 values of `data` per slice along `axis` of `shape` (scale = max |x| / 127). */
function symmetric(
  data: ArrayLike<number>,
  shape: number[],
  axis: number,
): { q: Int8Array; scale: number[] } {
  const channels = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((p, q) => p * q, 1);
  const channelOf = (i: number) => Math.floor(i / inner) % channels;
  const max = new Array<number>(channels).fill(0);
  for (let i = 0; i < data.length; i++) max[channelOf(i)] = Math.max(max[channelOf(i)]!, Math.abs(data[i]!));
  const scale = max.map((m) => (m > 0 ? m / 127 : 1));
  const q = Int8Array.from(data, (v, i) =>
    Math.max(-127, Math.min(127, Math.round(v / scale[channelOf(i)]!))),
  );
  return { q, scale };
}

/** The fully-int8 form of a float TFLite network, given the [min, max] each activation tensor reaches. */
export function quantizeNetwork(
  float: TfliteModelSpec,
  ranges: ReadonlyMap<number, [number, number]>,
): TfliteModelSpec {
  const tensors: TfliteTensorSpec[] = float.tensors.map((t) => ({ ...t }));
  const activation = (t: number) => {
    const [lo, hi] = ranges.get(t)!;
    const min = Math.min(lo, 0);
    const max = Math.max(hi, 0, min + 1e-3);
    const scale = (max - min) / 255;
    const zeroPoint = Math.max(-128, Math.min(127, Math.round(-128 - min / scale)));
    return { scale: [scale], zeroPoint: [zeroPoint] };
  };
  const producers = new Map(float.operators.map((op) => [op.outputs[0]!, op]));
  const quantOf = (t: number): { scale: number[]; zeroPoint: number[] } => {
    const op = producers.get(t);
    // Pools, reshapes and pads keep their input's quantization, as TFLite requires; softmax and logistic
    // have the fixed output quantization of TFLite's int8 kernels.
    if (
      op &&
      [BuiltinOperator.MAX_POOL_2D, BuiltinOperator.AVERAGE_POOL_2D, BuiltinOperator.PAD].includes(op.op)
    )
      return quantOf(op.inputs[0]!);
    if (op && [BuiltinOperator.SOFTMAX, BuiltinOperator.LOGISTIC].includes(op.op))
      return { scale: [1 / 256], zeroPoint: [-128] };
    return activation(t);
  };
  float.tensors.forEach((t, i) => {
    if (t.data === undefined) tensors[i] = { ...t, type: TensorType.INT8, quant: quantOf(i) };
  });
  for (const op of float.operators) {
    if (op.op === BuiltinOperator.MUL) {
      // A constant operand: int8, symmetric per tensor.
      for (const t of op.inputs) {
        const spec = tensors[t]!;
        if (spec.data === undefined) continue;
        const { q, scale } = symmetric(spec.data, [1, spec.data.length], 0);
        tensors[t] = { ...spec, type: TensorType.INT8, data: q, quant: { scale, zeroPoint: [0] } };
      }
    }
    if (
      op.op !== BuiltinOperator.CONV_2D &&
      op.op !== BuiltinOperator.DEPTHWISE_CONV_2D &&
      op.op !== BuiltinOperator.FULLY_CONNECTED
    )
      continue;
    const [x, wIndex, bIndex] = op.inputs as [number, number, number];
    const w = tensors[wIndex]!;
    const axis = op.op === BuiltinOperator.DEPTHWISE_CONV_2D ? 3 : 0;
    const fc = op.op === BuiltinOperator.FULLY_CONNECTED;
    // Per-channel filters for convolutions; FULLY_CONNECTED per tensor (what Arm NN 20.08 takes).
    const { q, scale } = fc
      ? (() => {
          const r = symmetric(w.data!, [1, (w.data as Float32Array).length], 0);
          return { q: r.q, scale: r.scale };
        })()
      : symmetric(w.data!, w.shape, axis);
    tensors[wIndex] = {
      ...w,
      type: TensorType.INT8,
      data: q,
      quant: { scale, zeroPoint: scale.map(() => 0), ...(scale.length > 1 ? { axis } : {}) },
    };
    const inScale = tensors[x]!.quant!.scale[0]!;
    const b = tensors[bIndex]!;
    const biasScale = (o: number) => inScale * scale[scale.length > 1 ? o : 0]!;
    tensors[bIndex] = {
      ...b,
      type: TensorType.INT32,
      data: Int32Array.from(b.data!, (v, o) => Math.round(v / biasScale(o))),
      quant: {
        scale: Array.from({ length: b.shape[0]! }, (_, o) => biasScale(o)).slice(
          0,
          scale.length > 1 ? b.shape[0] : 1,
        ),
        zeroPoint: new Array<number>(scale.length > 1 ? b.shape[0]! : 1).fill(0),
      },
    };
  }
  // Float in and out through QUANTIZE / DEQUANTIZE.
  const input = float.inputs[0]!;
  const output = float.outputs[0]!;
  const floatIn =
    tensors.push({ name: 'input_f32', type: TensorType.FLOAT32, shape: [...float.tensors[input]!.shape] }) -
    1;
  const floatOut =
    tensors.push({ name: 'output_f32', type: TensorType.FLOAT32, shape: [...float.tensors[output]!.shape] }) -
    1;
  return {
    tensors,
    inputs: [floatIn],
    outputs: [floatOut],
    operators: [
      { op: BuiltinOperator.QUANTIZE, inputs: [floatIn], outputs: [input] },
      ...float.operators,
      { op: BuiltinOperator.DEQUANTIZE, inputs: [output], outputs: [floatOut] },
    ],
  };
}

/** `net` with each PAD + VALID convolution written as one SAME-padded convolution (the same function when
 * the PAD is the SAME padding, as in MOBILENET_BLOCK). */
export function padsAsSame(net: Network): Network {
  const rewrite = (layers: Layer[]): Layer[] =>
    layers.flatMap((layer, i): Layer[] => {
      const next = layers[i + 1];
      if (layer.kind === 'pad' && (next?.kind === 'conv' || next?.kind === 'dwconv')) return [];
      const previous = layers[i - 1];
      if ((layer.kind === 'conv' || layer.kind === 'dwconv') && previous?.kind === 'pad')
        return [{ ...layer, same: true }];
      if (layer.kind === 'residual' || layer.kind === 'concat')
        return [{ ...layer, layers: rewrite(layer.layers) }];
      return [layer];
    });
  return { ...net, layers: rewrite(net.layers) };
}

/** The float spec with every activation tensor an output, for calibration. */
export function everyActivation(spec: TfliteModelSpec): TfliteModelSpec {
  // Not a PAD's output: it folds into its convolution only when nothing else reads it.
  const padded = new Set(spec.operators.flatMap((op) => (op.op === BuiltinOperator.PAD ? op.outputs : [])));
  const activations = spec.tensors.flatMap((t, i) => (t.data === undefined && !padded.has(i) ? [i] : []));
  return { ...spec, outputs: activations };
}
