// The manifest section: what the model is, what it was built for, and its graph (tensors and nodes). It is
// JSON, decoded with a schema at the edge; cross-references (tensor <-> section, node <-> tensor, graph
// order) are checked here so that the runtime only ever sees a consistent graph.
import { inflateRawSync } from 'node:zlib';

import { z } from 'zod';

import {
  elementCount,
  encodedByteLength,
  type Encoding,
  encodingAllows,
  EncodingCode,
  isInt8BitPlanes,
  SPARSE_CODEBOOK_MAX_GAP_BITS,
} from './encodings.js';
import { PackageError } from './errors.js';
import {
  MANIFEST_DICTIONARY_MINOR,
  ManifestEncoding,
  type ManifestEncodingCode,
  type SectionEntry,
} from './layout.js';
import { MANIFEST_DICTIONARY_V1 } from './manifest-dictionary.js';
import { NUMBER_FORMATS } from './number-formats.js';

export const MANIFEST_FORMAT = 'whittle-package';
export const MANIFEST_VERSION = 1;
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
export const MAX_RANK = 8;
export const MAX_DIMENSION = 1 << 24;
export const MAX_ELEMENTS = 1 << 28;
/** HashedNets tensors expand at load: bounded separately so a tiny section cannot ask for gigabytes. */
export const MAX_HASHED_ELEMENTS = 1 << 24;
/** The byte length of an encoded stream in a weight encoding (codebook indices, sparse gaps). */
const streamBytesSchema = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31);

export const CPU_FAMILIES = ['any', 'x86_64', 'aarch64', 'armv7'] as const;
export type CpuFamily = (typeof CPU_FAMILIES)[number];

export { NUMBER_FORMATS, type NumberFormat } from './number-formats.js';

/** Dynamic fixed point (format 1.1): a fixed16 / fixed8 conv2d or fully_connected node carries the fractional
 * lengths of its input and output activations as the integer attributes `input_fl` and `output_fl`; its
 * weights' fractional length is their encoding's `fracBits`. The bounds are the native kernels' (FixedPointParams
 * in native/formats.ts): each FL in [-64, 64], and the accumulator-to-output shift
 * input_fl + weight fracBits - output_fl in [-32, 62]. A node without both attributes is a format 1.0 node
 * whose activations stay fp32. */
export const FIXED_POINT_FL_MIN = -64;
export const FIXED_POINT_FL_MAX = 64;
export const FIXED_POINT_SHIFT_MIN = -32;
export const FIXED_POINT_SHIFT_MAX = 62;
export const FIXED_POINT_OPS: readonly string[] = ['conv2d', 'fully_connected'];

export interface FixedPointActivations {
  inputFl: number;
  outputFl: number;
}

/** The activation fractional lengths of a fixed16 / fixed8 layer of a decoded (so already checked) manifest,
 * or undefined for a layer without them (format 1.0: fp32 activations). */
export function fixedPointActivations(node: ManifestNode): FixedPointActivations | undefined {
  const { input_fl: inputFl, output_fl: outputFl } = node.attrs;
  if ((node.format !== 'fixed16' && node.format !== 'fixed8') || !FIXED_POINT_OPS.includes(node.op))
    return undefined;
  if (typeof inputFl !== 'number' || typeof outputFl !== 'number') return undefined;
  return { inputFl, outputFl };
}

const Name = z.string().min(1).max(256);
const Index = z.number().int().min(0).max(0xffffffff);
const Dim = z.number().int().min(0).max(MAX_DIMENSION);
const Finite = z.number().finite();

