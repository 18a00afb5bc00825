// Per-layer sensitivity: for each conv / FC layer alone, every candidate choice (apply.ts: number format and
// pruning ratio) written into the fp32 package, and the package measured as the device would see it —
// accuracy by the runtime (evaluatePackage) on the test images (or the first N, for speed), bytes of the
// signed file, peak RAM from the runtime's memory plan, latency from the estimator (a device's table, or
// this machine's runtime). Figures are against the fp32 package, so the planner can add them up layer by
// layer. A choice the runtime cannot run or the encoders cannot write is kept with its error, not dropped
// silently.
import { setImmediate } from 'node:timers/promises';

import type { Package } from '../../agent/package/reader.js';
import { WhittleError } from '../../native/whittle-error.js';
import type { ImageSet } from '../datasets/image-set.js';
import { evaluatePackage } from '../evaluate-package.js';
import type { CalibrationSet } from '../quantize/calibrate.js';
import {
  choiceKey,
  DEFAULT_CHOICES,
  type LayerChoice,
  peakRamBytes,
  plannableLayers,
  planPackage,
} from './apply.js';
import type { LatencyEstimator } from './estimator.js';

/** A package's figures: what the budgets and the accuracy cost are made of. */
export interface PackageFigures {
  accuracy: number;
  bytes: number;
  ram_bytes: number;
  ms: number;
}

export interface SensitivityEntry {
  layer: string;
  op: string;
  choice: LayerChoice;
  key: string;
  /** The package with this layer alone changed; deltas against the fp32 package (negative: saved). */
  figures?: PackageFigures;
  delta_accuracy?: number;
  delta_bytes?: number;
  delta_ram_bytes?: number;
  delta_ms?: number;
  /** The layer's own time, before and after. */
  layer_ms?: number;
  baseline_layer_ms?: number;
  /** Why this choice cannot be applied to this layer. */
  error?: string;
}

export interface Sensitivity {
  model: string;
  images: number;
  latency_source: string;
  baseline: PackageFigures;
  layers: { name: string; op: string; ms: number }[];
  entries: SensitivityEntry[];
}

export interface SensitivityOptions {
  /** The test images accuracy is measured on (a subset, for speed). */
  set: ImageSet;
  calibration: CalibrationSet;
  estimator: LatencyEstimator;
  choices?: readonly LayerChoice[];
  /** Only these layers (default: every plannable layer). */
  layers?: readonly string[];
  onLayer?: (layer: string, done: number, total: number) => void;
  /** Entries of an earlier, interrupted analysis: their layers are not measured again (resume). */
  done?: readonly SensitivityEntry[];
  /** After each layer: every entry so far (what a resumable run saves). */
  onLayerDone?: (entries: readonly SensitivityEntry[]) => void;
}

export function figuresOf(pkg: Package, set: ImageSet, ms: number): PackageFigures {
  return {
    accuracy: evaluatePackage(pkg, set).top1,
    bytes: pkg.fileBytes,
    ram_bytes: peakRamBytes(pkg),
    ms,
  };
}

/** Each layer's packages are loaded several times (estimate, evaluate, peak RAM); after each layer the event loop
 * turns, since that is when Node-API runs the finalizers that free a dropped runtime's native plan, its arena
 * and its packed weights: a loop that never yields keeps every runtime it made (tens of GB on MobileNet). */
export async function analyzeSensitivity(fp32: Package, options: SensitivityOptions): Promise<Sensitivity> {
  const layers = options.layers ?? plannableLayers(fp32);
  const choices = options.choices ?? DEFAULT_CHOICES;
  const ops = new Map(fp32.manifest.nodes.map((n) => [n.name, n.op]));
  const [base] = options.estimator.estimate([fp32]);
  const baseline = figuresOf(fp32, options.set, base!.ms);
  const entries: SensitivityEntry[] = (options.done ?? []).filter((e) => layers.includes(e.layer));
  const measured = new Set(entries.map((e) => e.layer));
  for (const [done, layer] of layers.entries()) {
    if (measured.has(layer)) continue;
    options.onLayer?.(layer, done, layers.length);
    const built = choices.map((choice) => {
      const entry: SensitivityEntry = { layer, op: ops.get(layer) ?? '?', choice, key: choiceKey(choice) };
      try {
        const pkg = planPackage(fp32, new Map([[layer, choice]]), options.calibration);
        peakRamBytes(pkg); // the runtime loads it (a format it cannot run throws here)
        return { entry, pkg };
      } catch (err) {
        if (!(err instanceof WhittleError)) throw err;
        entry.error = err.message;
        return { entry, pkg: undefined };
      }
    });
    const runnable = built.filter((b) => b.pkg !== undefined);
    // The baseline timed again beside this layer's candidates, so their deltas share the machine's load.
    const [again, ...times] = options.estimator.estimate([fp32, ...runnable.map((b) => b.pkg)]);
    const baseLayerMs = again!.layers.find((l) => l.name === layer)?.ms ?? 0;
    runnable.forEach(({ entry, pkg }, i) => {
      const t = times[i]!;
      const figures = figuresOf(pkg, options.set, t.ms);
      entry.figures = figures;
      entry.delta_accuracy = figures.accuracy - baseline.accuracy;
      entry.delta_bytes = figures.bytes - baseline.bytes;
      entry.delta_ram_bytes = figures.ram_bytes - baseline.ram_bytes;
      entry.delta_ms = t.ms - again!.ms;
      entry.layer_ms = t.layers.find((l) => l.name === layer)?.ms ?? 0;
      entry.baseline_layer_ms = baseLayerMs;
    });
    entries.push(...built.map((b) => b.entry));
    options.onLayerDone?.(entries);
    await setImmediate();
  }
  return {
    model: fp32.manifest.model.id,
    images: options.set.count,
    latency_source: options.estimator.source,
    baseline,
    layers: base!.layers
      .filter((l) => layers.includes(l.name))
      .map((l) => ({ name: l.name, op: l.op, ms: l.ms })),
    entries,
  };
}
