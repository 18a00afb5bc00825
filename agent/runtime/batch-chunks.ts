// Batch chunks: at a batch of N > 1 images, a stretch of consecutive nodes that compute each image from the
// same image of their inputs alone (OpDefinition.perImage) runs a few images at a time — every node of the
// stretch on images [0, k), then every node on [k, 2k), ... — instead of each node on all N images. The
// tensors that live only inside the stretch then hold k images and stay in the core's cache between the
// nodes that write and read them; at batch 32 a MobileNet layer's activations alone are megabytes, and a
// run node by node over the whole batch streams every one of them through memory (per-image time at batch
// 32 was up to 4x that at batch 1 on the early depthwise layers). Late layers, whose activations are small,
// keep a large chunk (up to all N images): their weights are then read once for many images (a real GEMM
// for a fully-connected layer, not N matrix-vector products).
//
// A chunk is at most `budgetBytes` of per-image activation bytes (a node's inputs and outputs) times its
// images, rounded down to a divisor of N so that every chunk of a stretch has the same size and one
// executor per node serves them all. A node is chunked only when its op says it is per-image and shape
// inference at the chunk's batch gives every activation tensor it touches the batch-N shape with k for N.
import type { ManifestNode } from '../package/manifest.js';
import { DTYPE_BYTES, elements, type TensorSpec } from './tensor.js';

/** Nodes [first, last) run `images` images at a time (images === the batch: the node runs once, whole). */
export interface BatchSegment {
  first: number;
  last: number;
  images: number;
}

export interface BatchChunks {
  segments: BatchSegment[];
  /** Per tensor: the images its buffer holds (the batch, or a segment's chunk for a tensor inside it). */
  tensorImages: Map<number, number>;
}

export interface BatchChunkInput {
  nodes: readonly ManifestNode[];
  batch: number;
  /** Every tensor's spec at the batch. */
  specs: readonly TensorSpec[];
  /** Every tensor's spec with the graph inputs at `images` images, or undefined when inference fails. */
  specsAt(images: number): readonly TensorSpec[] | undefined;
  isActivation(tensor: number): boolean;
  /** Graph inputs and outputs, and tensors a caller writes between runs: always whole. */
  wholeTensors: ReadonlySet<number>;
  perImage(node: ManifestNode): boolean;
  budgetBytes: number;
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/** The chunk of every node and the segments they form (see the header of this file). */
export function planBatchChunks(input: BatchChunkInput): BatchChunks {
  const { nodes, batch, specs } = input;
  const whole = (): BatchChunks => ({
    segments: nodes.length === 0 ? [] : [{ first: 0, last: nodes.length, images: batch }],
    tensorImages: new Map(),
  });
  if (batch <= 1 || input.budgetBytes <= 0 || nodes.length === 0) return whole();
  const activations = (node: ManifestNode): number[] =>
    [...node.inputs, ...node.outputs].filter((t) => t >= 0 && input.isActivation(t));
  // Divisors of the batch below it, largest first, with their specs where inference succeeds.
  const divisors: { images: number; specs: readonly TensorSpec[] }[] = [];
  for (let d = batch - 1; d >= 1; d--) {
    if (batch % d !== 0) continue;
    const at = input.specsAt(d);
    if (at !== undefined) divisors.push({ images: d, specs: at });
  }
  const chunkOf = nodes.map((node) => {
    const touched = activations(node);
    const perImageBytes = touched.reduce((sum, t) => {
      const spec = specs[t]!;
      return sum + (elements(spec.shape) / batch) * DTYPE_BYTES[spec.dtype];
    }, 0);
    if (!input.perImage(node) || perImageBytes * batch <= input.budgetBytes) return batch;
    const fits = divisors.find(
      ({ images, specs: at }) =>
        (images * perImageBytes <= input.budgetBytes || images === 1) &&
        touched.every((t) => {
          const full = specs[t]!.shape;
          return full[0] === batch && sameShape(at[t]!.shape, [images, ...full.slice(1)]);
        }),
    );
    return fits?.images ?? batch;
  });
  // A node's chunk is at most any later node's: activations shrink through a network, so this lengthens the
  // segments (each boundary is a whole tensor written and read back through memory) and runs the early,
  // large layers at the chunk of the first one that needs a smaller one.
  for (let i = chunkOf.length - 2; i >= 0; i--) chunkOf[i] = Math.min(chunkOf[i]!, chunkOf[i + 1]!);
  const segments: BatchSegment[] = [];
  chunkOf.forEach((images, i) => {
    const previous = segments[segments.length - 1];
    if (previous !== undefined && previous.images === images) previous.last = i + 1;
    else segments.push({ first: i, last: i + 1, images });
  });
  // A tensor inside one chunked segment (written and read there only, not whole) holds a chunk.
  const segmentOf = new Map<number, Set<number>>();
  segments.forEach((segment, s) => {
    for (let i = segment.first; i < segment.last; i++) {
      for (const t of activations(nodes[i]!)) {
        const set = segmentOf.get(t) ?? new Set<number>();
        set.add(s);
        segmentOf.set(t, set);
      }
    }
  });
  const tensorImages = new Map<number, number>();
  for (const [t, set] of segmentOf) {
    const only = set.size === 1 ? segments[[...set][0]!]! : undefined;
    tensorImages.set(t, only !== undefined && !input.wholeTensors.has(t) ? only.images : batch);
  }
  return { segments, tensorImages };
}
