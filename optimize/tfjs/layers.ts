// The tfjs layer table: layer class -> handler building its IR nodes and returning its output tensor.
// Adding a layer class is adding an entry; a handler gets a LayerBuild (layer-build.ts: config readers with
// checks, inputs, weights, emit, activation, batch-norm folding).
import { elements } from '../../agent/runtime/tensor.js';
import type { LayerBuild } from './layer-build.js';

export type TfjsLayerHandler = (l: LayerBuild) => number;

/** TensorFlow's SAME padding: the total is split with the extra pixel at the end. */
function tfPads(
  input: number,
  kernel: number,
  stride: number,
  dilation: number,
  same: boolean,
): [number, number] {
  if (!same) return [0, 0];
  const out = Math.ceil(input / stride);
  const total = Math.max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - input);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

function inputLayer(l: LayerBuild): number {
  const raw = l.config.batch_input_shape ?? l.config.batchInputShape ?? l.config.batch_shape;
  if (!Array.isArray(raw) || raw.length < 2)
    throw l.fail(`expected a batch_input_shape but received ${JSON.stringify(raw)}`);
  const dtype = l.config.dtype;
  if (typeof dtype === 'string' && dtype !== 'float32')
    throw l.fail(`input dtype ${dtype} is not supported (float32 is)`);
  const shape = raw.map((d, i) => (d === null && i === 0 ? l.build.batch : d) as unknown);
  if (!shape.every((d) => Number.isInteger(d) && (d as number) >= 1))
    throw l.fail(`input shape [${raw.map(String).join(', ')}] has unknown dimensions`);
  return l.b.addTensor(l.node.name, { dtype: 'f32', shape: shape as number[] });
}

function dense(l: LayerBuild): number {
  const x = l.input();
  const inShape = l.shape(x);
  if (inShape.length < 2) throw l.fail(`expected a rank >= 2 input but received [${inShape.join(', ')}]`);
  const kernel = l.weight('kernel', 2);
  const [inC, outC] = kernel.shape as [number, number];
  if (inC !== inShape[inShape.length - 1])
    throw l.fail(`kernel takes ${inC} inputs but the input has ${inShape[inShape.length - 1]} features`);
  if (l.config.units !== undefined && l.config.units !== outC)
    throw l.fail(`kernel has ${outC} outputs but units is ${JSON.stringify(l.config.units)}`);
  const transposed = new Float32Array(inC * outC);
  for (let r = 0; r < inC; r++)
    for (let c = 0; c < outC; c++) transposed[c * inC + r] = kernel.data[r * outC + c]!;
  const bias = l.bias(outC);
  const folded = l.foldedBatchNorm(inShape.length, outC);
  const { w, bias: b } = folded ? folded.fold(transposed, bias) : { w: transposed, bias };
  const weight = l.b.constant(`${l.label}.weight`, 'f32', [outC, inC], w);
  const biasTensor = b ? l.b.constant(`${l.label}.bias`, 'f32', [outC], b) : -1;
  // Keras applies Dense to the last axis of a higher-rank input: fold the other axes into the batch.
  const rows = inShape.length === 2 ? x : l.emit('reshape', [x], { shape: [-1, inC] }, '/rows');
  let y = l.emit('fully_connected', [rows, weight, biasTensor], {});
  if (inShape.length > 2)
    y = l.emit('reshape', [y], { shape: [-1, ...inShape.slice(1, -1), outC] }, '/unrows');
  return l.foldedOutput(folded, l.activation(y));
}

