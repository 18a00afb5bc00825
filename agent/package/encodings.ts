// Weight encodings of tensor sections, one per number format of the kernel library, with the byte layout,
// the encoder (used by optimize/package) and the strict decoder (used by the reader) side by side.
// Layouts of binary, ternary, sparse and codebook rows are those the native kernels read
// (native/formats.md): a decoded section is handed to a kernel without repacking.
//
// Logical tensor: `shape`, row-major. For the per-row encodings, rows = shape[0] (output channels) and
// K = product(shape[1..]) (for OHWI conv weights, k = (ky * kw + kx) * cin + i, the kernels' order).
import { whittleError } from '../../native/whittle-error.js';
import { quantizeNearest } from '../runtime/number/fixed-point.js';
import { PackageError, type PackageErrorLocation } from './errors.js';
import { huffmanCodeLengths, huffmanDecode, huffmanEncode } from './huffman.js';
import type { NumberFormat } from './number-formats.js';

/** Values an encoder cannot store as asked (a nonzero that is no centroid, a shape that does not match). */
export class EncodingError extends whittleError('EncodingError', 'bad-encoder-input') {}

export type DType = 'f32' | 'i8' | 'u8' | 'i32' | 'bool';
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, i8: 1, u8: 1, i32: 4, bool: 1 };

/** Section table codes. */
export const EncodingCode = {
  raw: 1,
  fixed16: 2,
  fixed8: 3,
  binary: 4,
  ternary: 5,
  sparse: 6,
  codebook: 7,
  hashed: 8,
  xnor: 9,
  'sparse-codebook': 10,
} as const;
export type EncodingName = keyof typeof EncodingCode;

/** Per-encoding parameters stored in the manifest next to the tensor. */
export type Encoding =
  | { kind: 'raw' }
  /** value = q * 2^-fracBits, q int16 (fixed16) or int8 (fixed8). */
  | { kind: 'fixed16'; fracBits: number }
  | { kind: 'fixed8'; fracBits: number }
  /** value = alpha[row] * (bit ? -1 : +1). */
  | { kind: 'binary' }
  /** value = alpha[row] * t, t in {-1, 0, 1}. */
  | { kind: 'ternary' }
  /** CSR over [rows][K]; values of the tensor's dtype (f32 or i8). */
  | { kind: 'sparse'; nnz: number }
  /** value = codebook[index]; indices Huffman-coded in the package, indexBits wide for the kernel. */
  | { kind: 'codebook'; size: number; indexBits: number; streamBytes: number }
  /** HashedNets: value[i] = sign(i) * buckets[hash(i) % buckets]. */
  | { kind: 'hashed'; buckets: number; seed: number }
  /** XNOR-Net weights: alpha[o] * (bit ? -1 : +1), bits per kernel tap in 64-bit words of input channels. */
  | { kind: 'xnor' }
  /** Deep Compression's pruned and shared tensor (format 1.2): the nonzeros' positions as Huffman-coded
   * relative indices (gaps of gapBits, with fillers), each nonzero's cluster index Huffman-coded; see
   * SPARSE_CODEBOOK_LAYOUT below. */
  | {
      kind: 'sparse-codebook';
      size: number;
      gapBits: number;
      nnz: number;
      /** Gap symbols: nnz + fillers. */
      gaps: number;
      indexStreamBytes: number;
      gapStreamBytes: number;
    };

/** A decoded tensor section: dense values for raw ones, the kernels' packed parts for compressed ones. */
export type DecodedTensor =
  | { kind: 'raw'; values: Float32Array | Int8Array | Uint8Array | Int32Array }
  | { kind: 'fixed16'; fracBits: number; values: Int16Array }
  | { kind: 'fixed8'; fracBits: number; values: Int8Array }
  | { kind: 'binary'; rows: number; k: number; alpha: Float32Array; bits: Uint32Array }
  | { kind: 'ternary'; rows: number; k: number; alpha: Float32Array; nonzero: Uint32Array; sign: Uint32Array }
  | {
      kind: 'sparse';
      rows: number;
      k: number;
      rowOffsets: Uint32Array;
      columns: Uint32Array;
      values: Float32Array | Int8Array;
    }
  | {
      kind: 'codebook';
      rows: number;
      k: number;
      codebook: Float32Array;
      indexBits: number;
      /** One index per element (the kernels' packed rows are built from these at load). */
      indices: Uint8Array;
      /** Huffman code length per codebook entry, as stored. */
      codeLengths: number[];
    }
  | { kind: 'hashed'; buckets: Float32Array; seed: number }
  | { kind: 'xnor'; rows: number; taps: number; channels: number; alpha: Float32Array; words: Uint32Array }
  | {
      /** The nonzeros' flat row-major positions (increasing; row = position / K) and cluster indices. Not
       * CSR: row offsets would take 4 (rows + 1) bytes whatever the section's size, and the reader allocates
       * nothing its section does not bound; the runtime builds the sparse kernels' CSR at load. */
      kind: 'sparse-codebook';
      codebook: Float32Array;
      gapBits: number;
      positions: Uint32Array;
      indices: Uint8Array;
      /** Huffman code lengths as stored (so the section re-encodes byte for byte). */
      indexCodeLengths: number[];
      gapCodeLengths: number[];
    };

