// TensorFlow.js Layers models (model.json + weight files) -> package content. tfjs layers are NHWC like the
// runtime, so no layout transposes are needed: Conv2D kernels [kh][kw][cin][cout] become OHWI, Dense kernels
// [in][out] become [out][in], depthwise kernels [kh][kw][cin][mult] a grouped conv. Batch norm after a
// Conv2D/Dense is folded into it. Sequential models only; unsupported layers are listed together.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { z } from 'zod';

import type { ManifestNode } from '../../agent/package/manifest.js';
import { elements } from '../../agent/runtime/tensor.js';
import { foldBatchNorm } from '../../native/reference/fold-batchnorm.js';
import { GraphBuilder } from '../package/graph-builder.js';
import type { PackageContent } from '../package/writer.js';

export const SUPPORTED_TFJS_LAYERS = [
  'InputLayer',
  'Dense',
  'Conv2D',
  'DepthwiseConv2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'Flatten',
  'Dropout',
  'Activation',
  'ReLU',
  'BatchNormalization',
  'Softmax',
] as const;

/** A model.json that cannot be imported; the message names the layer. */
export class TfjsImportError extends Error {
  override readonly name = 'TfjsImportError';
}

const LayerSchema = z.object({ class_name: z.string(), config: z.record(z.string(), z.unknown()) });
const ModelJsonSchema = z.object({
  modelTopology: z
    .object({
      class_name: z.string(),
      config: z.union([z.object({ layers: z.array(LayerSchema) }).passthrough(), z.array(LayerSchema)]),
    })
    .passthrough(),
  weightsManifest: z.array(
    z.object({
      paths: z.array(z.string()),
      weights: z.array(
        z
          .object({ name: z.string(), shape: z.array(z.number().int().min(0)), dtype: z.string() })
          .passthrough(),
      ),
    }),
  ),
});

export interface TfjsImportOptions {
  modelId?: string;
  labels?: string[];
  batch?: number;
}

function readWeights(
  path: string,
  manifest: z.infer<typeof ModelJsonSchema>['weightsManifest'],
): Map<string, { shape: number[]; data: Float32Array }> {
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const group of manifest) {
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(join(dirname(path), p))));
    let offset = 0;
    for (const spec of group.weights) {
      if (spec.dtype !== 'float32')
        throw new TfjsImportError(`weight ${spec.name}: dtype ${spec.dtype} is not supported (float32 is)`);
      const n = spec.shape.reduce((p, d) => p * d, 1);
      if (offset + 4 * n > bytes.length)
        throw new TfjsImportError(`weight ${spec.name} runs past the end of ${group.paths.join(', ')}`);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = bytes.readFloatLE(offset + 4 * i);
      offset += 4 * n;
      weights.set(spec.name, { shape: spec.shape, data });
    }
  }
  return weights;
}

function tfPads(
  input: number,
  kernel: number,
  stride: number,
  dilation: number,
  same: boolean,
): [number, number] {
  if (!same) return [0, 0];
  const out = Math.ceil(input / stride);
  const total = Math.max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - input);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

