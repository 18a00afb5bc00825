// Matrix products: Gemm and MatMul (fully_connected when the weights are constant, matmul otherwise) and
// their integer forms QLinearMatMul and MatMulInteger. A MatMul of an activation of rank 3 or more by a
// constant matrix (nn.Linear on a [N, H, W, C] or [N, T, C] tensor: ConvNeXt's block MLP, a transformer's
// projections) is fully_connected over the last axis, the leading axes flattened into rows by reshapes around
// it, and takes the Add of a constant vector after it as its bias (planMatMulBias): it then runs on the fp32
// GEMM and quantizes onto the int8 fully-connected kernels like any dense layer.
import { elements } from '../../../agent/runtime/tensor.js';
import type { ImportContext, OnnxNode, OnnxOpTable } from '../context.js';
import type { NodeProto } from '../onnx-proto.js';
import { qlinearOperands } from '../qdq.js';

/** t * factor as a node (folded right away when t is constant), or t itself when factor is 1. */
function scaled(n: OnnxNode, t: number, factor: number, suffix: string): number {
  if (factor === 1) return t;
  return n.emit('mul', [t, n.b.constant(`${n.name}.${suffix}`, 'f32', [], [factor])], {}, suffix);
}

/** Each MatMul whose output only an Add reads (and is no graph output), with another operand: that Add
 * (ctx.biasAddOf). The MatMul's
 * handler folds it into its fully_connected as the bias, and skips it, when the operand is then a constant of
 * the layer's N output columns ([N] or [1, N]: nn.Linear's bias as exported, possibly through an Identity of
 * a shared initializer, folded by then). */
export function planMatMulBias(
  ctx: ImportContext,
  nodes: readonly NodeProto[],
  graphOutputs: ReadonlySet<string>,
): void {
  const readers = new Map<string, NodeProto[]>();
  for (const n of nodes) for (const i of n.input ?? []) readers.set(i, [...(readers.get(i) ?? []), n]);
  for (const n of nodes) {
    const out = n.output?.[0];
    if (n.opType !== 'MatMul' || out === undefined || graphOutputs.has(out)) continue;
    const add = readers.get(out);
    const operands = add?.[0]?.input ?? [];
    if (add?.length !== 1 || add[0]!.opType !== 'Add' || (add[0]!.domain ?? '') !== '') continue;
    if (operands.length === 2 && operands[0] !== operands[1]) ctx.biasAddOf.set(n, add[0]!);
  }
}

/** The bias tensor of the MatMul's planned Add (planMatMulBias) as a [columns] vector, or -1 when there is none
 * or its other operand is not such a constant. */
function plannedBias(n: OnnxNode, columns: number): number {
  const add = n.ctx.biasAddOf.get(n.proto);
  if (add === undefined) return -1;
  const operands = add.input ?? [];
  const t = n.optional(operands[0] === n.proto.output?.[0] ? 1 : 0, add);
  const spec = t < 0 ? undefined : n.b.tensors[t];
  if (spec === undefined || !n.b.data.has(t) || spec.dtype !== 'f32') return -1;
  if (spec.shape.length > 2 || spec.shape.at(-1) !== columns || elements(spec.shape) !== columns) return -1;
  // The Add comes later in the node order: it is skipped there, its output bound to the layer's.
  n.ctx.skip.add(add);
  return n.emit('reshape', [t], { shape: [columns] }, 'bias');
}

