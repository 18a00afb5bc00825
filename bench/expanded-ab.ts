// Ternary and codebook weights expanded at load onto the dense fp32 kernels (the runtime's default) against
// the same weights on the formats' own kernels (expandWeights: false), with int8 and fp32 beside them, one
// thread, in one process: each round times one batch of every contender, the order rotated, and the ratios
// are taken within the round, so a loaded machine's slow minutes hit both sides of a ratio (medians over the
// rounds, interquartile range in brackets).
//   layers: the shapes of bench/shapes.json, the layers `bench kernels` builds (bench/format-layers.ts), ~2 ms
//     batches. gops as `bench kernels` counts them (2 per MAC).
//   models: a zoo model's ternary and codebook packages, batch 1 (`bench models`' packages: seeded random
//     weights, `whittle quantize`'s int8). Ternary: every conv / fully-connected layer TWN-encoded
//     (encodeTernary); codebook: every such layer k-means shared to 16 centroids, 4-bit indices (the
//     compressor's encodeLayer). ~20 ms batches.
// Run:
//   node dist/bench/expanded-ab.js layers [rounds = 31]
//   node dist/bench/expanded-ab.js models [rounds = 31] [models = lenet5,vgg-small,mobilenet-0.5]
import { join } from 'node:path';

import { elementCount, encodeTernary } from '../agent/package/encodings.js';
import type { NumberFormat } from '../agent/package/manifest.js';
import type { Package } from '../agent/package/reader.js';
import { packageRoot } from '../agent/package-root.js';
import { Model, type ModelOptions } from '../agent/runtime/model.js';
import { setThreads } from '../native/index.js';
import { encodeLayer } from '../optimize/compress/encode.js';
import { exportOnnx } from '../optimize/onnx/export.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { formatLayers } from './format-layers.js';
import { macs, readShapes } from './kernel-shapes.js';
import { calibrate, type Contender, jsContender, median, ourLayers, timeBatch } from './kernels.js';
import { benchInt8, benchSource, read } from './models.js';

const SEED = 1;

/** The fp32 package of `source` (as `bench models` makes it) with every conv / FC weight re-encoded. */
function reencoded(source: Package, name: string, format: 'ternary' | 'codebook'): Package {
  const content = importOnnx(exportOnnx(source), { source: `${name}.onnx`, modelId: name });
  const constants = new Map(content.constants);
  for (const node of content.manifest.nodes) {
    if (node.op !== 'conv2d' && node.op !== 'fully_connected') continue;
    const w = node.inputs[1]!;
    const raw = constants.get(w)!;
    const shape = content.manifest.tensors[w]!.shape;
    const values = new Float32Array(
      raw.bytes.buffer.slice(raw.bytes.byteOffset, raw.bytes.byteOffset + 4 * elementCount(shape)),
    );
    const encoded =
      format === 'ternary'
        ? { encoded: encodeTernary(values, shape), format: 'ternary' as NumberFormat }
        : encodeLayer(values, shape, { bits: 4 });
    if (encoded === undefined) continue;
    constants.set(w, encoded.encoded);
    node.format = encoded.format;
  }
  return read({ manifest: content.manifest, constants });
}

/** What the runtime holds for a model: activation arena, weights, executors' buffers (expanded weights). */
const memory = (m: Model): number => m.plan.arenaBytes + m.weightBytes + m.scratchBytes;

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(q * (sorted.length - 1))]!;
}

/** Times the contenders in rotated rounds; per contender its samples (µs). */
async function race(contenders: Contender[], rounds: number, batchMs: number): Promise<void> {
  for (const c of contenders) await calibrate(c, batchMs);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(round + k) % contenders.length]!;
      c.samplesUs.push(await timeBatch(c));
    }
  }
}

/** median (q1–q3) of other / base within each round: > 1 when base is faster. */
function ratio(other: Contender, base: Contender): string {
  const r = other.samplesUs.map((us, j) => us / base.samplesUs[j]!);
  return `${median(r).toFixed(2)} (${quantile(r, 0.25).toFixed(2)}–${quantile(r, 0.75).toFixed(2)})`;
}