export function importTfjsLayers(path: string, options: TfjsImportOptions = {}): PackageContent {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TfjsImportError(`${path} is not a readable JSON model: ${(error as Error).message}`);
  }
  const parsed = ModelJsonSchema.safeParse(json);
  if (!parsed.success)
    throw new TfjsImportError(
      `${path} is not a TensorFlow.js Layers model.json: ${parsed.error.issues[0]?.message ?? ''}`,
    );
  const topology = parsed.data.modelTopology;
  if (topology.class_name !== 'Sequential') {
    throw new TfjsImportError(
      `${path}: only Sequential models are supported, this is a ${topology.class_name}`,
    );
  }
  const layers = Array.isArray(topology.config) ? topology.config : topology.config.layers;
  const unsupported = layers.filter(
    (l) => !(SUPPORTED_TFJS_LAYERS as readonly string[]).includes(l.class_name),
  );
  if (unsupported.length > 0) {
    throw new TfjsImportError(
      `${path} uses ${unsupported.length} unsupported layer(s): ` +
        unsupported.map((l) => `${String(l.config.name)} (${l.class_name})`).join(', '),
    );
  }
  const weights = readWeights(path, parsed.data.weightsManifest);
  const b = new GraphBuilder();
  const first = layers[0]?.config;
  const inputShape = (first?.batch_input_shape ?? first?.batchInputShape) as (number | null)[] | undefined;
  if (!inputShape) throw new TfjsImportError(`${path}: the first layer has no batch_input_shape`);
  const shape = inputShape.map((d, i) => (d === null ? (i === 0 ? (options.batch ?? 1) : NaN) : d));
  if (shape.some((d) => !Number.isInteger(d)))
    throw new TfjsImportError(`${path}: input shape [${inputShape.join(', ')}] has unknown dimensions`);
  const input = b.addTensor('input', { dtype: 'f32', shape });
  let x = input;

  const weight = (layer: string, name: string): { shape: number[]; data: Float32Array } => {
    const w = weights.get(`${layer}/${name}`);
    if (!w) throw new TfjsImportError(`layer ${layer}: weight ${name} is missing from the weight files`);
    return w;
  };
  const activation = (layer: string, kind: unknown, t: number): number => {
    switch (kind ?? 'linear') {
      case 'linear':
        return t;
      case 'relu':
        return b.emit(`${layer}/relu`, 'clip', 'f32', [t], { min: 0 })[0]!;
      case 'relu6':
        return b.emit(`${layer}/relu6`, 'clip', 'f32', [t], { min: 0, max: 6 })[0]!;
      case 'sigmoid':
        return b.emit(`${layer}/sigmoid`, 'sigmoid', 'f32', [t], {})[0]!;
      case 'softmax':
        return b.emit(`${layer}/softmax`, 'softmax', 'f32', [t], { axis: -1 })[0]!;
      default:
        throw new TfjsImportError(`layer ${layer}: activation ${String(kind)} is not supported`);
    }
  };

  for (let i = 0; i < layers.length; i++) {
    const { class_name: kind, config } = layers[i]!;
    const name = typeof config.name === 'string' ? config.name : `${kind}_${i}`;
    const next = layers[i + 1];
    // Batch norm right after a Conv2D/Dense (with no activation in between) folds into its weights.
    const foldNext =
      next?.class_name === 'BatchNormalization' && (config.activation ?? 'linear') === 'linear';
    const foldInto = (
      w: Float32Array,
      bias: Float32Array | null,
      outputs: number,
    ): { w: Float32Array; bias: Float32Array | null } => {
      if (!foldNext) return { w, bias };
      const bn = String(next.config.name);
      const folded = foldBatchNorm(w, bias, outputs, {
        gamma: weights.get(`${bn}/gamma`)?.data ?? new Float32Array(outputs).fill(1),
        beta: weights.get(`${bn}/beta`)?.data ?? new Float32Array(outputs),
        mean: weight(bn, 'moving_mean').data,
        variance: weight(bn, 'moving_variance').data,
        epsilon: Number(next.config.epsilon ?? 0.001),
      });
      i++;
      return { w: folded.weights, bias: folded.bias };
    };
    switch (kind) {
      case 'InputLayer':
      case 'Dropout':
        break;
      case 'Dense': {
        const kernel = weight(name, 'kernel');
        const [inC, outC] = kernel.shape as [number, number];
        const transposed = new Float32Array(inC * outC);
        for (let r = 0; r < inC; r++)
          for (let c = 0; c < outC; c++) transposed[c * inC + r] = kernel.data[r * outC + c]!;
        const folded = foldInto(
          transposed,
          config.use_bias === false ? null : weight(name, 'bias').data,
          outC,
        );
        const w = b.constant(`${name}.weight`, 'f32', [outC, inC], folded.w);
        const bias = folded.bias ? b.constant(`${name}.bias`, 'f32', [outC], folded.bias) : -1;
        if (b.tensors[x]!.shape.length !== 2)
          x = b.emit(`${name}/flatten`, 'reshape', 'f32', [x], { shape: [0, -1] })[0]!;
        x = activation(name, config.activation, b.emit(name, 'fully_connected', 'f32', [x, w, bias], {})[0]!);
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        if ((config.data_format ?? 'channels_last') !== 'channels_last')
          throw new TfjsImportError(`layer ${name}: only channels_last is supported`);
        const depthwise = kind === 'DepthwiseConv2D';
        const kernel = weight(name, depthwise ? 'depthwise_kernel' : 'kernel');
        const [kh, kw, cin, cout] = kernel.shape as [number, number, number, number];
        const outC = depthwise ? cin * cout : cout;
        // OHWI: conv [kh][kw][cin][cout] -> [cout][kh][kw][cin]; depthwise [kh][kw][cin][m] -> [cin*m][kh][kw][1].
        const ohwi = new Float32Array(kernel.data.length);
        for (let y = 0; y < kh; y++)
          for (let xx = 0; xx < kw; xx++)
            for (let c = 0; c < cin; c++)
              for (let o = 0; o < cout; o++) {
                const value = kernel.data[((y * kw + xx) * cin + c) * cout + o]!;
                if (depthwise) ohwi[((c * cout + o) * kh + y) * kw + xx] = value;
                else ohwi[((o * kh + y) * kw + xx) * cin + c] = value;
              }
        const folded = foldInto(ohwi, config.use_bias === false ? null : weight(name, 'bias').data, outC);
        const w = b.constant(
          `${name}.weight`,
          'f32',
          depthwise ? [outC, kh, kw, 1] : [outC, kh, kw, cin],
          folded.w,
        );
        const bias = folded.bias ? b.constant(`${name}.bias`, 'f32', [outC], folded.bias) : -1;
        const strides = (config.strides as number[] | undefined) ?? [1, 1];
        const dilations = (config.dilation_rate as number[] | undefined) ?? [1, 1];
        const [, inH, inW] = b.tensors[x]!.shape as [number, number, number, number];
        const same = config.padding === 'same';
        const [top, bottom] = tfPads(inH, kh, strides[0]!, dilations[0]!, same);
        const [left, right] = tfPads(inW, kw, strides[1]!, dilations[1]!, same);
        const attrs: ManifestNode['attrs'] = {
          strides,
          dilations,
          pads: [top, left, bottom, right],
          groups: depthwise ? cin : 1,
        };
        x = activation(name, config.activation, b.emit(name, 'conv2d', 'f32', [x, w, bias], attrs)[0]!);
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const kernel = (config.pool_size as number[] | undefined) ?? [2, 2];
        const strides = (config.strides as number[] | null | undefined) ?? kernel;
        const [, inH, inW] = b.tensors[x]!.shape as [number, number, number, number];
        const same = config.padding === 'same';
        const [top, bottom] = tfPads(inH, kernel[0]!, strides[0]!, 1, same);
        const [left, right] = tfPads(inW, kernel[1]!, strides[1]!, 1, same);
        x = b.emit(name, kind === 'MaxPooling2D' ? 'max_pool' : 'avg_pool', 'f32', [x], {
          kernel,
          strides,
          pads: [top, left, bottom, right],
        })[0]!;
        break;
      }
      case 'GlobalAveragePooling2D': {
        const pooled = b.emit(name, 'global_avgpool', 'f32', [x], {})[0]!;
        x = b.emit(`${name}/squeeze`, 'reshape', 'f32', [pooled], { shape: [0, -1] })[0]!;
        break;
      }
      case 'Flatten':
        x = b.emit(name, 'reshape', 'f32', [x], { shape: [0, elements(b.tensors[x]!.shape.slice(1))] })[0]!;
        break;
      case 'Activation':
        x = activation(name, config.activation, x);
        break;
      case 'ReLU':
        x = b.emit(name, 'clip', 'f32', [x], {
          min: 0,
          ...(typeof config.max_value === 'number' ? { max: config.max_value } : {}),
        })[0]!;
        break;
      case 'Softmax':
        x = b.emit(name, 'softmax', 'f32', [x], { axis: -1 })[0]!;
        break;
      case 'BatchNormalization': {
        const c = b.tensors[x]!.shape[b.tensors[x]!.shape.length - 1]!;
        const param = (key: string, fill: number): number =>
          b.constant(
            `${name}.${key}`,
            'f32',
            [c],
            weights.get(`${name}/${key}`)?.data ?? new Float32Array(c).fill(fill),
          );
        x = b.emit(
          name,
          'batch_norm',
          'f32',
          [x, param('gamma', 1), param('beta', 0), param('moving_mean', 0), param('moving_variance', 1)],
          {
            epsilon: Number(config.epsilon ?? 0.001),
            axis: -1,
          },
        )[0]!;
        break;
      }
    }
  }
  return b.finish(
    [
      {
        name: 'input',
        tensor: input,
        layout: shape.length === 4 ? 'NHWC' : shape.length === 2 ? 'NC' : 'other',
      },
    ],
    [{ name: 'output', tensor: x }],
    {
      id: options.modelId ?? 'tfjs-model',
      version: '1',
      name: path,
      ...(options.labels ? { labels: options.labels } : {}),
    },
  );
}
