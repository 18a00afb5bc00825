// ONNX -> Whittle package content. Each ONNX node becomes IR nodes of agent/runtime/ops.ts; convolution
// and pooling run NHWC, so they are wrapped in layout transposes (NCHW <-> NHWC) that cancel between
// consecutive NHWC ops; the compile pass (agent/runtime/compile/) then sinks the rest through the
// layout-agnostic ops between them, declares an image input NHWC, and fuses activations into the layers. Shapes are inferred with the runtime's own op definitions while the graph is built,
// and any node whose inputs are all constants is evaluated right away by the runtime's executors (constant
// folding: weight transposes, Gemm's alpha and beta, Flatten/Reshape of constants). Batch norm after a
// convolution with constant weights is folded into it; a lone batch norm runs as batch_norm.
// Unsupported ops are reported together, with node names and op types, before anything is converted.
import type { Manifest, ManifestNode, TensorQuantization } from '../../agent/package/manifest.js';
import { foldBatchNorm } from '../../agent/runtime/compile/fold-batchnorm.js';
import { type CompileGraph, compileGraph } from '../../agent/runtime/compile/index.js';
import { elements, type TensorSpec } from '../../agent/runtime/tensor.js';
import { samePads } from '../../agent/runtime/window.js';
import { WhittleError } from '../../native/whittle-error.js';
import { GraphBuilder, NCHW_TO_NHWC } from '../package/graph-builder.js';
import { UnsupportedOpsError } from '../package/unsupported-ops.js';
import type { PackageContent } from '../package/writer.js';
import {
  attributeValue,
  decodeModel,
  ElemType,
  type ModelProto,
  type NodeProto,
  OnnxImportError,
  type OnnxTensor,
  tensorFromProto,
} from './onnx-proto.js';

export const SUPPORTED_ONNX_OPS = [
  'Conv',
  'Gemm',
  'MatMul',
  'Relu',
  'Clip',
  'LeakyRelu',
  'Sigmoid',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'BatchNormalization',
  'Add',
  'Mul',
  'Concat',
  'Flatten',
  'Reshape',
  'Transpose',
  'Softmax',
  'Dropout',
  'Identity',
  'QuantizeLinear',
  'DequantizeLinear',
  'QLinearConv',
  'QLinearMatMul',
  'ConvInteger',
  'MatMulInteger',
  'Constant',
  'Pad',
] as const;

export { UnsupportedOpsError } from '../package/unsupported-ops.js';

export interface OnnxImportOptions {
  /** Graph inputs to treat as constants (e.g. a test's weights fed as inputs). */
  constantInputs?: ReadonlyMap<string, OnnxTensor>;
  /** Value of a symbolic first dimension (default 1). */
  batch?: number;
  modelId?: string;
  modelVersion?: string;
  labels?: string[];
  source?: string;
  /** Run the compile pass (default true); false stores the graph as converted, layout transposes and all
   * (the reference the compiled graph is tested and measured against). */
  compile?: boolean;
}

interface Value {
  tensor: number;
}

function dtypeOf(elemType: number, where: string): TensorSpec['dtype'] | 'i64' {
  switch (elemType) {
    case ElemType.FLOAT:
    case ElemType.DOUBLE:
      return 'f32';
    case ElemType.UINT8:
      return 'u8';
    case ElemType.INT8:
      return 'i8';
    case ElemType.INT32:
      return 'i32';
    case ElemType.INT64:
      return 'i64';
    case ElemType.BOOL:
      return 'bool';
    default:
      throw new OnnxImportError(`${where}: element type ${elemType} is not supported`);
  }
}

function pads2d(
  node: NodeProto,
  attrs: Map<string, unknown>,
  inH: number,
  inW: number,
  kh: number,
  kw: number,
  strides: number[],
  dilations: number[],
): number[] {
  const autoPad = (attrs.get('auto_pad') as string | undefined) ?? 'NOTSET';
  if (autoPad === 'NOTSET') {
    const pads = (attrs.get('pads') as number[] | undefined) ?? [0, 0, 0, 0];
    // ONNX: [top, left, bottom, right]
    return pads;
  }
  if (autoPad === 'VALID') return [0, 0, 0, 0];
  const upper = samePads(inH, inW, kh, kw, strides, dilations);
  if (autoPad === 'SAME_UPPER') return upper;
  if (autoPad === 'SAME_LOWER') return [upper[2]!, upper[3]!, upper[0]!, upper[1]!];
  throw new OnnxImportError(`node "${node.name ?? ''}": auto_pad ${autoPad} is not supported`);
}

