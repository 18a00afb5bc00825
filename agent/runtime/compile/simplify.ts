// Copies the compile pass drops before it fuses: an identity whose output is its input (same dtype and
// quantization: an int8 identity that relabels the quantization is kept), a pad that pads nothing (as
// PyTorch exports an AveragePool of padding 0 in opset 13, DenseNet's transitions), a reshape to the
// input's own shape, and a reshape of a reshape (the second alone, when its target copies nothing from the first's shape). Either would stand between a layer
// and the activation fused into it.
import type { ManifestNode } from '../../package/manifest.js';
import { type CompileGraph, readersOf } from './graph.js';

export function dropCopies(graph: CompileGraph): void {
  const outputs = new Set(graph.outputs.map((o) => o.tensor));
  const renamed = new Map<number, number>();
  const resolve = (t: number): number => renamed.get(t) ?? t;
  const kept: ManifestNode[] = [];
  for (const node of graph.nodes) {
    const inputs = node.inputs.map((i) => (i < 0 ? i : resolve(i)));
    const x = inputs[0] ?? -1;
    const y = node.outputs[0]!;
    if (node.op === 'identity' && inputs.length === 1 && node.outputs.length === 1 && !outputs.has(y)) {
      const [a, b] = [graph.tensors[x]!, graph.tensors[y]!];
      if (a.dtype === b.dtype && JSON.stringify(a.quant) === JSON.stringify(b.quant)) {
        renamed.set(y, x);
        continue;
      }
    }
    const pads = node.attrs.pads;
    if (
      node.op === 'pad' &&
      inputs.length === 1 &&
      Array.isArray(pads) &&
      pads.every((p) => p === 0) &&
      !outputs.has(y)
    ) {
      renamed.set(y, x);
      continue;
    }
    if (node.op === 'reshape' && inputs.length === 1 && !outputs.has(y)) {
      // A reshape to the input's own shape at every batch size: [-1 or 0, the input's other dimensions].
      const shape = graph.tensors[x]!.shape;
      const target = node.attrs.shape;
      if (
        Array.isArray(target) &&
        target.length === shape.length &&
        (target[0] === -1 || target[0] === 0) &&
        target.slice(1).every((d, i) => d === shape[i + 1] && d > 0)
      ) {
        renamed.set(y, x);
        continue;
      }
    }
    kept.push({ ...node, inputs });
  }
  const readers = readersOf(kept);
  const producers = new Map<number, ManifestNode>();
  for (const node of kept) for (const o of node.outputs) producers.set(o, node);
  const dropped = new Set<ManifestNode>();
  const nodes = kept.map((node) => {
    if (node.op !== 'reshape' || node.inputs.length !== 1) return node;
    const target = node.attrs.shape;
    if (!Array.isArray(target) || (node.attrs.allowzero !== 1 && target.includes(0))) return node;
    const first = producers.get(node.inputs[0]!);
    const mid = node.inputs[0]!;
    if (first?.op !== 'reshape' || outputs.has(mid) || readers.get(mid)?.length !== 1) return node;
    dropped.add(first);
    return { ...node, inputs: [...first.inputs] };
  });
  graph.nodes = nodes.filter((n) => !dropped.has(n));
  graph.outputs = graph.outputs.map((o) => ({ ...o, tensor: resolve(o.tensor) }));
}
