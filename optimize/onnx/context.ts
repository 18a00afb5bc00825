// The ONNX importer's shared state, and the one signature every op handler has.
//
// importOnnx (import.ts) walks the graph's nodes in order and calls, for each, the handler its op type has in
// ONNX_OPS (ops/index.ts, merged from one table per op family under ops/). Adding an op is adding an entry:
//
//   export const MY_FAMILY_OPS: OnnxOpTable = {
//     Sqrt: (n) => n.set(0, n.emit('sqrt', [n.input(0, 'X')])),
//   };
//
// A handler receives an OnnxNode, the node seen through the import context:
// - inputs: n.input(i, what) is the tensor of input i (an OnnxImportError naming the node if it is missing),
//   n.optional(i) is -1 where the input is absent, n.constant(i, what) the values of a constant input as
//   numbers (int64 included; refused if the input is computed at run time);
// - attributes: n.int / n.ints / n.float / n.floats / n.string / n.tensor read one with a default and check its
//   type; n.oneOf(key, fallback, allowed) refuses a value the handler does not implement with an
//   UnsupportedAttributeError naming the node and the attribute (never compute something else);
// - output: n.emit(op, inputs, attrs) adds one IR node (agent/runtime/ops) named after the ONNX node, in the
//   format of its first input (constant inputs are evaluated right away: constant folding), n.b is the
//   GraphBuilder for anything else; n.set(i, tensor) binds ONNX output i;
// - n.fail(why) throws an OnnxImportError naming the node and its op type.
// Tensors are NCHW as in ONNX; n.b.toNhwc / toNchw wrap NHWC runtime ops (the compile pass cancels the pairs).
import type { ManifestNode, TensorQuantization } from '../../agent/package/manifest.js';
import type { TensorSpec } from '../../agent/runtime/tensor.js';
import { GraphBuilder } from '../package/graph-builder.js';
import type { KnownTensor } from './constant-fold.js';
import { UnsupportedAttributeError } from './import-errors.js';
import { attributeValue, ElemType, type NodeProto, OnnxImportError, type OnnxTensor } from './onnx-proto.js';
import type { QdqTail } from './qdq.js';

/** One op type's conversion into IR nodes. */
export type OnnxOpHandler = (n: OnnxNode) => void;

/** ONNX op type -> handler (a family's, or all of them in ops/index.ts). */
export type OnnxOpTable = Readonly<Record<string, OnnxOpHandler>>;

/** The IR dtype of each ONNX element type the importer reads (doubles are read as f32); int64 stays 'i64'
 * (kept as numbers: shapes and axes only). */
const DTYPES: readonly [number, TensorSpec['dtype'] | 'i64'][] = [
  [ElemType.FLOAT, 'f32'],
  [ElemType.DOUBLE, 'f32'],
  [ElemType.UINT8, 'u8'],
  [ElemType.INT8, 'i8'],
  [ElemType.INT32, 'i32'],
  [ElemType.INT64, 'i64'],
  [ElemType.BOOL, 'bool'],
];

export function dtypeOf(elemType: number, where: string): TensorSpec['dtype'] | 'i64' {
  const dtype = DTYPES.find(([type]) => type === elemType)?.[1];
  if (dtype === undefined) throw new OnnxImportError(`${where}: element type ${elemType} is not supported`);
  return dtype;
}

/** The ONNX element type of an IR dtype, the first entry of DTYPES with it (int64 constants are i32 tensors
 * listed in b.ints). */
const elemTypeOf = (dtype: TensorSpec['dtype']): number => DTYPES.find(([, d]) => d === dtype)![0];

