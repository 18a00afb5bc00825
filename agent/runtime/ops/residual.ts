// The residual add fused into a conv (compile/fuse.ts, issue 13): conv2d (f32) and qconv2d (int8) take an
// optional input 3, the addend, of the output's shape and dtype. The node then computes
//   f32:  y = clamp(clamp(conv(x), min, max) + addend, add_min, add_max)
//   int8: y = qadd(qconv2d(x) in its own quantization (conv_scale, conv_zero_point; clamp min / max),
//                  addend) into y's quantization, clamped to [add_min, add_max]
// i.e. exactly the conv node followed by the add node it replaced (and the clip after the add, folded into
// add_min / add_max). This module splits such a node back into those two nodes: the reference executor runs
// their reference executors one after the other (the unfused oracle), and the native conv takes the add's
// parameters into its output stage (native-executors.ts).
import type { ManifestNode } from '../../package/manifest.js';
import { expect, isInt8, needQuant, numberAttr } from '../attributes.js';
import type { Executor, ExecutorFactory, PrepareContext } from '../executor.js';
import { DTYPE_BYTES, elements, type TensorData, type TensorSpec } from '../tensor.js';
import { ELEMENTWISE_OPS } from './elementwise.js';

/** The addend's input slot (after x, weights and bias). */
export const ADDEND_INPUT = 3;

/** The attributes of a fused node beyond its conv's: the clamp after the add, and (int8) the quantization of
 * the conv's own output, which no tensor of the compiled graph holds any more. */
export const RESIDUAL_ATTRS = {
  min: 'add_min',
  max: 'add_max',
  scale: 'conv_scale',
  zeroPoint: 'conv_zero_point',
} as const;

export const hasAddend = (node: ManifestNode): boolean => (node.inputs[ADDEND_INPUT] ?? -1) >= 0;

/** The conv's own output of a fused node with output `y`: y's shape and dtype, and for int8 the quantization
 * the conv requantizes to. */
function convOutput(node: ManifestNode, y: TensorSpec): TensorSpec {
  if (node.format !== 'int8') return { dtype: y.dtype, shape: [...y.shape] };
  const scale = numberAttr(node, RESIDUAL_ATTRS.scale, Number.NaN);
  const zeroPoint = numberAttr(node, RESIDUAL_ATTRS.zeroPoint, Number.NaN);
  expect(
    scale > 0 && Number.isFinite(scale) && Number.isInteger(zeroPoint),
    node,
    `an int8 conv with an addend needs ${RESIDUAL_ATTRS.scale} > 0 and an integer ${RESIDUAL_ATTRS.zeroPoint}`,
  );
  return { dtype: y.dtype, shape: [...y.shape], quant: { scale: [scale], zeroPoint: [zeroPoint] } };
}

/** The fused node as the conv node and the add node it replaced: each with the context its executors are
 * prepared from (the add's inputs: the conv's output, then the addend). */
export function residualParts(context: PrepareContext): { conv: PrepareContext; add: PrepareContext } {
  const { node } = context;
  const y = context.outputs[0]!;
  const convY = convOutput(node, y);
  const attrs = { ...node.attrs };
  for (const key of Object.values(RESIDUAL_ATTRS)) delete attrs[key];
  const addAttrs: ManifestNode['attrs'] = {};
  const [min, max] = [node.attrs[RESIDUAL_ATTRS.min], node.attrs[RESIDUAL_ATTRS.max]];
  if (min !== undefined) addAttrs.min = min;
  if (max !== undefined) addAttrs.max = max;
  const first = (list: readonly unknown[] | undefined) => list?.slice(0, ADDEND_INPUT);
  const conv: PrepareContext = {
    ...context,
    node: { ...node, inputs: node.inputs.slice(0, ADDEND_INPUT), attrs },
    inputs: context.inputs.slice(0, ADDEND_INPUT),
    outputs: [convY],
    constants: context.constants.slice(0, ADDEND_INPUT),
    ...(context.decoded ? { decoded: first(context.decoded) as PrepareContext['decoded'] } : {}),
  };
  const add: PrepareContext = {
    ...context,
    node: {
      ...node,
      op: node.format === 'int8' ? 'qadd' : 'add',
      inputs: [node.outputs[0]!, node.inputs[ADDEND_INPUT]!],
      attrs: addAttrs,
    },
    inputs: [convY, context.inputs[ADDEND_INPUT]],
    outputs: [y],
    constants: [undefined, undefined],
  };
  return { conv, add };
}