async function layers(rounds: number): Promise<void> {
  setThreads(1);
  console.log(`rounds ${rounds}, 1 thread; gops: medians; ratios within a round, median (q1–q3)`);
  console.log(
    '| shape | int8 gops | fp32 gops | ternary gops (compact → expanded) | codebook gops (compact → expanded) |' +
      ' ternary speed-up | codebook speed-up | int8 / ternary time | int8 / codebook time |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const [index, shape] of readShapes(join(packageRoot(), 'bench', 'shapes.json')).entries()) {
    const seed = 1000 + index;
    const ours = ourLayers(shape, seed);
    const contenders = [
      jsContender('int8', () => ours.int8.run(ours.int8Input, ours.int8Output)),
      jsContender('fp32', () => ours.fp32.run(ours.fp32Input, ours.fp32Output)),
    ];
    for (const expand of [true, false]) {
      for (const build of formatLayers(shape, ours.f32Weights, seed + 13, expand)) {
        if (!['ternary', 'codebook'].includes(build.format) || 'skipped' in build) continue;
        const id = `${build.format}${expand ? '' : '-compact'}`;
        contenders.push(jsContender(id, () => build.layer.run(build.input, build.output)));
      }
    }
    await race(contenders, rounds, 2);
    const by = new Map(contenders.map((c) => [c.id, c]));
    const gops = (id: string): string => {
      const c = by.get(id);
      return c === undefined ? '-' : ((2 * macs(shape)) / (median(c.samplesUs) * 1000)).toFixed(1);
    };
    const r = (a: string, b: string): string => {
      const x = by.get(a);
      const y = by.get(b);
      return x === undefined || y === undefined ? '-' : ratio(x, y);
    };
    console.log(
      `| ${shape.name} | ${gops('int8')} | ${gops('fp32')} | ${gops('ternary-compact')} → ${gops('ternary')} | ` +
        `${gops('codebook-compact')} → ${gops('codebook')} | ${r('ternary-compact', 'ternary')} | ` +
        `${r('codebook-compact', 'codebook')} | ${r('int8', 'ternary')} | ${r('int8', 'codebook')} |`,
    );
  }
}

async function models(rounds: number, names: string[]): Promise<void> {
  console.log(`rounds ${rounds}, batch 1, 1 thread; ms: medians; ratios within a round, median (q1–q3)`);
  console.log(
    '| model | format | expanded ms | compact ms | int8 ms | fp32 ms | compact / expanded | int8 / expanded |' +
      ' memory expanded / compact (bytes) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const name of names) {
    const source = await benchSource(name, SEED);
    const fp32 = read(importOnnx(exportOnnx(source), { source: `${name}.onnx`, modelId: name }));
    const int8 = benchInt8(fp32, SEED);
    const options: ModelOptions = { batch: 1, threads: 1 };
    const perInput = elementCount(fp32.manifest.tensors[fp32.manifest.inputs[0]!.tensor]!.shape.slice(1));
    const x = Float32Array.from({ length: perInput }, (_, i) => Math.sin(i * 0.37));
    const contender = (id: string, model: Model): Contender => jsContender(id, () => void model.run([x]));
    for (const format of ['ternary', 'codebook'] as const) {
      const pkg = reencoded(source, name, format);
      const expanded = Model.fromPackage(pkg, options);
      const compact = Model.fromPackage(pkg, { ...options, expandWeights: false });
      const contenders = [
        contender('expanded', expanded),
        contender('compact', compact),
        contender('int8', Model.fromPackage(int8, options)),
        contender('fp32', Model.fromPackage(fp32, options)),
      ];
      await race(contenders, rounds, 20);
      const [e, c, i8, f] = contenders as [Contender, Contender, Contender, Contender];
      const ms = (k: Contender): string => (median(k.samplesUs) / 1000).toFixed(3);
      console.log(
        `| ${name} | ${format} | ${ms(e)} | ${ms(c)} | ${ms(i8)} | ${ms(f)} | ${ratio(c, e)} | ${ratio(i8, e)} | ` +
          `${memory(expanded)} / ${memory(compact)} |`,
      );
    }
  }
}

const [mode, rounds, names] = process.argv.slice(2);
if (mode === 'layers') await layers(Number(rounds ?? 31));
else if (mode === 'models')
  await models(Number(rounds ?? 31), (names ?? 'lenet5,vgg-small,mobilenet-0.5').split(','));
else throw new RangeError(`Expected 'layers' or 'models' for the mode but received ${String(mode)}`);
