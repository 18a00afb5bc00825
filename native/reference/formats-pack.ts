// Plain TypeScript builders of the compressed formats' storage layouts (native/reference/formats.md) and a
// plain fp32 conv2d over dense weights, for tests and for the model compiler. Slow and obvious on purpose.

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

export interface DenseConv2dShape {
  batch: number;
  inputHeight: number;
  inputWidth: number;
  inputChannels: number;
  outputChannels: number;
  kernelHeight: number;
  kernelWidth: number;
  strideHeight?: number;
  strideWidth?: number;
  paddingTop?: number;
  paddingLeft?: number;
  paddingBottom?: number;
  paddingRight?: number;
  groups?: number;
}

/** Plain NHWC conv2d in float64 over dense weights [outputChannels][kh][kw][inputChannels / groups]; padding
 * reads 0. Returns the output and, per output, sum |w * x| + |bias| (the scale of the rounding error). */
export function denseConv2d(
  s: DenseConv2dShape,
  input: ArrayLike<number>,
  weights: ArrayLike<number>,
  bias: ArrayLike<number> | null,
): { output: Float64Array; magnitude: Float64Array; outputHeight: number; outputWidth: number } {
  const sh = s.strideHeight ?? 1;
  const sw = s.strideWidth ?? 1;
  const pt = s.paddingTop ?? 0;
  const pl = s.paddingLeft ?? 0;
  const groups = s.groups ?? 1;
  const oh = Math.floor((s.inputHeight + pt + (s.paddingBottom ?? 0) - s.kernelHeight) / sh) + 1;
  const ow = Math.floor((s.inputWidth + pl + (s.paddingRight ?? 0) - s.kernelWidth) / sw) + 1;
  const cinG = s.inputChannels / groups;
  const coutG = s.outputChannels / groups;
  const output = new Float64Array(s.batch * oh * ow * s.outputChannels);
  const magnitude = new Float64Array(output.length);
  for (let n = 0; n < s.batch; n++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let o = 0; o < s.outputChannels; o++) {
          const g = Math.floor(o / coutG);
          const b = bias === null ? 0 : (bias[o] ?? 0);
          let sum = b;
          let mag = Math.abs(b);
          for (let ky = 0; ky < s.kernelHeight; ky++) {
            const y = oy * sh - pt + ky;
            if (y < 0 || y >= s.inputHeight) continue;
            for (let kx = 0; kx < s.kernelWidth; kx++) {
              const x = ox * sw - pl + kx;
              if (x < 0 || x >= s.inputWidth) continue;
              for (let i = 0; i < cinG; i++) {
                const v =
                  input[((n * s.inputHeight + y) * s.inputWidth + x) * s.inputChannels + g * cinG + i] ?? 0;
                const w = weights[((o * s.kernelHeight + ky) * s.kernelWidth + kx) * cinG + i] ?? 0;
                sum += v * w;
                mag += Math.abs(v * w);
              }
            }
          }
          const at = ((n * oh + oy) * ow + ox) * s.outputChannels + o;
          output[at] = sum;
          magnitude[at] = mag;
        }
      }
    }
  }
  return { output, magnitude, outputHeight: oh, outputWidth: ow };
}
