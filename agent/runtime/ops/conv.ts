// conv2d and fully_connected on fp32 activations, in every weight format the package stores: fp32 and the
// compressed formats (weights expanded to fp32 at load), xnor (binarized input too), and fixed16 / fixed8
// (fixed-point words where the layer carries activation fractional lengths, fixed-point-layer.ts).
// Layouts: conv2d on NHWC activations with OHWI weights; fully_connected on [B][K] x [O][K]; conv_transpose
// (fp32) on NHWC activations with weights [I][KH][KW][O / groups] (ONNX's [I][O / groups][KH][KW] permuted
// like OIHW -> OHWI).
import type { ManifestNode } from '../../package/manifest.js';
import { expect, input, intAttr, intsAttr, numberAttr, pick } from '../attributes.js';
import {
  type Executor,
  type ExecutorFactory,
  type OpDefinition,
  perImage,
  type PrepareContext,
} from '../executor.js';
import { fixedPointLayer } from '../fixed-point-layer.js';
import { conv2dF32 } from '../reference-ops/conv.js';
import {
  fixedPointConv2d,
  fixedPointGeometry,
  fullyConnectedGeometry,
} from '../reference-ops/fixed-point.js';
import { fullyConnected } from '../reference-ops/matmul.js';
import { elements, type TensorData, type TensorSpec } from '../tensor.js';
import { convGeometry, windowAttrs } from '../window.js';
import { checkAddend, withResidual } from './residual.js';

/** A layer's executor per weight format: fp32 activations over the expanded weights, xnor with its input
 * binarized too, fixed16 / fixed8 in fixed point. In the order the benchmark reports the formats. */
function weightFormatExecutors(
  float: (binarizeInput: boolean) => ExecutorFactory,
  fixedPoint: ExecutorFactory,
): OpDefinition['executors'] {
  const plain = float(false);
  return {
    f32: plain,
    fixed16: fixedPoint,
    fixed8: fixedPoint,
    binary: plain,
    xnor: float(true),
    ternary: plain,
    sparse: plain,
    codebook: plain,
    hashed: plain,
    'sparse-codebook': plain,
  };
}

/** The zero point of an int8 tensor an xnor layer may read without its dequantize (compile/fuse.ts): i8 per
 * tensor with a positive finite scale, so that the sign of scale * (q - zeroPoint) is that of q - zeroPoint
 * and the layer's binarized input is the same. Undefined for any other tensor. */
export function xnorSignZeroPoint(x: TensorSpec): number | undefined {
  const q = x.quant;
  if (x.dtype !== 'i8' || q === undefined || q.axis !== undefined || q.scale.length !== 1) return undefined;
  const scale = q.scale[0]!;
  return scale > 0 && Number.isFinite(scale) && q.zeroPoint.length === 1 ? q.zeroPoint[0] : undefined;
}

/** A conv2d / fully_connected node's activations: fp32, or for an xnor layer the int8 tensor of
 * xnorSignZeroPoint. */
/** A float layer's activations (x) and weights (w): fp32 activations, or an xnor layer's per-tensor int8
 * with a positive scale; `quantized` names the op int8 layers use instead. */
function layerInputs(
  node: ManifestNode,
  inputs: readonly (TensorSpec | undefined)[],
  quantized?: string,
): { x: TensorSpec; w: TensorSpec } {
  const x = input(node, inputs, 0, 'x');
  const w = input(node, inputs, 1, 'weights');
  expect(
    x.dtype === 'f32' || (node.format === 'xnor' && xnorSignZeroPoint(x) !== undefined),
    node,
    `${node.op} takes fp32 activations, got ${x.dtype} (${quantized ? `int8 layers are ${quantized}; ` : ''}` +
      'xnor also takes per-tensor int8 with a positive scale)',
  );
  return { x, w };
}

/** The layer's input as the reference kernels take it: fp32 as is (binarizeInput: the kernel takes the
 * signs), an xnor layer's int8 input as the ±1 of q < zero point (the signs of its dequantized values). */
function floatInput(context: PrepareContext): (x: TensorData) => Float32Array {
  const zeroPoint = xnorSignZeroPoint(context.inputs[0]!);
  if (context.inputs[0]!.dtype === 'f32' || zeroPoint === undefined) return (x) => x as Float32Array;
  const signs = new Float32Array(elements(context.inputs[0]!.shape));
  return (x) => {
    for (let i = 0; i < signs.length; i++) signs[i] = x[i]! < zeroPoint ? -1 : 1;
    return signs;
  };
}