/** A Pad's padding of H and W as [top, left, bottom, right]; anything but constant zero padding of a 4-D
 * tensor's spatial axes fails. */
function spatialZeroPads(
  pad: NodeProto,
  opsetVersion: number,
  constantNumbers: (node: NodeProto, index: number, what: string) => number[],
  fail: (why: string) => never,
): number[] {
  const attrs = new Map<string, unknown>((pad.attribute ?? []).map((a) => [a.name ?? '', attributeValue(a)]));
  const mode = (attrs.get('mode') as string | undefined) ?? 'constant';
  const pads =
    opsetVersion >= 11
      ? constantNumbers(pad, 1, 'pads')
      : ((attrs.get('pads') as number[] | undefined) ?? []);
  const value =
    opsetVersion >= 11
      ? (pad.input?.[2] ?? '') === ''
        ? 0
        : constantNumbers(pad, 2, 'constant_value')[0]
      : ((attrs.get('value') as number | undefined) ?? 0);
  if (mode !== 'constant' || value !== 0)
    fail(`Pad "${pad.name ?? ''}": only constant zero padding folds into a Conv`);
  if ((pad.input?.[3] ?? '') !== '') fail(`Pad "${pad.name ?? ''}": the axes input is not supported`);
  if (
    pads.length !== 8 ||
    pads.some((p) => !Number.isInteger(p) || p < 0) ||
    [0, 1, 4, 5].some((i) => pads[i] !== 0)
  )
    fail(`Pad "${pad.name ?? ''}": only non-negative padding of H and W of an NCHW tensor folds into a Conv`);
  return [pads[2]!, pads[3]!, pads[6]!, pads[7]!];
}