export interface TensorLayout {
  dtype: DType;
  shape: readonly number[];
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function rowsAndK(shape: readonly number[]): { rows: number; k: number } {
  const rows = shape[0] ?? 1;
  return { rows, k: rows === 0 ? 0 : elementCount(shape) / rows };
}

const rowWords = (k: number): number => Math.ceil(k / 32);

/** Bytes the section of this encoding must hold; every factor is bounded by the manifest limits, so the
 * products stay exact doubles. */
export function encodedByteLength(layout: TensorLayout, encoding: Encoding): number {
  const n = elementCount(layout.shape);
  const { rows, k } = rowsAndK(layout.shape);
  switch (encoding.kind) {
    case 'raw':
      return n * DTYPE_BYTES[layout.dtype];
    case 'fixed16':
      return 2 * n;
    case 'fixed8':
      return n;
    case 'binary':
      return 4 * rows + 4 * rows * rowWords(k);
    case 'ternary':
      return 4 * rows + 8 * rows * rowWords(k);
    case 'sparse':
      return 4 * (rows + 1) + 4 * encoding.nnz + encoding.nnz * DTYPE_BYTES[layout.dtype];
    case 'codebook':
      return 4 * encoding.size + encoding.size + encoding.streamBytes;
    case 'hashed':
      return 4 * encoding.buckets;
    case 'sparse-codebook':
      return 5 * encoding.size + 2 ** encoding.gapBits + encoding.indexStreamBytes + encoding.gapStreamBytes;
    case 'xnor': {
      const { taps, channels } = xnorGeometry(layout.shape);
      return 4 * rows + 8 * rows * taps * Math.ceil(channels / 64);
    }
  }
}

/** XNOR weights are [O][kh][kw][cin] (conv) or [O][cin] (fully connected): taps = kh * kw. */
export function xnorGeometry(shape: readonly number[]): { taps: number; channels: number } {
  const channels = shape[shape.length - 1] ?? 0;
  const taps = shape.length === 4 ? shape[1]! * shape[2]! : 1;
  return { taps, channels };
}

/** Which logical dtypes each encoding can hold. */
export function encodingAllows(encoding: Encoding, dtype: DType): boolean {
  if (encoding.kind === 'raw') return true;
  // int8 bit planes (format 1.5): an int8 tensor whose every row takes the values {-a, 0, a} or {-a, a}.
  if (encoding.kind === 'sparse' || encoding.kind === 'binary' || encoding.kind === 'ternary')
    return dtype === 'f32' || dtype === 'i8';
  return dtype === 'f32';
}

/** Whether an int8 tensor is stored as bit planes (format 1.5): binary or ternary rows of integer magnitudes. */
export function isInt8BitPlanes(encoding: Encoding | undefined, dtype: DType): boolean {
  return dtype === 'i8' && (encoding?.kind === 'binary' || encoding?.kind === 'ternary');
}

/** An int8 plane's magnitudes must be int8 values: each row's alpha an integer in [0, 127]. */
function checkInt8Alpha(alpha: Float32Array, location: PackageErrorLocation): void {
  const bad = alpha.findIndex((a) => !Number.isInteger(a) || a < 0 || a > 127);
  if (bad >= 0)
    throw new PackageError(
      'bad-weights',
      `int8 bit planes: row ${bad}'s magnitude ${alpha[bad]} is not an integer in [0, 127]`,
      location,
    );
}

/** Copies `length` bytes at `offset` into a fresh, aligned ArrayBuffer (a file buffer's offset may not be). */
function copy(bytes: Buffer, offset: number, length: number): ArrayBuffer {
  const out = new ArrayBuffer(length);
  new Uint8Array(out).set(bytes.subarray(offset, offset + length));
  return out;
}

function checkRowPadding(
  words: Uint32Array,
  rows: number,
  k: number,
  what: string,
  location: PackageErrorLocation,
): void {
  const perRow = rowWords(k);
  const usedInLast = k % 32;
  if (usedInLast === 0) return;
  const mask = ~((1 << usedInLast) - 1) >>> 0;
  for (let r = 0; r < rows; r++) {
    if ((words[r * perRow + perRow - 1]! & mask) !== 0) {
      throw new PackageError('bad-weights', `${what} row ${r} has bits set past its ${k} elements`, location);
    }
  }
}

/** Decodes and checks one tensor section; `bytes` is the whole file, [offset, offset + length) the section,
 * whose length the caller has already checked against encodedByteLength. */
export function decodeTensor(
  bytes: Buffer,
  offset: number,
  layout: TensorLayout,
  encoding: Encoding,
  location: PackageErrorLocation,
): DecodedTensor {
  const n = elementCount(layout.shape);
  const { rows, k } = rowsAndK(layout.shape);
  switch (encoding.kind) {
    case 'raw': {
      const buffer = copy(bytes, offset, n * DTYPE_BYTES[layout.dtype]);
      const values =
        layout.dtype === 'f32'
          ? new Float32Array(buffer)
          : layout.dtype === 'i32'
            ? new Int32Array(buffer)
            : layout.dtype === 'i8'
              ? new Int8Array(buffer)
              : new Uint8Array(buffer);
      if (layout.dtype === 'bool') {
        const bad = (values as Uint8Array).findIndex((v) => v > 1);
        if (bad >= 0)
          throw new PackageError('bad-weights', `bool element ${bad} is neither 0 nor 1`, location);
      }
      return { kind: 'raw', values };
    }
    case 'fixed16': {
      const values = new Int16Array(copy(bytes, offset, 2 * n));
      // The kernels' SIMD paths add two products in int32: -32768 * -32768 * 2 would overflow.
      const bad = values.indexOf(-32768);
      if (bad >= 0)
        throw new PackageError(
          'bad-weights',
          `fixed16 weight ${bad} is -32768, outside [-32767, 32767]`,
          location,
        );
      return { kind: 'fixed16', fracBits: encoding.fracBits, values };
    }
    case 'fixed8':
      return { kind: 'fixed8', fracBits: encoding.fracBits, values: new Int8Array(copy(bytes, offset, n)) };
    case 'binary': {
      const alpha = new Float32Array(copy(bytes, offset, 4 * rows));
      const bits = new Uint32Array(copy(bytes, offset + 4 * rows, 4 * rows * rowWords(k)));
      checkRowPadding(bits, rows, k, 'binary sign plane', location);
      if (layout.dtype === 'i8') checkInt8Alpha(alpha, location);
      return { kind: 'binary', rows, k, alpha, bits };
    }
    case 'ternary': {
      const planeBytes = 4 * rows * rowWords(k);
      const alpha = new Float32Array(copy(bytes, offset, 4 * rows));
      const nonzero = new Uint32Array(copy(bytes, offset + 4 * rows, planeBytes));
      const sign = new Uint32Array(copy(bytes, offset + 4 * rows + planeBytes, planeBytes));
      checkRowPadding(nonzero, rows, k, 'ternary nonzero plane', location);
      for (let i = 0; i < sign.length; i++) {
        if ((sign[i]! & ~nonzero[i]!) !== 0) {
          throw new PackageError(
            'bad-weights',
            `ternary sign bit set on a zero weight (word ${i})`,
            location,
          );
        }
      }
      if (layout.dtype === 'i8') checkInt8Alpha(alpha, location);
      return { kind: 'ternary', rows, k, alpha, nonzero, sign };
    }
    case 'sparse': {
      const { nnz } = encoding;
      const rowOffsets = new Uint32Array(copy(bytes, offset, 4 * (rows + 1)));
      const columns = new Uint32Array(copy(bytes, offset + 4 * (rows + 1), 4 * nnz));
      const valuesAt = offset + 4 * (rows + 1) + 4 * nnz;
      const values =
        layout.dtype === 'i8'
          ? new Int8Array(copy(bytes, valuesAt, nnz))
          : new Float32Array(copy(bytes, valuesAt, 4 * nnz));
      if (rowOffsets[0] !== 0 || rowOffsets[rows] !== nnz) {
        throw new PackageError('bad-weights', `sparse row offsets must run from 0 to nnz ${nnz}`, location);
      }
      for (let r = 0; r < rows; r++) {
        const start = rowOffsets[r]!;
        const end = rowOffsets[r + 1]!;
        if (end < start || end > nnz) {
          throw new PackageError(
            'bad-weights',
            `sparse row ${r} offsets [${start}, ${end}) are not ordered within nnz ${nnz}`,
            location,
          );
        }
        for (let j = start; j < end; j++) {
          const column = columns[j]!;
          if (column >= k || (j > start && column <= columns[j - 1]!)) {
            throw new PackageError(
              'bad-weights',
              `sparse row ${r}: column ${column} is out of [0, ${k}) or not strictly increasing`,
              location,
            );
          }
        }
      }
      return { kind: 'sparse', rows, k, rowOffsets, columns, values };
    }
    case 'codebook': {
      const { size, indexBits, streamBytes } = encoding;
      const codebook = new Float32Array(copy(bytes, offset, 4 * size));
      const lengths = Array.from(bytes.subarray(offset + 4 * size, offset + 5 * size));
      const stream = bytes.subarray(offset + 5 * size, offset + 5 * size + streamBytes);
      if (n > 8 * streamBytes) {
        throw new PackageError(
          'bad-weights',
          `codebook stream of ${streamBytes} bytes cannot hold ${n} indices`,
          location,
        );
      }
      const indices = huffmanDecode(stream, lengths, n, location);
      // Lengths > 0 only for symbols < size (lengths has `size` entries), so every index < size <= 2^indexBits.
      return { kind: 'codebook', rows, k, codebook, indexBits, indices, codeLengths: lengths };
    }
    case 'xnor': {
      const { taps, channels } = xnorGeometry(layout.shape);
      const perTap = 2 * Math.ceil(channels / 64);
      const alpha = new Float32Array(copy(bytes, offset, 4 * rows));
      const words = new Uint32Array(copy(bytes, offset + 4 * rows, 4 * rows * taps * perTap));
      const used = channels % 64;
      if (used !== 0) {
        for (let t = 0; t < rows * taps; t++) {
          const lo = words[t * perTap + perTap - 2]!;
          const hi = words[t * perTap + perTap - 1]!;
          const badLo = used < 32 ? lo & (0xffffffff << used) : 0;
          const badHi = used <= 32 ? hi : hi & (0xffffffff << (used - 32));
          if (badLo !== 0 || badHi !== 0) {
            throw new PackageError(
              'bad-weights',
              `xnor weight row ${t} has bits set past its ${channels} channels`,
              location,
            );
          }
        }
      }
      return { kind: 'xnor', rows, taps, channels, alpha, words };
    }
    case 'hashed':
      return {
        kind: 'hashed',
        buckets: new Float32Array(copy(bytes, offset, 4 * encoding.buckets)),
        seed: encoding.seed,
      };
    case 'sparse-codebook':
      return decodeSparseCodebook(bytes, offset, n, encoding, location);
  }
}

/** murmur3's 32-bit finalizer: the index hash of HashedNets storage (hashedSlot). */
export function hashIndex(index: number, seed: number): number {
  let h = (Math.imul(index, 0x9e3779b1) + seed) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** HashedNets (Chen et al. 2015): element i (row-major, [rows][K]) of a hashed tensor is
 * sign * buckets[bucket], from h = hashIndex(i, seed): bucket = h % buckets, sign - where h's top bit is set.
 * The slot is the bucket, or ~bucket (< 0) where the sign is -. The one definition of the hash that the
 * encoder, the reference expansion, the trainer (optimize/compress/projection.ts) and the native kernel
 * (native/src/hashed_fc.c, tested against this) follow. */
export function hashedSlot(index: number, seed: number, buckets: number): number {
  const h = hashIndex(index, seed);
  return h & 0x80000000 ? ~(h % buckets) : h % buckets;
}

/** Each bucket's value: the mean of the signed values whose slot it is (0 for a bucket no value hashes to);
 * on values that already are a hashed tensor's expansion, exactly its buckets. */
export function hashedBucketMeans(
  values: ArrayLike<number>,
  slots: ArrayLike<number>,
  buckets: number,
): Float32Array {
  const sums = new Float64Array(buckets);
  const counts = new Float64Array(buckets);
  for (let i = 0; i < values.length; i++) {
    const slot = slots[i]!;
    if (slot < 0) sums[~slot]! -= values[i]!;
    else sums[slot]! += values[i]!;
    counts[slot < 0 ? ~slot : slot]! += 1;
  }
  return Float32Array.from(sums, (s, b) => (counts[b]! === 0 ? 0 : s / counts[b]!));
}

/** The signed bucket values of `slots` (hashedSlot) into `out`. */
export function expandHashed(table: Float32Array, slots: ArrayLike<number>, out: Float32Array): Float32Array {
  for (let i = 0; i < out.length; i++) {
    const slot = slots[i]!;
    out[i] = slot < 0 ? -table[~slot]! : table[slot]!;
  }
  return out;
}

function hashedSlots(elements: number, seed: number, buckets: number): Int32Array {
  return Int32Array.from({ length: elements }, (_, i) => hashedSlot(i, seed, buckets));
}

/** Dense fp32 values of any f32-valued decoded tensor (the reference path of every compressed format). */
export function toFloat32(tensor: DecodedTensor, elements: number): Float32Array {
  const out = new Float32Array(elements);
  switch (tensor.kind) {
    case 'raw':
      for (let i = 0; i < elements; i++) out[i] = tensor.values[i]!;
      return out;
    case 'fixed16':
    case 'fixed8': {
      const step = 2 ** -tensor.fracBits;
      for (let i = 0; i < elements; i++) out[i] = tensor.values[i]! * step;
      return out;
    }
    case 'binary': {
      const words = rowWords(tensor.k);
      for (let r = 0; r < tensor.rows; r++) {
        for (let j = 0; j < tensor.k; j++) {
          const bit = (tensor.bits[r * words + (j >>> 5)]! >>> (j & 31)) & 1;
          out[r * tensor.k + j] = bit ? -tensor.alpha[r]! : tensor.alpha[r]!;
        }
      }
      return out;
    }
    case 'ternary': {
      const words = rowWords(tensor.k);
      for (let r = 0; r < tensor.rows; r++) {
        for (let j = 0; j < tensor.k; j++) {
          const w = r * words + (j >>> 5);
          const nz = (tensor.nonzero[w]! >>> (j & 31)) & 1;
          const negative = (tensor.sign[w]! >>> (j & 31)) & 1;
          out[r * tensor.k + j] = nz ? (negative ? -tensor.alpha[r]! : tensor.alpha[r]!) : 0;
        }
      }
      return out;
    }
    case 'sparse':
      for (let r = 0; r < tensor.rows; r++) {
        for (let j = tensor.rowOffsets[r]!; j < tensor.rowOffsets[r + 1]!; j++) {
          out[r * tensor.k + tensor.columns[j]!] = tensor.values[j]!;
        }
      }
      return out;
    case 'codebook':
      for (let i = 0; i < elements; i++) out[i] = tensor.codebook[tensor.indices[i]!]!;
      return out;
    case 'sparse-codebook':
      tensor.positions.forEach((position, j) => (out[position] = tensor.codebook[tensor.indices[j]!]!));
      return out;
    case 'xnor': {
      const perTap = 2 * Math.ceil(tensor.channels / 64);
      for (let r = 0; r < tensor.rows; r++) {
        for (let t = 0; t < tensor.taps; t++) {
          for (let c = 0; c < tensor.channels; c++) {
            const word = tensor.words[(r * tensor.taps + t) * perTap + (c >>> 5)]!;
            const a = tensor.alpha[r]!;
            out[(r * tensor.taps + t) * tensor.channels + c] = (word >>> (c & 31)) & 1 ? -a : a;
          }
        }
      }
      return out;
    }
    case 'hashed':
      return expandHashed(tensor.buckets, hashedSlots(elements, tensor.seed, tensor.buckets.length), out);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Encoders (the writer's side). Each takes dense logical values and returns the section bytes and params.

export interface EncodedTensor {
  encoding: Encoding;
  bytes: Buffer;
}

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

export function encodeRaw(values: Float32Array | Int8Array | Uint8Array | Int32Array): EncodedTensor {
  return { encoding: { kind: 'raw' }, bytes: Buffer.from(bytesOf(values)) };
}

/** The nearest quantizer of native/formats.md (quantizeNearest): floor(x * 2^FL + 0.5), saturated to the
 * symmetric range [-(2^(bits-1) - 1), 2^(bits-1) - 1], NaN to 0. */
export function encodeFixed(values: Float32Array, bits: 16 | 8, fracBits: number): EncodedTensor {
  const q = quantizeNearest(values, fracBits, bits);
  return { encoding: { kind: bits === 16 ? 'fixed16' : 'fixed8', fracBits }, bytes: Buffer.from(bytesOf(q)) };
}

/** BWN: alpha = mean |w| of the row, sign bit 1 for w < 0. */
export function encodeBinary(values: Float32Array, shape: readonly number[]): EncodedTensor {
  const { rows, k } = rowsAndK(shape);
  const words = rowWords(k);
  const alpha = new Float32Array(rows);
  const bits = new Uint32Array(rows * words);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const v = values[r * k + j]!;
      sum += Math.abs(v);
      if (v < 0) bits[r * words + (j >>> 5)]! |= 1 << (j & 31);
    }
    alpha[r] = k === 0 ? 0 : sum / k;
  }
  return { encoding: { kind: 'binary' }, bytes: Buffer.concat([bytesOf(alpha), bytesOf(bits)]) };
}

/** XNOR-Net weights of [O][kh][kw][cin] or [O][cin]: alpha = mean |w| of the output channel. */
export function encodeXnor(values: Float32Array, shape: readonly number[]): EncodedTensor {
  const rows = shape[0] ?? 0;
  const { taps, channels } = xnorGeometry(shape);
  const perTap = 2 * Math.ceil(channels / 64);
  const alpha = new Float32Array(rows);
  const words = new Uint32Array(rows * taps * perTap);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let t = 0; t < taps; t++) {
      for (let c = 0; c < channels; c++) {
        const v = values[(r * taps + t) * channels + c]!;
        sum += Math.abs(v);
        if (v < 0) words[(r * taps + t) * perTap + (c >>> 5)]! |= 1 << (c & 31);
      }
    }
    alpha[r] = taps * channels === 0 ? 0 : sum / (taps * channels);
  }
  return { encoding: { kind: 'xnor' }, bytes: Buffer.concat([bytesOf(alpha), bytesOf(words)]) };
}

/** TWN: per row, |w| <= threshold is 0; alpha = mean |w| of the rest. `threshold` defaults to 0.7 mean |w|. */
export function encodeTernary(
  values: Float32Array,
  shape: readonly number[],
  thresholdFactor = 0.7,
): EncodedTensor {
  const { rows, k } = rowsAndK(shape);
  const words = rowWords(k);
  const alpha = new Float32Array(rows);
  const nonzero = new Uint32Array(rows * words);
  const sign = new Uint32Array(rows * words);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let j = 0; j < k; j++) mean += Math.abs(values[r * k + j]!) / k;
    const threshold = thresholdFactor * mean;
    let sum = 0;
    let count = 0;
    for (let j = 0; j < k; j++) {
      const v = values[r * k + j]!;
      if (Math.abs(v) <= threshold) continue;
      nonzero[r * words + (j >>> 5)]! |= 1 << (j & 31);
      if (v < 0) sign[r * words + (j >>> 5)]! |= 1 << (j & 31);
      sum += Math.abs(v);
      count++;
    }
    alpha[r] = count === 0 ? 0 : sum / count;
  }
  return {
    encoding: { kind: 'ternary' },
    bytes: Buffer.concat([bytesOf(alpha), bytesOf(nonzero), bytesOf(sign)]),
  };
}

