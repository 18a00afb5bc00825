// Reads a .tflite file: a FlatBuffer of the TFLite schema (schema.fbs), read through the accessors flatc
// generates for the flatbuffers npm runtime (schema-generated.ts). Those accessors trust every offset, so
// the whole buffer is first verified against the part of the schema the importer reads, as FlatBuffers' own
// C++ Verifier does: each table's vtable and fields, each vector and string, each union member inside the
// file, with a bound on the tables visited (a hostile file can point many offsets at one big table). Then
// the model is decoded into plain objects and checked as a graph: tensor, buffer and opcode indices in
// range, shapes of sane size, constant data of the size the shape says, quantization that fits its tensor,
// and operators in an order where each input exists before it is read (no cycles, no missing tensors).
// Anything else is refused with a TfliteImportError naming the place.
import * as flatbuffers from 'flatbuffers';

import { whittleError } from '../../native/whittle-error.js';
import {
  AddOptions,
  BuiltinOperator,
  BuiltinOptions,
  ConcatenationOptions,
  Conv2DOptions,
  DepthwiseConv2DOptions,
  FullyConnectedOptions,
  Model,
  MulOptions,
  Pool2DOptions,
  ReducerOptions,
  ReshapeOptions,
  SoftmaxOptions,
  TensorType,
} from './schema-generated.js';

export { ActivationFunctionType, BuiltinOperator, Padding, TensorType } from './schema-generated.js';

/** A .tflite file the importer cannot read: malformed, hostile, or outside what Whittle supports. */
export class TfliteImportError extends whittleError('TfliteImportError', 'tflite-import') {}

/** Whether `bytes` look like a TFLite flatbuffer (the "TFL3" file identifier at offset 4). */
export function isTflite(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && String.fromCharCode(...bytes.subarray(4, 8)) === 'TFL3';
}

// ---- Verification -------------------------------------------------------------------------------------

/** What a table's field slot holds, as far as the verifier needs to know. */
type Field =
  | { kind: 'scalar'; size: 1 | 2 | 4 | 8 }
  | { kind: 'table'; table: string }
  | { kind: 'vector'; size: 1 | 4 | 8 }
  | { kind: 'tables'; table: string }
  | { kind: 'string' }
  /** The value slot of a union; its type byte is the slot before. Members by union value (0 = NONE). */
  | { kind: 'union'; members: readonly string[] };

const u8: Field = { kind: 'scalar', size: 1 };
const i32: Field = { kind: 'scalar', size: 4 };
const ints: Field = { kind: 'vector', size: 4 };
const str: Field = { kind: 'string' };

/** The BuiltinOptions union's members by value, as the generated enum names them. */
const OPTION_TABLES: readonly string[] = Object.keys(BuiltinOptions).filter((k) => Number.isNaN(Number(k)));

/** The tables of schema.fbs by name, each field by slot id. Option tables not listed have no fields the
 * importer reads; their vtables are still verified. */
const SCHEMA: Readonly<Record<string, readonly Field[]>> = {
  Model: [
    i32,
    { kind: 'tables', table: 'OperatorCode' },
    { kind: 'tables', table: 'SubGraph' },
    str,
    { kind: 'tables', table: 'Buffer' },
    ints,
  ],
  OperatorCode: [u8, str, i32, i32],
  SubGraph: [{ kind: 'tables', table: 'Tensor' }, ints, ints, { kind: 'tables', table: 'Operator' }, str],
  Tensor: [ints, u8, i32, str, { kind: 'table', table: 'QuantizationParameters' }, u8],
  QuantizationParameters: [
    ints,
    ints,
    ints,
    { kind: 'vector', size: 8 },
    u8,
    { kind: 'union', members: ['NONE', 'CustomQuantization'] },
    i32,
  ],
  CustomQuantization: [{ kind: 'vector', size: 1 }],
  Operator: [
    i32,
    ints,
    ints,
    u8,
    { kind: 'union', members: OPTION_TABLES },
    { kind: 'vector', size: 1 },
    u8,
    { kind: 'vector', size: 1 },
  ],
  Buffer: [{ kind: 'vector', size: 1 }],
  Conv2DOptions: [u8, i32, i32, u8, i32, i32],
  DepthwiseConv2DOptions: [u8, i32, i32, i32, u8, i32, i32],
  Pool2DOptions: [u8, i32, i32, i32, i32, u8],
  FullyConnectedOptions: [u8, u8, u8],
  SoftmaxOptions: [i32],
  ConcatenationOptions: [i32, u8],
  AddOptions: [u8],
  MulOptions: [u8],
  ReshapeOptions: [ints],
  ReducerOptions: [u8],
};