/** What the whole import shares: the graph being built and the ONNX value names bound to its tensors. */
export class ImportContext {
  readonly b = new GraphBuilder();
  /** ONNX value name -> tensor index in b. */
  readonly values = new Map<string, number>();
  /** Batch norms folded into the Conv that feeds them (decided before conversion, ops/conv.ts). */
  readonly batchNormOf = new Map<NodeProto, NodeProto>();
  /** A per-channel Mul by a constant (then, optionally, an Add of one) folded into the Conv that feeds it: a
   * batch norm exported as arithmetic (torchvision's FrozenBatchNorm2d in detection backbones; ops/conv.ts). */
  readonly affineOf = new Map<
    NodeProto,
    { mul: NodeProto; scale: string; add?: NodeProto; shift?: string }
  >();
  /** Nodes another handler converts as part of its own (a folded batch norm). */
  readonly skip = new Set<NodeProto>();
  /** The Add of a constant bias vector folded into the MatMul before it (decided before conversion,
   * ops/matmul.ts planMatMulBias), by the MatMul. */
  readonly biasAddOf = new Map<NodeProto, NodeProto>();
  /** Pad nodes folded into the Conv layers that read them, by the Pad's output name. */
  readonly padOf = new Map<string, NodeProto>();
  /** The node producing each ONNX value (qdq.ts reads weights through their DequantizeLinear). */
  readonly producers = new Map<string, NodeProto>();
  /** ONNX values that are DequantizeLinear of a computed integer tensor (per tensor): that tensor (qdq.ts). */
  readonly dequantized = new Map<string, number>();
  /** QDQ compute nodes and the activations and QuantizeLinear that end them (qdq.ts planQdq). */
  readonly qdqTails = new Map<NodeProto, QdqTail>();
  /** Relu / Clip nodes fused into the integer clamp of the layer before them. */
  readonly fusedActivations = new Set<NodeProto>();

  constructor(
    /** The default (ai.onnx) domain's opset version. */
    readonly opsetVersion: number,
    readonly source: string,
  ) {}

  /** An initializer, Constant or frozen input: int64 values stay numbers (b.ints), the rest constant data. */
  declareConstant(t: OnnxTensor, name: string): void {
    const dtype = dtypeOf(t.elemType, `constant "${name}"`);
    if (dtype === 'i64') {
      const index = this.b.addTensor(name, { dtype: 'i32', shape: t.dims });
      this.b.ints.set(index, Array.from(t.data));
      this.values.set(name, index);
      return;
    }
    this.values.set(name, this.b.constant(name, dtype, t.dims, t.data));
  }

  /** What is known at import of ONNX value `name`: element type, static dims, and values if constant. */
  known(name: string): KnownTensor | undefined {
    const t = this.values.get(name);
    if (t === undefined) return undefined;
    const spec = this.b.tensors[t]!;
    const elemType = this.b.ints.has(t) ? ElemType.INT64 : elemTypeOf(spec.dtype);
    const data = this.constantValues(t);
    return { elemType, dims: [...spec.shape], ...(data ? { data } : {}) };
  }

  /** The values of a constant tensor as numbers, or undefined when it is computed at run time. */
  constantValues(t: number): number[] | undefined {
    const ints = this.b.ints.get(t);
    if (ints) return ints;
    const data = this.b.data.get(t);
    return data === undefined ? undefined : Array.from(data);
  }
}

/** One ONNX node seen through the import context: what a handler reads and writes. */
export class OnnxNode {
  /** The node's name (or "<OpType>_<index>" when it has none): IR nodes and errors are named after it. */
  readonly name: string;
  readonly opType: string;
  readonly attrs: ReadonlyMap<string, ReturnType<typeof attributeValue>>;

  constructor(
    readonly ctx: ImportContext,
    readonly proto: NodeProto,
    index: number,
  ) {
    this.opType = proto.opType ?? '';
    this.name = proto.name || `${proto.opType ?? 'node'}_${index}`;
    this.attrs = new Map((proto.attribute ?? []).map((a) => [a.name ?? '', attributeValue(a)]));
  }

  get b(): GraphBuilder {
    return this.ctx.b;
  }

  get opset(): number {
    return this.ctx.opsetVersion;
  }

  fail(why: string): never {
    throw new OnnxImportError(`node "${this.name}" (${this.opType}): ${why}`);
  }

  /** The tensor of input `index` of `node` (this node by default); fails if absent or never produced. */
  input(index: number, what: string, node: NodeProto = this.proto): number {
    const name = node.input?.[index] ?? '';
    const value = this.ctx.values.get(name);
    if (name === '' || value === undefined)
      throw new OnnxImportError(
        `node "${node.name ?? ''}" (${node.opType ?? ''}): input ${index} (${what}) "${name}" is not defined`,
      );
    return value;
  }

  /** The tensor of optional input `index`, or -1 when the node leaves it out. */
  optional(index: number, node: NodeProto = this.proto): number {
    const name = node.input?.[index] ?? '';
    return name === '' ? -1 : (this.ctx.values.get(name) ?? -1);
  }

  /** The values of input `index` (of `node`), which must be a constant. */
  constant(index: number, what: string, node: NodeProto = this.proto): number[] {
    const values = this.ctx.constantValues(this.input(index, what, node));
    if (values === undefined)
      throw new OnnxImportError(
        `node "${node.name ?? ''}" (${node.opType ?? ''}): ${what} must be a constant (an initializer) for a static memory plan`,
      );
    return values;
  }