const EncodingSchema: z.ZodType<Encoding> = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('raw') }).strict(),
  z.object({ kind: z.literal('fixed16'), fracBits: z.number().int().min(-16).max(31) }).strict(),
  z.object({ kind: z.literal('fixed8'), fracBits: z.number().int().min(-16).max(31) }).strict(),
  z.object({ kind: z.literal('binary') }).strict(),
  z.object({ kind: z.literal('ternary') }).strict(),
  z.object({ kind: z.literal('xnor') }).strict(),
  z.object({ kind: z.literal('sparse'), nnz: z.number().int().min(0).max(MAX_ELEMENTS) }).strict(),
  z
    .object({
      kind: z.literal('codebook'),
      size: z.number().int().min(1).max(256),
      indexBits: z.number().int().min(2).max(8),
      streamBytes: streamBytesSchema,
    })
    .strict(),
  z
    .object({
      kind: z.literal('sparse-codebook'),
      size: z.number().int().min(1).max(256),
      gapBits: z.number().int().min(1).max(SPARSE_CODEBOOK_MAX_GAP_BITS),
      nnz: z.number().int().min(0).max(MAX_ELEMENTS),
      gaps: z
        .number()
        .int()
        .min(0)
        .max(2 ** 34),
      indexStreamBytes: streamBytesSchema,
      gapStreamBytes: streamBytesSchema,
    })
    .strict(),
  z
    .object({
      kind: z.literal('hashed'),
      buckets: z.number().int().min(1).max(MAX_DIMENSION),
      seed: z.number().int().min(0).max(0xffffffff),
    })
    .strict(),
]);

const QuantSchema = z
  .object({
    /** real = scale * (q - zeroPoint); one entry per tensor, or one per index of `axis`. */
    scale: z.array(z.number().positive().finite()).min(1),
    zeroPoint: z.array(z.number().int().min(-128).max(255)).min(1),
    axis: z
      .number()
      .int()
      .min(0)
      .max(MAX_RANK - 1)
      .optional(),
  })
  .strict();
export type TensorQuantization = z.infer<typeof QuantSchema>;

const TensorSchema = z
  .object({
    name: Name,
    dtype: z.enum(['f32', 'i8', 'u8', 'i32', 'bool']),
    shape: z.array(Dim).max(MAX_RANK),
    quant: QuantSchema.optional(),
    /** Constant tensors: the section holding the data, and how it is encoded. */
    section: Index.optional(),
    encoding: EncodingSchema.optional(),
  })
  .strict();
export type ManifestTensor = z.infer<typeof TensorSchema>;

const AttrValue = z.union([Finite, z.string().max(256), z.array(Finite).max(64), z.boolean()]);
export type AttributeValue = z.infer<typeof AttrValue>;

const NodeSchema = z
  .object({
    name: Name,
    op: z.string().min(1).max(64),
    format: z.enum(NUMBER_FORMATS),
    /** Tensor indices; -1 marks an absent optional input. */
    inputs: z.array(z.number().int().min(-1).max(0xffffffff)).max(64),
    outputs: z.array(Index).min(1).max(16),
    attrs: z.record(z.string().max(64), AttrValue),
  })
  .strict();
export type ManifestNode = z.infer<typeof NodeSchema>;

const PreprocessingSchema = z
  .object({
    kind: z.literal('image'),
    width: z.number().int().min(1).max(8192),
    height: z.number().int().min(1).max(8192),
    channels: z.union([z.literal(1), z.literal(3)]),
    /** input = (pixel / 255 - mean[c]) / std[c] */
    mean: z.array(Finite).min(1).max(3),
    std: z.array(z.number().positive().finite()).min(1).max(3),
    /** How a camera frame becomes width×height: `stretch` (default) ignores the aspect ratio,
     * `center-crop` scales the shorter side to fit and keeps the middle. */
    resize: z.enum(['stretch', 'center-crop']).optional(),
    /** With center-crop: the fraction of the scaled image kept (ImageNet's 0.875); default 1. */
    cropFraction: z.number().gt(0).max(1).optional(),
  })
  .strict()
  .refine((p) => p.cropFraction === undefined || p.resize === 'center-crop', {
    message: 'cropFraction needs resize "center-crop"',
    path: ['cropFraction'],
  });
export type ImagePreprocessing = z.infer<typeof PreprocessingSchema>;

/** Most bytes of a probe frame (1024×1024 RGB): the manifest stays small enough to read in one piece. */
export const MAX_PROBE_BYTES = 3 * 1024 * 1024;

/** A known camera frame and the class the model must give it: the agent's health check runs it before a
 * deployed package may serve. The frame is raw bytes as the camera delivers them after resizing —
 * [height][width][channels] of inputs[0].preprocessing — so the probe exercises normalization too. */
