// End to end, batch 1, one thread: a zoo model's ternary and codebook packages with their weights expanded at
// load onto the dense fp32 kernels (the runtime's default) against the same packages on the formats' own
// kernels (expandWeights: false) and against the model's int8 and fp32 packages (`bench models`' packages:
// seeded random weights, `whittle quantize`'s int8). Ternary: every conv / fully-connected layer TWN-encoded
// (encodeTernary); codebook: every such layer k-means shared to 16 centroids, 4-bit indices (the compressor's
// encodeLayer). Each round times one batch (~20 ms) of every contender, the order rotated, and the ratios are
// taken within the round, so a loaded machine's slow minutes hit both sides of a ratio: medians over the
// rounds. Run:
//   node dist/bench/expanded-ab.js [rounds = 31] [models = lenet5,vgg-small,mobilenet-0.5]
import { elementCount, encodeTernary } from '../agent/package/encodings.js';
import type { NumberFormat } from '../agent/package/manifest.js';
import type { Package } from '../agent/package/reader.js';
import { Model, type ModelOptions } from '../agent/runtime/model.js';
import { encodeLayer } from '../optimize/compress/encode.js';
import { exportOnnx } from '../optimize/onnx/export.js';
import { importOnnx } from '../optimize/onnx/import.js';
import { calibrate, type Contender, jsContender, median, timeBatch } from './kernels.js';
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

async function main(rounds: number, models: string[]): Promise<void> {
  console.log(`rounds ${rounds}, batch 1, 1 thread; ratios within a round, median (interquartile range)`);
  console.log(
    '| model | format | expanded ms | compact ms | int8 ms | fp32 ms | compact / expanded | int8 / expanded |' +
      ' memory expanded / compact (bytes) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const name of models) {
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
      for (const c of contenders) await calibrate(c, 20);
      for (let round = 0; round < rounds; round++) {
        for (let k = 0; k < contenders.length; k++) {
          const c = contenders[(round + k) % contenders.length]!;
          c.samplesUs.push(await timeBatch(c));
        }
      }
      const [e, c, i8, f] = contenders.map((c) => c.samplesUs) as [number[], number[], number[], number[]];
      const ratio = (other: number[]): string => {
        const r = other.map((us, j) => us / e[j]!);
        return `${median(r).toFixed(2)} (${quantile(r, 0.25).toFixed(2)}–${quantile(r, 0.75).toFixed(2)})`;
      };
      const ms = (s: number[]): string => (median(s) / 1000).toFixed(3);
      console.log(
        `| ${name} | ${format} | ${ms(e)} | ${ms(c)} | ${ms(i8)} | ${ms(f)} | ${ratio(c)} | ${ratio(i8)} | ` +
          `${memory(expanded)} / ${memory(compact)} |`,
      );
    }
  }
}

await main(Number(process.argv[2] ?? 31), (process.argv[3] ?? 'lenet5,vgg-small,mobilenet-0.5').split(','));
