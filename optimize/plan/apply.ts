// A per-layer plan as a package: each conv / FC layer of an fp32 package in a number format (f32, int8,
// a 4-bit codebook, ternary, binary) and a magnitude-pruning ratio, written with the compressor's encoders
// (optimize/compress/encode.ts) and the int8 post-training quantizer for the int8 layers (calibrated on the
// package as it runs the other layers). No retraining: the planner weighs each choice by the accuracy the
// runtime measures on the package it gives (sensitivity.ts).
import type { KeyObject } from 'node:crypto';

import { elementCount, encodeRaw } from '../../agent/package/encodings.js';
import { type Package, readPackage } from '../../agent/package/reader.js';
import { Model } from '../../agent/runtime/model.js';
import { whittleError } from '../../native/whittle-error.js';
import { encodeLayers, type LayerCompression } from '../compress/encode.js';
import { magnitudeMasks } from '../compress/projection.js';
import { bundledSigningKey, type PackageContent, packageContent, writePackage } from '../package/writer.js';
import type { CalibrationSet } from '../quantize/calibrate.js';
import { quantizePackage } from '../quantize/ptq.js';

/** A plan that cannot be written: an unknown layer, a format or ratio out of range, a layer not stored f32. */
export class PlanError extends whittleError('PlanError', 'bad-plan') {}

export const PLAN_FORMATS = ['f32', 'int8', 'codebook', 'ternary', 'binary'] as const;
export type PlanFormat = (typeof PLAN_FORMATS)[number];

/** Index bits of a codebook layer (16 shared values). */
export const CODEBOOK_BITS = 4;

/** What the planner may do to one layer: its number format and the fraction of its weights pruned (smallest
 * magnitudes first). Pruning applies to f32 (stored sparse) and codebook (pruned and shared) layers. */
export interface LayerChoice {
  format: PlanFormat;
  prune: number;
}

export const BASELINE_CHOICE: LayerChoice = { format: 'f32', prune: 0 };

/** The choices the sensitivity analysis tries on each layer by default. */
export const DEFAULT_CHOICES: readonly LayerChoice[] = [
  { format: 'f32', prune: 0.5 },
  { format: 'f32', prune: 0.75 },
  { format: 'f32', prune: 0.9 },
  { format: 'int8', prune: 0 },
  { format: 'codebook', prune: 0 },
  { format: 'codebook', prune: 0.5 },
  { format: 'codebook', prune: 0.75 },
  { format: 'ternary', prune: 0 },
  { format: 'binary', prune: 0 },
];

/** A choice's name in reports and spec files: `int8`, `f32/p75` (75 % pruned), `codebook/p50`. */
export function choiceKey(choice: LayerChoice): string {
  return choice.prune > 0 ? `${choice.format}/p${Math.round(100 * choice.prune)}` : choice.format;
}

/** A choice from its name (choiceKey); throws PlanError naming what it cannot read. */
export function parseChoice(key: string): LayerChoice {
  const m = /^([a-z0-9]+)(?:\/p(\d{1,2}))?$/.exec(key);
  const format = m?.[1] as PlanFormat | undefined;
  if (!m || !format || !(PLAN_FORMATS as readonly string[]).includes(format))
    throw new PlanError(
      `unknown layer choice "${key}": expected one of ${PLAN_FORMATS.join(', ')}, optionally /pNN (NN % pruned, f32 and codebook)`,
    );
  const choice = { format, prune: m[2] === undefined ? 0 : Number(m[2]) / 100 };
  checkChoice('(spec)', choice);
  return choice;
}

function checkChoice(layer: string, choice: LayerChoice): void {
  if (!(PLAN_FORMATS as readonly string[]).includes(choice.format))
    throw new PlanError(`layer ${layer}: unknown format ${choice.format} (${PLAN_FORMATS.join(', ')})`);
  if (!(choice.prune >= 0 && choice.prune < 1))
    throw new PlanError(`layer ${layer}: pruning ratio ${choice.prune} is not in [0, 1)`);
  if (choice.prune > 0 && choice.format !== 'f32' && choice.format !== 'codebook')
    throw new PlanError(
      `layer ${layer}: ${choice.format} layers are not pruned (pruning applies to f32 and codebook)`,
    );
}