const ProbeSchema = z
  .object({
    input: z
      .string()
      .max(Math.ceil(MAX_PROBE_BYTES / 3) * 4)
      .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'expected base64'),
    expectedClass: z.number().int().min(0).max(100000),
  })
  .strict();
export type ManifestProbe = z.infer<typeof ProbeSchema>;

export const ManifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    version: z.literal(MANIFEST_VERSION),
    model: z
      .object({ id: Name, version: z.string().min(1).max(64), name: z.string().max(256).optional() })
      .strict(),
    target: z.object({ deviceClass: z.string().min(1).max(128), cpuFamily: z.enum(CPU_FAMILIES) }).strict(),
    budgets: z
      .object({
        latencyMs: z.number().positive().finite().optional(),
        ramBytes: z.number().int().positive().optional(),
        packageBytes: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    accuracy: z
      .object({
        dataset: z.string().max(256),
        images: z.number().int().min(0),
        top1: z.number().min(0).max(1),
      })
      .strict()
      .optional(),
    labels: z.array(z.string().max(256)).max(100000).optional(),
    inputs: z
      .array(
        z
          .object({
            name: Name,
            tensor: Index,
            layout: z.enum(['NCHW', 'NHWC', 'NC', 'other']),
            preprocessing: PreprocessingSchema.optional(),
          })
          .strict(),
      )
      .min(1)
      .max(64),
    outputs: z
      .array(z.object({ name: Name, tensor: Index }).strict())
      .min(1)
      .max(64),
    probe: ProbeSchema.optional(),
    tensors: z.array(TensorSchema).max(1 << 20),
    nodes: z.array(NodeSchema).max(1 << 20),
  })
  .strict();
export type Manifest = z.infer<typeof ManifestSchema>;

function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path)
    text += typeof key === 'number' ? `[${key}]` : `${text === '' ? '' : '.'}${String(key)}`;
  return text === '' ? '(manifest)' : text;
}

/** The lowest format minor (layout.ts FORMAT_MINOR) whose features the package uses: 1.1 fixed-point
 * activation fractional lengths, 1.2 sparse-codebook tensors, 1.3 a deflated manifest, 1.5 one deflated with
 * the preset dictionary or an int8 tensor stored as binary / ternary bit planes (1.4, packed sections, is the
 * layout's: the writer and reader add it). The writer
 * stamps it; the reader refuses a package that uses a feature its header does not declare. */
export function requiredFormatMinor(
  manifest: Manifest,
  manifestEncoding: ManifestEncodingCode = ManifestEncoding.json,
): number {
  if (
    manifestEncoding === ManifestEncoding.deflateDictionary ||
    manifest.tensors.some((tensor) => isInt8BitPlanes(tensor.encoding, tensor.dtype))
  )
    return MANIFEST_DICTIONARY_MINOR;
  if (manifestEncoding === ManifestEncoding.deflate) return 3;
  if (manifest.tensors.some((tensor) => tensor.encoding?.kind === 'sparse-codebook')) return 2;
  return manifest.nodes.some((node) => fixedPointActivations(node) !== undefined) ? 1 : 0;
}

/** Parses the manifest bytes and checks every cross-reference against the section table. */
export function decodeManifest(bytes: Buffer, sections: readonly SectionEntry[]): Manifest {
  const entry = sections[0]!;
  const location = { section: 0, offset: entry.offset };
  const deflated =
    entry.encoding === ManifestEncoding.deflate || entry.encoding === ManifestEncoding.deflateDictionary;
  const length = deflated ? entry.elements : entry.length;
  if (length > MAX_MANIFEST_BYTES) {
    throw new PackageError(
      'bad-manifest',
      `manifest is ${length} bytes${deflated ? ' inflated' : ''}, more than ${MAX_MANIFEST_BYTES}`,
      location,
    );
  }
  const stored = bytes.subarray(entry.offset, entry.offset + entry.length);
  const text = deflated
    ? inflateManifest(stored, entry.elements, entry.encoding === ManifestEncoding.deflateDictionary, location)
    : stored;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch (error) {
    throw new PackageError(
      'bad-manifest',
      `manifest is not UTF-8 JSON: ${(error as Error).message}`,
      location,
    );
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues
      .slice(0, 10)
      .map((issue) => `${formatPath(issue.path)}: ${issue.message}`);
    throw new PackageError(
      'bad-manifest',
      `manifest does not match the schema: ${lines.join('; ')}`,
      location,
    );
  }
  const manifest = parsed.data;
  checkTensors(manifest, sections);
  checkGraph(manifest);
  checkFixedPoint(manifest);
  checkProbe(manifest);
  return manifest;
}