  /** A list ONNX moved from an attribute to an input at opset `since` (Pad's pads, Split's sizes, Reduce's
   * and Squeeze's axes, ...): the constant input from then on, the attribute before; `fallback` when the
   * node gives neither. Values beyond int32 (INT64_MAX as "to the end") are clamped to it. */
  listArg(key: string, index: number, since: number, fallback: number[]): number[] {
    const values =
      this.opset >= since
        ? this.optional(index) < 0
          ? fallback
          : this.constant(index, key)
        : this.attrs.has(key)
          ? this.floats(key, fallback)
          : fallback;
    return values.map((v) => (Number.isInteger(v) ? Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, v)) : v));
  }

  /** Number of outputs the node names (an empty name is an output left out). */
  get outputCount(): number {
    return (this.proto.output ?? []).filter((o) => o !== '').length;
  }

  /** Binds ONNX output `index` to `tensor` (nothing when the node leaves that output out). */
  set(index: number, tensor: number): void {
    const out = this.proto.output?.[index];
    if (out) this.ctx.values.set(out, tensor);
  }

  /** One IR node named after this one (suffix: "name/suffix"), in the format of its first input; returns
   * its first output. */
  emit(op: string, inputs: number[], attrs: ManifestNode['attrs'] = {}, suffix?: string): number {
    const first = inputs.find((t) => t >= 0);
    const format = first === undefined ? 'f32' : this.b.formatOf(first);
    return this.b.emit(suffix ? `${this.name}/${suffix}` : this.name, op, format, inputs, attrs)[0]!;
  }

  #attr<T>(key: string, fallback: T, ok: (v: unknown) => boolean, kind: string): T {
    const value = this.attrs.get(key);
    if (value === undefined) return fallback;
    if (!ok(value)) this.fail(`attribute ${key} must be ${kind}`);
    return value as T;
  }

  int(key: string, fallback: number): number {
    return this.#attr(key, fallback, (v) => typeof v === 'number' && Number.isInteger(v), 'an integer');
  }

  ints(key: string, fallback: number[]): number[] {
    return this.#attr(
      key,
      fallback,
      (v) => Array.isArray(v) && v.every((x) => Number.isInteger(x)),
      'a list of integers',
    );
  }

  float(key: string, fallback: number): number {
    return this.#attr(key, fallback, (v) => typeof v === 'number', 'a number');
  }

  floats(key: string, fallback: number[]): number[] {
    return this.#attr(key, fallback, (v) => Array.isArray(v), 'a list of numbers');
  }

  string(key: string, fallback: string): string {
    return this.#attr(key, fallback, (v) => typeof v === 'string', 'a string');
  }

  tensor(key: string): OnnxTensor | undefined {
    return this.#attr<OnnxTensor | undefined>(
      key,
      undefined,
      (v) => typeof v === 'object' && !Array.isArray(v),
      'a tensor',
    );
  }

  /** A string or integer attribute restricted to the values the handler implements: anything else is
   * refused with the node and attribute named. */
  oneOf<T extends string | number>(key: string, fallback: T, allowed: readonly T[]): T {
    const value = (typeof fallback === 'number' ? this.int(key, fallback) : this.string(key, fallback)) as T;
    if (!allowed.includes(value))
      throw new UnsupportedAttributeError(
        this.name,
        this.opType,
        key,
        String(value),
        allowed.map(String).join(', '),
      );
    return value;
  }

  /** Fails unless tensor t is 4-D (N, C, H, W). */
  rank4(t: number, what: string): void {
    const rank = this.b.tensors[t]!.shape.length;
    if (rank !== 4) this.fail(`${what} must be 4-D (N, C, H, W); ${rank - 2}-D is not supported`);
  }

  /** The quantization of a (scale, zero point) input pair, both constants; zero points default to 0. */
  quant(scaleIndex: number, zeroIndex: number, axis: number | undefined): TensorQuantization {
    const scale = this.constant(scaleIndex, 'scale');
    const zero = this.optional(zeroIndex) < 0 ? scale.map(() => 0) : this.constant(zeroIndex, 'zero point');
    if (scale.some((s) => !(s > 0) || !Number.isFinite(s))) this.fail('scales must be positive');
    return { scale, zeroPoint: zero, ...(scale.length > 1 ? { axis: axis ?? 0 } : {}) };
  }
}