/** An int8 tensor (per-row scaled weights, rows along dimension 0) as bit planes when every row takes only
 * the values {-a, 0, a} (ternary) or {-a, a} (binary, every row): what int8 quantization makes of trained
 * ternary or binary weights (each channel's scale a / 127, so a is 127). Stored in the binary / ternary
 * layouts with a as the row's alpha (format 1.5), 2 or 1 bits a weight instead of 8; the runtime expands them
 * to int8 at load and runs the int8 kernels. Undefined when the values are not such planes or the planes
 * would not be smaller than the raw bytes. */
export function encodeInt8Planes(values: Int8Array, shape: readonly number[]): EncodedTensor | undefined {
  const { rows, k } = rowsAndK(shape);
  if (rows === 0 || k === 0 || values.length !== rows * k) return undefined;
  const alpha = new Float32Array(rows);
  let zeros = false;
  for (let r = 0; r < rows; r++) {
    let a = 0;
    for (let j = 0; j < k; j++) {
      const m = Math.abs(values[r * k + j]!);
      if (m === 0) zeros = true;
      else if (a === 0) a = m;
      else if (m !== a) return undefined;
    }
    // -128 has no positive twin: such a row is no plane.
    if (a > 127) return undefined;
    alpha[r] = a;
  }
  const floats = Float32Array.from(values);
  const encoded = zeros ? encodeTernaryExact(floats, shape, alpha) : encodeBinary(floats, shape);
  return encoded.bytes.length < values.length ? encoded : undefined;
}