class Verifier {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #tables = 0;
  readonly #maxTables: number;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // A real file has at most one table per 4 bytes; more visits mean offsets shared to blow up the work.
    this.#maxTables = Math.floor(bytes.length / 4) + 16;
  }

  fail(where: string, why: string): never {
    throw new TfliteImportError(`malformed TFLite file: ${where}: ${why}`);
  }

  #within(at: number, size: number, where: string): void {
    if (!Number.isInteger(at) || at < 0 || size < 0 || at + size > this.#bytes.length)
      this.fail(where, `bytes ${at}..${at + size} lie outside the file (${this.#bytes.length} bytes)`);
  }

  i32(at: number, where: string): number {
    this.#within(at, 4, where);
    return this.#view.getInt32(at, true);
  }

  u16(at: number, where: string): number {
    this.#within(at, 2, where);
    return this.#view.getUint16(at, true);
  }

  /** The position an offset field at `at` points to. */
  target(at: number, where: string): number {
    const to = at + this.i32(at, where);
    this.#within(to, 4, where);
    return to;
  }

  vector(at: number, elementSize: number, where: string): { start: number; length: number } {
    const length = this.i32(at, where);
    if (length < 0) this.fail(where, `vector length ${length}`);
    this.#within(at + 4, length * elementSize, `${where} (${length} elements)`);
    return { start: at + 4, length };
  }

  table(pos: number, name: string, where: string): void {
    if (++this.#tables > this.#maxTables) this.fail(where, 'more tables than the file can hold');
    const vtable = pos - this.i32(pos, where);
    const vtableSize = this.u16(vtable, `${where} vtable`);
    const tableSize = this.u16(vtable + 2, `${where} vtable`);
    if (vtableSize < 4 || vtableSize % 2 !== 0) this.fail(where, `vtable size ${vtableSize}`);
    this.#within(vtable, vtableSize, `${where} vtable`);
    if (tableSize < 4) this.fail(where, `table size ${tableSize}`);
    this.#within(pos, tableSize, where);
    const fields = SCHEMA[name] ?? [];
    for (let slot = 0; slot < fields.length && 4 + 2 * slot < vtableSize; slot++) {
      const field = fields[slot]!;
      const offset = this.u16(vtable + 4 + 2 * slot, `${where} vtable`);
      if (offset === 0) continue;
      const at = pos + offset;
      const fieldWhere = `${where}.field${slot}`;
      const size = field.kind === 'scalar' ? field.size : 4;
      if (offset + size > tableSize)
        this.fail(fieldWhere, `field at ${offset} past the table's ${tableSize} bytes`);
      switch (field.kind) {
        case 'scalar':
          break;
        case 'table':
          this.table(this.target(at, fieldWhere), field.table, fieldWhere);
          break;
        case 'vector':
          this.vector(this.target(at, fieldWhere), field.size, fieldWhere);
          break;
        case 'string': {
          const { start, length } = this.vector(this.target(at, fieldWhere), 1, fieldWhere);
          this.#within(start + length, 1, `${fieldWhere} (string terminator)`);
          break;
        }
        case 'tables': {
          const { start, length } = this.vector(this.target(at, fieldWhere), 4, fieldWhere);
          for (let i = 0; i < length; i++)
            this.table(this.target(start + 4 * i, fieldWhere), field.table, `${fieldWhere}[${i}]`);
          break;
        }
        case 'union': {
          const typeOffset = slot > 0 ? this.u16(vtable + 2 + 2 * slot, `${where} vtable`) : 0;
          const type = typeOffset === 0 ? 0 : this.#bytes[pos + typeOffset]!;
          const member = field.members[type];
          if (member === undefined) this.fail(fieldWhere, `union type ${type} is unknown`);
          if (type !== 0) this.table(this.target(at, fieldWhere), member, fieldWhere);
          break;
        }
      }
    }
  }
}

