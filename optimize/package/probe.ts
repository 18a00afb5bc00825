// The health-check probe of a package (manifest `probe`): a test image and the class the package itself gives
// it, as the runtime computes it. The agent runs it after staging a deployment and refuses the package when
// the answer differs (agent/deploy/).
import { deflateRawSync } from 'node:zlib';

import type { ManifestProbe } from '../../agent/package/manifest.js';
import { readPackage } from '../../agent/package/reader.js';
import { PackageModel } from '../../agent/runtime/package-model.js';

/** The first test image the package classifies as its true label with confidence >= minConfidence; with
 * `compactAmong` n > 1, of the first n such images the one whose probe deflates smallest (for a package whose
 * manifest is deflated: a dark, plain image costs half the bytes of a busy one). */
export function probeFromTestSet(
  packageBytes: Buffer,
  images: { count: number; pixels: Uint8Array; labels: Uint8Array },
  minConfidence = 0.9,
  compactAmong = 1,
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
  let compact: { probe: ManifestProbe; bytes: number } | undefined;
  let confident = 0;
  for (let i = 0; i < images.count && confident < compactAmong; i++) {
    const frame = images.pixels.subarray(i * size, (i + 1) * size);
    const result = model.infer(frame);
    if (result.classIndex !== images.labels[i]) continue;
    if (result.confidence >= minConfidence) {
      const probe = { input: Buffer.from(frame).toString('base64'), expectedClass: result.classIndex };
      const bytes = compactAmong > 1 ? deflateRawSync(JSON.stringify(probe), { level: 9 }).length : 0;
      if (compact === undefined || bytes < compact.bytes) compact = { probe, bytes };
      confident++;
      continue;
    }
    if (best === undefined || result.confidence > best.confidence)
      best = { index: i, confidence: result.confidence };
  }
  if (compact !== undefined) return compact.probe;
  if (best === undefined) throw new RangeError('no test image is classified right: no probe can be made');
  const frame = images.pixels.subarray(best.index * size, (best.index + 1) * size);
  return { input: Buffer.from(frame).toString('base64'), expectedClass: images.labels[best.index]! };
}