/** Ternary planes of values that already are {-alpha, 0, alpha} per row (no threshold, alpha as given). */
function encodeTernaryExact(
  values: Float32Array,
  shape: readonly number[],
  alpha: Float32Array,
): EncodedTensor {
  const { rows, k } = rowsAndK(shape);
  const words = rowWords(k);
  const nonzero = new Uint32Array(rows * words);
  const sign = new Uint32Array(rows * words);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const v = values[r * k + j]!;
      if (v === 0) continue;
      nonzero[r * words + (j >>> 5)]! |= 1 << (j & 31);
      if (v < 0) sign[r * words + (j >>> 5)]! |= 1 << (j & 31);
    }
  }
  return {
    encoding: { kind: 'ternary' },
    bytes: Buffer.concat([bytesOf(alpha), bytesOf(nonzero), bytesOf(sign)]),
  };
}

/** Dense int8 values of an int8 constant stored raw, sparse or as bit planes (the runtime's int8 kernels read
 * the expanded tensor; the package keeps the smaller form). */
export function toInt8(tensor: DecodedTensor, elements: number): Int8Array {
  if (tensor.kind === 'raw' && tensor.values instanceof Int8Array) return tensor.values;
  if (tensor.kind === 'binary' || tensor.kind === 'ternary' || tensor.kind === 'sparse') {
    const out = new Int8Array(elements);
    const floats = toFloat32(tensor, elements);
    for (let i = 0; i < elements; i++) out[i] = floats[i]!;
    return out;
  }
  throw new RangeError(`toInt8: a ${tensor.kind} tensor has no int8 values`);
}