/** A deflated manifest (1.3; 1.5 with the preset dictionary): one raw deflate stream that fills the section
 * exactly and inflates to exactly `length` bytes (never more: the inflater stops there). */
function inflateManifest(
  stored: Buffer,
  length: number,
  withDictionary: boolean,
  location: { section: number; offset: number },
): Buffer {
  let inflated: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    inflated = inflateRawSync(stored, {
      info: true,
      maxOutputLength: length,
      ...(withDictionary ? { dictionary: MANIFEST_DICTIONARY_V1 } : {}),
    }) as unknown as typeof inflated;
  } catch (error) {
    throw new PackageError(
      'bad-manifest',
      `the deflated manifest does not inflate to its recorded ${length} bytes: ${(error as Error).message}`,
      location,
    );
  }
  if (inflated.buffer.length !== length)
    throw new PackageError(
      'bad-manifest',
      `the deflated manifest inflates to ${inflated.buffer.length} bytes, not its recorded ${length}`,
      location,
    );
  if (inflated.engine.bytesWritten !== stored.length)
    throw new PackageError(
      'bad-manifest',
      `the manifest's deflate stream ends after ${inflated.engine.bytesWritten} of its section's ${stored.length} bytes`,
      location,
    );
  return inflated.buffer;
}

/** The activation fractional lengths of fixed16 / fixed8 layers: both or neither, integers inside the native
 * kernels' bounds, on a layer whose weights are a constant stored in the layer's own word size, with a
 * constant bias (it is moved to accumulator units once, at load). */
function checkFixedPoint(manifest: Manifest): void {
  for (const node of manifest.nodes) {
    if (node.format !== 'fixed16' && node.format !== 'fixed8') continue;
    const location = { section: 0, layer: node.name };
    const present = (['input_fl', 'output_fl'] as const).filter((key) => node.attrs[key] !== undefined);
    if (present.length === 0) continue;
    const refuse = (message: string): never => {
      throw new PackageError('bad-manifest', `${node.format} ${node.op}: ${message}`, location);
    };
    if (!FIXED_POINT_OPS.includes(node.op))
      refuse(`input_fl / output_fl belong to ${FIXED_POINT_OPS.join(' and ')} layers only`);
    if (present.length !== 2)
      refuse(`${present[0]} needs ${present[0] === 'input_fl' ? 'output_fl' : 'input_fl'} too`);
    for (const key of present) {
      const value = node.attrs[key];
      if (
        typeof value !== 'number' ||
        !Number.isInteger(value) ||
        value < FIXED_POINT_FL_MIN ||
        value > FIXED_POINT_FL_MAX
      )
        refuse(
          `${key} must be an integer in [${FIXED_POINT_FL_MIN}, ${FIXED_POINT_FL_MAX}], got ${JSON.stringify(value)}`,
        );
    }
    const weight = manifest.tensors[node.inputs[1] ?? -1];
    if (weight?.encoding?.kind !== node.format)
      refuse(
        `input 1 (weights) must be a constant stored as ${node.format}, got ${weight?.encoding?.kind ?? 'no constant'}`,
      );
    const biasIndex = node.inputs[2] ?? -1;
    if (biasIndex >= 0 && manifest.tensors[biasIndex]!.section === undefined)
      refuse('input 2 (bias) must be a constant');
    const weightFl = (weight!.encoding as { fracBits: number }).fracBits;
    const inputFl = node.attrs.input_fl as number;
    const outputFl = node.attrs.output_fl as number;
    const shift = inputFl + weightFl - outputFl;
    if (shift < FIXED_POINT_SHIFT_MIN || shift > FIXED_POINT_SHIFT_MAX)
      refuse(
        `input_fl + weight fracBits - output_fl = ${inputFl} + ${weightFl} - ${outputFl} = ${shift}, ` +
          `outside [${FIXED_POINT_SHIFT_MIN}, ${FIXED_POINT_SHIFT_MAX}]`,
      );
  }
}

