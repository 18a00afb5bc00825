// A trained tiny model's fp32 package with its test subset and calibration set, for the planner's tests.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Package, readPackage } from '../../agent/package/reader.js';
import { compressedPackage } from '../../optimize/compress/encode.js';
import { firstImages, loadDataset } from '../../optimize/datasets/dataset-spec.js';
import type { ImageSet } from '../../optimize/datasets/image-set.js';
import { packageImageInput, withTrainedPreprocessing } from '../../optimize/evaluate-package.js';
import { bundledSigningKey, writePackage } from '../../optimize/package/writer.js';
import { calibrationFromImages, type CalibrationSet } from '../../optimize/quantize/calibrate.js';
import { trainTinyModel } from './tiny-model.js';

export interface PlanFixture {
  dir: string;
  fp32: Package;
  set: ImageSet;
  calibration: CalibrationSet;
}

export async function trainedPlanFixture(model: string, images = 100): Promise<PlanFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-plan-'));
  const trained = join(dir, 'trained');
  await trainTinyModel(model, trained);
  const data = loadDataset('fashion-mnist');
  const content = compressedPackage(trained, new Map(), { modelId: model });
  content.manifest = withTrainedPreprocessing(content.manifest, data.train);
  const fp32 = readPackage(writePackage(content, bundledSigningKey()), {
    allowUnsigned: true,
    cpuFamily: null,
  });
  const set = firstImages(data.test!, images);
  const calibration = calibrationFromImages(data.train, 50, packageImageInput(fp32, data.train));
  return { dir: trained, fp32, set, calibration };
}