function conv(l: LayerBuild): number {
  l.channelsLast();
  const x = l.input(4);
  const [, inH, inW, cin] = l.shape(x) as [number, number, number, number];
  const depthwise = l.kind === 'DepthwiseConv2D';
  const kernel = l.weight(depthwise ? 'depthwise_kernel' : 'kernel', 4);
  const [kh, kw, kin, kout] = kernel.shape as [number, number, number, number];
  const [sizeH, sizeW] = l.pair('kernel_size', [kh, kw]);
  if (sizeH !== kh || sizeW !== kw)
    throw l.fail(`kernel_size is ${sizeH}x${sizeW} but the kernel weight is ${kh}x${kw}`);
  const groups = depthwise ? cin : l.int('groups', 1);
  if (kin * (depthwise ? 1 : groups) !== cin)
    throw l.fail(
      `the kernel takes ${kin * (depthwise ? 1 : groups)} input channels but the input has ${cin}`,
    );
  if (!depthwise && l.config.filters !== undefined && l.config.filters !== kout)
    throw l.fail(`the kernel has ${kout} filters but filters is ${JSON.stringify(l.config.filters)}`);
  if (!depthwise && kout % groups !== 0) throw l.fail(`${kout} filters do not split into ${groups} groups`);
  const outC = depthwise ? cin * kout : kout;
  // OHWI: conv [kh][kw][cin][cout] -> [cout][kh][kw][cin]; depthwise [kh][kw][cin][m] -> [cin*m][kh][kw][1].
  const ohwi = new Float32Array(kernel.data.length);
  for (let y = 0; y < kh; y++)
    for (let xx = 0; xx < kw; xx++)
      for (let c = 0; c < kin; c++)
        for (let o = 0; o < kout; o++) {
          const value = kernel.data[((y * kw + xx) * kin + c) * kout + o]!;
          if (depthwise) ohwi[((c * kout + o) * kh + y) * kw + xx] = value;
          else ohwi[((o * kh + y) * kw + xx) * kin + c] = value;
        }
  const bias = l.bias(outC);
  const folded = l.foldedBatchNorm(4, outC);
  const { w, bias: b } = folded ? folded.fold(ohwi, bias) : { w: ohwi, bias };
  const weight = l.b.constant(`${l.label}.weight`, 'f32', [outC, kh, kw, depthwise ? 1 : kin], w);
  const biasTensor = b ? l.b.constant(`${l.label}.bias`, 'f32', [outC], b) : -1;
  const strides = l.pair('strides', [1, 1]);
  const dilations = l.pair('dilation_rate', [1, 1]);
  const same = l.samePadding();
  const [top, bottom] = tfPads(inH, kh, strides[0], dilations[0], same);
  const [left, right] = tfPads(inW, kw, strides[1], dilations[1], same);
  const y = l.emit('conv2d', [x, weight, biasTensor], {
    strides,
    dilations,
    pads: [top, left, bottom, right],
    groups,
  });
  return l.foldedOutput(folded, l.activation(y));
}

function pool(l: LayerBuild): number {
  l.channelsLast();
  const x = l.input(4);
  const [, inH, inW] = l.shape(x) as [number, number, number, number];
  const kernel = l.pair('pool_size', [2, 2]);
  // tfjs writes strides: null for "same as the pool size".
  const strides = l.config.strides === null ? kernel : l.pair('strides', kernel);
  const same = l.samePadding();
  const [top, bottom] = tfPads(inH, kernel[0], strides[0], 1, same);
  const [left, right] = tfPads(inW, kernel[1], strides[1], 1, same);
  // TensorFlow's average pooling divides by the pixels inside the image (count_include_pad 0, the default).
  return l.emit(l.kind === 'MaxPooling2D' ? 'max_pool' : 'avg_pool', [x], {
    kernel,
    strides,
    pads: [top, left, bottom, right],
  });
}

function relu(l: LayerBuild): number {
  const x = l.input();
  const threshold = Number(l.config.threshold ?? 0);
  const slope = Number(l.config.negative_slope ?? 0);
  if (threshold !== 0) throw l.fail(`threshold ${threshold} is not supported (0 is)`);
  const max = l.config.max_value;
  if (max !== undefined && max !== null && typeof max !== 'number')
    throw l.fail(`expected a number max_value but received ${JSON.stringify(max)}`);
  if (slope !== 0) {
    const leaky = l.emit(
      'leaky_relu',
      [x],
      { alpha: slope },
      max === undefined || max === null ? '' : '/leaky',
    );
    return max === undefined || max === null ? leaky : l.emit('clip', [leaky], { max });
  }
  return l.emit('clip', [x], { min: 0, ...(typeof max === 'number' ? { max } : {}) });
}

function batchNorm(l: LayerBuild): number {
  const x = l.input();
  const rank = l.shape(x).length;
  const axis = l.axis(rank);
  const params = l.batchNormParams(l.shape(x)[axis]!);
  const c = l.shape(x)[axis]!;
  const constant = (key: string, values: Float32Array): number =>
    l.b.constant(`${l.label}.${key}`, 'f32', [c], values);
  return l.emit(
    'batch_norm',
    [
      x,
      constant('gamma', params.gamma),
      constant('beta', params.beta),
      constant('moving_mean', params.mean),
      constant('moving_variance', params.variance),
    ],
    { epsilon: params.epsilon, axis },
  );
}

/** Add / Multiply of two or more inputs, left to right as Keras does. */
function merge(l: LayerBuild, op: 'add' | 'mul'): number {
  const inputs = l.inputs();
  let y = inputs[0]!;
  for (let i = 1; i < inputs.length; i++)
    y = l.emit(op, [y, inputs[i]!], {}, i === inputs.length - 1 ? '' : `/${i}`);
  return y;
}

function reshape(l: LayerBuild): number {
  const x = l.input();
  const target = l.config.target_shape ?? l.config.targetShape;
  if (!Array.isArray(target) || !target.every((d) => Number.isInteger(d) && (d === -1 || d >= 1)))
    throw l.fail(
      `expected a target_shape of positive integers (one may be -1) but received ${JSON.stringify(target)}`,
    );
  // 0 keeps the batch dimension of the input.
  return l.emit('reshape', [x], { shape: [0, ...(target as number[])] });
}

