// `whittle inspect PKG [--key PUBLIC_KEY] [--json]`: what a package holds and what running it costs —
// layers, number formats, stored sizes, MACs, the static memory plan and the signature status — computed
// by the same runtime the device runs.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { readPackageFile } from '../../agent/package/reader.js';
import { parsePublicKey } from '../../agent/package/signing.js';
import type { CompileReport } from '../../agent/runtime/compile/index.js';
import { type FallbackNode, Model } from '../../agent/runtime/model.js';
import type { ExecutionSummary } from '../../agent/runtime/native-plan.js';
import { CommandUsageError } from './command-error.js';

export interface InspectReport {
  file: string;
  fileBytes: number;
  sha256: string;
  signature: { status: 'verified' | 'unchecked'; signerKeyId: string };
  model: { id: string; version: string; name?: string };
  target: { deviceClass: string; cpuFamily: string };
  budgets?: Record<string, number | undefined>;
  accuracy?: { dataset: string; images: number; top1: number };
  inputs: { name: string; dtype: string; shape: number[]; layout: string }[];
  outputs: { name: string; dtype: string; shape: number[] }[];
  layers: {
    name: string;
    op: string;
    format: string;
    kernel: string;
    macs: number;
    weightBytes: number;
    outputShapes: number[][];
  }[];
  totals: { macs: number; storedWeightBytes: number };
  memoryPlan: { batch: number; arenaBytes: number; unsharedActivationBytes: number; weightBytes: number };
  /** What the compile pass did at load: transposes removed and left (with why), fusions, pairs not fused. */
  compile: CompileReport;
  /** Layers on the TypeScript reference executors, and why. */
  fallbacks: FallbackNode[];
  /** How a run executes: native plan steps and calls, the TypeScript nodes between them, refusals. */
  execution: ExecutionSummary;
}

export function inspectPackage(path: string, publicKeyText?: string, batch?: number): InspectReport {
  const pkg = readPackageFile(path, {
    ...(publicKeyText === undefined ? { allowUnsigned: true } : { publicKey: parsePublicKey(publicKeyText) }),
    cpuFamily: null,
  });
  const model = Model.fromPackage(pkg, batch === undefined ? {} : { batch });
  const { manifest } = pkg;
  return {
    file: path,
    fileBytes: pkg.fileBytes,
    sha256: pkg.sha256,
    signature: { status: pkg.signature, signerKeyId: pkg.signerKeyId },
    model: manifest.model,
    target: manifest.target,
    ...(manifest.budgets ? { budgets: manifest.budgets } : {}),
    ...(manifest.accuracy ? { accuracy: manifest.accuracy } : {}),
    inputs: manifest.inputs
      .map((i) => ({ name: i.name, layout: i.layout, ...model.specs[i.tensor]! }))
      .map(({ name, layout, dtype, shape }) => ({ name, dtype, shape, layout })),
    outputs: manifest.outputs.map((o) => ({
      name: o.name,
      dtype: model.specs[o.tensor]!.dtype,
      shape: model.specs[o.tensor]!.shape,
    })),
    layers: model.layers.map((l) => ({ ...l })),
    totals: {
      macs: model.layers.reduce((s, l) => s + l.macs, 0),
      storedWeightBytes: model.layers.reduce((s, l) => s + l.weightBytes, 0),
    },
    memoryPlan: {
      batch: model.batch,
      arenaBytes: model.plan.arenaBytes,
      unsharedActivationBytes: model.plan.unsharedBytes,
      weightBytes: model.weightBytes,
    },
    compile: model.compileReport,
    fallbacks: [...model.fallbacks],
    execution: model.execution,
  };
}

const pad = (text: string, width: number): string =>
  text.length >= width ? text : text + ' '.repeat(width - text.length);