// ---- Decoding -----------------------------------------------------------------------------------------

export interface TfliteQuantization {
  scale: number[];
  zeroPoint: number[];
  /** The quantized dimension (per-channel scales), else undefined. */
  axis?: number;
}

export interface TfliteTensor {
  index: number;
  name: string;
  type: TensorType;
  shape: number[];
  /** The constant data (a copy, 16-byte aligned), or undefined for an activation. */
  data?: Uint8Array;
  quant?: TfliteQuantization;
}

export interface TfliteOptions {
  padding?: number;
  strideH?: number;
  strideW?: number;
  dilationH?: number;
  dilationW?: number;
  filterH?: number;
  filterW?: number;
  depthMultiplier?: number;
  activation?: number;
  axis?: number;
  beta?: number;
  keepDims?: boolean;
  newShape?: number[];
  weightsFormat?: number;
}

export interface TfliteOperator {
  /** The builtin op, or -1 for a custom one (then `custom` names it). */
  op: BuiltinOperator | -1;
  /** The op's name for messages: the builtin enum name or the custom code. */
  opName: string;
  custom?: string;
  /** Its first output tensor's name (TFLite operators have none of their own). */
  name: string;
  /** Tensor indices; -1 marks an absent optional input. */
  inputs: number[];
  outputs: number[];
  options: TfliteOptions;
}

export interface TfliteModel {
  version: number;
  description: string;
  tensors: TfliteTensor[];
  inputs: number[];
  outputs: number[];
  operators: TfliteOperator[];
}

/** The largest tensor the importer takes (elements); larger shapes are refused as hostile. */
export const MAX_TENSOR_ELEMENTS = 1 << 28;
const MAX_RANK = 8;

const ELEMENT_BYTES: Partial<Record<TensorType, number>> = {
  [TensorType.FLOAT32]: 4,
  [TensorType.FLOAT16]: 2,
  [TensorType.INT32]: 4,
  [TensorType.UINT8]: 1,
  [TensorType.INT64]: 8,
  [TensorType.BOOL]: 1,
  [TensorType.INT16]: 2,
  [TensorType.INT8]: 1,
  [TensorType.FLOAT64]: 8,
};

/** An operator's builtin options, read through the generated table of their union type. */
function readOptions(type: BuiltinOptions, read: <T>(o: T) => T | null): TfliteOptions {
  // A union type without its table (offset 0) reads as no options; the importer refuses what it needs.
  if (type === BuiltinOptions.NONE || read(new AddOptions()) === null) return {};
  return optionsOf(type, (o) => read(o)!);
}

function optionsOf(type: BuiltinOptions, get: <T>(o: T) => T): TfliteOptions {
  switch (type) {
    case BuiltinOptions.Conv2DOptions: {
      const o = get(new Conv2DOptions());
      return {
        padding: o.padding(),
        strideW: o.strideW(),
        strideH: o.strideH(),
        activation: o.fusedActivationFunction(),
        dilationW: o.dilationWFactor(),
        dilationH: o.dilationHFactor(),
      };
    }
    case BuiltinOptions.DepthwiseConv2DOptions: {
      const o = get(new DepthwiseConv2DOptions());
      return {
        padding: o.padding(),
        strideW: o.strideW(),
        strideH: o.strideH(),
        depthMultiplier: o.depthMultiplier(),
        activation: o.fusedActivationFunction(),
        dilationW: o.dilationWFactor(),
        dilationH: o.dilationHFactor(),
      };
    }
    case BuiltinOptions.Pool2DOptions: {
      const o = get(new Pool2DOptions());
      return {
        padding: o.padding(),
        strideW: o.strideW(),
        strideH: o.strideH(),
        filterW: o.filterWidth(),
        filterH: o.filterHeight(),
        activation: o.fusedActivationFunction(),
      };
    }
    case BuiltinOptions.FullyConnectedOptions: {
      const o = get(new FullyConnectedOptions());
      return {
        activation: o.fusedActivationFunction(),
        weightsFormat: o.weightsFormat(),
        keepDims: o.keepNumDims(),
      };
    }
    case BuiltinOptions.SoftmaxOptions:
      return { beta: get(new SoftmaxOptions()).beta() };
    case BuiltinOptions.ConcatenationOptions: {
      const o = get(new ConcatenationOptions());
      return { axis: o.axis(), activation: o.fusedActivationFunction() };
    }
    case BuiltinOptions.AddOptions:
      return { activation: get(new AddOptions()).fusedActivationFunction() };
    case BuiltinOptions.MulOptions:
      return { activation: get(new MulOptions()).fusedActivationFunction() };
    case BuiltinOptions.ReshapeOptions: {
      const o = get(new ReshapeOptions());
      return {
        newShape: Array.from({ length: o.newShapeLength() }, (_, i) => o.newShape(i)!),
      };
    }
    case BuiltinOptions.ReducerOptions:
      return { keepDims: get(new ReducerOptions()).keepDims() };
    default:
      return {};
  }
}

