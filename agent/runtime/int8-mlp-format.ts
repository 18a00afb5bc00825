// The int8 MLP model file ("whittle-int8-mlp", version 1): JSON holding a stack of fully-connected int8
// layers with per-channel fixed-point requantization, run by native/'s qs8 fully-connected kernel.
// The agent owns the format; optimize/ writes it through these types and this schema.
//
// Tensors are base64: weights int8 [outChannels][inChannels] row-major, bias int32 little-endian
// [outChannels]. Activations are int8 affine, real = scale * (q - zeroPoint); layer k's input
// quantization is layer k-1's output quantization (the first layer's is `input`).
import { z } from 'zod';

export const INT8_MLP_FORMAT = 'whittle-int8-mlp';
export const INT8_MLP_VERSION = 1;

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
/** The native kernel's limit on inChannels (its int32 accumulator cannot overflow below it). */
const MAX_IN_CHANNELS = 65536;
const MAX_CHANNELS = 1 << 20;

/** A model file that cannot be used; the message names the file and every bad field (layers[i].field). */
export class ModelFormatError extends Error {
  override readonly name = 'ModelFormatError';
}

const Base64Schema = z
  .string()
  .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'not valid padded base64');
const Int8Schema = z.number().int().min(-128).max(127);
const ScaleSchema = z.number().positive().finite();

export const Int8MlpLayerSchema = z.object({
  inChannels: z.number().int().min(1).max(MAX_IN_CHANNELS),
  outChannels: z.number().int().min(1).max(MAX_CHANNELS),
  /** base64 of int8 [outChannels][inChannels], symmetric (zero point 0). */
  weights: Base64Schema,
  /** base64 of int32 little-endian [outChannels], in units of inputScale * weightScale[o]. */
  bias: Base64Schema,
  /** [outChannels] Q31 multipliers of inputScale * weightScale[o] / outputScale. */
  multipliers: z.array(z.number().int().min(INT32_MIN).max(INT32_MAX)),
  /** [outChannels] exponents in [-31, 30], positive = left shift. */
  shifts: z.array(z.number().int().min(-31).max(30)),
  inputZeroPoint: Int8Schema,
  outputZeroPoint: Int8Schema,
  outputScale: ScaleSchema,
  /** Clamp of the int8 output; a fused ReLU shows as outputMin === outputZeroPoint. */
  outputMin: Int8Schema,
  outputMax: Int8Schema,
});
export type Int8MlpLayerFile = z.infer<typeof Int8MlpLayerSchema>;

export const Int8MlpInputSchema = z.object({
  width: z.number().int().min(1).max(4096),
  height: z.number().int().min(1).max(4096),
  channels: z.number().int().min(1).max(4),
  /** real = scale * (q - zeroPoint); a pixel byte p is real p / 255. */
  scale: ScaleSchema,
  zeroPoint: Int8Schema,
});
export type Int8MlpInput = z.infer<typeof Int8MlpInputSchema>;

/** Base64 of n bytes has 4 * ceil(n / 3) characters; the regex above already checked the padding. */
function base64ByteLength(text: string): number {
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return (text.length / 4) * 3 - padding;
}

export const Int8MlpFileSchema = z
  .object({
    format: z.literal(INT8_MLP_FORMAT),
    version: z.literal(INT8_MLP_VERSION),
    id: z.string().min(1).max(128),
    name: z.string().max(255),
    /** One per output of the last layer. */
    labels: z.array(z.string().min(1).max(128)).min(1),
    input: Int8MlpInputSchema,
    layers: z.array(Int8MlpLayerSchema).min(1).max(64),
    /** Measured when the file was written: top-1 accuracy in [0, 1] on `images` images of `dataset`. */
    accuracy: z
      .object({
        dataset: z.string().max(255),
        images: z.number().int().nonnegative(),
        float: z.number().min(0).max(1),
        int8: z.number().min(0).max(1),
      })
      .optional(),
  })
  .superRefine((file, ctx) => {
    const { width, height, channels, zeroPoint } = file.input;
    let previous = { outChannels: width * height * channels, outputZeroPoint: zeroPoint, name: 'input' };
    file.layers.forEach((layer, index) => {
      const issue = (field: string, message: string): void => {
        ctx.addIssue({ code: 'custom', path: ['layers', index, field], message });
      };
      const { inChannels, outChannels } = layer;
      if (inChannels !== previous.outChannels) {
        issue(
          'inChannels',
          `expected ${previous.outChannels} (the outputs of ${previous.name}) but received ${inChannels}`,
        );
      }
      if (layer.inputZeroPoint !== previous.outputZeroPoint) {
        issue(
          'inputZeroPoint',
          `expected ${previous.outputZeroPoint} (the output zero point of ${previous.name}) but received ${layer.inputZeroPoint}`,
        );
      }
      const weightBytes = base64ByteLength(layer.weights);
      if (weightBytes !== inChannels * outChannels) {
        issue(
          'weights',
          `expected ${inChannels * outChannels} bytes (outChannels ${outChannels} x inChannels ${inChannels} int8) ` +
            `but the base64 decodes to ${weightBytes}`,
        );
      }
      const biasBytes = base64ByteLength(layer.bias);
      if (biasBytes !== outChannels * 4) {
        issue(
          'bias',
          `expected ${outChannels * 4} bytes (outChannels ${outChannels} int32) but the base64 decodes to ${biasBytes}`,
        );
      }
      for (const field of ['multipliers', 'shifts'] as const) {
        if (layer[field].length !== outChannels) {
          issue(field, `expected ${outChannels} values (outChannels) but received ${layer[field].length}`);
        }
      }
      if (layer.outputMin > layer.outputMax) {
        issue('outputMax', `expected >= outputMin (${layer.outputMin}) but received ${layer.outputMax}`);
      }
      previous = { outChannels, outputZeroPoint: layer.outputZeroPoint, name: `layers[${index}]` };
    });
    if (file.labels.length !== previous.outChannels) {
      ctx.addIssue({
        code: 'custom',
        path: ['labels'],
        message: `expected ${previous.outChannels} labels (the outputs of ${previous.name}) but received ${file.labels.length}`,
      });
    }
  });
export type Int8MlpFile = z.infer<typeof Int8MlpFileSchema>;

/** "layers[1].weights" from ['layers', 1, 'weights']. */
function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path)
    text += typeof key === 'number' ? `[${key}]` : `${text === '' ? '' : '.'}${String(key)}`;
  return text === '' ? '(file)' : text;
}

/** Decodes and checks untrusted JSON text; `source` names the file in errors. */
export function parseInt8MlpFile(text: string, source: string): Int8MlpFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  const result = Int8MlpFileSchema.safeParse(json);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${formatPath(issue.path)}: ${issue.message}`);
    throw new ModelFormatError(
      `${source} is not a valid ${INT8_MLP_FORMAT} v${INT8_MLP_VERSION} model:\n${lines.join('\n')}`,
    );
  }
  return result.data;
}

export function encodeInt8Base64(values: Int8Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
}

/** The schema has checked the text and its length; this only converts. */
export function decodeInt8Base64(text: string): Int8Array {
  const bytes = Buffer.from(text, 'base64');
  return new Int8Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Little-endian whatever the host's byte order. */
export function encodeInt32LeBase64(values: Int32Array): string {
  const bytes = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => bytes.writeInt32LE(value, i * 4));
  return bytes.toString('base64');
}

export function decodeInt32LeBase64(text: string): Int32Array {
  const bytes = Buffer.from(text, 'base64');
  const values = new Int32Array(bytes.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = bytes.readInt32LE(i * 4);
  return values;
}
