// Two small, valid .tflite models (one float, one fully-int8) written with the schema: the seeds the fuzz
// benchmark damages (bench/fuzz.ts), covering the readers of every table, union and vector the importer
// reads (per-channel quantization, int32 bias, options of convolutions, pools, reductions, reshape).
import { SeededRandom } from '../seeded-random.js';
import { ActivationFunctionType, BuiltinOperator, Padding, TensorType } from './reader.js';
import { type TfliteModelSpec, type TfliteTensorSpec, writeTflite } from './writer.js';

const { FLOAT32, INT8, INT32 } = TensorType;

function floatModel(random: SeededRandom): TfliteModelSpec {
  const w = (n: number) => Array.from({ length: n }, () => random.normal() * 0.3);
  const tensors: TfliteTensorSpec[] = [
    { name: 'input', type: FLOAT32, shape: [1, 8, 8, 3] },
    { name: 'conv/filter', type: FLOAT32, shape: [4, 3, 3, 3], data: w(108) },
    { name: 'conv/bias', type: FLOAT32, shape: [4], data: w(4) },
    { name: 'conv', type: FLOAT32, shape: [1, 8, 8, 4] },
    { name: 'dw/filter', type: FLOAT32, shape: [1, 3, 3, 4], data: w(36) },
    { name: 'dw/bias', type: FLOAT32, shape: [4], data: w(4) },
    { name: 'dw', type: FLOAT32, shape: [1, 4, 4, 4] },
    { name: 'mean/axes', type: INT32, shape: [2], data: [1, 2] },
    { name: 'mean', type: FLOAT32, shape: [1, 4] },
    { name: 'fc/weights', type: FLOAT32, shape: [5, 4], data: w(20) },
    { name: 'fc/bias', type: FLOAT32, shape: [5], data: w(5) },
    { name: 'fc', type: FLOAT32, shape: [1, 5] },
    { name: 'softmax', type: FLOAT32, shape: [1, 5] },
  ];
  return {
    tensors,
    inputs: [0],
    outputs: [12],
    operators: [
      {
        op: BuiltinOperator.CONV_2D,
        inputs: [0, 1, 2],
        outputs: [3],
        options: { padding: Padding.SAME, strideH: 1, strideW: 1, activation: ActivationFunctionType.RELU6 },
      },
      {
        op: BuiltinOperator.DEPTHWISE_CONV_2D,
        inputs: [3, 4, 5],
        outputs: [6],
        options: { padding: Padding.SAME, strideH: 2, strideW: 2, depthMultiplier: 1 },
      },
      { op: BuiltinOperator.MEAN, inputs: [6, 7], outputs: [8], options: { keepDims: false } },
      { op: BuiltinOperator.FULLY_CONNECTED, inputs: [8, 9, 10], outputs: [11], options: {} },
      { op: BuiltinOperator.SOFTMAX, inputs: [11], outputs: [12], options: { beta: 1 } },
    ],
  };
}

function int8Model(random: SeededRandom): TfliteModelSpec {
  const q = (n: number) => Array.from({ length: n }, () => random.int(-127, 127));
  const act = (scale: number, zeroPoint: number) => ({ scale: [scale], zeroPoint: [zeroPoint] });
  const tensors: TfliteTensorSpec[] = [
    { name: 'input', type: FLOAT32, shape: [1, 6, 6, 2] },
    { name: 'quantized', type: INT8, shape: [1, 6, 6, 2], quant: act(0.02, 3) },
    {
      name: 'conv/filter',
      type: INT8,
      shape: [3, 3, 3, 2],
      data: q(54),
      quant: { scale: [0.01, 0.02, 0.015], zeroPoint: [0, 0, 0], axis: 0 },
    },
    {
      name: 'conv/bias',
      type: INT32,
      shape: [3],
      data: q(3),
      quant: { scale: [0.0002, 0.0004, 0.0003], zeroPoint: [0, 0, 0], axis: 0 },
    },
    { name: 'conv', type: INT8, shape: [1, 6, 6, 3], quant: act(0.05, -128) },
    { name: 'pool', type: INT8, shape: [1, 3, 3, 3], quant: act(0.05, -128) },
    { name: 'add', type: INT8, shape: [1, 3, 3, 3], quant: act(0.1, -128) },
    { name: 'shape', type: INT32, shape: [2], data: [1, 27] },
    { name: 'flat', type: INT8, shape: [1, 27], quant: act(0.1, -128) },
    { name: 'fc/weights', type: INT8, shape: [4, 27], data: q(108), quant: act(0.01, 0) },
    { name: 'fc/bias', type: INT32, shape: [4], data: q(4), quant: act(0.001, 0) },
    { name: 'fc', type: INT8, shape: [1, 4], quant: act(0.2, 5) },
    { name: 'output', type: FLOAT32, shape: [1, 4] },
  ];
  return {
    tensors,
    inputs: [0],
    outputs: [12],
    operators: [
      { op: BuiltinOperator.QUANTIZE, inputs: [0], outputs: [1] },
      {
        op: BuiltinOperator.CONV_2D,
        inputs: [1, 2, 3],
        outputs: [4],
        options: { padding: Padding.SAME, strideH: 1, strideW: 1, activation: ActivationFunctionType.RELU },
      },
      {
        op: BuiltinOperator.AVERAGE_POOL_2D,
        inputs: [4],
        outputs: [5],
        options: { padding: Padding.VALID, strideH: 2, strideW: 2, filterH: 2, filterW: 2 },
      },
      { op: BuiltinOperator.ADD, inputs: [5, 5], outputs: [6], options: {} },
      { op: BuiltinOperator.RESHAPE, inputs: [6, 7], outputs: [8], options: { newShape: [1, 27] } },
      { op: BuiltinOperator.FULLY_CONNECTED, inputs: [8, 9, 10], outputs: [11], options: {} },
      { op: BuiltinOperator.DEQUANTIZE, inputs: [11], outputs: [12] },
    ],
  };
}

/** The .tflite bytes of the sample models for `seed`: [float, int8]. */
export function sampleTfliteModels(seed: number): Uint8Array[] {
  const random = new SeededRandom(seed);
  return [writeTflite(floatModel(random)), writeTflite(int8Model(random))];
}
