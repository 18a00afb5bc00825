// Paired A/B of the sparse-codebook layer (Deep Compression: 90 % pruned, 16 centroids; on the sparse kernels
// as the runtime runs it) against the same shape's plain codebook, sparse, int8 and fp32 layers, one thread,
// batch 1, on bench/shapes.json. Each round times one batch of every contender (~2 ms, the order rotated),
// and the ratios are taken within the round, so a loaded machine's slow minutes hit both sides of a ratio:
// it prints the median per-round ratio and its interquartile range. Run:
//   node dist/bench/sparse-codebook-ab.js [rounds = 201]
import { join } from 'node:path';

import { packageRoot } from '../agent/package-root.js';
import { setThreads } from '../native/index.js';
import { formatLayers } from './format-layers.js';
import { readShapes } from './kernel-shapes.js';
import { calibrate, type Contender, jsContender, median, ourLayers, timeBatch } from './kernels.js';

const COMPARED = ['codebook', 'sparse', 'int8', 'fp32'] as const;

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(q * (sorted.length - 1))]!;
}

async function main(rounds: number): Promise<void> {
  setThreads(1);
  console.log(`rounds ${rounds}, 1 thread; ratio = other / sparse-codebook µs (> 1: sparse-codebook faster)`);
  console.log(
    `| shape | sparse-codebook µs | ${COMPARED.map((f) => `${f} µs`).join(' | ')} | ` +
      `${COMPARED.map((f) => `${f} / sc`).join(' | ')} |`,
  );
  console.log(`|${'---|'.repeat(2 + 2 * COMPARED.length)}`);
  for (const [index, shape] of readShapes(join(packageRoot(), 'bench', 'shapes.json')).entries()) {
    const seed = 1000 + index;
    const ours = ourLayers(shape, seed);
    const contenders: Contender[] = [
      jsContender('int8', () => ours.int8.run(ours.int8Input, ours.int8Output)),
      jsContender('fp32', () => ours.fp32.run(ours.fp32Input, ours.fp32Output)),
    ];
    for (const build of formatLayers(shape, ours.f32Weights, seed + 13)) {
      if (!['sparse-codebook', 'codebook', 'sparse'].includes(build.format) || 'skipped' in build) continue;
      contenders.push(jsContender(build.format, () => build.layer.run(build.input, build.output)));
    }
    const byId = new Map(contenders.map((c) => [c.id, c]));
    const sc = byId.get('sparse-codebook');
    if (sc === undefined) {
      console.log(`| ${shape.name} | skipped |`);
      continue;
    }
    for (const c of contenders) await calibrate(c, 2);
    for (let round = 0; round < rounds; round++)
      for (let k = 0; k < contenders.length; k++) {
        const c = contenders[(round + k) % contenders.length]!;
        c.samplesUs.push(await timeBatch(c));
      }
    const cells = COMPARED.map((f) => {
      const other = byId.get(f);
      if (other === undefined) return { us: '-', ratio: '-' };
      const ratios = other.samplesUs.map((us, i) => us / sc.samplesUs[i]!);
      return {
        us: median(other.samplesUs).toFixed(1),
        ratio: `${median(ratios).toFixed(2)} (${quantile(ratios, 0.25).toFixed(2)}–${quantile(ratios, 0.75).toFixed(2)})`,
      };
    });
    console.log(
      `| ${shape.name} | ${median(sc.samplesUs).toFixed(1)} | ${cells.map((c) => c.us).join(' | ')} | ` +
        `${cells.map((c) => c.ratio).join(' | ')} |`,
    );
  }
}

await main(Number(process.argv[2] ?? 201));
