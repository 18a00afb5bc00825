// ONNX -> Whittle package content. Each ONNX node is converted by its op type's handler in ONNX_OPS
// (ops/index.ts, one table per op family; the handler signature and the shared import context are in
// context.ts), into IR nodes of agent/runtime/ops; convolution and pooling run NHWC, so they are wrapped in
// layout transposes (NCHW <-> NHWC) that cancel between consecutive NHWC ops; the compile pass
// (agent/runtime/compile/) then sinks the rest through the layout-agnostic ops between them, declares an
// image input NHWC, and fuses activations into the layers. Shapes are inferred with the runtime's own op
// definitions while the graph is built, and any node whose inputs are all constants is evaluated right away
// by the runtime's executors (constant folding: weight transposes, Gemm's alpha and beta, Flatten/Reshape of
// constants). Batch norm after a convolution with constant weights is folded into it, and so is a per-channel
// Mul (then Add) by constants, a batch norm exported as arithmetic (ops/conv.ts planConvFusions); a lone batch
// norm runs as batch_norm. Unsupported ops are reported together, before anything is converted.
import type { Manifest } from '../../agent/package/manifest.js';
import { type CompileGraph, compileGraph } from '../../agent/runtime/compile/index.js';
import { UnsupportedOpsError } from '../package/unsupported-ops.js';
import type { PackageContent } from '../package/writer.js';
import { FOLDABLE_ONNX_OPS, foldConstantNode } from './constant-fold.js';
import { dtypeOf, ImportContext, OnnxNode } from './context.js';
import { DynamicShapeError, UnsupportedOpsetError } from './import-errors.js';
import {
  decodeModel,
  type ModelProto,
  type NodeProto,
  OnnxImportError,
  type OnnxTensor,
  tensorFromProto,
} from './onnx-proto.js';
import { planConvFusions } from './ops/conv.js';
import { ONNX_OPS, SUPPORTED_ONNX_OPS } from './ops/index.js';
import { planMatMulBias } from './ops/matmul.js';
import { convertQdq, planQdq, shiftUint8 } from './qdq.js';

export { DynamicShapeError, UnsupportedAttributeError, UnsupportedOpsetError } from './import-errors.js';
export { SUPPORTED_ONNX_OPS } from './ops/index.js';

/** The ai.onnx opsets the handlers are written for. An op's definition only changes in the opset that
 * changes its semantics, and each handler reads the forms of the versions in range where they differ
 * (Reshape's shape from 5, Clip's bounds and Pad's pads from 11, Softmax's axis from 13, batch norm's
 * `spatial` before 9), so old files of unchanged ops (GlobalAveragePool is still version 1) import. */
export const ONNX_OPSETS = { min: 1, max: 18 } as const;

export { UnsupportedOpsError } from '../package/unsupported-ops.js';

export interface OnnxImportOptions {
  /** Graph inputs to treat as constants (e.g. a test's weights fed as inputs). */
  constantInputs?: ReadonlyMap<string, OnnxTensor>;
  /** Value of a symbolic first dimension (default 1). */
  batch?: number;
  /** Shapes of graph inputs by name, fixing their symbolic dimensions (`whittle import --input-shape`). */
  inputShapes?: ReadonlyMap<string, readonly number[]>;
  modelId?: string;
  modelVersion?: string;
  labels?: string[];
  source?: string;
  /** Run the compile pass (default true); false stores the graph as converted, layout transposes and all
   * (the reference the compiled graph is tested and measured against). */
  compile?: boolean;
}

/** A graph input's shape: its fixed dimensions, the batch (`options.batch`, default 1) for a symbolic first
 * one, and `options.inputShapes` for the rest; any other symbolic or unknown dimension is refused with the
 * flag that fixes it. */
function inputShape(
  name: string,
  dims: readonly { dimValue?: unknown; dimParam?: string | null }[],
  options: OnnxImportOptions,
): number[] {
  const fixed = dims.map((d) =>
    (d as { value?: string }).value === 'dimValue' && Number(d.dimValue) >= 0
      ? Number(d.dimValue)
      : undefined,
  );
  const given = options.inputShapes?.get(name);
  if (given !== undefined) {
    const mismatch =
      given.length !== dims.length ||
      given.some((v, i) => !Number.isInteger(v) || v < 1 || (fixed[i] !== undefined && fixed[i] !== v));
    if (mismatch)
      throw new DynamicShapeError(
        name,
        fixed.map((v, i) => v ?? dims[i]!.dimParam ?? '?'),
        `has shape [${fixed.map((v, i) => v ?? dims[i]!.dimParam ?? '?').join(', ')}], which --input-shape ${name}=${given.join(',')} does not fit`,
      );
    return [...given];
  }
  const shape = fixed.map((v, i) => v ?? (i === 0 ? (options.batch ?? 1) : undefined));
  const open = shape.findIndex((v) => v === undefined);
  if (open >= 0)
    throw new DynamicShapeError(
      name,
      shape.map((v, i) => v ?? `<${dims[i]!.dimParam || `dim${i}`}>`),
      `has a symbolic dimension ${open} (${dims[open]!.dimParam || 'unknown'})`,
    );
  return shape as number[];
}