function floatConvExecutor(binarizeInput: boolean) {
  return (context: PrepareContext): Executor => {
    const { node } = context;
    const g = convGeometry(node, context.inputs[0]!, context.inputs[1]!);
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    const x = floatInput(context);
    return {
      kernel: `reference:conv2d_${context.format}`,
      run: (inputs, outputs) =>
        conv2dF32(
          g,
          x(inputs[0]!),
          pick(context, inputs, 1) as Float32Array,
          pick(context, inputs, 2) as Float32Array | undefined,
          min,
          max,
          outputs[0] as Float32Array,
          binarizeInput,
        ),
    };
  };
}

function floatFcExecutor(binarizeInput: boolean) {
  return (context: PrepareContext): Executor => {
    const { node } = context;
    const x = context.inputs[0]!;
    const w = context.inputs[1]!;
    const batch = x.shape[0]!;
    const k = w.shape[1]!;
    const outC = w.shape[0]!;
    const min = numberAttr(node, 'min', -Infinity);
    const max = numberAttr(node, 'max', Infinity);
    const input = floatInput(context);
    return {
      kernel: `reference:fully_connected_${context.format}`,
      run: (inputs, outputs) => {
        const bias = pick(context, inputs, 2);
        const y = outputs[0]!;
        const x = input(inputs[0]!);
        const xs = binarizeInput ? Float32Array.from(x, (v) => (v < 0 ? -1 : 1)) : x;
        fullyConnected(
          batch,
          k,
          outC,
          xs,
          0,
          pick(context, inputs, 1)!,
          () => 0,
          (index, o, sum) => {
            const v = sum + (bias ? bias[o]! : 0);
            y[index] = v < min ? min : v > max ? max : v;
          },
        );
      },
    };
  };
}

// fixed16 / fixed8 layers with activation fractional lengths compute in fixed point (fixed-point-layer.ts);
// those without (format 1.0 packages) keep fp32 activations over their exactly expanded weights.
const fixedPointConvExecutor = (context: PrepareContext): Executor => {
  const layer = fixedPointLayer(context);
  if (layer === undefined) return floatConvExecutor(false)(context);
  const { node } = context;
  const g = convGeometry(node, context.inputs[0]!, context.inputs[1]!);
  expect(g.dilationH === 1 && g.dilationW === 1, node, 'fixed-point layers take no dilation');
  const geometry = fixedPointGeometry(g);
  return {
    kernel: `reference:conv2d_${context.format}`,
    run: (inputs, outputs) =>
      fixedPointConv2d(layer, geometry, inputs[0] as Float32Array, outputs[0] as Float32Array),
  };
};

const fixedPointFcExecutor = (context: PrepareContext): Executor => {
  const layer = fixedPointLayer(context);
  if (layer === undefined) return floatFcExecutor(false)(context);
  const [outC, k] = context.inputs[1]!.shape as [number, number];
  const geometry = fullyConnectedGeometry(context.inputs[0]!.shape[0]!, k, outC);
  return {
    kernel: `reference:fully_connected_${context.format}`,
    run: (inputs, outputs) =>
      fixedPointConv2d(layer, geometry, inputs[0] as Float32Array, outputs[0] as Float32Array),
  };
};

const conv2d: OpDefinition = {
  perImage,
  infer(node, inputs) {
    const { x, w } = layerInputs(node, inputs, 'qconv2d');
    const g = convGeometry(node, x, w);
    const bias = inputs[2];
    expect(bias === undefined || elements(bias.shape) === g.outC, node, `bias must have ${g.outC} elements`);
    const y: TensorSpec = { dtype: 'f32', shape: [g.batch, g.outH, g.outW, g.outC] };
    checkAddend(node, inputs, y);
    return [y];
  },
  macs: (node, inputs, outputs) => elements(outputs[0]!.shape) * elements(inputs[1]!.shape.slice(1)),
  // An addend (a fused residual add, residual.ts) only in f32: checkAddend refuses it in the other formats.
  executors: weightFormatExecutors(
    (binarize) => withResidual(floatConvExecutor(binarize)),
    fixedPointConvExecutor,
  ),
};

const fullyConnectedOp: OpDefinition = {
  perImage,
  infer(node, inputs) {
    const { x, w } = layerInputs(node, inputs);
    expect(w.shape.length === 2, node, `weights must be [out][in], got [${w.shape.join(', ')}]`);
    const batch = x.shape[0] ?? 1;
    expect(
      x.shape.length >= 1 && elements(x.shape) === batch * w.shape[1]!,
      node,
      `input [${x.shape.join(', ')}] does not hold ${w.shape[1]} features per row`,
    );
    const bias = inputs[2];
    expect(
      bias === undefined || elements(bias.shape) === w.shape[0],
      node,
      `bias must have ${w.shape[0]} elements`,
    );
    return [{ dtype: 'f32', shape: [batch, w.shape[0]!] }];
  },
  macs: (_node, inputs, outputs) => elements(outputs[0]!.shape) * inputs[1]!.shape[1]!,
  executors: weightFormatExecutors(floatFcExecutor, fixedPointFcExecutor),
};