/** A probe must fit the first input's camera frame and name a class the model has. */
function checkProbe(manifest: Manifest): void {
  const { probe } = manifest;
  if (probe === undefined) return;
  const image = manifest.inputs[0]!.preprocessing;
  if (image === undefined)
    throw new PackageError('bad-manifest', 'probe: inputs[0] has no image preprocessing to feed it', {
      section: 0,
    });
  const frameBytes = image.width * image.height * image.channels;
  const bytes = Buffer.from(probe.input, 'base64').length;
  if (bytes !== frameBytes)
    throw new PackageError(
      'bad-manifest',
      `probe.input is ${bytes} bytes; a ${image.width}x${image.height}x${image.channels} frame is ${frameBytes}`,
      { section: 0 },
    );
  const classes = manifest.labels?.length;
  if (classes !== undefined && probe.expectedClass >= classes)
    throw new PackageError(
      'bad-manifest',
      `probe.expectedClass is ${probe.expectedClass}; the model has ${classes} labels`,
      { section: 0 },
    );
}

function checkTensors(manifest: Manifest, sections: readonly SectionEntry[]): void {
  const owner = new Array<number>(sections.length).fill(-1);
  manifest.tensors.forEach((tensor, index) => {
    const where = `tensors[${index}] "${tensor.name}"`;
    const elements = elementCount(tensor.shape);
    if (elements > MAX_ELEMENTS) {
      throw new PackageError('bad-manifest', `${where} has ${elements} elements, more than ${MAX_ELEMENTS}`, {
        section: 0,
      });
    }
    if (tensor.quant !== undefined) {
      const { scale, zeroPoint, axis } = tensor.quant;
      const channels = axis === undefined ? 1 : tensor.shape[axis];
      if (channels === undefined || scale.length !== channels || zeroPoint.length !== channels) {
        throw new PackageError(
          'bad-manifest',
          `${where}: quantization needs ${channels ?? '(axis out of range)'} scales and zero points, ` +
            `has ${scale.length} and ${zeroPoint.length}`,
          { section: 0 },
        );
      }
      const [lo, hi] = tensor.dtype === 'u8' ? [0, 255] : [-128, 127];
      if (zeroPoint.some((z) => z < lo || z > hi)) {
        throw new PackageError('bad-manifest', `${where}: zero point outside the ${tensor.dtype} range`, {
          section: 0,
        });
      }
    }
    if ((tensor.section === undefined) !== (tensor.encoding === undefined)) {
      throw new PackageError('bad-manifest', `${where}: a constant needs both a section and an encoding`, {
        section: 0,
      });
    }
    if (tensor.section === undefined || tensor.encoding === undefined) return;
    const section = tensor.section;
    const entry = sections[section];
    if (section === 0 || entry === undefined) {
      throw new PackageError('bad-manifest', `${where} refers to section ${section}, not a tensor section`, {
        section: 0,
      });
    }
    if (owner[section]! >= 0) {
      throw new PackageError(
        'bad-manifest',
        `${where} and tensors[${owner[section]}] share section ${section}`,
        { section },
      );
    }
    owner[section] = index;
    const encoding = tensor.encoding;
    if (!encodingAllows(encoding, tensor.dtype)) {
      throw new PackageError(
        'bad-manifest',
        `${where}: encoding ${encoding.kind} cannot hold dtype ${tensor.dtype}`,
        { section },
      );
    }
    if (entry.encoding !== EncodingCode[encoding.kind]) {
      throw new PackageError(
        'bad-section',
        `${where}: the section table says encoding ${entry.encoding}, the manifest ${encoding.kind} (${EncodingCode[encoding.kind]})`,
        { section, offset: entry.offset },
      );
    }
    if (entry.elements !== elements) {
      throw new PackageError(
        'bad-section',
        `${where}: the section table says ${entry.elements} elements, the shape [${tensor.shape.join(', ')}] has ${elements}`,
        { section, offset: entry.offset },
      );
    }
    if (encoding.kind === 'xnor' && tensor.shape.length !== 2 && tensor.shape.length !== 4) {
      throw new PackageError('bad-manifest', `${where}: xnor weights must be [O][kh][kw][cin] or [O][cin]`, {
        section,
      });
    }
    if (encoding.kind === 'sparse' && encoding.nnz > elements) {
      throw new PackageError('bad-manifest', `${where}: ${encoding.nnz} nonzeros in ${elements} elements`, {
        section,
      });
    }
    if (encoding.kind === 'codebook' && encoding.size > 2 ** encoding.indexBits) {
      throw new PackageError(
        'bad-manifest',
        `${where}: codebook of ${encoding.size} needs more than ${encoding.indexBits} index bits`,
        { section },
      );
    }
    if (encoding.kind === 'hashed' && elements > MAX_HASHED_ELEMENTS) {
      throw new PackageError(
        'bad-manifest',
        `${where}: hashed tensor of ${elements} elements, limit ${MAX_HASHED_ELEMENTS}`,
        { section },
      );
    }
    const expected = encodedByteLength(tensor, encoding);
    if (entry.length !== expected) {
      throw new PackageError(
        'bad-section',
        `${where}: ${encoding.kind} data of shape [${tensor.shape.join(', ')}] takes ${expected} bytes, the section holds ${entry.length}`,
        { section, offset: entry.offset },
      );
    }
  });
  const orphan = owner.findIndex((tensor, section) => section > 0 && tensor < 0);
  if (orphan > 0)
    throw new PackageError('bad-manifest', 'no tensor refers to this section', { section: orphan });
}