/** CSR of the exact nonzeros. */
export function encodeSparse(values: Float32Array | Int8Array, shape: readonly number[]): EncodedTensor {
  const { rows, k } = rowsAndK(shape);
  const rowOffsets = new Uint32Array(rows + 1);
  const columns: number[] = [];
  const kept: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const v = values[r * k + j]!;
      if (v !== 0) {
        columns.push(j);
        kept.push(v);
      }
    }
    rowOffsets[r + 1] = columns.length;
  }
  const packedValues = values instanceof Int8Array ? Int8Array.from(kept) : Float32Array.from(kept);
  return {
    encoding: { kind: 'sparse', nnz: columns.length },
    bytes: Buffer.concat([bytesOf(rowOffsets), bytesOf(Uint32Array.from(columns)), bytesOf(packedValues)]),
  };
}

/** Indices (one per element, < codebook.length <= 256) Huffman-coded with their own frequencies. */
export function encodeCodebook(
  codebook: Float32Array,
  indices: Uint8Array,
  codeLengths?: readonly number[],
  indexBits = Math.max(2, Math.ceil(Math.log2(Math.max(2, codebook.length)))),
): EncodedTensor {
  const size = codebook.length;
  const counts = new Array<number>(size).fill(0);
  for (const index of indices) counts[index]! += 1;
  const lengths = codeLengths ?? huffmanCodeLengths(counts);
  const stream = huffmanEncode(indices, lengths);
  return {
    encoding: { kind: 'codebook', size, indexBits, streamBytes: stream.length },
    bytes: Buffer.concat([bytesOf(codebook), Buffer.from(lengths), stream]),
  };
}

