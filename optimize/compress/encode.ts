// How each compressed layer is stored in the package: the fp32 package of the retrained model (the
// TensorFlow.js importer, as `whittle import` makes it) with the weights of every pruned or shared conv / FC
// layer re-encoded — pruned: sparse (CSR); shared: a codebook with its indices coded at a fixed width, or
// Huffman-coded after a huffman step (the layer's bias then in 16-bit fixed point); pruned and shared:
// encodePrunedShared; hashed (HashedNets): its buckets;
// trained binary / ternary (ste.ts): the binary, ternary or xnor format, whose encoders give the trained Q(w)
// back exactly (their alpha is the same mean |w| per output channel, and a batch norm folded at import only
// rescales a row).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  elementCount,
  encodeBinary,
  encodeCodebook,
  type EncodedTensor,
  encodeFixed,
  encodeHashed,
  encodeSparse,
  encodeSparseCodebook,
  encodeTernary,
  encodeXnor,
  EncodingError,
} from '../../agent/package/encodings.js';
import type { NumberFormat } from '../../agent/package/manifest.js';
import { weightFractionalLength } from '../package/fixed-point.js';
import type { PackageContent } from '../package/writer.js';
import { importTfjsLayers } from '../tfjs/import.js';
import { MODEL_FILE } from '../train/file-io.js';
import { kmeansLinear } from './projection.js';
import { BINARY_ACTIVATION_CLASS } from './xnor.js';

/** What the pipeline has done to a layer so far. */
export interface LayerCompression {
  /** Fraction of its weights pruned (exact zeros). */
  sparsity?: number;
  /** Index bits of its shared weights (2^bits values at most). */
  bits?: number;
  /** Its indices Huffman-coded (else at a fixed `bits` width). */
  huffman?: boolean;
  /** HashedNets: its weights are this many signed hash buckets (encodings.ts hashedSlot). */
  hashed?: { buckets: number; seed: number };
  /** Trained to binary / ternary weights (ste.ts) and stored in that format: binary weights on real
   * activations (BinaryConnect), ternary (TWN), or binary weights on binarized inputs (XNOR-Net). */
  weights?: 'binary' | 'ternary' | 'xnor';
}

/** A layer's codebook and indices: its distinct values when they fit 2^bits (a shared layer holds exactly
 * its centroids), else k-means of its values (a layer whose weights changed after sharing, e.g. a batch norm
 * folded into them at import); kmeansLinear does both. */
function codebookOf(values: Float32Array, bits: number): { codebook: Float32Array; indices: Uint8Array } {
  const { centroids, assignments } = kmeansLinear(values, 2 ** bits);
  return { codebook: centroids, indices: assignments };
}

/** A codebook section: Huffman code lengths from the index frequencies, or every index `bits` wide. */
function codebookSection(values: Float32Array, bits: number, huffman: boolean): EncodedTensor {
  const { codebook, indices } = codebookOf(values, bits);
  const indexBits = Math.max(2, bits);
  return encodeCodebook(
    codebook,
    indices,
    huffman ? undefined : new Array<number>(codebook.length).fill(indexBits),
    indexBits,
  );
}

/** A pruned and shared layer: the smallest of its sparse, its codebook and, once its indices are
 * Huffman-coded, its sparse-codebook section (format 1.2: both at once, the zeros out of the index stream,
 * relative-index gaps Huffman-coded too). */
export function encodePrunedShared(
  values: Float32Array,
  shape: readonly number[],
  bits: number,
  huffman: boolean,
): { encoded: EncodedTensor; format: NumberFormat } {
  const candidates: { encoded: EncodedTensor; format: NumberFormat }[] = [
    { encoded: encodeSparse(values, shape), format: 'sparse' },
    { encoded: codebookSection(values, bits, huffman), format: 'codebook' },
  ];
  if (huffman && values.some((v) => v !== 0)) {
    // The nonzeros' codebook; each nonzero stored as its centroid (itself, when the layer is shared).
    const { codebook, indices } = codebookOf(
      values.filter((v) => v !== 0),
      bits,
    );
    const shared = new Float32Array(values.length);
    let j = 0;
    values.forEach((v, i) => {
      if (v !== 0) shared[i] = codebook[indices[j++]!]!;
    });
    candidates.push({ encoded: encodeSparseCodebook(shared, shape, codebook), format: 'sparse-codebook' });
  }
  return candidates.reduce((best, c) => (c.encoded.bytes.length < best.encoded.bytes.length ? c : best));
}