/** Decodes and checks a .tflite file; throws TfliteImportError for anything malformed. */
export function readTflite(bytes: Uint8Array, source = 'model.tflite'): TfliteModel {
  if (bytes.length < 8)
    throw new TfliteImportError(`${source} is too short for a TFLite file (${bytes.length} bytes)`);
  if (!isTflite(bytes)) throw new TfliteImportError(`${source} is not a TFLite file (no "TFL3" identifier)`);
  const verifier = new Verifier(bytes);
  verifier.table(verifier.target(0, 'root'), 'Model', 'model');

  const bb = new flatbuffers.ByteBuffer(bytes);
  const model = Model.getRootAsModel(bb);
  const fail = (why: string): never => {
    throw new TfliteImportError(`${source}: ${why}`);
  };
  const version = model.version();
  if (version !== 3) fail(`schema version ${version} is not supported (TFLite files are version 3)`);
  if (model.subgraphsLength() < 1) fail('the model has no subgraph');
  const graph = model.subgraphs(0)!;

  const buffers = model.buffersLength();
  const tensors: TfliteTensor[] = [];
  for (let t = 0; t < graph.tensorsLength(); t++) {
    const tensor = graph.tensors(t)!;
    const name = tensor.name() ?? `tensor${t}`;
    const where = `tensor ${t} "${name}"`;
    const type = tensor.type();
    const shape = Array.from({ length: tensor.shapeLength() }, (_, i) => tensor.shape(i)!);
    if (shape.length > MAX_RANK) fail(`${where}: rank ${shape.length} is over ${MAX_RANK}`);
    let count = 1;
    for (const d of shape) {
      if (d < 0) fail(`${where}: dimension ${d} (dynamic shapes are not supported)`);
      count *= d;
      if (count > MAX_TENSOR_ELEMENTS)
        fail(`${where}: shape [${shape.join(', ')}] is over ${MAX_TENSOR_ELEMENTS} elements`);
    }
    const bufferIndex = tensor.buffer();
    if (bufferIndex >= buffers && bufferIndex !== 0)
      fail(`${where}: buffer ${bufferIndex} does not exist (${buffers} buffers)`);
    const buffer = bufferIndex < buffers ? model.buffers(bufferIndex)! : null;
    const length = buffer?.dataLength() ?? 0;
    let data: Uint8Array | undefined;
    if (length > 0) {
      const size = ELEMENT_BYTES[type];
      if (size === undefined) fail(`${where}: constant of type ${TensorType[type] ?? type} is not supported`);
      if (length !== count * size!)
        fail(
          `${where}: buffer ${bufferIndex} holds ${length} bytes, the shape [${shape.join(', ')}] needs ${count * size!}`,
        );
      // A copy: the reader's views need alignment the file does not promise.
      data = new Uint8Array(length);
      const start = buffer!.dataArray()!;
      data.set(start);
    }
    const q = tensor.quantization();
    let quant: TfliteQuantization | undefined;
    if (q !== null && q.scaleLength() > 0) {
      const scale = Array.from({ length: q.scaleLength() }, (_, i) => q.scale(i)!);
      const zeroPoint = Array.from({ length: q.zeroPointLength() }, (_, i) => Number(q.zeroPoint(i)!));
      if (zeroPoint.length === 0) zeroPoint.push(...scale.map(() => 0));
      if (zeroPoint.length !== scale.length)
        fail(`${where}: ${scale.length} scales but ${zeroPoint.length} zero points`);
      if (scale.some((s) => !(s > 0) || !Number.isFinite(s)))
        fail(`${where}: quantization scales must be positive`);
      if (zeroPoint.some((z) => !Number.isSafeInteger(z) || Math.abs(z) > 65535))
        fail(`${where}: zero point out of range`);
      if (scale.length > 1) {
        const axis = q.quantizedDimension();
        if (axis < 0 || axis >= shape.length || shape[axis] !== scale.length)
          fail(`${where}: ${scale.length} scales do not match dimension ${axis} of [${shape.join(', ')}]`);
        quant = { scale, zeroPoint, axis };
      } else quant = { scale, zeroPoint };
    }
    tensors.push({ index: t, name, type, shape, ...(data ? { data } : {}), ...(quant ? { quant } : {}) });
  }

  const indices = (n: number, at: (i: number) => number | null, where: string, optional: boolean): number[] =>
    Array.from({ length: n }, (_, i) => {
      const t = at(i)!;
      if ((t < 0 && !(optional && t === -1)) || t >= tensors.length)
        fail(`${where}: tensor index ${t} is out of range (${tensors.length} tensors)`);
      return t;
    });
  const inputs = indices(graph.inputsLength(), (i) => graph.inputs(i), 'subgraph inputs', false);
  const outputs = indices(graph.outputsLength(), (i) => graph.outputs(i), 'subgraph outputs', false);
  if (inputs.length === 0) fail('the model has no input');
  if (outputs.length === 0) fail('the model has no output');

  const codes = model.operatorCodesLength();
  const available = new Set<number>([...inputs, ...tensors.filter((t) => t.data).map((t) => t.index)]);
  const operators: TfliteOperator[] = [];
  for (let k = 0; k < graph.operatorsLength(); k++) {
    const operator = graph.operators(k)!;
    const index = operator.opcodeIndex();
    if (index >= codes) fail(`operator ${k}: opcode index ${index} is out of range (${codes} codes)`);
    const code = model.operatorCodes(index)!;
    // TFLite >= 2.4 writes the builtin code in slot 3 and keeps slot 0 for older readers (the larger wins).
    const builtin = Math.max(code.builtinCode(), code.deprecatedBuiltinCode()) as BuiltinOperator;
    const custom = builtin === BuiltinOperator.CUSTOM ? (code.customCode() ?? 'custom') : undefined;
    const opName = custom ?? BuiltinOperator[builtin] ?? `BUILTIN_${builtin}`;
    const opInputs = indices(
      operator.inputsLength(),
      (i) => operator.inputs(i),
      `operator ${k} (${opName}) inputs`,
      true,
    );
    const opOutputs = indices(
      operator.outputsLength(),
      (i) => operator.outputs(i),
      `operator ${k} (${opName}) outputs`,
      false,
    );
    if (opOutputs.length === 0) fail(`operator ${k} (${opName}) has no output`);
    const name = tensors[opOutputs[0]!]!.name;
    for (const t of opInputs)
      if (t >= 0 && !available.has(t))
        fail(
          `operator ${k} (${opName}) "${name}" reads tensor ${t} "${tensors[t]!.name}" before anything writes it`,
        );
    for (const t of opOutputs) {
      if (available.has(t))
        fail(
          `operator ${k} (${opName}) "${name}" writes tensor ${t} "${tensors[t]!.name}", which already has a value`,
        );
      available.add(t);
    }
    const options = readOptions(
      operator.builtinOptionsType(),
      <T>(o: T) => operator.builtinOptions(o) as T | null,
    );
    operators.push({
      op: custom === undefined ? builtin : -1,
      opName,
      ...(custom !== undefined ? { custom } : {}),
      name,
      inputs: opInputs,
      outputs: opOutputs,
      options,
    });
  }
  for (const t of outputs)
    if (!available.has(t)) fail(`output tensor ${t} "${tensors[t]!.name}" is never written`);
  return { version, description: model.description() ?? '', tensors, inputs, outputs, operators };
}