/** HashedNets: each bucket is the mean of the signed values hashed into it. */
export function encodeHashed(values: Float32Array, buckets: number, seed: number): EncodedTensor {
  const table = hashedBucketMeans(values, hashedSlots(values.length, seed >>> 0, buckets), buckets);
  return { encoding: { kind: 'hashed', buckets, seed: seed >>> 0 }, bytes: Buffer.from(bytesOf(table)) };
}

/** What a format's encoder needs beyond the values and the shape (encodeWeights). */
export interface WeightEncodingOptions {
  /** fixed16 / fixed8: the weights' fractional length. */
  fracBits?: number;
  /** codebook and sparse-codebook: the shared values. */
  centroids?: Float32Array;
  /** codebook: each element's centroid index; by default the nearest centroid of each value. */
  indices?: Uint8Array;
  /** sparse-codebook: the relative-index gap width. */
  gapBits?: number;
  /** hashed: the buckets and the hash seed. */
  hashed?: { buckets: number; seed: number };
}

/** The weight tensor `values` (logical, row-major `shape`) stored in number format `format`: the one place
 * that names each format's encoder. f32 is stored raw; int8 takes its int8 values, raw; sparse and
 * sparse-codebook store the exact zeros of `values` as pruned (sparse-codebook's nonzeros must be centroids). */
export function encodeWeights(
  format: NumberFormat,
  values: Float32Array | Int8Array,
  shape: readonly number[],
  options: WeightEncodingOptions = {},
): EncodedTensor {
  if (format === 'int8') {
    if (!(values instanceof Int8Array)) throw new EncodingError('int8 weights take Int8Array values');
    return encodeRaw(values);
  }
  if (values instanceof Int8Array) throw new EncodingError(`${format} weights take Float32Array values`);
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new EncodingError(`${format} weights need ${what}`);
    return value;
  };
  switch (format) {
    case 'f32':
      return encodeRaw(values);
    case 'fixed16':
    case 'fixed8':
      return encodeFixed(values, format === 'fixed16' ? 16 : 8, need(options.fracBits, 'fracBits'));
    case 'binary':
      return encodeBinary(values, shape);
    case 'xnor':
      return encodeXnor(values, shape);
    case 'ternary':
      return encodeTernary(values, shape);
    case 'sparse':
      return encodeSparse(values, shape);
    case 'codebook': {
      const centroids = need(options.centroids, 'centroids');
      return encodeCodebook(centroids, options.indices ?? nearestCentroids(values, centroids));
    }
    case 'hashed': {
      const { buckets, seed } = need(options.hashed, 'hashed buckets and seed');
      return encodeHashed(values, buckets, seed);
    }
    case 'sparse-codebook':
      return encodeSparseCodebook(
        values,
        shape,
        need(options.centroids, 'centroids'),
        options.gapBits !== undefined ? { gapBits: options.gapBits } : {},
      );
  }
}