/** Converts an ONNX model to package content (manifest + raw-encoded constants). */
export function importOnnx(bytes: Uint8Array, options: OnnxImportOptions = {}): PackageContent {
  const source = options.source ?? 'model';
  const model: ModelProto = decodeModel(bytes, source);
  const graph = model.graph;
  if (!graph) throw new OnnxImportError(`${source} has no graph`);
  const opset = model.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  const opsetVersion = opset ? Number(opset.version ?? 1) : 1;
  const onnxNodes = graph.node ?? [];
  const unsupported = onnxNodes
    .map((n, i) => ({ name: n.name || `node${i}`, opType: n.opType ?? '', domain: n.domain ?? '' }))
    .filter(
      (n) =>
        (n.domain !== '' && n.domain !== 'ai.onnx') ||
        !(SUPPORTED_ONNX_OPS as readonly string[]).includes(n.opType),
    );
  if (unsupported.length > 0)
    throw new UnsupportedOpsError(
      unsupported.map(({ name, opType }) => ({ name, opType })),
      SUPPORTED_ONNX_OPS,
    );

  const b = new GraphBuilder();
  const values = new Map<string, Value>();
  const declareConstant = (t: OnnxTensor, name: string): void => {
    const dtype = dtypeOf(t.elemType, `initializer "${name}"`);
    if (dtype === 'i64') {
      const index = b.addTensor(name, { dtype: 'i32', shape: t.dims });
      b.ints.set(index, Array.from(t.data));
      values.set(name, { tensor: index });
      return;
    }
    values.set(name, { tensor: b.constant(name, dtype, t.dims, t.data) });
  };
  for (const init of graph.initializer ?? []) declareConstant(tensorFromProto(init, source), init.name ?? '');
  for (const [name, t] of options.constantInputs ?? []) declareConstant(t, name);

  const manifestInputs: Manifest['inputs'] = [];
  for (const input of graph.input ?? []) {
    const name = input.name ?? '';
    if (values.has(name)) continue;
    const tensorType = input.type?.tensorType;
    if (!tensorType) throw new OnnxImportError(`graph input "${name}" is not a tensor`);
    const dtype = dtypeOf(tensorType.elemType ?? 0, `graph input "${name}"`);
    if (dtype === 'i64')
      throw new OnnxImportError(
        `graph input "${name}" is int64; only shapes may be int64 and they must be constant`,
      );
    const shape = (tensorType.shape?.dim ?? []).map((d, i) => {
      if ((d as { value?: string }).value === 'dimValue' && Number(d.dimValue) >= 0)
        return Number(d.dimValue);
      if (i === 0) return options.batch ?? 1;
      throw new OnnxImportError(
        `graph input "${name}" has a symbolic dimension ${i} (${d.dimParam ?? '?'}): only the batch may be symbolic`,
      );
    });
    const tensor = b.addTensor(name, { dtype, shape });
    values.set(name, { tensor });
    // A 4-D input with 1 or 3 channels is taken as an image scaled to [0, 1] (`whittle run` accepts images).
    const [, c, h, w] = shape;
    const image = shape.length === 4 && (c === 1 || c === 3) && dtype === 'f32';
    manifestInputs.push({
      name,
      tensor,
      layout: shape.length === 4 ? 'NCHW' : shape.length === 2 ? 'NC' : 'other',
      ...(image
        ? { preprocessing: { kind: 'image', width: w!, height: h!, channels: c, mean: [0], std: [1] } }
        : {}),
    });
  }
  if (manifestInputs.length === 0)
    throw new OnnxImportError(`${source}: the graph has no non-constant input`);

  // Batch norm folded into a preceding Conv whose weights are constants and whose output feeds only it.
  const consumers = new Map<string, number>();
  for (const n of onnxNodes) for (const i of n.input ?? []) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const foldedInto = new Map<NodeProto, NodeProto>();
  const skip = new Set<NodeProto>();
  for (const n of onnxNodes) {
    if (n.opType !== 'BatchNormalization') continue;
    const producer = onnxNodes.find((p) => p.opType === 'Conv' && (p.output ?? [])[0] === n.input?.[0]);
    const params = (n.input ?? []).slice(1);
    const training =
      onnxNodes.length > 0 && Number(n.attribute?.find((a) => a.name === 'training_mode')?.i ?? 0) === 1;
    if (
      producer &&
      !training &&
      consumers.get(n.input![0]!) === 1 &&
      b.data.has(values.get(producer.input![1]!)?.tensor ?? -1) &&
      params.every((p) => b.data.has(values.get(p)?.tensor ?? -1))
    ) {
      foldedInto.set(producer, n);
      skip.add(n);
    }
  }

  // Zero padding of H and W read only by (fp32) Conv nodes: folded into their pads; the runtime has no pad op.
  const paddedBy = new Map<string, NodeProto>();
  for (const n of onnxNodes) {
    const out = n.output?.[0];
    if (n.opType !== 'Pad' || out === undefined) continue;
    const readers = onnxNodes.filter((r) => (r.input ?? []).includes(out));
    if (readers.length > 0 && readers.every((r) => r.opType === 'Conv' && r.input?.[0] === out))
      paddedBy.set(out, n);
  }

  const get = (node: NodeProto, index: number, what: string): number => {
    const name = node.input?.[index] ?? '';
    const value = values.get(name);
    if (name === '' || value === undefined) {
      throw new OnnxImportError(
        `node "${node.name ?? ''}" (${node.opType ?? ''}): input ${index} (${what}) "${name}" is not defined`,
      );
    }
    return value.tensor;
  };
  const optional = (node: NodeProto, index: number): number => {
    const name = node.input?.[index] ?? '';
    return name === '' ? -1 : (values.get(name)?.tensor ?? -1);
  };
  const constantNumbers = (node: NodeProto, index: number, what: string): number[] => {
    const t = get(node, index, what);
    const ints = b.ints.get(t);
    if (ints) return ints;
    const data = b.data.get(t);
    if (!data) {
      throw new OnnxImportError(
        `node "${node.name ?? ''}" (${node.opType ?? ''}): ${what} must be a constant (an initializer) for a static memory plan`,
      );
    }
    return Array.from(data);
  };
  const quantOf = (
    node: NodeProto,
    scaleIndex: number,
    zeroIndex: number,
    axis: number | undefined,
    dtype: string,
  ): TensorQuantization => {
    const scale = constantNumbers(node, scaleIndex, 'scale');
    const zero =
      optional(node, zeroIndex) < 0 ? scale.map(() => 0) : constantNumbers(node, zeroIndex, 'zero point');
    if (scale.some((s) => !(s > 0) || !Number.isFinite(s)))
      throw new OnnxImportError(`node "${node.name ?? ''}": scales must be positive`);
    void dtype;
    return { scale, zeroPoint: zero, ...(scale.length > 1 ? { axis: axis ?? 0 } : {}) };
  };

  onnxNodes.forEach((node, index) => {
    if (skip.has(node)) return;
    const name = node.name || `${node.opType ?? 'node'}_${index}`;
    const attrs = new Map<string, unknown>(
      (node.attribute ?? []).map((a) => [a.name ?? '', attributeValue(a)]),
    );
    const fail = (why: string): never => {
      throw new OnnxImportError(`node "${name}" (${node.opType ?? ''}): ${why}`);
    };
    const set = (outIndex: number, tensor: number): void => {
      const out = node.output?.[outIndex];
      if (out) values.set(out, { tensor });
    };
    const rank4 = (t: number, what: string): void => {
      if (b.tensors[t]!.shape.length !== 4)
        fail(`${what} must be 4-D (N, C, H, W); ${b.tensors[t]!.shape.length - 2}-D is not supported`);
    };
    const int = (key: string, fallback: number): number => (attrs.get(key) as number | undefined) ?? fallback;
    const ints = (key: string, fallback: number[]): number[] =>
      (attrs.get(key) as number[] | undefined) ?? fallback;

    switch (node.opType) {
      case 'Conv':
      case 'QLinearConv':
      case 'ConvInteger': {
        const quantized = node.opType === 'QLinearConv';
        const wIndex = quantized ? 3 : 1;
        const pad = paddedBy.get(node.input?.[0] ?? '');
        let x = pad ? get(pad, 0, 'data') : get(node, 0, 'X');
        let w = get(node, wIndex, 'W');
        rank4(x, 'X');
        rank4(w, 'W');
        const [, , inH, inW] = b.tensors[x]!.shape as [number, number, number, number];
        const [outC, , kh, kw] = b.tensors[w]!.shape as [number, number, number, number];
        const strides = ints('strides', [1, 1]);
        const dilations = ints('dilations', [1, 1]);
        let pads = pads2d(node, attrs, inH, inW, kh, kw, strides, dilations);
        if (pad) {
          if (!['NOTSET', 'VALID'].includes((attrs.get('auto_pad') as string | undefined) ?? 'NOTSET'))
            fail('a Pad before a Conv with auto_pad SAME_* is not supported');
          const extra = spatialZeroPads(pad, opsetVersion, constantNumbers, fail);
          pads = pads.map((p, i) => p + extra[i]!);
        }
        const convAttrs = { strides, dilations, pads, groups: int('group', 1) };
        if (quantized) {
          const xDtype = b.tensors[x]!.dtype;
          x = b.withQuant(x, quantOf(node, 1, 2, undefined, xDtype), name);
          w = b.withQuant(w, quantOf(node, 4, 5, 0, b.tensors[w]!.dtype), name);
          const yQuant = quantOf(node, 6, 7, undefined, xDtype);
          const yDtype = b.tensors[get(node, 7, 'y_zero_point')]!.dtype;
          const bias = optional(node, 8);
          const wNhwc = b.emit(`${name}/weights_ohwi`, 'transpose', 'int8', [w], { perm: NCHW_TO_NHWC })[0]!;
          b.tensors[wNhwc]!.quant = b.tensors[w]!.quant;
          const [y] = b.emit(
            name,
            'qconv2d',
            'int8',
            [b.toNhwc(x, name), wNhwc, bias],
            { ...convAttrs, rounding: 'onnx' },
            [{ dtype: yDtype, quant: yQuant }],
          );
          set(0, b.toNchw(y!, name));
        } else if (node.opType === 'ConvInteger') {
          const xq = optional(node, 2) < 0 ? [0] : constantNumbers(node, 2, 'x_zero_point');
          const wq = optional(node, 3) < 0 ? [0] : constantNumbers(node, 3, 'w_zero_point');
          x = b.withQuant(x, { scale: [1], zeroPoint: xq }, name);
          w = b.withQuant(
            w,
            { scale: wq.map(() => 1), zeroPoint: wq, ...(wq.length > 1 ? { axis: 0 } : {}) },
            name,
          );
          const wNhwc = b.emit(`${name}/weights_ohwi`, 'transpose', 'int8', [w], { perm: NCHW_TO_NHWC })[0]!;
          b.tensors[wNhwc]!.quant = b.tensors[w]!.quant;
          const [y] = b.emit(name, 'conv2d_integer', 'int8', [b.toNhwc(x, name), wNhwc], convAttrs);
          set(0, b.toNchw(y!, name));
        } else {
          let bias = optional(node, 2);
          const bn = foldedInto.get(node);
          if (bn) {
            const [gamma, beta, mean, variance] = [1, 2, 3, 4].map(
              (i) => b.data.get(get(bn, i, 'batch norm parameter')) as Float32Array,
            );
            const epsilon = bn.attribute?.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
            const folded = foldBatchNorm(
              b.data.get(w) as Float32Array,
              bias < 0 ? null : (b.data.get(bias) as Float32Array),
              outC,
              {
                gamma: gamma!,
                beta: beta!,
                mean: mean!,
                variance: variance!,
                epsilon,
              },
            );
            w = b.constant(`${name}.folded_weight`, 'f32', b.tensors[w]!.shape, folded.weights);
            bias = b.constant(`${name}.folded_bias`, 'f32', [outC], folded.bias);
          }
          const wNhwc = b.emit(`${name}/weights_ohwi`, 'transpose', 'f32', [w], { perm: NCHW_TO_NHWC })[0]!;
          const [y] = b.emit(name, 'conv2d', 'f32', [b.toNhwc(x, name), wNhwc, bias], convAttrs);
          set(0, b.toNchw(y!, name));
          if (bn) values.set(bn.output![0]!, values.get(node.output![0]!)!);
        }
        break;
      }
      case 'Constant': {
        // A constant tensor (PyTorch writes Clip's bounds and Reshape's shape so): an initializer by another name.
        const value = attrs.get('value');
        if (value === undefined || typeof value !== 'object' || Array.isArray(value))
          fail('only the tensor form (attribute "value") is supported');
        declareConstant(value as OnnxTensor, node.output?.[0] ?? name);
        break;
      }
      case 'Pad':
        if (!paddedBy.has(node.output?.[0] ?? ''))
          fail(
            'the runtime has no pad op: only zero padding of H and W read by Conv layers is supported (folded into their pads)',
          );
        // Checked and folded where the Conv reads it.
        break;
      case 'MaxPool':
      case 'AveragePool': {
        if ((node.output ?? []).filter((o) => o !== '').length > 1)
          fail('the Indices output is not supported');
        let x = get(node, 0, 'X');
        // 1-D pooling is 2-D pooling of a height-1 image.
        const oneD = b.tensors[x]!.shape.length === 3;
        const lift = (values: number[], fill: number): number[] => (oneD ? [fill, ...values] : values);
        if (oneD) {
          const [n, c, l] = b.tensors[x]!.shape as [number, number, number];
          x = b.emit(`${name}/to_2d`, 'reshape', b.formatOf(x), [x], { shape: [n, c, 1, l] })[0]!;
        }
        rank4(x, 'X');
        const [, , inH, inW] = b.tensors[x]!.shape as [number, number, number, number];
        const kernel = lift(ints('kernel_shape', []), 1);
        if (kernel.length !== 2) fail('kernel_shape must have 2 entries (or 1 for 1-D pooling)');
        const strides = lift(ints('strides', oneD ? [1] : [1, 1]), 1);
        const dilations = lift(ints('dilations', oneD ? [1] : [1, 1]), 1);
        const rawPads = attrs.get('pads') as number[] | undefined;
        if (oneD && rawPads) attrs.set('pads', [0, rawPads[0]!, 0, rawPads[1]!]);
        const pads = pads2d(node, attrs, inH, inW, kernel[0]!, kernel[1]!, strides, dilations);
        const poolAttrs = {
          kernel,
          strides,
          dilations,
          pads,
          ceil_mode: int('ceil_mode', 0),
          count_include_pad: int('count_include_pad', 0),
        };
        const [y] = b.emit(
          name,
          node.opType === 'MaxPool' ? 'max_pool' : 'avg_pool',
          b.formatOf(x),
          [b.toNhwc(x, name)],
          poolAttrs,
        );
        let out = b.toNchw(y!, name);
        if (oneD) {
          const [n, c, , l] = b.tensors[out]!.shape as [number, number, number, number];
          out = b.emit(`${name}/to_1d`, 'reshape', b.formatOf(out), [out], { shape: [n, c, l] })[0]!;
        }
        set(0, out);
        break;
      }
      case 'GlobalAveragePool': {
        const x = get(node, 0, 'X');
        rank4(x, 'X');
        const [y] = b.emit(name, 'global_avgpool', 'f32', [b.toNhwc(x, name)], {});
        set(0, b.toNchw(y!, name));
        break;
      }
      case 'Gemm': {
        let a = get(node, 0, 'A');
        let w = get(node, 1, 'B');
        const c = optional(node, 2);
        const alpha = (attrs.get('alpha') as number | undefined) ?? 1;
        const beta = (attrs.get('beta') as number | undefined) ?? 1;
        if (int('transA', 0) === 1)
          a = b.emit(`${name}/transpose_a`, 'transpose', 'f32', [a], { perm: [1, 0] })[0]!;
        const transB = int('transB', 0) === 1;
        const n = b.tensors[w]!.shape[transB ? 0 : 1]!;
        const biasFoldable =
          c < 0 ||
          (b.data.has(c) &&
            elements(b.tensors[c]!.shape) === n &&
            b.tensors[c]!.shape.length <= 2 &&
            (b.tensors[c]!.shape.length < 2 || b.tensors[c]!.shape[0] === 1));
        if (b.data.has(w) && biasFoldable) {
          // y = A W^T + bias with W = alpha * B^T (or alpha * B when transB): one fully-connected layer.
          if (!transB) w = b.emit(`${name}/weights_t`, 'transpose', 'f32', [w], { perm: [1, 0] })[0]!;
          if (alpha !== 1)
            w = b.emit(
              `${name}/alpha`,
              'mul',
              'f32',
              [w, b.constant(`${name}.alpha`, 'f32', [], [alpha])],
              {},
            )[0]!;
          let bias = -1;
          if (c >= 0) {
            bias = b.emit(`${name}/bias`, 'reshape', 'f32', [c], { shape: [n] })[0]!;
            if (beta !== 1)
              bias = b.emit(
                `${name}/beta`,
                'mul',
                'f32',
                [bias, b.constant(`${name}.beta`, 'f32', [], [beta])],
                {},
              )[0]!;
          }
          set(0, b.emit(name, 'fully_connected', 'f32', [a, w, bias], {})[0]!);
        } else {
          if (transB) w = b.emit(`${name}/transpose_b`, 'transpose', 'f32', [w], { perm: [1, 0] })[0]!;
          let y = b.emit(name, 'matmul', 'f32', [a, w], {})[0]!;
          if (alpha !== 1)
            y = b.emit(
              `${name}/alpha`,
              'mul',
              'f32',
              [y, b.constant(`${name}.alpha`, 'f32', [], [alpha])],
              {},
            )[0]!;
          if (c >= 0) {
            let bias = c;
            if (beta !== 1)
              bias = b.emit(
                `${name}/beta`,
                'mul',
                'f32',
                [c, b.constant(`${name}.beta`, 'f32', [], [beta])],
                {},
              )[0]!;
            y = b.emit(`${name}/bias`, 'add', 'f32', [y, bias], {})[0]!;
          }
          set(0, y);
        }
        break;
      }
      case 'MatMul': {
        const a = get(node, 0, 'A');
        const w = get(node, 1, 'B');
        if (
          b.data.has(w) &&
          b.tensors[w]!.shape.length === 2 &&
          b.tensors[a]!.shape.length === 2 &&
          !b.data.has(a)
        ) {
          const wt = b.emit(`${name}/weights_t`, 'transpose', 'f32', [w], { perm: [1, 0] })[0]!;
          set(0, b.emit(name, 'fully_connected', 'f32', [a, wt, -1], {})[0]!);
        } else {
          set(0, b.emit(name, 'matmul', 'f32', [a, w], {})[0]!);
        }
        break;
      }
      case 'QLinearMatMul': {
        const a = b.withQuant(get(node, 0, 'a'), quantOf(node, 1, 2, undefined, ''), name);
        const w = b.withQuant(get(node, 3, 'b'), quantOf(node, 4, 5, undefined, ''), name);
        const yDtype = b.tensors[get(node, 7, 'y_zero_point')]!.dtype;
        set(
          0,
          b.emit(name, 'qmatmul', 'int8', [a, w], { rounding: 'onnx' }, [
            { dtype: yDtype, quant: quantOf(node, 6, 7, undefined, '') },
          ])[0]!,
        );
        break;
      }
      case 'MatMulInteger': {
        const azp = optional(node, 2) < 0 ? [0] : constantNumbers(node, 2, 'a_zero_point');
        const bzp = optional(node, 3) < 0 ? [0] : constantNumbers(node, 3, 'b_zero_point');
        if (azp.length > 1 || bzp.length > 1)
          fail('per-row or per-column zero points are not supported (per-tensor only)');
        const a = b.withQuant(get(node, 0, 'A'), { scale: [1], zeroPoint: azp }, name);
        const w = b.withQuant(get(node, 1, 'B'), { scale: [1], zeroPoint: bzp }, name);
        set(0, b.emit(name, 'matmul_integer', 'int8', [a, w], {})[0]!);
        break;
      }
      case 'Relu':
        set(0, b.emit(name, 'clip', 'f32', [get(node, 0, 'X')], { min: 0 })[0]!);
        break;
      case 'Clip': {
        const x = get(node, 0, 'input');
        let min = attrs.get('min') as number | undefined;
        let max = attrs.get('max') as number | undefined;
        if (opsetVersion >= 11) {
          if (optional(node, 1) >= 0) min = constantNumbers(node, 1, 'min')[0];
          if (optional(node, 2) >= 0) max = constantNumbers(node, 2, 'max')[0];
        }
        const clipAttrs: ManifestNode['attrs'] = {};
        if (min !== undefined) clipAttrs.min = min;
        if (max !== undefined) clipAttrs.max = max;
        set(0, b.emit(name, 'clip', b.formatOf(x), [x], clipAttrs)[0]!);
        break;
      }
      case 'LeakyRelu':
        set(
          0,
          b.emit(name, 'leaky_relu', 'f32', [get(node, 0, 'X')], {
            alpha: (attrs.get('alpha') as number | undefined) ?? 0.01,
          })[0]!,
        );
        break;
      case 'Sigmoid':
        set(0, b.emit(name, 'sigmoid', 'f32', [get(node, 0, 'X')], {})[0]!);
        break;
      case 'BatchNormalization': {
        if (int('training_mode', 0) === 1) fail('training_mode=1 is not supported (inference only)');
        if ((node.output ?? []).filter((o) => o !== '').length > 1)
          fail('running mean/variance outputs are training-only');
        const inputs = [0, 1, 2, 3, 4].map((i) => get(node, i, ['X', 'scale', 'B', 'mean', 'var'][i]!));
        set(
          0,
          b.emit(name, 'batch_norm', 'f32', inputs, {
            epsilon: (attrs.get('epsilon') as number | undefined) ?? 1e-5,
            axis: 1,
          })[0]!,
        );
        break;
      }
      case 'Add':
      case 'Mul': {
        const x = get(node, 0, 'A');
        set(
          0,
          b.emit(name, node.opType === 'Add' ? 'add' : 'mul', b.formatOf(x), [x, get(node, 1, 'B')], {})[0]!,
        );
        break;
      }
      case 'Concat': {
        const inputs = (node.input ?? []).map((_, i) => get(node, i, `input ${i}`));
        set(0, b.emit(name, 'concat', b.formatOf(inputs[0]!), inputs, { axis: int('axis', 0) })[0]!);
        break;
      }
      case 'Flatten': {
        const x = get(node, 0, 'input');
        const shape = b.tensors[x]!.shape;
        let axis = int('axis', 1);
        if (axis < 0) axis += shape.length;
        if (axis < 0 || axis > shape.length) fail(`axis ${axis} outside rank ${shape.length}`);
        // [-1, inner] rather than fixed numbers, so the package still runs at any batch size.
        const target = axis === 0 ? [1, -1] : [-1, elements(shape.slice(axis))];
        set(0, b.emit(name, 'reshape', b.formatOf(x), [x], { shape: target })[0]!);
        break;
      }
      case 'Reshape': {
        const x = get(node, 0, 'data');
        const shape = opsetVersion >= 5 ? constantNumbers(node, 1, 'shape') : ints('shape', []);
        set(0, b.emit(name, 'reshape', b.formatOf(x), [x], { shape, allowzero: int('allowzero', 0) })[0]!);
        break;
      }
      case 'Transpose': {
        const x = get(node, 0, 'data');
        const rank = b.tensors[x]!.shape.length;
        const perm = ints('perm', [...Array(rank).keys()].reverse());
        set(0, b.emit(name, 'transpose', b.formatOf(x), [x], { perm })[0]!);
        break;
      }
      case 'Softmax': {
        const x = get(node, 0, 'input');
        const axis = int('axis', opsetVersion >= 13 ? -1 : 1);
        set(0, b.emit(name, 'softmax', 'f32', [x], { axis, coerce2d: opsetVersion >= 13 ? 0 : 1 })[0]!);
        break;
      }
      case 'Dropout':
      case 'Identity': {
        const x = get(node, 0, 'input');
        if (node.opType === 'Dropout' && optional(node, 2) >= 0) {
          // Training-mode dropout is random; it is the identity only when it is off or its ratio is 0.
          const training = constantNumbers(node, 2, 'training_mode')[0] !== 0;
          const ratio = optional(node, 1) >= 0 ? constantNumbers(node, 1, 'ratio')[0]! : 0.5;
          if (training && ratio !== 0)
            fail('training-mode dropout (random) is not supported; export the model in eval mode');
        }
        // Inference: Dropout is the identity; its mask output (if asked for) is all true.
        set(0, b.emit(name, 'identity', b.formatOf(x), [x], {})[0]!);
        if (node.opType === 'Dropout' && node.output?.[1]) {
          const shape = b.tensors[x]!.shape;
          set(1, b.constant(`${name}.mask`, 'bool', [...shape], new Uint8Array(elements(shape)).fill(1)));
        }
        break;
      }
      case 'QuantizeLinear': {
        const x = get(node, 0, 'x');
        const zp = optional(node, 2);
        const dtype = zp < 0 ? 'u8' : b.tensors[zp]!.dtype;
        const quant = quantOf(
          node,
          1,
          2,
          int('axis', 1) < 0 ? int('axis', 1) + b.tensors[x]!.shape.length : int('axis', 1),
          dtype,
        );
        set(0, b.emit(name, 'quantize_linear', 'int8', [x], {}, [{ dtype, quant }])[0]!);
        break;
      }
      case 'DequantizeLinear': {
        const raw = get(node, 0, 'x');
        let axis = int('axis', 1);
        if (axis < 0) axis += b.tensors[raw]!.shape.length;
        const x = b.withQuant(raw, quantOf(node, 1, 2, axis, b.tensors[raw]!.dtype), name);
        set(0, b.emit(name, 'dequantize_linear', 'int8', [x], {})[0]!);
        break;
      }
      default:
        fail('unsupported op');
    }
  });

  // Outputs, then dead-code elimination and renumbering of the tensors that remain.
  const outputs = (graph.output ?? []).map((o) => {
    const value = values.get(o.name ?? '');
    if (!value) throw new OnnxImportError(`graph output "${o.name ?? ''}" is never produced`);
    return { name: o.name ?? '', tensor: value.tensor };
  });
  for (const t of b.ints.keys()) {
    if (outputs.some((o) => o.tensor === t) || b.nodes.some((n) => n.inputs.includes(t))) {
      throw new OnnxImportError(
        `int64 tensor "${b.tensors[t]!.name}" is used as data; only shapes may be int64`,
      );
    }
  }
  // The compile pass: one NHWC layout (the image input declared NHWC, transposes sunk, cancelled and folded
  // into weights) and the layer fusions, so the package is stored as the runtime plans it.
  const compiled: CompileGraph = {
    tensors: b.tensors,
    nodes: b.nodes.slice(),
    inputs: manifestInputs,
    outputs,
    constants: new Map(b.data),
  };
  if (options.compile !== false) compileGraph(compiled, { inputLayout: 'nhwc' });
  for (const [t, data] of compiled.constants) if (data !== 'opaque') b.data.set(t, data);
  b.nodes.splice(0, b.nodes.length, ...compiled.nodes);
  return b.finish(compiled.inputs, compiled.outputs, {
    id: options.modelId ?? (graph.name || 'onnx-model'),
    version: options.modelVersion ?? '1',
    name: source,
    ...(options.labels ? { labels: options.labels } : {}),
  });
}