function checkGraph(manifest: Manifest): void {
  const { tensors, nodes } = manifest;
  const count = tensors.length;
  // defined[t]: a graph input, a constant, or the output of an earlier node.
  const defined = tensors.map((tensor) => tensor.section !== undefined);
  const producer = new Array<string | null>(count).fill(null);
  const refer = (index: number, what: string): void => {
    if (index >= count)
      throw new PackageError('bad-manifest', `${what} refers to tensor ${index}, there are ${count}`, {
        section: 0,
      });
  };
  const inputSeen = new Set<number>();
  manifest.inputs.forEach((input, i) => {
    refer(input.tensor, `inputs[${i}]`);
    if (defined[input.tensor]) {
      throw new PackageError('bad-manifest', `inputs[${i}] "${input.name}" is a constant or listed twice`, {
        section: 0,
      });
    }
    defined[input.tensor] = true;
    inputSeen.add(input.tensor);
  });
  const names = new Set<string>();
  for (const node of nodes) {
    const location = { section: 0, layer: node.name };
    if (names.has(node.name)) throw new PackageError('bad-manifest', 'two nodes share this name', location);
    names.add(node.name);
    for (const input of node.inputs) {
      if (input < 0) continue;
      refer(input, `node "${node.name}"`);
      if (!defined[input]) {
        throw new PackageError(
          'bad-manifest',
          `input tensor ${input} "${tensors[input]!.name}" is not produced before this node (the node list must be topologically sorted)`,
          location,
        );
      }
    }
    for (const output of node.outputs) {
      refer(output, `node "${node.name}"`);
      if (defined[output]) {
        throw new PackageError(
          'bad-manifest',
          `output tensor ${output} "${tensors[output]!.name}" is already a constant, an input or another node's output`,
          location,
        );
      }
      defined[output] = true;
      producer[output] = node.name;
    }
  }
  manifest.outputs.forEach((output, i) => {
    refer(output.tensor, `outputs[${i}]`);
    if (!defined[output.tensor]) {
      throw new PackageError('bad-manifest', `outputs[${i}] "${output.name}" is never produced`, {
        section: 0,
      });
    }
  });
}
