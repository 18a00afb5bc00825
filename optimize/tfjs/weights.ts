// The weight files of a TensorFlow.js Layers model: each manifest group lists files (read and concatenated
// in order) and the tensors packed back to back in them. A group's files must hold exactly the bytes its
// tensor list declares; a short (truncated download) or long file is refused before any weight is used.
// Weights stored quantized by tensorflowjs_converter (--quantize_uint8/uint16/float16) are expanded back to
// float32 as tfjs does when it loads them: uint8/uint16 values as q * scale + min, float16 as IEEE halves.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { TfjsImportError } from './import-error.js';

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; scale?: number; min?: number };
}

/** Bytes per stored value of a float32 weight: 4, or the quantized storage's size. */
function storedBytes(spec: WeightSpec): number {
  switch (spec.quantization?.dtype) {
    case undefined:
      return 4;
    case 'uint8':
      return 1;
    case 'uint16':
    case 'float16':
      return 2;
    default:
      throw new TfjsImportError(
        `weight ${spec.name}: quantization ${String(spec.quantization?.dtype)} is not supported (uint8, uint16, float16 are)`,
      );
  }
}

/** IEEE 754 half -> number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function decode(spec: WeightSpec, bytes: Buffer, offset: number, n: number): Float32Array {
  const data = new Float32Array(n);
  const q = spec.quantization;
  if (q === undefined) {
    for (let i = 0; i < n; i++) data[i] = bytes.readFloatLE(offset + 4 * i);
  } else if (q.dtype === 'float16') {
    for (let i = 0; i < n; i++) data[i] = halfToFloat(bytes.readUInt16LE(offset + 2 * i));
  } else {
    if (typeof q.scale !== 'number' || typeof q.min !== 'number')
      throw new TfjsImportError(`weight ${spec.name}: ${q.dtype} quantization needs a numeric scale and min`);
    for (let i = 0; i < n; i++) {
      const v = q.dtype === 'uint8' ? bytes[offset + i]! : bytes.readUInt16LE(offset + 2 * i);
      data[i] = v * q.scale + q.min;
    }
  }
  return data;
}

export interface WeightGroup {
  paths: string[];
  weights: WeightSpec[];
}

export interface NamedWeight {
  shape: number[];
  data: Float32Array;
}

/** Reads every weight of `manifest` (paths relative to `modelPath`'s directory), keyed by weight name. */
export function readWeights(modelPath: string, manifest: readonly WeightGroup[]): Map<string, NamedWeight> {
  const weights = new Map<string, NamedWeight>();
  for (const group of manifest) {
    const files = group.paths.map((p) => {
      const file = join(dirname(modelPath), p);
      try {
        return readFileSync(file);
      } catch (error) {
        throw new TfjsImportError(`cannot read the weight file ${file}: ${(error as Error).message}`);
      }
    });
    const bytes = Buffer.concat(files);
    const where = group.paths.join(', ');
    for (const spec of group.weights) {
      if (spec.dtype !== 'float32')
        throw new TfjsImportError(`weight ${spec.name}: dtype ${spec.dtype} is not supported (float32 is)`);
      if (weights.has(spec.name)) throw new TfjsImportError(`weight ${spec.name} is listed twice`);
    }
    const declared = group.weights.reduce((sum, spec) => sum + storedBytes(spec) * count(spec.shape), 0);
    if (bytes.length !== declared)
      throw new TfjsImportError(
        `${where} hold${group.paths.length === 1 ? 's' : ''} ${bytes.length} bytes but the weights manifest ` +
          `declares ${declared} (${group.weights.length} tensors)` +
          (bytes.length < declared ? '; the file is truncated' : ''),
      );
    let offset = 0;
    for (const spec of group.weights) {
      const n = count(spec.shape);
      weights.set(spec.name, { shape: spec.shape, data: decode(spec, bytes, offset, n) });
      offset += storedBytes(spec) * n;
    }
  }
  return weights;
}

function count(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}