/** A transposed convolution's geometry: the window read with the conv readers, the output grown by the
 * strides (ONNX ConvTranspose's output shape, without output_shape: the importer turns that into pads). */
function convTransposeGeometry(node: ManifestNode, x: readonly number[], w: readonly number[]) {
  expect(x.length === 4, node, `input must be NHWC (rank 4), got [${x.join(', ')}]`);
  expect(w.length === 4, node, `weights must be [I][KH][KW][O / groups], got [${w.join(', ')}]`);
  const [batch, inH, inW, inC] = x as [number, number, number, number];
  const [wIn, kh, kw, og] = w as [number, number, number, number];
  const { strides, dilations, pads } = windowAttrs(node);
  const groups = intAttr(node, 'groups', 1, 1);
  const outputPadding = intsAttr(node, 'output_padding', 2, [0, 0]);
  expect(
    wIn === inC && inC % groups === 0,
    node,
    `weights hold ${wIn} input channels, x has ${inC} (groups ${groups})`,
  );
  expect(
    outputPadding[0]! < Math.max(strides[0]!, dilations[0]!) &&
      outputPadding[1]! < Math.max(strides[1]!, dilations[1]!),
    node,
    `output_padding [${outputPadding.join(', ')}] must be smaller than the stride or dilation`,
  );
  const size = (i: number, k: number, a: 0 | 1) =>
    (i - 1) * strides[a]! - pads[a]! - pads[a + 2]! + dilations[a]! * (k - 1) + outputPadding[a]! + 1;
  const outH = size(inH, kh, 0);
  const outW = size(inW, kw, 1);
  expect(outH > 0 && outW > 0, node, `conv_transpose output ${outH} x ${outW} is empty`);
  return {
    batch,
    inH,
    inW,
    inC,
    kh,
    kw,
    groups,
    og,
    outC: og * groups,
    outH,
    outW,
    strides,
    dilations,
    pads,
  };
}

const convTranspose: OpDefinition = {
  infer(node, inputs) {
    const x = input(node, inputs, 0, 'x');
    const w = input(node, inputs, 1, 'weights');
    expect(x.dtype === 'f32' && w.dtype === 'f32', node, `conv_transpose takes fp32, got ${x.dtype}`);
    const g = convTransposeGeometry(node, x.shape, w.shape);
    const bias = inputs[2];
    expect(bias === undefined || elements(bias.shape) === g.outC, node, `bias must have ${g.outC} elements`);
    return [{ dtype: 'f32', shape: [g.batch, g.outH, g.outW, g.outC] }];
  },
  macs: (_node, inputs) => elements(inputs[0]!.shape) * elements(inputs[1]!.shape.slice(1)),
  executors: {
    f32: (context) => {
      const g = convTransposeGeometry(context.node, context.inputs[0]!.shape, context.inputs[1]!.shape);
      const cg = g.inC / g.groups;
      return {
        kernel: 'reference:conv_transpose_f32',
        run: (inputs, outputs) => {
          const x = inputs[0]!;
          const w = pick(context, inputs, 1)!;
          const bias = pick(context, inputs, 2);
          const y = outputs[0]!;
          const acc = new Float64Array(y.length);
          // Each input pixel scatters its weighted taps into the output window it spans.
          for (let n = 0; n < g.batch; n++)
            for (let iy = 0; iy < g.inH; iy++)
              for (let ix = 0; ix < g.inW; ix++)
                for (let ci = 0; ci < g.inC; ci++) {
                  const v = x[((n * g.inH + iy) * g.inW + ix) * g.inC + ci]!;
                  const group = Math.floor(ci / cg);
                  for (let ky = 0; ky < g.kh; ky++) {
                    const oy = iy * g.strides[0]! - g.pads[0]! + ky * g.dilations[0]!;
                    if (oy < 0 || oy >= g.outH) continue;
                    for (let kx = 0; kx < g.kw; kx++) {
                      const ox = ix * g.strides[1]! - g.pads[1]! + kx * g.dilations[1]!;
                      if (ox < 0 || ox >= g.outW) continue;
                      const out = ((n * g.outH + oy) * g.outW + ox) * g.outC + group * g.og;
                      const tap = ((ci * g.kh + ky) * g.kw + kx) * g.og;
                      for (let o = 0; o < g.og; o++) acc[out + o]! += v * w[tap + o]!;
                    }
                  }
                }
          for (let i = 0; i < y.length; i++) y[i] = acc[i]! + (bias ? bias[i % g.outC]! : 0);
        },
      };
    },
  },
};

export const CONV_OPS = {
  conv2d,
  fully_connected: fullyConnectedOp,
  conv_transpose: convTranspose,
} satisfies Record<string, OpDefinition>;