function gemm(n: OnnxNode): void {
  const { b } = n;
  let a = n.input(0, 'A');
  let w = n.input(1, 'B');
  const c = n.optional(2);
  const alpha = n.float('alpha', 1);
  const beta = n.float('beta', 1);
  if (n.int('transA', 0) === 1) a = n.emit('transpose', [a], { perm: [1, 0] }, 'transpose_a');
  const transB = n.int('transB', 0) === 1;
  const cols = b.tensors[w]!.shape[transB ? 0 : 1]!;
  const cShape = c < 0 ? [] : b.tensors[c]!.shape;
  const biasFoldable =
    c < 0 ||
    (b.data.has(c) &&
      elements(cShape) === cols &&
      cShape.length <= 2 &&
      (cShape.length < 2 || cShape[0] === 1));
  if (b.data.has(w) && biasFoldable) {
    // y = A W^T + bias with W = alpha * B^T (or alpha * B when transB): one fully-connected layer.
    if (!transB) w = n.emit('transpose', [w], { perm: [1, 0] }, 'weights_t');
    w = scaled(n, w, alpha, 'alpha');
    const bias = c < 0 ? -1 : scaled(n, n.emit('reshape', [c], { shape: [cols] }, 'bias'), beta, 'beta');
    n.set(0, b.emit(n.name, 'fully_connected', 'f32', [a, w, bias], {})[0]!);
  } else {
    if (transB) w = n.emit('transpose', [w], { perm: [1, 0] }, 'transpose_b');
    let y = scaled(n, b.emit(n.name, 'matmul', 'f32', [a, w], {})[0]!, alpha, 'alpha');
    if (c >= 0) y = n.emit('add', [y, scaled(n, c, beta, 'beta')], {}, 'bias');
    n.set(0, y);
  }
}

export const MATMUL_ONNX_OPS: OnnxOpTable = {
  Gemm: gemm,
  MatMul: (n) => {
    const { b } = n;
    const a = n.input(0, 'A');
    const w = n.input(1, 'B');
    const shape = b.tensors[a]!.shape;
    if (b.data.has(w) && b.tensors[w]!.shape.length === 2 && shape.length >= 2 && !b.data.has(a)) {
      const [k, columns] = b.tensors[w]!.shape as [number, number];
      const wt = n.emit('transpose', [w], { perm: [1, 0] }, 'weights_t');
      const bias = plannedBias(n, columns);
      // Rows: the leading axes flattened (back to them after the layer, the first as -1 so that any batch fits).
      const rows = shape.length === 2 ? a : n.emit('reshape', [a], { shape: [-1, k] }, 'rows');
      let y = b.emit(n.name, 'fully_connected', 'f32', [rows, wt, bias], {})[0]!;
      if (shape.length > 2)
        y = n.emit('reshape', [y], { shape: [-1, ...shape.slice(1, -1), columns] }, 'unflatten');
      n.set(0, y);
      const sum = n.ctx.biasAddOf.get(n.proto)?.output?.[0];
      if (bias >= 0 && sum) n.ctx.values.set(sum, y);
    } else {
      n.set(0, b.emit(n.name, 'matmul', 'f32', [a, w], {})[0]!);
    }
  },
  QLinearMatMul: (n) => {
    const { b } = n;
    const a = n.input(0, 'a');
    const w = n.input(3, 'b');
    const constantWeights = b.data.has(w) && b.tensors[w]!.shape.length === 2;
    if (constantWeights && b.tensors[a]!.shape.length === 2 && !b.data.has(a)) {
      // Constant [in][out] weights: one qfully_connected over [out][in], quantized per tensor or per column.
      const operands = qlinearOperands(n, a, w, -1, 1);
      const wt = n.emit('transpose', [operands.w], { perm: [1, 0] }, 'weights_t');
      const wq = b.tensors[operands.w]!.quant!;
      b.tensors[wt]!.quant = { ...wq, ...(wq.scale.length > 1 ? { axis: 0 } : {}) };
      n.set(
        0,
        b.emit(n.name, 'qfully_connected', 'int8', [operands.x, wt, -1], operands.attrs, [operands.y])[0]!,
      );
      return;
    }
    const operands = qlinearOperands(n, a, w, -1, undefined);
    const [y] = b.emit(n.name, 'qmatmul', 'int8', [operands.x, operands.w], { rounding: 'onnx' }, [
      operands.y,
    ]);
    n.set(0, y!);
  },
  MatMulInteger: (n) => {
    const azp = n.optional(2) < 0 ? [0] : n.constant(2, 'a_zero_point');
    const bzp = n.optional(3) < 0 ? [0] : n.constant(3, 'b_zero_point');
    if (azp.length > 1 || bzp.length > 1)
      n.fail('per-row or per-column zero points are not supported (per-tensor only)');
    const a = n.b.withQuant(n.input(0, 'A'), { scale: [1], zeroPoint: azp }, n.name);
    const w = n.b.withQuant(n.input(1, 'B'), { scale: [1], zeroPoint: bzp }, n.name);
    n.set(0, n.b.emit(n.name, 'matmul_integer', 'int8', [a, w], {})[0]!);
  },
};