/** A node's key in ONNX_OPS: its op type, prefixed by its domain outside the default one
 * ("com.microsoft.QLinearAdd"). */
function tableKey(n: NodeProto): string {
  const domain = n.domain ?? '';
  return domain !== '' && domain !== 'ai.onnx' ? `${domain}.${n.opType ?? ''}` : (n.opType ?? '');
}

/** Converts an ONNX model to package content (manifest + raw-encoded constants). */
export function importOnnx(bytes: Uint8Array, options: OnnxImportOptions = {}): PackageContent {
  const source = options.source ?? 'model';
  const model: ModelProto = decodeModel(bytes, source);
  const graph = model.graph;
  if (!graph) throw new OnnxImportError(`${source} has no graph`);
  const opset = model.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  const opsetVersion = opset ? Number(opset.version ?? 1) : 1;
  if (opsetVersion < ONNX_OPSETS.min || opsetVersion > ONNX_OPSETS.max)
    throw new UnsupportedOpsetError(opset?.domain ?? '', opsetVersion, ONNX_OPSETS);
  const onnxNodes = graph.node ?? [];
  const unsupported = onnxNodes
    .map((n, i) => ({ name: n.name || `node${i}`, opType: tableKey(n) }))
    .filter((n) => !Object.hasOwn(ONNX_OPS, n.opType) && !FOLDABLE_ONNX_OPS.includes(n.opType));
  if (unsupported.length > 0)
    throw new UnsupportedOpsError(unsupported, SUPPORTED_ONNX_OPS, [
      `evaluated at import when their inputs are constants: ${FOLDABLE_ONNX_OPS.join(', ')}`,
    ]);

  const ctx = new ImportContext(opsetVersion, source);
  const { b, values } = ctx;
  for (const init of graph.initializer ?? [])
    ctx.declareConstant(tensorFromProto(init, source), init.name ?? '');
  for (const [name, t] of options.constantInputs ?? []) ctx.declareConstant(t, name);

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
    const shape = inputShape(name, tensorType.shape?.dim ?? [], options);
    const tensor = b.addTensor(name, { dtype, shape });
    values.set(name, tensor);
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

  planConvFusions(ctx, onnxNodes);
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  planMatMulBias(ctx, onnxNodes, graphOutputs);
  planQdq(ctx, onnxNodes, graphOutputs);
  onnxNodes.forEach((proto, index) => {
    if (ctx.skip.has(proto)) return;
    const n = new OnnxNode(ctx, proto, index);
    const handler = ONNX_OPS[tableKey(proto)];
    if (foldConstantNode(n, handler !== undefined)) return;
    if (convertQdq(n, handler)) return;
    if (handler === undefined)
      return n.fail(
        `the runtime has no ${n.opType} op: it is evaluated at import only, and needs every input constant`,
      );
    try {
      handler(n);
    } catch (error) {
      // The arithmetic of folding (batch norm, a bad variance) throws RangeError without the node's name.
      if (error instanceof RangeError) n.fail(error.message);
      throw error;
    }
  });

  // Outputs, then dead-code elimination and renumbering of the tensors that remain.
  const outputs = (graph.output ?? []).map((o) => {
    const tensor = values.get(o.name ?? '');
    if (tensor === undefined) throw new OnnxImportError(`graph output "${o.name ?? ''}" is never produced`);
    return { name: o.name ?? '', tensor };
  });
  for (const t of b.ints.keys()) {
    if (outputs.some((o) => o.tensor === t) || b.nodes.some((n) => n.inputs.includes(t))) {
      throw new OnnxImportError(
        `int64 tensor "${b.tensors[t]!.name}" is used as data; only shapes may be int64`,
      );
    }
  }
  // Dead nodes out (the float sides of QDQ pairs that run on integers), then uint8 activations to int8.
  b.nodes.splice(
    0,
    b.nodes.length,
    ...b.liveNodes([...outputs.map((o) => o.tensor), ...manifestInputs.map((i) => i.tensor)]),
  );
  shiftUint8(b, b.nodes, [...outputs.map((o) => o.tensor), ...manifestInputs.map((i) => i.tensor)]);
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
