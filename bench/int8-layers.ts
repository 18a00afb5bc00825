// `npm run bench -- int8-layers --models NAME,...`: where an int8 package loses its fp32 package's answers.
// Both packages (bench/models.ts benchPackages: `whittle import` and `whittle quantize`'s code paths) run as
// stored on the same inputs with every node output watched (calibrate.ts watchingModel). Each int8 node is
// compared with the fp32 node of the same name (the quantizer keeps the names; a clip fused into its layer is
// compared through the clip's output), the int8 values dequantized:
// - rel_error: the RMS of int8 - fp32 over the RMS of fp32 (the error accumulated up to that node);
// - bias_fraction: the share of that error's RMS that is a per-channel mean (a systematic shift a bias
//   correction would remove) rather than noise that varies with the input and the position.
// Each model's summary adds the output's figures (the logits, or the probabilities of a package that ends in
// softmax): the median gap between the fp32 package's top two values, and the RMS of the int8 package's error
// on them, in the same units. When the error is about the gap or larger, the
// int8 package picks another class on a good share of the inputs whatever happens in any one layer.
import type { ManifestNode } from '../agent/package/manifest.js';
import type { Package } from '../agent/package/reader.js';
import {
  CALIBRATION_METHODS,
  type CalibrationMethod,
  watchingModel,
} from '../optimize/quantize/calibrate.js';
import { dequantizeActivations } from '../optimize/quantize/int8.js';
import { BenchArgumentError, benchOptions, positiveInteger, stringOptions } from './kernels.js';
import { benchPackages, calibrationMethod, MODEL_NAMES } from './models.js';

export interface LayerErrorRow {
  node: string;
  op: string;
  rel_error: number;
  bias_fraction: number;
}

export interface ModelLayerErrors {
  model: string;
  inputs: number;
  layers: LayerErrorRow[];
  /** Median over the inputs of the fp32 package's top-1 logit minus its top-2 logit. */
  median_top2_gap: number;
  /** RMS of the int8 package's logits minus the fp32 package's. */
  logit_error_rms: number;
}

/** The dequantized values of tensor `t` of `pkg` as `data` holds them. */
function realValues(pkg: Package, t: number, data: ArrayLike<number>): Float32Array {
  const quant = pkg.manifest.tensors[t]!.quant;
  if (quant === undefined) return Float32Array.from(data);
  return dequantizeActivations(Int8Array.from(data), {
    scale: quant.scale[0]!,
    zeroPoint: quant.zeroPoint[0]!,
  });
}

/** rel_error and bias_fraction of `got` against `want`, channels last (`channels` per position). */
function layerError(
  got: Float32Array,
  want: Float32Array,
  channels: number,
): Omit<LayerErrorRow, 'node' | 'op'> {
  let error = 0;
  let reference = 0;
  const meanError = new Float64Array(channels);
  for (let i = 0; i < want.length; i++) {
    const d = got[i]! - want[i]!;
    error += d * d;
    reference += want[i]! * want[i]!;
    meanError[i % channels]! += d;
  }
  const perChannel = want.length / channels;
  const bias = meanError.reduce((s, m) => s + (m / perChannel) ** 2 * perChannel, 0);
  return {
    rel_error: reference > 0 ? Math.sqrt(error / reference) : 0,
    bias_fraction: error > 0 ? Math.sqrt(bias / error) : 0,
  };
}

/** Each package run on `input` with the outputs of `nodes` watched (node name -> that output's values). */
function nodeOutputs(pkg: Package, nodes: readonly ManifestNode[], input: Float32Array, batch: number) {
  const model = watchingModel(
    pkg,
    nodes.map((n) => n.outputs[0]!),
    batch,
  );
  const results = model.run([input]);
  return new Map(nodes.map((n, k) => [n.name, realValues(pkg, n.outputs[0]!, results[k]!.data)]));
}

