// The ONNX protobuf schema (onnx-proto, protobufjs) and conversions of TensorProto to typed arrays.
import onnxProto from 'onnx-proto';

import { WhittleError } from '../../native/whittle-error.js';

export const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.ModelProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type GraphProto = onnxProto.onnx.IGraphProto;

/** A file that is not a readable ONNX model or TensorProto. */
export class OnnxImportError extends WhittleError {
  override readonly name = 'OnnxImportError';
  readonly code = 'bad-onnx';
}

/** ONNX element types this importer reads. */
export const ElemType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, DOUBLE: 11 } as const;

/** A graph input or output: a tensor of `elemType` (ElemType) with these dims, a string being a dim_param. */
export function tensorValueInfo(
  name: string,
  dims: readonly (number | string)[],
  elemType: number = ElemType.FLOAT,
): ValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

/** The bytes of a model of one graph importing the default domain at `opset` (IR version 7). */
export function encodeModel(
  graph: GraphProto,
  opset: number,
  producerName?: string,
  /** Opsets of other domains the graph uses (e.g. com.microsoft's). */
  domains: readonly { domain: string; version: number }[] = [],
): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 7,
    ...(producerName === undefined ? {} : { producerName }),
    opsetImport: [{ domain: '', version: opset }, ...domains],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

export interface OnnxTensor {
  name: string;
  elemType: number;
  dims: number[];
  /** Values as numbers (int64 must fit a double exactly, which every shape and index does). */
  data: Float32Array | Uint8Array | Int8Array | Int32Array | number[];
}

function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

export function decodeModel(bytes: Uint8Array, source: string): ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new OnnxImportError(`${source} is not an ONNX model: ${(error as Error).message}`);
  }
}

export function tensorFromProto(proto: TensorProto, source: string): OnnxTensor {
  const dims = (proto.dims ?? []).map(toNumber);
  const count = dims.reduce((p, d) => p * d, 1);
  const elemType = proto.dataType ?? 0;
  const raw = proto.rawData && proto.rawData.length > 0 ? proto.rawData : null;
  const name = proto.name ?? '';
  const fail = (why: string): never => {
    throw new OnnxImportError(`tensor "${name}" in ${source}: ${why}`);
  };
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) fail(`bad dims [${dims.join(', ')}]`);
  if (Number(proto.dataLocation ?? 0) === 1) fail('external data is not supported');
  const fromRaw = <T>(bytesPer: number, read: (view: DataView, offset: number) => T): T[] => {
    if (raw === null) return [];
    if (raw.length !== count * bytesPer)
      fail(`raw data of ${raw.length} bytes, expected ${count * bytesPer}`);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    return Array.from({ length: count }, (_, i) => read(view, i * bytesPer));
  };
  let data: OnnxTensor['data'];
  switch (elemType) {
    case ElemType.FLOAT:
      data = Float32Array.from(raw ? fromRaw(4, (v, o) => v.getFloat32(o, true)) : (proto.floatData ?? []));
      break;
    case ElemType.DOUBLE:
      data = Float32Array.from(raw ? fromRaw(8, (v, o) => v.getFloat64(o, true)) : (proto.doubleData ?? []));
      break;
    case ElemType.UINT8:
      data = Uint8Array.from(raw ? fromRaw(1, (v, o) => v.getUint8(o)) : (proto.int32Data ?? []));
      break;
    case ElemType.INT8:
      data = Int8Array.from(raw ? fromRaw(1, (v, o) => v.getInt8(o)) : (proto.int32Data ?? []));
      break;
    case ElemType.BOOL:
      data = Uint8Array.from(raw ? fromRaw(1, (v, o) => v.getUint8(o)) : (proto.int32Data ?? []));
      break;
    case ElemType.INT32:
      data = Int32Array.from(raw ? fromRaw(4, (v, o) => v.getInt32(o, true)) : (proto.int32Data ?? []));
      break;
    case ElemType.INT64:
      data = raw
        ? fromRaw(8, (v, o) => Number(v.getBigInt64(o, true)))
        : (proto.int64Data ?? []).map(toNumber);
      break;
    default:
      return fail(
        `element type ${elemType} is not supported (float, double, uint8, int8, int32, int64, bool are)`,
      );
  }
  if (data.length !== count) fail(`holds ${data.length} values, its dims [${dims.join(', ')}] need ${count}`);
  return { name, elemType, dims, data };
}

export function decodeTensorFile(bytes: Uint8Array, source: string): OnnxTensor {
  let proto: TensorProto;
  try {
    proto = onnx.TensorProto.decode(bytes);
  } catch (error) {
    throw new OnnxImportError(`${source} is not an ONNX TensorProto file: ${(error as Error).message}`);
  }
  return tensorFromProto(proto, source);
}

/** An attribute as a writer sets it: ints, a string, a tensor, or a number (an INT when it is whole, else
 * a FLOAT). The inverse of attributeValue. */
export function attributeProto(
  name: string,
  value: number | number[] | string | TensorProto,
): AttributeProto {
  if (Array.isArray(value)) return { name, type: 7, ints: value };
  if (typeof value === 'string') return { name, type: 3, s: new TextEncoder().encode(value) };
  if (typeof value === 'object') return { name, type: 4, t: value };
  return Number.isInteger(value) ? { name, type: 2, i: value } : { name, type: 1, f: value };
}

export function attributeValue(
  attribute: AttributeProto,
): number | number[] | string | OnnxTensor | undefined {
  // AttributeType: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS.
  switch (Number(attribute.type ?? 0)) {
    case 1:
      return attribute.f ?? 0;
    case 2:
      return toNumber(attribute.i as number | { toNumber(): number } | null | undefined);
    case 3:
      return new TextDecoder().decode(attribute.s ?? new Uint8Array());
    case 4:
      return attribute.t ? tensorFromProto(attribute.t, `attribute ${attribute.name ?? ''}`) : undefined;
    case 6:
      return [...(attribute.floats ?? [])];
    case 7:
      return (attribute.ints ?? []).map(toNumber);
    default:
      return undefined;
  }
}
