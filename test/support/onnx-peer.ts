// The fp32 check every ONNX import test makes against ONNX Runtime: the same NCHW images through both, the
// largest difference within 1e-4 of ONNX Runtime's output range.
import assert from 'node:assert/strict';

import * as ort from 'onnxruntime-node';

import type { Package } from '../../agent/package/reader.js';
import type { Model } from '../../agent/runtime/model.js';
import { inPackageLayout } from '../../bench/conformance.js';

/** Runs each [1, 3, size, size] image of `images` through `model` (built from `pkg`) and through ONNX Runtime
 * on `onnx`, and asserts the outputs agree within 1e-4 of ONNX Runtime's output range; `label` names the model
 * in a failure. */
export async function assertMatchesOrt(
  model: Model,
  pkg: Package,
  onnx: Uint8Array,
  size: number,
  images: readonly Float32Array[],
  label = '',
): Promise<void> {
  const session = await ort.InferenceSession.create(onnx);
  for (const [k, image] of images.entries()) {
    const ours = model.run([inPackageLayout(pkg, image, 1, size)])[0]!.data;
    const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', image, [1, 3, size, size]) };
    const theirs = (await session.run(feeds))[session.outputNames[0]!]!.data as Float32Array;
    assert.equal(ours.length, theirs.length);
    const range = Math.max(...theirs) - Math.min(...theirs);
    const diff = Math.max(...Array.from(theirs, (v, i) => Math.abs(v - ours[i]!)));
    assert.ok(
      diff <= 1e-4 * range,
      `${label}image ${k}: max |diff| ${diff} over an output range of ${range}`,
    );
  }
}