export function formatInspectReport(r: InspectReport): string {
  const lines: string[] = [];
  lines.push(`${r.model.id} ${r.model.version}${r.model.name ? ` (${r.model.name})` : ''}`);
  lines.push(`  file       ${r.file}, ${r.fileBytes} bytes, sha256 ${r.sha256}`);
  lines.push(
    `  signature  ${r.signature.status === 'verified' ? 'verified' : 'NOT CHECKED (no --key given)'}, signer key ${r.signature.signerKeyId}`,
  );
  lines.push(`  target     ${r.target.deviceClass} (${r.target.cpuFamily})`);
  if (r.budgets)
    lines.push(
      `  budgets    ${Object.entries(r.budgets)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
  if (r.accuracy)
    lines.push(
      `  accuracy   top-1 ${r.accuracy.top1} on ${r.accuracy.images} images of ${r.accuracy.dataset}`,
    );
  for (const i of r.inputs)
    lines.push(`  input      ${i.name}: ${i.dtype} [${i.shape.join(', ')}] ${i.layout}`);
  for (const o of r.outputs) lines.push(`  output     ${o.name}: ${o.dtype} [${o.shape.join(', ')}]`);
  lines.push('');
  lines.push(
    `  ${pad('layer', 24)}${pad('op', 18)}${pad('format', 10)}${pad('MACs', 12)}${pad('weights B', 11)}${pad('output', 20)}kernel`,
  );
  for (const l of r.layers) {
    lines.push(
      `  ${pad(l.name, 24)}${pad(l.op, 18)}${pad(l.format, 10)}${pad(String(l.macs), 12)}${pad(String(l.weightBytes), 11)}` +
        `${pad(l.outputShapes.map((s) => `[${s.join(',')}]`).join(' '), 20)}${l.kernel}`,
    );
  }
  lines.push('');
  lines.push(`  total      ${r.totals.macs} MACs, ${r.totals.storedWeightBytes} weight bytes stored`);
  lines.push(
    `  memory     batch ${r.memoryPlan.batch}: arena ${r.memoryPlan.arenaBytes} bytes (activations without reuse ` +
      `${r.memoryPlan.unsharedActivationBytes}), weights in memory ${r.memoryPlan.weightBytes} bytes`,
  );
  const c = r.compile;
  lines.push(
    c.skipped !== undefined
      ? `  compile    skipped, the graph runs as stored: ${c.skipped}`
      : `  compile    ${c.transposesRemoved} transpose(s) removed, ${c.transposesLeft.length} left, ` +
          `${c.fused.length} node(s) fused into layers`,
  );
  for (const t of c.transposesLeft) lines.push(`    transpose left  ${t.node}: ${t.why}`);
  for (const f of c.fused) lines.push(`    fused           ${f.node} into ${f.into}`);
  for (const f of c.notFused) lines.push(`    not fused       ${f.node}: ${f.why}`);
  lines.push(`  fallback   ${r.fallbacks.length} layer(s) on the TypeScript reference`);
  for (const f of r.fallbacks) lines.push(`    ${pad(f.node, 22)}${pad(`${f.op} ${f.format}`, 24)}${f.why}`);
  const e = r.execution;
  lines.push(
    `  execution  ${e.nativeSteps} native steps in ${e.nativeCalls} plan call(s) per run` +
      (e.typescriptNodes.length > 0 ? `; TypeScript between them: ${e.typescriptNodes.join(', ')}` : ''),
  );
  for (const refused of e.refused)
    lines.push(`  not in the plan: ${refused.node} (runs node by node: ${refused.reason})`);
  return lines.join('\n');
}

export function inspectCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, key: { type: 'string' }, batch: { type: 'string' } },
  });
  const path = positionals[0];
  if (path === undefined || positionals.length > 1)
    throw new CommandUsageError('inspect: expected one package file');
  const batch = values.batch === undefined ? undefined : Number(values.batch);
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1)) {
    throw new CommandUsageError(`inspect: --batch expects a positive integer, got "${values.batch}"`);
  }
  let keyText: string | undefined;
  if (values.key !== undefined) {
    try {
      keyText = readFileSync(values.key, 'utf8');
    } catch (error) {
      throw new CommandUsageError(
        `inspect: cannot read the public key ${values.key}: ${(error as Error).message}`,
      );
    }
  }
  const report = inspectPackage(path, keyText, batch);
  console.log(values.json ? JSON.stringify(report, null, 2) : formatInspectReport(report));
  return 0;
}