/** Checks the addend of a fused conv node whose conv gives `y`: y's shape and dtype, per-tensor quantized
 * for int8 (qadd's operands), and a clamp after the add with min <= max. */
export function checkAddend(
  node: ManifestNode,
  inputs: readonly (TensorSpec | undefined)[],
  y: TensorSpec,
): void {
  if (!hasAddend(node)) return;
  const addend = inputs[ADDEND_INPUT];
  expect(addend !== undefined, node, 'the addend (input 3) is missing');
  expect(
    addend.dtype === y.dtype && addend.shape.join(',') === y.shape.join(','),
    node,
    `the addend must be ${y.dtype} [${y.shape.join(', ')}] like the output, got ${addend.dtype} [${addend.shape.join(', ')}]`,
  );
  expect(node.format === 'f32' || node.format === 'int8', node, `a ${node.format} conv takes no addend`);
  if (isInt8(y)) {
    const q = needQuant(node, addend, 'addend');
    expect(q.scale.length === 1 && q.zeroPoint.length === 1, node, 'the addend must be quantized per tensor');
    convOutput(node, y);
  }
  const min = numberAttr(node, RESIDUAL_ATTRS.min, -Infinity);
  const max = numberAttr(node, RESIDUAL_ATTRS.max, Infinity);
  expect(min <= max, node, `${RESIDUAL_ATTRS.min} must not exceed ${RESIDUAL_ATTRS.max}`);
}

/** The reference executor of a conv that may take an addend: without one, the conv's own; with one, the
 * conv's reference executor into a buffer of its own, then the add's (qadd, or add and the clamp after it). */
export function withResidual(conv: ExecutorFactory): ExecutorFactory {
  return (context) => {
    if (!hasAddend(context.node)) return conv(context);
    const parts = residualParts(context);
    const convExecutor = conv(parts.conv);
    const y = parts.conv.outputs[0]!;
    const n = elements(y.shape);
    const scratch: TensorData =
      y.dtype === 'f32' ? new Float32Array(n) : y.dtype === 'u8' ? new Uint8Array(n) : new Int8Array(n);
    const steps: Executor[] = [convExecutor];
    if (context.format === 'int8') {
      steps.push(ELEMENTWISE_OPS.qadd.executors.int8!(parts.add));
    } else {
      const { min, max } = parts.add.node.attrs;
      steps.push(
        ELEMENTWISE_OPS.add.executors.f32!({ ...parts.add, node: { ...parts.add.node, attrs: {} } }),
      );
      if (min !== undefined || max !== undefined) {
        const clip = { ...parts.add.node, op: 'clip', attrs: parts.add.node.attrs };
        steps.push(ELEMENTWISE_OPS.clip.executors.f32!({ ...parts.add, node: clip, inputs: [y] }));
      }
    }
    const [convStep, addStep, clipStep] = steps as [Executor, Executor, Executor | undefined];
    return {
      kernel: `${convExecutor.kernel}+${context.format === 'int8' ? 'qadd' : 'add'}`,
      scratchBytes: n * DTYPE_BYTES[y.dtype] + (convExecutor.scratchBytes ?? 0),
      run: (inputs, outputs) => {
        convStep.run(inputs.slice(0, ADDEND_INPUT), [scratch]);
        addStep.run([scratch, inputs[ADDEND_INPUT]], outputs);
        clipStep?.run(outputs, outputs);
      },
    };
  };
}