/** The per-layer errors of one model's int8 package on `count` of its bench inputs. */
export async function modelLayerErrors(
  name: string,
  count: number,
  seed: number,
  method?: CalibrationMethod,
): Promise<ModelLayerErrors> {
  const packages = await benchPackages(name, seed, method === undefined ? {} : { calibrationMethod: method });
  const { fp32, int8 } = packages;
  const fp32Nodes = new Map(fp32.manifest.nodes.map((n) => [n.name, n]));
  const readers = new Map<number, ManifestNode[]>();
  for (const n of fp32.manifest.nodes)
    for (const t of n.inputs) readers.set(t, [...(readers.get(t) ?? []), n]);
  // The fp32 node each int8 node stands for: the one of its name, or the clip fused into it.
  const int8Nodes = int8.manifest.nodes.filter((n) => fp32Nodes.has(n.name) && n.outputs.length === 1);
  const int8Names = new Set(int8.manifest.nodes.map((n) => n.name));
  const comparand = (n: ManifestNode): ManifestNode => {
    const source = fp32Nodes.get(n.name)!;
    const next = readers.get(source.outputs[0]!);
    return next?.length === 1 && next[0]!.op === 'clip' && !int8Names.has(next[0]!.name) ? next[0]! : source;
  };
  const input = packages.inputs(count, seed + 3);
  const got = nodeOutputs(int8, int8Nodes, input, count);
  const want = nodeOutputs(fp32, int8Nodes.map(comparand), input, count);
  const layers: LayerErrorRow[] = [];
  for (const n of int8Nodes) {
    const w = want.get(comparand(n).name)!;
    const g = got.get(n.name)!;
    const shape = int8.manifest.tensors[n.outputs[0]!]!.shape;
    if (w.length !== g.length) continue;
    layers.push({ node: n.name, op: n.op, ...layerError(g, w, shape[shape.length - 1]!) });
  }
  const logits = (pkg: Package): Float32Array => {
    const t = pkg.manifest.outputs[0]!.tensor;
    return realValues(pkg, t, watchingModel(pkg, [t], count).run([input])[0]!.data);
  };
  const [f, q] = [logits(fp32), logits(int8)];
  const classes = f.length / count;
  const gaps = Array.from({ length: count }, (_, i) => {
    const row = Array.from(f.subarray(i * classes, (i + 1) * classes)).sort((a, b) => b - a);
    return row[0]! - row[1]!;
  }).sort((a, b) => a - b);
  let sq = 0;
  for (let i = 0; i < f.length; i++) sq += (q[i]! - f[i]!) ** 2;
  return {
    model: name,
    inputs: count,
    layers,
    median_top2_gap: gaps[Math.floor(count / 2)]!,
    logit_error_rms: Math.sqrt(sq / f.length),
  };
}

export const INT8_LAYERS_HELP = `int8-layers options: --models ${MODEL_NAMES.join(',')} (required), --inputs 20,
  --seed 1, --calibration-method ${CALIBRATION_METHODS.join('|')}, --json`;

export async function int8LayersCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(
    args,
    { json: { type: 'boolean' }, ...stringOptions('models', 'inputs', 'seed', 'calibration-method') },
    INT8_LAYERS_HELP,
  );
  if (values === undefined) return 0;
  if (values.models === undefined)
    throw new BenchArgumentError(`int8-layers needs --models; ${INT8_LAYERS_HELP}`);
  const count = positiveInteger(values.inputs, 20, '--inputs');
  const seed = positiveInteger(values.seed, 1, '--seed');
  const method =
    values['calibration-method'] === undefined ? undefined : calibrationMethod(values['calibration-method']);
  process.stderr.write(`int8-layers: machine ${machine}\n`);
  const report: ModelLayerErrors[] = [];
  for (const name of values.models.split(',')) {
    if (!MODEL_NAMES.includes(name))
      throw new BenchArgumentError(`unknown model "${name}"; expected some of ${MODEL_NAMES.join(', ')}`);
    const errors = await modelLayerErrors(name, count, seed, method);
    report.push(errors);
    if (values.json) continue;
    console.log(`${name} (${count} inputs):`);
    for (const l of errors.layers)
      console.log(
        `  ${l.rel_error.toFixed(4)}  bias ${l.bias_fraction.toFixed(2)}  ${l.op.padEnd(16)} ${l.node}`,
      );
    console.log(
      `  logits: median fp32 top-2 gap ${errors.median_top2_gap.toPrecision(3)}, int8 error RMS ` +
        `${errors.logit_error_rms.toPrecision(3)}`,
    );
  }
  if (values.json) console.log(JSON.stringify({ results: report }, null, 2));
  return 0;
}