/** A layer's weights as `compression` says, and the number format its node then runs in. */
export function encodeLayer(
  values: Float32Array,
  shape: readonly number[],
  compression: LayerCompression,
): { encoded: EncodedTensor; format: NumberFormat } | undefined {
  if (compression.hashed)
    return {
      encoded: encodeHashed(values, compression.hashed.buckets, compression.hashed.seed),
      format: 'hashed',
    };
  switch (compression.weights) {
    case 'binary':
      return { encoded: encodeBinary(values, shape), format: 'binary' };
    case 'ternary':
      return { encoded: encodeTernary(values, shape), format: 'ternary' };
    case 'xnor':
      return { encoded: encodeXnor(values, shape), format: 'xnor' };
  }
  const pruned = compression.sparsity !== undefined && compression.sparsity > 0;
  const huffman = compression.huffman === true;
  if (compression.bits !== undefined) {
    if (pruned) return encodePrunedShared(values, shape, compression.bits, huffman);
    return { encoded: codebookSection(values, compression.bits, huffman), format: 'codebook' };
  }
  if (pruned) return { encoded: encodeSparse(values, shape), format: 'sparse' };
  return undefined;
}

/** The fp32 package of the model in `modelDir` with every layer of `layers` stored as compressed. */
export function compressedPackage(
  modelDir: string,
  layers: ReadonlyMap<string, LayerCompression>,
  options: { modelId: string; labels?: string[] },
): PackageContent {
  checkBinaryActivations(join(modelDir, MODEL_FILE), layers);
  const content = importTfjsLayers(join(modelDir, MODEL_FILE), {
    xnorInputs: true,
    modelId: options.modelId,
    ...(options.labels ? { labels: options.labels } : {}),
  });
  return encodeLayers(content, layers);
}

/** The importer passes a binary activation (xnor.ts) through: the xnor layer that reads it binarizes its
 * input itself. So every binary activation must be read by a layer stored as xnor (in a sequential model,
 * the next layer); anything else would run on real values in the package. */
function checkBinaryActivations(modelFile: string, layers: ReadonlyMap<string, LayerCompression>): void {
  const json = JSON.parse(readFileSync(modelFile, 'utf8')) as {
    modelTopology: { config: { layers?: { class_name: string; config: { name: string } }[] } };
  };
  const list = json.modelTopology.config.layers ?? [];
  list.forEach((l, i) => {
    if (l.class_name !== BINARY_ACTIVATION_CLASS) return;
    const next = list[i + 1]?.config.name;
    if (next === undefined || layers.get(next)?.weights !== 'xnor')
      throw new EncodingError(
        `${modelFile}: binary activation ${l.config.name} feeds ${next ?? 'nothing'}, which is not stored as xnor`,
      );
  });
}

/** `content` with the weights of every conv / FC node named in `layers` re-encoded as it says. */
export function encodeLayers(
  content: PackageContent,
  layers: ReadonlyMap<string, LayerCompression>,
): PackageContent {
  const constants = new Map(content.constants);
  for (const node of content.manifest.nodes) {
    if (node.op !== 'conv2d' && node.op !== 'fully_connected') continue;
    const compression = layers.get(node.name);
    if (compression === undefined) continue;
    const w = node.inputs[1]!;
    const raw = constants.get(w)!;
    const shape = content.manifest.tensors[w]!.shape;
    const values = new Float32Array(
      raw.bytes.buffer.slice(raw.bytes.byteOffset, raw.bytes.byteOffset + 4 * elementCount(shape)),
    );
    const encoded = encodeLayer(values, shape, compression);
    if (encoded === undefined) continue;
    constants.set(w, encoded.encoded);
    node.format = encoded.format;
    const b = node.inputs[2] ?? -1;
    const bias = b >= 0 ? constants.get(b) : undefined;
    if (
      compression.huffman === true &&
      bias?.encoding.kind === 'raw' &&
      content.manifest.tensors[b]!.dtype === 'f32'
    ) {
      // Deep Compression's last stage stores the bias too in 2 bytes a value: 16-bit fixed point at the
      // largest fractional length that holds its largest magnitude (rounding error at most 2^-15 of it). A
      // fixed16 f32 constant reads back as fp32 (toFloat32): the layer runs on it as on any fp32 bias.
      const values = new Float32Array(
        bias.bytes.buffer.slice(bias.bytes.byteOffset, bias.bytes.byteOffset + bias.bytes.length),
      );
      constants.set(b, encodeFixed(values, 16, weightFractionalLength(values, 16)));
    }
  }
  return { manifest: content.manifest, constants };
}