/** The index of the centroid nearest to each value (the first of two equally near). */
function nearestCentroids(values: Float32Array, centroids: Float32Array): Uint8Array {
  if (centroids.length === 0 || centroids.length > 256)
    throw new EncodingError(`a codebook holds 1 to 256 centroids, not ${centroids.length}`);
  return Uint8Array.from(values, (v) => {
    let best = 0;
    for (let c = 1; c < centroids.length; c++) {
      if (Math.abs(centroids[c]! - v) < Math.abs(centroids[best]! - v)) best = c;
    }
    return best;
  });
}

/** The exact inverse of decodeTensor: the section bytes and parameters a decoded tensor came from. */
export function encodeDecoded(tensor: DecodedTensor): EncodedTensor {
  switch (tensor.kind) {
    case 'raw':
      return encodeRaw(tensor.values);
    case 'fixed16':
    case 'fixed8':
      return {
        encoding: { kind: tensor.kind, fracBits: tensor.fracBits },
        bytes: Buffer.from(bytesOf(tensor.values)),
      };
    case 'binary':
      return {
        encoding: { kind: 'binary' },
        bytes: Buffer.concat([bytesOf(tensor.alpha), bytesOf(tensor.bits)]),
      };
    case 'ternary':
      return {
        encoding: { kind: 'ternary' },
        bytes: Buffer.concat([bytesOf(tensor.alpha), bytesOf(tensor.nonzero), bytesOf(tensor.sign)]),
      };
    case 'sparse':
      return {
        encoding: { kind: 'sparse', nnz: tensor.columns.length },
        bytes: Buffer.concat([bytesOf(tensor.rowOffsets), bytesOf(tensor.columns), bytesOf(tensor.values)]),
      };
    case 'xnor':
      return {
        encoding: { kind: 'xnor' },
        bytes: Buffer.concat([bytesOf(tensor.alpha), bytesOf(tensor.words)]),
      };
    case 'codebook':
      return encodeCodebook(tensor.codebook, tensor.indices, tensor.codeLengths, tensor.indexBits);
    case 'hashed':
      return {
        encoding: { kind: 'hashed', buckets: tensor.buckets.length, seed: tensor.seed },
        bytes: Buffer.from(bytesOf(tensor.buckets)),
      };
    case 'sparse-codebook':
      return sparseCodebookSection(
        tensor.codebook,
        tensor.positions,
        tensor.indices,
        tensor.gapBits,
        tensor.indexCodeLengths,
        tensor.gapCodeLengths,
      );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Sparse codebook (Deep Compression, Han et al. 2016): a pruned and shared tensor stored as both at once.
//
// The nonzeros of the row-major tensor (positions p_0 < p_1 < ... over all rows, so a gap may cross a row
// boundary) are stored in the paper's relative-index form: gap symbols of gapBits, M = 2^gapBits - 1.
//   symbol s < M:  skip s zeros, the next position holds the next nonzero (it consumes one cluster index);
//   symbol s = M:  a filler: skip M zeros, no nonzero (Han et al.'s filler zero, which needs no cluster index
//                  here: the escape symbol marks it).
// The first gap counts from position 0. The stream ends with a nonzero (no trailing filler), so a tensor has
// exactly one encoding for a given gapBits and code lengths. Both the gap symbols and the cluster indices
// are Huffman-coded (huffman.ts), each with its own canonical code lengths:
//
//   f32 codebook[size] | u8 indexCodeLengths[size] | u8 gapCodeLengths[2^gapBits]
//   | index stream (indexStreamBytes) | gap stream (gapStreamBytes)
//
// Decoded (decodeSparseCodebook), it is the nonzeros' flat positions and cluster indices; the runtime builds
// CSR per output row from them at load and runs the layer on the sparse kernels (native-executors.ts).

export const SPARSE_CODEBOOK_MAX_GAP_BITS = 8;

export interface SparseCodebookOptions {
  /** Bits of one gap symbol in [1, 8]; by default the width that gives the smallest section. */
  gapBits?: number;
}

/** Gap symbols of increasing flat positions (see the layout above). */
function gapSymbols(positions: ArrayLike<number>, gapBits: number): Uint8Array {
  const escape = 2 ** gapBits - 1;
  const symbols: number[] = [];
  let previous = -1;
  for (let j = 0; j < positions.length; j++) {
    let gap = positions[j]! - previous - 1;
    for (; gap >= escape; gap -= escape) symbols.push(escape);
    symbols.push(gap);
    previous = positions[j]!;
  }
  return Uint8Array.from(symbols);
}

/** The section of nonzeros at increasing flat `positions` with cluster `indices`; code lengths are derived
 * from the symbol counts unless given (the exact re-encoding of a decoded section). */
function sparseCodebookSection(
  codebook: Float32Array,
  positions: ArrayLike<number>,
  indices: Uint8Array,
  gapBits: number,
  indexCodeLengths?: readonly number[],
  gapCodeLengths?: readonly number[],
): EncodedTensor {
  const gaps = gapSymbols(positions, gapBits);
  const lengthsOf = (symbols: Uint8Array, alphabet: number): number[] => {
    const counts = new Array<number>(alphabet).fill(0);
    for (const symbol of symbols) counts[symbol]! += 1;
    return huffmanCodeLengths(counts);
  };
  const indexLengths = indexCodeLengths ?? lengthsOf(indices, codebook.length);
  const gapLengths = gapCodeLengths ?? lengthsOf(gaps, 2 ** gapBits);
  const indexStream = huffmanEncode(indices, indexLengths);
  const gapStream = huffmanEncode(gaps, gapLengths);
  return {
    encoding: {
      kind: 'sparse-codebook',
      size: codebook.length,
      gapBits,
      nnz: indices.length,
      gaps: gaps.length,
      indexStreamBytes: indexStream.length,
      gapStreamBytes: gapStream.length,
    },
    bytes: Buffer.concat([
      bytesOf(codebook),
      Buffer.from(indexLengths),
      Buffer.from(gapLengths),
      indexStream,
      gapStream,
    ]),
  };
}

/** A pruned and shared tensor: `values`' zeros are the pruned positions and every nonzero must equal one
 * of `centroids` (as fp32; at most 256). Throws EncodingError otherwise. */
export function encodeSparseCodebook(
  values: Float32Array,
  shape: readonly number[],
  centroids: Float32Array,
  options: SparseCodebookOptions = {},
): EncodedTensor {
  const n = elementCount(shape);
  if (values.length !== n)
    throw new EncodingError(
      `sparse-codebook: ${values.length} values for shape [${shape.join(', ')}] of ${n} elements`,
    );
  if (centroids.length < 1 || centroids.length > 256)
    throw new EncodingError(`sparse-codebook: ${centroids.length} centroids, expected 1 to 256`);
  const { gapBits } = options;
  if (
    gapBits !== undefined &&
    (!Number.isInteger(gapBits) || gapBits < 1 || gapBits > SPARSE_CODEBOOK_MAX_GAP_BITS)
  )
    throw new EncodingError(
      `sparse-codebook: gapBits ${gapBits} is not an integer in [1, ${SPARSE_CODEBOOK_MAX_GAP_BITS}]`,
    );
  const clusterOf = new Map<number, number>();
  centroids.forEach((c, i) => {
    if (!clusterOf.has(c)) clusterOf.set(c, i);
  });
  const positions: number[] = [];
  const indices: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v === 0) continue;
    const cluster = clusterOf.get(v);
    if (cluster === undefined)
      throw new EncodingError(
        `sparse-codebook: element ${i} is ${v}, neither 0 (pruned) nor one of the ${centroids.length} centroids`,
      );
    positions.push(i);
    indices.push(cluster);
  }
  const clusters = Uint8Array.from(indices);
  if (gapBits !== undefined) return sparseCodebookSection(centroids, positions, clusters, gapBits);
  let best: EncodedTensor | undefined;
  for (let bits = 1; bits <= SPARSE_CODEBOOK_MAX_GAP_BITS; bits++) {
    const candidate = sparseCodebookSection(centroids, positions, clusters, bits);
    if (best === undefined || candidate.bytes.length < best.bytes.length) best = candidate;
  }
  return best!;
}

