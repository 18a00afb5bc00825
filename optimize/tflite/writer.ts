// Writes a .tflite flatbuffer from plain tensors and operators, through the same generated schema code the
// reader uses (schema-generated.ts). No TFLite converter runs here, so this is how the tests build their
// TFLite models and how the fuzz benchmark gets well-formed seeds to damage. It writes what the TFLite
// converter writes for the ops the importer reads: schema version 3, buffer 0 empty, one buffer per
// constant, the builtin code in both OperatorCode slots (older readers such as Arm NN 20.08 read slot 0).
import * as flatbuffers from 'flatbuffers';

import type { TfliteOptions, TfliteQuantization } from './reader.js';
import {
  AddOptions,
  Buffer as TfliteBuffer,
  BuiltinOperator,
  BuiltinOptions,
  ConcatenationOptions,
  Conv2DOptions,
  DepthwiseConv2DOptions,
  FullyConnectedOptions,
  Model,
  MulOptions,
  Operator,
  OperatorCode,
  Pool2DOptions,
  QuantizationParameters,
  ReducerOptions,
  ReshapeOptions,
  SoftmaxOptions,
  SubGraph,
  Tensor,
  TensorType,
} from './schema-generated.js';

export interface TfliteTensorSpec {
  name: string;
  type: TensorType;
  shape: number[];
  /** Constant values (converted to `type`), or raw little-endian bytes. */
  data?: ArrayLike<number> | Uint8Array;
  quant?: TfliteQuantization;
}

export interface TfliteOperatorSpec {
  op: BuiltinOperator;
  inputs: number[];
  outputs: number[];
  options?: TfliteOptions;
}

export interface TfliteModelSpec {
  tensors: TfliteTensorSpec[];
  inputs: number[];
  outputs: number[];
  operators: TfliteOperatorSpec[];
  description?: string;
}

