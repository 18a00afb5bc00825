// The compile pass, from a package's graph to the graph the runtime plans: one layout (layout.ts) and the
// layer fusions (fuse.ts). It runs when a model is imported (the package is stored compiled) and again
// when a package is loaded (packages written before it), and is idempotent. It never changes results
// beyond fp32 rounding (batch-norm folding); int8 graphs stay bit-exact. What it could not do is reported.
// Residual adds are fused into the conv before them at load only (fuse.ts).
import { type DecodedTensor, toInt8 } from '../../package/encodings.js';
import type { Manifest } from '../../package/manifest.js';
import { elements } from '../tensor.js';
import { fuseLayers } from './fuse.js';
import { type CompileGraph, type CompileReport, emptyReport } from './graph.js';
import { type LayoutOptions, sinkTransposes } from './layout.js';
import { dropCopies } from './simplify.js';

export { type CompileGraph, type CompileReport, emptyReport } from './graph.js';
export { inputInLayout, NCHW_TO_NHWC, NHWC_TO_NCHW } from './layout.js';

export interface CompileOptions extends LayoutOptions {
  /** Fuse residual adds into the convs before them (fuse.ts): true at load (false: off, reported), absent
   * when a model is imported (a package stores conv and add apart). */
  fuseResidual?: boolean;
}

/** Rewrites `graph` in place: transposes sunk and folded, layers fused. */
export function compileGraph(graph: CompileGraph, options: CompileOptions): CompileReport {
  const report = emptyReport();
  sinkTransposes(graph, options, report);
  dropCopies(graph);
  fuseLayers(graph, report, options.fuseResidual);
  return report;
}

export interface CompiledPackage {
  manifest: Manifest;
  /** By tensor index, as Package.constants: the source's constants that are still read, and the new ones
   * (permuted or folded weights, raw). */
  constants: (DecodedTensor | undefined)[];
  report: CompileReport;
}

/** A loaded package's graph compiled with its inputs kept as declared (callers feed that layout). Tensor
 * indices of the source manifest keep their meaning. */
export function compilePackage(
  manifest: Manifest,
  constants: readonly (DecodedTensor | undefined)[],
  fuseResidual = true,
): CompiledPackage {
  const graph: CompileGraph = {
    tensors: manifest.tensors.slice(),
    nodes: manifest.nodes.slice(),
    inputs: manifest.inputs.slice(),
    outputs: manifest.outputs.slice(),
    constants: new Map(
      constants.flatMap((c, i) => {
        if (c === undefined) return [];
        // An int8 constant stored as bit planes is int8 values to the passes (the runtime expands it at load
        // and runs the int8 kernels); other compressed constants stay opaque.
        const int8 = manifest.tensors[i]?.dtype === 'i8' && (c.kind === 'binary' || c.kind === 'ternary');
        return [
          [
            i,
            c.kind === 'raw'
              ? c.values
              : int8
                ? toInt8(c, elements(manifest.tensors[i]!.shape))
                : ('opaque' as const),
          ] as const,
        ];
      }),
    ),
  };
  const report = compileGraph(graph, { inputLayout: 'keep', fuseResidual });
  const read = new Set<number>([
    ...graph.nodes.flatMap((n) => n.inputs),
    ...graph.outputs.map((o) => o.tensor),
  ]);
  const compiled = graph.tensors.map((_, i): DecodedTensor | undefined => {
    if (!read.has(i)) return undefined;
    if (i < constants.length) return constants[i];
    const data = graph.constants.get(i);
    return data === undefined || data === 'opaque' ? undefined : { kind: 'raw', values: data };
  });
  return {
    manifest: {
      ...manifest,
      tensors: graph.tensors,
      nodes: graph.nodes,
      inputs: graph.inputs,
      outputs: graph.outputs,
    },
    constants: compiled,
    report,
  };
}
