// Plain TypeScript builders of the compressed formats' storage layouts (native/formats.md) from fp32 or
// ternary weights: what the native FormatLayers (native/formats.ts) read. The runtime packs a package's
// sparse and codebook layers with them at load (native-executors.ts); the kernel tests and benchmarks build
// their layers with them. Slow and obvious on purpose: each runs once per layer.
import { roundHalfAwayFromZero } from './number/rounding.js';

/** fp32 weights [outputChannels][reduction] -> sign bits (1 = negative) in rows of ceil(reduction / 32)
 * words and alpha[o] = mean |w[o]| (BWN). */
export function packBinaryWeights(
  outputChannels: number,
  reduction: number,
  weights: Float32Array,
): { weightBits: Uint32Array; alpha: Float32Array } {
  const words = Math.ceil(reduction / 32);
  const weightBits = new Uint32Array(outputChannels * words);
  const alpha = new Float32Array(outputChannels);
  for (let o = 0; o < outputChannels; o++) {
    let sum = 0;
    for (let k = 0; k < reduction; k++) {
      const w = weights[o * reduction + k] ?? 0;
      sum += Math.abs(w);
      if (w < 0) weightBits[o * words + (k >>> 5)]! |= 1 << (k & 31);
    }
    alpha[o] = sum / reduction;
  }
  return { weightBits, alpha };
}

/** Ternary values t [outputChannels][reduction] in {-1, 0, 1} -> the nonzero and sign planes. */
export function packTernaryWeights(
  outputChannels: number,
  reduction: number,
  ternary: Int8Array,
): { weightNonzero: Uint32Array; weightSign: Uint32Array } {
  const words = Math.ceil(reduction / 32);
  const weightNonzero = new Uint32Array(outputChannels * words);
  const weightSign = new Uint32Array(outputChannels * words);
  for (let o = 0; o < outputChannels; o++) {
    for (let k = 0; k < reduction; k++) {
      const t = ternary[o * reduction + k] ?? 0;
      const word = o * words + (k >>> 5);
      if (t !== 0) weightNonzero[word]! |= 1 << (k & 31);
      if (t < 0) weightSign[word]! |= 1 << (k & 31);
    }
  }
  return { weightNonzero, weightSign };
}

/** fp32 weights [outputChannels][taps][groupChannels] -> XNOR bits [outputChannels][taps][ceil(groupChannels
 * / 64)] (1 = negative) and alpha[o] = mean |w[o]|. */
export function packXnorWeights(
  outputChannels: number,
  taps: number,
  groupChannels: number,
  weights: Float32Array,
): { weightBits: BigUint64Array; alpha: Float32Array } {
  const words = Math.ceil(groupChannels / 64);
  const weightBits = new BigUint64Array(outputChannels * taps * words);
  const alpha = new Float32Array(outputChannels);
  for (let o = 0; o < outputChannels; o++) {
    let sum = 0;
    for (let t = 0; t < taps; t++) {
      for (let c = 0; c < groupChannels; c++) {
        const w = weights[(o * taps + t) * groupChannels + c] ?? 0;
        sum += Math.abs(w);
        if (w < 0) weightBits[(o * taps + t) * words + (c >>> 6)]! |= 1n << BigInt(c & 63);
      }
    }
    alpha[o] = sum / (taps * groupChannels);
  }
  return { weightBits, alpha };
}

/** Dense [rows][columns] -> CSR without the exact zeros. */
export function encodeCsr(
  rows: number,
  columns: number,
  dense: Float32Array,
): { rowOffsets: Uint32Array; columnIndices: Uint32Array; values: Float32Array } {
  const rowOffsets = new Uint32Array(rows + 1);
  const indices: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      const v = dense[r * columns + c] ?? 0;
      if (v !== 0) {
        indices.push(c);
        values.push(v);
      }
    }
    rowOffsets[r + 1] = indices.length;
  }
  return { rowOffsets, columnIndices: Uint32Array.from(indices), values: Float32Array.from(values) };
}

/** One index per byte [rows][reduction] -> packed rows of ceil(reduction * indexBits / 8) bytes. */
export function packCodebookIndices(
  rows: number,
  reduction: number,
  indexBits: number,
  unpacked: Uint8Array,
): Uint8Array {
  const rowBytes = Math.ceil((reduction * indexBits) / 8);
  const packed = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < reduction; k++) {
      const index = unpacked[r * reduction + k] ?? 0;
      for (let b = 0; b < indexBits; b++) {
        if ((index >> b) & 1) {
          const bit = k * indexBits + b;
          packed[r * rowBytes + (bit >>> 3)]! |= 1 << (bit & 7);
        }
      }
    }
  }
  return packed;
}

/** A codebook layer inside an int8 package (native/formats.md, "Codebook weights"): its fp32 centroids put
 * on each output channel's int8 grid. Per row o: scales[o] = max |codebook[c]| over the centroids the row uses
 * / 127 (fp32; 0 when they are all 0), codebooks[o * size + c] = round(codebook[c] / scales[o]) (half away
 * from zero, in double) clamped to [-127, 127], for every centroid c (used or not). Each weight then moves by
 * at most half a step of its channel's grid: |codebook[c] - codebooks[o][c] * scales[o]| <= scales[o] / 2.
 * The layer with these weights is exactly a dense int8 layer with per-channel weight scales `scales`:
 * what the int8 FormatLayer (createCodebookInt8*) runs and the int8 reference computes. `unpacked`: one
 * index per byte, [rows][reduction]. */
export function quantizeCodebooks(
  rows: number,
  reduction: number,
  codebook: Float32Array,
  unpacked: Uint8Array,
): { codebooks: Int8Array; scales: Float32Array } {
  const size = codebook.length;
  const codebooks = new Int8Array(rows * size);
  const scales = new Float32Array(rows);
  for (let o = 0; o < rows; o++) {
    let maxAbs = 0;
    for (let k = 0; k < reduction; k++)
      maxAbs = Math.max(maxAbs, Math.abs(codebook[unpacked[o * reduction + k]!]!));
    const scale = Math.fround(maxAbs / 127);
    scales[o] = scale;
    for (let c = 0; c < size; c++) {
      const v = scale > 0 ? codebook[c]! / scale : 0;
      codebooks[o * size + c] = Math.max(-127, Math.min(127, roundHalfAwayFromZero(v)));
    }
  }
  return { codebooks, scales };
}