function bytesOf(type: TensorType, values: ArrayLike<number>): Uint8Array {
  const typed = (() => {
    switch (type) {
      case TensorType.FLOAT32:
        return Float32Array.from(values);
      case TensorType.INT32:
        return Int32Array.from(values);
      case TensorType.INT8:
        return Int8Array.from(values);
      case TensorType.UINT8:
        return Uint8Array.from(values);
      default:
        throw new RangeError(`the TFLite writer does not write constants of type ${TensorType[type]}`);
    }
  })();
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/** The options table of `op` (the union type and offset), from the fields the reader decodes. */
function writeOptions(
  b: flatbuffers.Builder,
  op: BuiltinOperator,
  o: TfliteOptions,
): [BuiltinOptions, flatbuffers.Offset] {
  const act = o.activation ?? 0;
  switch (op) {
    case BuiltinOperator.CONV_2D:
      return [
        BuiltinOptions.Conv2DOptions,
        Conv2DOptions.createConv2DOptions(
          b,
          o.padding ?? 0,
          o.strideW ?? 1,
          o.strideH ?? 1,
          act,
          o.dilationW ?? 1,
          o.dilationH ?? 1,
        ),
      ];
    case BuiltinOperator.DEPTHWISE_CONV_2D:
      return [
        BuiltinOptions.DepthwiseConv2DOptions,
        DepthwiseConv2DOptions.createDepthwiseConv2DOptions(
          b,
          o.padding ?? 0,
          o.strideW ?? 1,
          o.strideH ?? 1,
          o.depthMultiplier ?? 1,
          act,
          o.dilationW ?? 1,
          o.dilationH ?? 1,
        ),
      ];
    case BuiltinOperator.AVERAGE_POOL_2D:
    case BuiltinOperator.MAX_POOL_2D:
      return [
        BuiltinOptions.Pool2DOptions,
        Pool2DOptions.createPool2DOptions(
          b,
          o.padding ?? 0,
          o.strideW ?? 1,
          o.strideH ?? 1,
          o.filterW ?? 1,
          o.filterH ?? 1,
          act,
        ),
      ];
    case BuiltinOperator.FULLY_CONNECTED:
      return [
        BuiltinOptions.FullyConnectedOptions,
        FullyConnectedOptions.createFullyConnectedOptions(b, act, o.weightsFormat ?? 0, o.keepDims ?? false),
      ];
    case BuiltinOperator.SOFTMAX:
      return [BuiltinOptions.SoftmaxOptions, SoftmaxOptions.createSoftmaxOptions(b, o.beta ?? 1)];
    case BuiltinOperator.CONCATENATION:
      return [
        BuiltinOptions.ConcatenationOptions,
        ConcatenationOptions.createConcatenationOptions(b, o.axis ?? 0, act),
      ];
    case BuiltinOperator.ADD:
      return [BuiltinOptions.AddOptions, AddOptions.createAddOptions(b, act)];
    case BuiltinOperator.MUL:
      return [BuiltinOptions.MulOptions, MulOptions.createMulOptions(b, act)];
    case BuiltinOperator.RESHAPE:
      return o.newShape === undefined
        ? [BuiltinOptions.NONE, 0]
        : [
            BuiltinOptions.ReshapeOptions,
            ReshapeOptions.createReshapeOptions(b, ReshapeOptions.createNewShapeVector(b, o.newShape)),
          ];
    case BuiltinOperator.MEAN:
      return [BuiltinOptions.ReducerOptions, ReducerOptions.createReducerOptions(b, o.keepDims ?? false)];
    default:
      return [BuiltinOptions.NONE, 0];
  }
}

/** The .tflite bytes of `spec`. */
export function writeTflite(spec: TfliteModelSpec): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const codes: BuiltinOperator[] = [...new Set(spec.operators.map((o) => o.op))];

  const buffers: flatbuffers.Offset[] = [TfliteBuffer.createBuffer(b, 0)];
  const tensors = spec.tensors.map((t) => {
    let buffer = 0;
    if (t.data !== undefined) {
      const raw = t.data instanceof Uint8Array ? t.data : bytesOf(t.type, t.data);
      b.startVector(1, raw.length, 16);
      for (let i = raw.length - 1; i >= 0; i--) b.addInt8(raw[i]!);
      buffers.push(TfliteBuffer.createBuffer(b, b.endVector()));
      buffer = buffers.length - 1;
    }
    const name = b.createString(t.name);
    const shape = Tensor.createShapeVector(b, t.shape);
    let quant = 0;
    if (t.quant) {
      const scale = QuantizationParameters.createScaleVector(b, t.quant.scale);
      const zero = QuantizationParameters.createZeroPointVector(b, t.quant.zeroPoint.map(BigInt));
      QuantizationParameters.startQuantizationParameters(b);
      QuantizationParameters.addScale(b, scale);
      QuantizationParameters.addZeroPoint(b, zero);
      QuantizationParameters.addQuantizedDimension(b, t.quant.axis ?? 0);
      quant = QuantizationParameters.endQuantizationParameters(b);
    }
    Tensor.startTensor(b);
    Tensor.addShape(b, shape);
    Tensor.addType(b, t.type);
    Tensor.addBuffer(b, buffer);
    Tensor.addName(b, name);
    if (quant) Tensor.addQuantization(b, quant);
    return Tensor.endTensor(b);
  });

  const operators = spec.operators.map((o) => {
    const inputs = Operator.createInputsVector(b, o.inputs);
    const outputs = Operator.createOutputsVector(b, o.outputs);
    const [type, options] = writeOptions(b, o.op, o.options ?? {});
    Operator.startOperator(b);
    Operator.addOpcodeIndex(b, codes.indexOf(o.op));
    Operator.addInputs(b, inputs);
    Operator.addOutputs(b, outputs);
    if (type !== BuiltinOptions.NONE) {
      Operator.addBuiltinOptionsType(b, type);
      Operator.addBuiltinOptions(b, options);
    }
    return Operator.endOperator(b);
  });

  const graph = SubGraph.createSubGraph(
    b,
    SubGraph.createTensorsVector(b, tensors),
    SubGraph.createInputsVector(b, spec.inputs),
    SubGraph.createOutputsVector(b, spec.outputs),
    SubGraph.createOperatorsVector(b, operators),
    b.createString('main'),
  );
  const opcodes = codes.map((code) =>
    OperatorCode.createOperatorCode(
      b,
      Math.min(code, BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES),
      0,
      1,
      code,
    ),
  );
  const description = b.createString(spec.description ?? 'whittle test model');
  const model = Model.createModel(
    b,
    3,
    Model.createOperatorCodesVector(b, opcodes),
    Model.createSubgraphsVector(b, [graph]),
    description,
    Model.createBuffersVector(b, buffers),
    0,
  );
  Model.finishModelBuffer(b, model);
  return b.asUint8Array().slice();
}
