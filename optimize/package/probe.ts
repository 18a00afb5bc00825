// The health-check probe of a package (manifest `probe`): a test image and the class the package itself gives
// it, as the runtime computes it. The agent runs it after staging a deployment and refuses the package when
// the answer differs (agent/deploy/).
import type { ManifestProbe } from '../../agent/package/manifest.js';
import { readPackage } from '../../agent/package/reader.js';
import { PackageModel } from '../../agent/runtime/package-model.js';

/** The first test image the package classifies as its true label with confidence >= minConfidence. */
export function probeFromTestSet(
  packageBytes: Buffer,
  images: { count: number; pixels: Uint8Array; labels: Uint8Array },
  minConfidence = 0.9,
): ManifestProbe {
  const model = PackageModel.fromPackage(readPackage(packageBytes, { allowUnsigned: true, cpuFamily: null }));
  const { width, height, channels } = model.input;
  const size = width * height * channels;
  if (images.pixels.length !== images.count * size)
    throw new RangeError(
      `Expected images of ${size} bytes for the probe but received ${images.pixels.length / images.count}`,
    );
  // The first image right with minConfidence; failing that (a weakly trained model), the image it gets right
  // with the highest confidence — the runtime is deterministic, so any right answer is a valid probe.
  let best: { index: number; confidence: number } | undefined;
  for (let i = 0; i < images.count; i++) {
    const frame = images.pixels.subarray(i * size, (i + 1) * size);
    const result = model.infer(frame);
    if (result.classIndex !== images.labels[i]) continue;
    if (result.confidence >= minConfidence)
      return { input: Buffer.from(frame).toString('base64'), expectedClass: result.classIndex };
    if (best === undefined || result.confidence > best.confidence)
      best = { index: i, confidence: result.confidence };
  }
  if (best === undefined) throw new RangeError('no test image is classified right: no probe can be made');
  const frame = images.pixels.subarray(best.index * size, (best.index + 1) * size);
  return { input: Buffer.from(frame).toString('base64'), expectedClass: images.labels[best.index]! };
}