function permute(l: LayerBuild): number {
  const x = l.input();
  const rank = l.shape(x).length;
  const dims = l.config.dims;
  // Keras counts dims from 1 (0 is the batch, which never moves).
  if (
    !Array.isArray(dims) ||
    dims.length !== rank - 1 ||
    [...(dims as number[])].sort((p, q) => p - q).some((d, i) => d !== i + 1)
  )
    throw l.fail(`dims ${JSON.stringify(dims)} is not a permutation of 1..${rank - 1}`);
  return l.emit('transpose', [x], { perm: [0, ...(dims as number[])] });
}

/**
 * One half of the channels. The runtime has no slice op, so the half is gathered with ops it has: a
 * channel shuffle with 2 groups puts channel k of each half side by side ([a0 b0 a1 b1 ...]), then a 1x1
 * convolution with one group per pair and weights (1, 0) or (0, 1) keeps a_k or b_k. 1 * v + 0 * w is v
 * exactly for finite values, and the cost is 2 MACs per output value. Both halves of one tensor share
 * the shuffle.
 */
function channelSplit(l: LayerBuild): number {
  const x = l.input(4);
  const channels = l.shape(x)[3]!;
  const part = l.int('part', 0);
  if (part !== 0 && part !== 1) throw l.fail(`part must be 0 or 1, got ${part}`);
  if (channels % 2 !== 0) throw l.fail(`cannot split ${channels} channels in two halves`);
  const half = channels / 2;
  let paired = l.build.pairedHalves.get(x);
  if (paired === undefined) {
    paired = l.emit('channel_shuffle', [x], { groups: 2 }, '/pair_halves');
    l.build.pairedHalves.set(x, paired);
  }
  const select = new Float32Array(2 * half);
  for (let k = 0; k < half; k++) select[2 * k + part] = 1;
  const weight = l.b.constant(`${l.label}.select`, 'f32', [half, 1, 1, 2], select);
  return l.emit('conv2d', [paired, weight, -1], {
    strides: [1, 1],
    dilations: [1, 1],
    pads: [0, 0, 0, 0],
    groups: half,
  });
}

export const TFJS_LAYERS: Readonly<Record<string, TfjsLayerHandler>> = {
  InputLayer: inputLayer,
  Dense: dense,
  Conv2D: conv,
  DepthwiseConv2D: conv,
  MaxPooling2D: pool,
  AveragePooling2D: pool,
  GlobalAveragePooling2D: (l) => {
    l.channelsLast();
    const pooled = l.emit('global_avgpool', [l.input(4)], {});
    return l.config.keepdims === true ? pooled : l.emit('reshape', [pooled], { shape: [0, -1] }, '/squeeze');
  },
  Flatten: (l) => {
    const x = l.input();
    return l.emit('reshape', [x], { shape: [0, elements(l.shape(x).slice(1))] });
  },
  Dropout: (l) => l.input(),
  Activation: (l) => l.activation(l.input()),
  ReLU: relu,
  LeakyReLU: (l) => {
    // tfjs writes alpha (default 0.3), Keras 3 negative_slope.
    const alpha = Number(l.config.alpha ?? l.config.negative_slope ?? 0.3);
    return l.emit('leaky_relu', [l.input()], { alpha });
  },
  BatchNormalization: batchNorm,
  Softmax: (l) => {
    const x = l.input();
    return l.emit('softmax', [x], { axis: l.axis(l.shape(x).length) });
  },
  Add: (l) => merge(l, 'add'),
  Multiply: (l) => merge(l, 'mul'),
  Concatenate: (l) => {
    const inputs = l.inputs();
    return l.emit('concat', inputs, { axis: l.axis(l.shape(inputs[0]!).length) });
  },
  Reshape: reshape,
  Permute: permute,
  // The ShuffleNet unit's channel split and shuffle (optimize/zoo/shufflenet.ts).
  WhittleChannelShuffle: (l) => l.emit('channel_shuffle', [l.input()], { groups: l.int('groups', 1) }),
  WhittleChannelSplit: channelSplit,
  // XNOR-Net's binary activation (optimize/compress/xnor.ts) is no node: the xnor layer that reads it
  // binarizes its input itself (imported only with xnorInputs, which optimize/compress/encode.ts gives
  // once it has checked that every one feeds a layer it stores as xnor).
  WhittleBinaryActivation: (l) => l.input(),
};

/** The tfjs layer classes the importer converts (the table's keys). */
export const SUPPORTED_TFJS_LAYERS: readonly string[] = Object.keys(TFJS_LAYERS);
