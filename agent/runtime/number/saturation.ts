// Saturation: the integer ranges of the number formats and the one clamp every quantizer and requantizer
// applies to them. An out-of-range value is pinned to the nearest bound, never wrapped (wrapping happens
// only where TFLite's int32 arithmetic wraps, and the code that does it says so).

export const INT8_MIN = -128;
export const INT8_MAX = 127;
export const UINT8_MAX = 255;
export const INT32_MIN = -0x80000000;
export const INT32_MAX = 0x7fffffff;

/** x pinned to [min, max]. NaN passes through unchanged: callers that can see NaN map it first. */
export function saturate(x: number, min: number, max: number): number {
  return x < min ? min : x > max ? max : x;
}

/** Value range of an integer dtype of the graph IR: u8, i8, and int32 for the rest (i32 accumulators). */
export function intRange(dtype: string): [number, number] {
  switch (dtype) {
    case 'u8':
      return [0, UINT8_MAX];
    case 'i8':
      return [INT8_MIN, INT8_MAX];
    default:
      return [INT32_MIN, INT32_MAX];
  }
}
