// Tensor descriptions the runtime works with: the manifest's dtype, shape and quantization, and typed data.
import type { DType } from '../package/encodings.js';
import type { TensorQuantization } from '../package/manifest.js';

export type TensorData = Float32Array | Int8Array | Uint8Array | Int32Array;

export interface TensorSpec {
  dtype: DType;
  shape: number[];
  quant?: TensorQuantization;
}

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, i8: 1, u8: 1, i32: 4, bool: 1 };

export function elements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function allocate(dtype: DType, length: number): TensorData {
  switch (dtype) {
    case 'f32':
      return new Float32Array(length);
    case 'i32':
      return new Int32Array(length);
    case 'i8':
      return new Int8Array(length);
    default:
      return new Uint8Array(length);
  }
}

/** A typed view of `length` elements at byte `offset` of an arena. */
export function view(buffer: ArrayBuffer, offset: number, dtype: DType, length: number): TensorData {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, offset, length);
    case 'i32':
      return new Int32Array(buffer, offset, length);
    case 'i8':
      return new Int8Array(buffer, offset, length);
    default:
      return new Uint8Array(buffer, offset, length);
  }
}

/** Index of the channel (along quant.axis) of each element, or null for per-tensor quantization. */
export function channelOf(
  shape: readonly number[],
  axis: number | undefined,
): ((i: number) => number) | null {
  if (axis === undefined) return null;
  const inner = elements(shape.slice(axis + 1));
  const size = shape[axis]!;
  return (i) => Math.floor(i / inner) % size;
}
