// Matrix products. fully-connected: x [B][K] * w[O][K]^T + bias -> y [B][O]. matmul: numpy semantics,
// a [..., M, K] * b [..., K, N] -> [..., M, N] with broadcast batch dimensions (1-D operands promoted).

import type { Numbers } from './number-arrays.js';

export function fullyConnected(
  batch: number,
  k: number,
  outC: number,
  x: Numbers,
  xZero: number,
  w: Numbers,
  wZero: (o: number) => number,
  emit: (index: number, o: number, sum: number) => void,
): void {
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outC; o++) {
      const wz = wZero(o);
      let sum = 0;
      for (let i = 0; i < k; i++) sum += (x[b * k + i]! - xZero) * (w[o * k + i]! - wz);
      emit(b * outC + o, o, sum);
    }
  }
}

/** Output shape of numpy matmul, or a message saying why the shapes do not match. */
export function matmulShape(a: readonly number[], b: readonly number[]): number[] | string {
  if (a.length === 0 || b.length === 0) return 'matmul operands must have rank >= 1';
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const k = a2[a2.length - 1]!;
  if (k !== b2[b2.length - 2]) return `inner dimensions differ: ${k} vs ${b2[b2.length - 2]}`;
  const batchA = a2.slice(0, -2);
  const batchB = b2.slice(0, -2);
  const batch = broadcastShapes(batchA, batchB);
  if (typeof batch === 'string') return batch;
  const out = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return out;
}

export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | string {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      return `shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Element offset of `outIndex` (row-major over `outShape`) in a tensor of `shape` broadcast to it. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const j = outShape.length - shape.length + i;
    strides[j] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i]!;
  }
  return strides;
}

export function matmul(
  aShape: readonly number[],
  a: Numbers,
  aZero: number,
  bShape: readonly number[],
  b: Numbers,
  bZero: number,
  emit: (index: number, sum: number) => void,
): void {
  const a2 = aShape.length === 1 ? [1, aShape[0]!] : [...aShape];
  const b2 = bShape.length === 1 ? [bShape[0]!, 1] : [...bShape];
  const m = a2[a2.length - 2]!;
  const k = a2[a2.length - 1]!;
  const n = b2[b2.length - 1]!;
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2)) as number[];
  const aStrides = broadcastStrides(a2.slice(0, -2), batch);
  const bStrides = broadcastStrides(b2.slice(0, -2), batch);
  const batches = batch.reduce((p, d) => p * d, 1);
  const index = new Array<number>(batch.length).fill(0);
  for (let t = 0; t < batches; t++) {
    let aOffset = 0;
    let bOffset = 0;
    for (let d = 0; d < batch.length; d++) {
      aOffset += index[d]! * aStrides[d]!;
      bOffset += index[d]! * bStrides[d]!;
    }
    aOffset *= m * k;
    bOffset *= k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++)
          sum += (a[aOffset + i * k + p]! - aZero) * (b[bOffset + p * n + j]! - bZero);
        emit((t * m + i) * n + j, sum);
      }
    }
    for (let d = batch.length - 1; d >= 0; d--) {
      index[d]! += 1;
      if (index[d]! < batch[d]!) break;
      index[d] = 0;
    }
  }
}