function decodeSparseCodebook(
  bytes: Buffer,
  offset: number,
  n: number,
  encoding: Extract<Encoding, { kind: 'sparse-codebook' }>,
  location: PackageErrorLocation,
): DecodedTensor {
  const { size, gapBits, nnz, gaps, indexStreamBytes, gapStreamBytes } = encoding;
  const refuse = (message: string): never => {
    throw new PackageError('bad-weights', `sparse-codebook: ${message}`, location);
  };
  // Every symbol takes at least one bit: these bound the decoders' allocations by the section's size.
  if (nnz > n) refuse(`${nnz} nonzeros in ${n} elements`);
  if (gaps < nnz) refuse(`${gaps} gap symbols cannot place ${nnz} nonzeros`);
  if (nnz > 8 * indexStreamBytes)
    refuse(`an index stream of ${indexStreamBytes} bytes cannot hold ${nnz} indices`);
  if (gaps > 8 * gapStreamBytes) refuse(`a gap stream of ${gapStreamBytes} bytes cannot hold ${gaps} gaps`);
  const alphabet = 2 ** gapBits;
  const codebook = new Float32Array(copy(bytes, offset, 4 * size));
  let at = offset + 4 * size;
  const indexCodeLengths = Array.from(bytes.subarray(at, at + size));
  at += size;
  const gapCodeLengths = Array.from(bytes.subarray(at, at + alphabet));
  at += alphabet;
  // The lengths arrays have `size` and 2^gapBits entries: every decoded symbol is below them.
  const indices = huffmanDecode(bytes.subarray(at, at + indexStreamBytes), indexCodeLengths, nnz, location);
  at += indexStreamBytes;
  const symbols = huffmanDecode(bytes.subarray(at, at + gapStreamBytes), gapCodeLengths, gaps, location);
  const escape = alphabet - 1;
  const positions = new Uint32Array(nnz);
  let position = -1;
  let count = 0;
  for (let s = 0; s < gaps; s++) {
    const symbol = symbols[s]!;
    if (symbol === escape) {
      position += escape;
      continue;
    }
    position += symbol + 1;
    if (position >= n) refuse(`gap ${s} places nonzero ${count} at ${position}, past the ${n} elements`);
    if (count === nnz) refuse(`the gap stream places more than the ${nnz} nonzeros`);
    positions[count++] = position;
  }
  if (count !== nnz) refuse(`the gap stream places ${count} nonzeros, the manifest says ${nnz}`);
  if (gaps > 0 && symbols[gaps - 1] === escape) refuse('the gap stream ends with a filler');
  return {
    kind: 'sparse-codebook',
    codebook,
    gapBits,
    positions,
    indices,
    indexCodeLengths,
    gapCodeLengths,
  };
}
