// Bytes per weight of the sparse-codebook encoding (agent/package/encodings.ts) against sparse and codebook
// alone, on Deep Compression layers: seeded normal weights pruned by magnitude to 90 % and snapped to 16 or 32
// linearly spaced centroids (k-means' linear initialisation). Run: node dist/bench/sparse-codebook-sizes.js
import { fileURLToPath } from 'node:url';

import {
  encodeCodebook,
  encodeSparse,
  encodeSparseCodebook,
  type Encoding,
} from '../agent/package/encodings.js';
import { SeededRandom } from '../optimize/seeded-random.js';

/** `sparsity` of n seeded weights pruned by magnitude, the rest snapped to the nearest of `clusters`
 * linearly spaced centroids between the smallest and largest survivor. */
export function prunedShared(n: number, sparsity: number, clusters: number, seed: number) {
  const random = new SeededRandom(seed);
  const weights = Float32Array.from({ length: n }, () => random.normal() * 0.1);
  const threshold = [...weights].map(Math.abs).sort((a, b) => a - b)[Math.floor(sparsity * n)]!;
  let lo = Infinity;
  let hi = -Infinity;
  for (const w of weights) if (Math.abs(w) >= threshold) [lo, hi] = [Math.min(lo, w), Math.max(hi, w)];
  const centroids = Float32Array.from({ length: clusters }, (_, i) => lo + ((hi - lo) * i) / (clusters - 1));
  const nearest = (w: number): number =>
    centroids.reduce((best, c) => (Math.abs(c - w) < Math.abs(best - w) ? c : best), centroids[0]!);
  return { values: weights.map((w) => (Math.abs(w) < threshold ? 0 : nearest(w))), centroids };
}

const LAYERS: [string, number[]][] = [
  ['LeNet-300-100 fc1', [300, 784]],
  ['LeNet-300-100 fc2', [100, 300]],
  ['LeNet-5 conv2', [16, 5, 5, 6]],
  ['LeNet-5 fc', [120, 400]],
  ['VGG 3x3', [64, 3, 3, 64]],
];

function main(): void {
  console.log(
    '| layer | weights | clusters | sparse-codebook (gap bits, fillers) | sparse | codebook | vs fp32 |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const [name, shape] of LAYERS)
    for (const clusters of [16, 32]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const { values, centroids } = prunedShared(n, 0.9, clusters, 7);
      const both = encodeSparseCodebook(values, shape, centroids);
      const e = both.encoding as Extract<Encoding, { kind: 'sparse-codebook' }>;
      const sparse = encodeSparse(values, shape).bytes.length;
      // The zero is one more centroid of the plain codebook.
      const indices = Uint8Array.from(values, (v) => (v === 0 ? clusters : centroids.indexOf(v)));
      const codebook = encodeCodebook(Float32Array.from([...centroids, 0]), indices).bytes.length;
      const perWeight = (bytes: number): string => (bytes / n).toFixed(3);
      console.log(
        `| ${name} [${shape.join(', ')}] | ${n} | ${clusters} | ${perWeight(both.bytes.length)} ` +
          `(${e.gapBits}, ${e.gaps - e.nnz}) | ${perWeight(sparse)} | ${perWeight(codebook)} | ` +
          `${((4 * n) / both.bytes.length).toFixed(1)}x |`,
      );
    }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