const isBaseline = (c: LayerChoice): boolean => c.format === 'f32' && c.prune === 0;

/** The conv / FC layers (node names) of an fp32 package a plan can change: f32 weights stored as a constant. */
export function plannableLayers(pkg: Package): string[] {
  return pkg.manifest.nodes
    .filter(
      (n) =>
        (n.op === 'conv2d' || n.op === 'fully_connected') &&
        n.format === 'f32' &&
        n.inputs[1] !== undefined &&
        pkg.constants[n.inputs[1]]?.kind === 'raw',
    )
    .map((n) => n.name);
}

const read = (bytes: Buffer): Package => readPackage(bytes, { allowUnsigned: true, cpuFamily: null });

/** The package of `fp32` with every layer of `plan` as it says (the others unchanged), signed with `key`
 * (the bundled key by default: plans under evaluation are never deployed as such). */
export function planPackage(
  fp32: Package,
  plan: ReadonlyMap<string, LayerChoice>,
  calibration: CalibrationSet,
  key: KeyObject = bundledSigningKey(),
): Package {
  const layers = new Set(plannableLayers(fp32));
  const encoded = new Map<string, LayerCompression>();
  const int8 = new Set<string>();
  const prune = new Map<string, number>();
  for (const [layer, choice] of plan) {
    if (!layers.has(layer))
      throw new PlanError(
        `no conv / fully connected f32 layer ${layer} in ${fp32.manifest.model.id} (layers: ${[...layers].join(', ')})`,
      );
    checkChoice(layer, choice);
    if (isBaseline(choice)) continue;
    if (choice.prune > 0) prune.set(layer, choice.prune);
    if (choice.format === 'int8') int8.add(layer);
    else if (choice.format === 'ternary' || choice.format === 'binary')
      encoded.set(layer, { weights: choice.format });
    else if (choice.format === 'codebook')
      encoded.set(layer, {
        bits: CODEBOOK_BITS,
        ...(choice.prune > 0 ? { sparsity: choice.prune, huffman: true } : {}),
      });
    else encoded.set(layer, { sparsity: choice.prune });
  }
  // encodeLayers sets the nodes' formats: on a copy, never on fp32's own manifest.
  const content = pruned({ ...packageContent(fp32), manifest: structuredClone(fp32.manifest) }, prune);
  const first = read(writePackage(encodeLayers(content, encoded), key));
  if (int8.size === 0) return first;
  // int8 layers calibrated on the package as it runs the others; the quantizer writes those as fp32 (their
  // weights expanded), so they are encoded once more, exactly (their values are already the encoded ones).
  const quantized = quantizePackage(first, calibration, { layers: int8 }).content;
  quantized.manifest.inputs[0]!.preprocessing ??= fp32.manifest.inputs[0]!.preprocessing;
  return read(writePackage(encodeLayers(quantized, encoded), key));
}

/** `content` with the smallest-magnitude fraction of each named layer's weights set to zero. */
function pruned(content: PackageContent, ratios: ReadonlyMap<string, number>): PackageContent {
  if (ratios.size === 0) return content;
  const constants = new Map(content.constants);
  for (const node of content.manifest.nodes) {
    const ratio = ratios.get(node.name);
    if (ratio === undefined) continue;
    const w = node.inputs[1]!;
    const raw = constants.get(w)!;
    const n = elementCount(content.manifest.tensors[w]!.shape);
    const values = new Float32Array(
      raw.bytes.buffer.slice(raw.bytes.byteOffset, raw.bytes.byteOffset + 4 * n),
    );
    const mask = magnitudeMasks(new Map([[node.name, values]]), new Map([[node.name, ratio]]), false).get(
      node.name,
    )!;
    mask.forEach((keep, i) => {
      if (!keep) values[i] = 0;
    });
    constants.set(w, encodeRaw(values));
  }
  return { manifest: content.manifest, constants };
}

/** Peak RAM of a package at batch 1 as the runtime plans it: the activation arena of its memory plan, the
 * weights as held, and the buffers executors hold outside the arena. */
export function peakRamBytes(pkg: Package): number {
  const model = Model.fromPackage(pkg, { batch: 1 });
  return model.plan.arenaBytes + model.weightBytes + model.scratchBytes;
}
