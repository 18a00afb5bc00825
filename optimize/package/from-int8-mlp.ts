// The demo model file (whittle-int8-mlp JSON) as package content: quantize the [0, 1] image, one
// qfully_connected per layer, dequantize the logits. Weight scales are recovered from each layer's fixed-point
// multipliers (M = inputScale * weightScale / outputScale), so the runtime re-derives the same multipliers.
import { type EncodedTensor, encodeRaw } from '../../agent/package/encodings.js';
import type { Manifest, ManifestNode, ManifestTensor } from '../../agent/package/manifest.js';
import {
  decodeInt8Base64,
  decodeInt32LeBase64,
  type Int8MlpFile,
} from '../../agent/runtime/int8-mlp-format.js';
import type { PackageContent } from './writer.js';

export function packageContentFromInt8Mlp(file: Int8MlpFile): PackageContent {
  const tensors: ManifestTensor[] = [];
  const nodes: ManifestNode[] = [];
  const constants = new Map<number, EncodedTensor>();
  const add = (tensor: ManifestTensor, data?: Int8Array | Int32Array): number => {
    tensors.push(tensor);
    if (data) constants.set(tensors.length - 1, encodeRaw(data));
    return tensors.length - 1;
  };
  const { width, height, channels, scale, zeroPoint } = file.input;
  const features = width * height * channels;
  const image = add({ name: 'image', dtype: 'f32', shape: [1, features] });
  let x = add({
    name: 'image.q',
    dtype: 'i8',
    shape: [1, features],
    quant: { scale: [scale], zeroPoint: [zeroPoint] },
  });
  nodes.push({
    name: 'quantize',
    op: 'quantize_linear',
    format: 'int8',
    inputs: [image],
    outputs: [x],
    attrs: {},
  });
  let inputScale = scale;
  file.layers.forEach((layer, i) => {
    const weightScales = layer.multipliers.map(
      (m, o) => (m * 2 ** (layer.shifts[o]! - 31) * layer.outputScale) / inputScale,
    );
    const w = add(
      {
        name: `fc${i}.weight`,
        dtype: 'i8',
        shape: [layer.outChannels, layer.inChannels],
        quant: { scale: weightScales, zeroPoint: weightScales.map(() => 0), axis: 0 },
      },
      decodeInt8Base64(layer.weights),
    );
    const b = add(
      { name: `fc${i}.bias`, dtype: 'i32', shape: [layer.outChannels] },
      decodeInt32LeBase64(layer.bias),
    );
    const y = add({
      name: `fc${i}.out`,
      dtype: 'i8',
      shape: [1, layer.outChannels],
      quant: { scale: [layer.outputScale], zeroPoint: [layer.outputZeroPoint] },
    });
    nodes.push({
      name: `fc${i}`,
      op: 'qfully_connected',
      format: 'int8',
      inputs: [x, w, b],
      outputs: [y],
      attrs: { min: layer.outputMin, max: layer.outputMax },
    });
    x = y;
    inputScale = layer.outputScale;
  });
  const logits = add({ name: 'logits', dtype: 'f32', shape: [1, file.labels.length] });
  nodes.push({
    name: 'dequantize',
    op: 'dequantize_linear',
    format: 'int8',
    inputs: [x],
    outputs: [logits],
    attrs: {},
  });
  const manifest: Manifest = {
    format: 'whittle-package',
    version: 1,
    model: { id: file.id, version: '1', name: file.name },
    target: { deviceClass: 'any', cpuFamily: 'any' },
    ...(file.accuracy
      ? {
          accuracy: {
            dataset: file.accuracy.dataset,
            images: file.accuracy.images,
            top1: file.accuracy.int8,
          },
        }
      : {}),
    labels: [...file.labels],
    inputs: [
      {
        name: 'image',
        tensor: image,
        layout: 'NC',
        preprocessing: {
          kind: 'image',
          width,
          height,
          channels: channels === 3 ? 3 : 1,
          mean: [0],
          std: [1],
        },
      },
    ],
    outputs: [{ name: 'logits', tensor: logits }],
    tensors,
    nodes,
  };
  return { manifest, constants };
}
