// Calibration of a 3-channel ONNX model from a folder of RGB images (`whittle quantize --calibration
// folder:PATH`): the images are loaded with the package's channels and size, and reach the model in the
// layout its input declares (an ONNX import's NCHW: channel planes), so the calibration statistics are those
// of correctly laid-out tensors. Before the fix the folder was read as grey (and refused), and the images
// were fed interleaved (HWC) into the NCHW input.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { PNG } from 'pngjs';

import { type Package, readPackage, readPackageFile } from '../../../agent/package/reader.js';
import { quantizeCommand } from '../../../electron/commands/quantize.js';
import { loadDataset } from '../../../optimize/datasets/dataset-spec.js';
import { DatasetError } from '../../../optimize/datasets/image-set.js';
import { packageImageInput, packageImageSize } from '../../../optimize/evaluate-package.js';
import { importOnnx } from '../../../optimize/onnx/import.js';
import { bundledSigningKey, writePackage } from '../../../optimize/package/writer.js';
import { calibrationFromImages, collectRanges } from '../../../optimize/quantize/calibrate.js';
import { quantizePackage } from '../../../optimize/quantize/ptq.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { buildModel, floatTensor } from '../onnx/build-model.js';

const H = 6;
const W = 5;
const random = new SeededRandom(13);
const values = (n: number): number[] => Array.from({ length: n }, () => random.next() - 0.5);

/** x [1, 3, H, W] (NCHW) -> 3x3 conv to 4 channels -> ReLU -> 3x3 conv -> global average pool -> 2 scores. */
const onnxModel = buildModel({
  nodes: [
    { op: 'Conv', name: 'conv1', inputs: ['x', 'w1', 'b1'], outputs: ['c1'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['r1'] },
    { op: 'Conv', name: 'conv2', inputs: ['r1', 'w2', 'b2'], outputs: ['c2'] },
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['c2'], outputs: ['g'] },
    { op: 'Flatten', name: 'flat', inputs: ['g'], outputs: ['f'] },
    { op: 'Gemm', name: 'fc', inputs: ['f', 'w3', 'b3'], outputs: ['y'], attrs: { transB: 1 } },
  ],
  inputs: [{ name: 'x', dims: [1, 3, H, W] }],
  outputs: [{ name: 'y', dims: [1, 2] }],
  initializers: [
    floatTensor('w1', [4, 3, 3, 3], values(4 * 27)),
    floatTensor('b1', [4], values(4)),
    floatTensor('w2', [4, 4, 3, 3], values(4 * 36)),
    floatTensor('b2', [4], values(4)),
    floatTensor('w3', [2, 4], values(8)),
    floatTensor('b3', [2], values(2)),
  ],
});

/** Six RGB images whose channels differ in level (red bright, blue dark), so a channel mix-up shows. */
const images = Array.from({ length: 6 }, () =>
  Uint8Array.from({ length: H * W * 3 }, (_, i) => {
    const c = i % 3;
    return Math.floor([160, 90, 10][c]! + random.next() * 90);
  }),
);

/** Image k as the package's input, laid out by hand from the declared layout: planes for NCHW, interleaved
 * for NHWC; pixels / 255 (no preprocessing declared: the trainer's [0, 1]). */
function laidOut(pkg: Package, k: number): Float32Array {
  const input = pkg.manifest.inputs[0]!;
  const out = new Float32Array(H * W * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let c = 0; c < 3; c++) {
        const at = input.layout === 'NCHW' ? (c * H + y) * W + x : (y * W + x) * 3 + c;
        out[at] = images[k]![(y * W + x) * 3 + c]! / 255;
      }
  return out;
}

describe('calibration of a 3-channel ONNX model from an image folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'whittle-calibration-layout-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const fp32Path = join(root, 'rgb.whittle');
  const folder = join(root, 'images');
  writeFileSync(fp32Path, writePackage(importOnnx(onnxModel, { modelId: 'rgb' }), bundledSigningKey()));
  // Classes a and b, three PNGs each: the folder's order is a/0, a/1, a/2, b/3, b/4, b/5.
  images.forEach((rgb, k) => {
    const dir = join(folder, k < 3 ? 'a' : 'b');
    mkdirSync(dir, { recursive: true });
    const png = new PNG({ width: W, height: H });
    for (let i = 0; i < H * W; i++) {
      png.data.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
      png.data[i * 4 + 3] = 255;
    }
    writeFileSync(join(dir, `${k}.png`), PNG.sync.write(png));
  });
  const fp32 = readPackageFile(fp32Path, { allowUnsigned: true, cpuFamily: null });
  const expected = { count: images.length, data: new Float32Array(images.length * H * W * 3) };
  images.forEach((_, k) => expected.data.set(laidOut(fp32, k), k * H * W * 3));

  test('the folder is loaded at the input size and channels, and calibrates on laid-out tensors', () => {
    assert.deepEqual(packageImageSize(fp32), { height: H, width: W, channels: 3 });
    const set = loadDataset(`folder:${folder}`, { folder: packageImageSize(fp32) }).train;
    assert.equal(set.channels, 3);
    const fromImages = calibrationFromImages(set, images.length, packageImageInput(fp32, set));
    assert.deepEqual(Array.from(fromImages.data), Array.from(expected.data));
    const want = collectRanges(fp32, expected);
    const got = collectRanges(fp32, fromImages);
    assert.deepEqual([...got], [...want]);
  });

  test('whittle quantize --calibration folder:PATH gives the int8 package of the laid-out tensors', () => {
    const out = join(root, 'rgb-int8.whittle');
    const log = console.log;
    console.log = () => undefined;
    try {
      quantizeCommand([fp32Path, '--out', out, '--calibration', `folder:${folder}`, '--bundled-key']);
    } finally {
      console.log = log;
    }
    const int8 = readPackageFile(out, { allowUnsigned: true, cpuFamily: null });
    const reference = readPackage(
      writePackage(quantizePackage(fp32, expected).content, bundledSigningKey()),
      {
        allowUnsigned: true,
        cpuFamily: null,
      },
    );
    const quantization = (pkg: Package): unknown[] =>
      pkg.manifest.tensors.map((t) => [t.name, t.dtype, t.quant ?? null]);
    assert.deepEqual(quantization(int8), quantization(reference));
    assert.ok(int8.manifest.tensors.some((t) => t.quant !== undefined));
  });

  test('images that do not fit the declared layout are refused, naming both', () => {
    const set = loadDataset(`folder:${folder}`, { folder: { channels: 3 } }).train;
    const input = fp32.manifest.inputs[0]!;
    const swapped: Package = {
      ...fp32,
      manifest: {
        ...fp32.manifest,
        inputs: [{ ...input, layout: input.layout === 'NCHW' ? 'NHWC' : 'NCHW' }],
      },
    };
    assert.throws(() => packageImageInput(swapped, set), {
      name: DatasetError.name,
      message: /takes inputs of shape \[1, .*\] in layout N(CHW|HWC) but .* images are 6x5x3/,
    });
  });
});
