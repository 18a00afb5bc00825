// `whittle quantize IN.whittle --out OUT.whittle --calibration DATA [--images N] [--test-images N]
// [--format int8|fixed16|fixed8] [--calibration-method minmax|percentile|mse] [--float-classifier]
// [--key KEY | --bundled-key] [--id ID] [--version V] [--name TEXT]`:
// post-training quantization of an fp32 package — int8 affine (optimize/quantize/ptq.ts) or per-layer
// dynamic fixed point with 16- or 8-bit words (optimize/package/fixed-point.ts), both calibrated on the same
// images. The new package records its measured test-set top-1, the labels and the preprocessing, and
// carries a health-check probe; it is read back through the agent's reader and runtime before it is
// written, like `whittle import` does.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { type Package, readPackage, readPackageFile } from '../../agent/package/reader.js';
import { loadDataset } from '../../optimize/datasets/dataset-spec.js';
import {
  evaluatePackage,
  packageImageInput,
  packageImageSize,
  withTrainedPreprocessing,
} from '../../optimize/evaluate-package.js';
import { fixedPointPackage } from '../../optimize/package/fixed-point.js';
import { probeFromTestSet } from '../../optimize/package/probe.js';
import { type PackageContent, writePackage } from '../../optimize/package/writer.js';
import {
  CALIBRATION_METHODS,
  calibrationFromImages,
  type CalibrationMethod,
} from '../../optimize/quantize/calibrate.js';
import { DEFAULT_CALIBRATION_METHOD, quantizePackage } from '../../optimize/quantize/ptq.js';
import { CommandUsageError } from './command-error.js';
import { checkSigningOptions, SIGNING_OPTIONS, signingKeyOption } from './signing-key.js';

export const QUANTIZE_HELP = `  quantize IN --out OUT --calibration DATA  post-training quantization of an fp32 package:
                        --format int8 (default) | fixed16 | fixed8 (per-layer dynamic fixed point); DATA as
                        for train (a folder is read at the package's input size and channels); --images N calibration images (1000), --test-images N for the recorded
                        accuracy (all), --calibration-method minmax | percentile | mse (activation ranges;
                        int8 default ${DEFAULT_CALIBRATION_METHOD}, fixed point minmax), --float-classifier (int8: the layer
                        that makes the logits kept fp32), --key KEY | --bundled-key, --id, --version, --name
`;

const FORMATS = ['int8', 'fixed16', 'fixed8'] as const;
type QuantizedFormat = (typeof FORMATS)[number];

const USAGE =
  'usage: whittle quantize IN.whittle --out OUT.whittle --calibration DATA [--format int8|fixed16|fixed8] ' +
  `[--calibration-method ${CALIBRATION_METHODS.join('|')}] [--float-classifier] [--images N] [--test-images N] ` +
  '[--key KEY | --bundled-key] [--id ID] [--version V] [--name TEXT]';

function count(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CommandUsageError(`${flag}: expected a positive integer but received "${value}"`);
  return n;
}

/** `whittle quantize`; a failure is reported by the CLI (electron/commands/index.ts). */
export function quantizeCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: 'string', short: 'o' },
      calibration: { type: 'string' },
      format: { type: 'string' },
      'calibration-method': { type: 'string' },
      'float-classifier': { type: 'boolean' },
      images: { type: 'string' },
      'test-images': { type: 'string' },
      ...SIGNING_OPTIONS,
      id: { type: 'string' },
      version: { type: 'string' },
      name: { type: 'string' },
    },
  });
  const source = positionals[0];
  if (source === undefined || positionals.length > 1)
    throw new CommandUsageError(`expected one package to quantize; ${USAGE}`);
  if (values.out === undefined) throw new CommandUsageError(`--out OUT.whittle is required; ${USAGE}`);
  if (values.calibration === undefined)
    throw new CommandUsageError(`--calibration DATA is required; ${USAGE}`);
  checkSigningOptions(values);
  const format = (values.format ?? 'int8') as QuantizedFormat;
  if (!FORMATS.includes(format))
    throw new CommandUsageError(
      `--format: expected one of ${FORMATS.join(', ')} but received "${values.format}"`,
    );
  const method = values['calibration-method'];
  if (method !== undefined && !(CALIBRATION_METHODS as readonly string[]).includes(method))
    throw new CommandUsageError(
      `--calibration-method: expected one of ${CALIBRATION_METHODS.join(', ')} but received "${method}"`,
    );
  if (values['float-classifier'] && format !== 'int8')
    throw new CommandUsageError(
      `--float-classifier is an int8 option; --format ${format} has no int8 classifier`,
    );
  const calibrationMethod =
    (method as CalibrationMethod | undefined) ?? (format === 'int8' ? DEFAULT_CALIBRATION_METHOD : 'minmax');
  const calibrationImages = count(values.images, '--images', 1000);
  const testImages = count(values['test-images'], '--test-images', Number.MAX_SAFE_INTEGER);

  const fp32 = readPackageFile(source, { allowUnsigned: true, cpuFamily: null });
  // An image folder is loaded at the package's own input size and channels.
  const dataset = loadDataset(values.calibration, { folder: packageImageSize(fp32) });
  const train = dataset.train;
  const test = dataset.test ?? train;
  const withMeta: Package = { ...fp32, manifest: withTrainedPreprocessing(fp32.manifest, train) };

  const started = Date.now();
  const calibration = calibrationFromImages(train, calibrationImages, packageImageInput(withMeta, train));
  const naming = {
    calibrationMethod,
    ...(values.id ? { modelId: values.id } : {}),
    ...(values.version ? { version: values.version } : {}),
    ...(values.name ? { name: values.name } : {}),
  };
  const content: PackageContent =
    format === 'int8'
      ? quantizePackage(withMeta, calibration, {
          ...naming,
          ...(values['float-classifier'] ? { floatClassifier: true } : {}),
        }).content
      : fixedPointPackage(withMeta, calibration, { bits: format === 'fixed16' ? 16 : 8, ...naming }).content;
  const { key, created } = signingKeyOption(values);
  const read = (bytes: Buffer): Package => readPackage(bytes, { allowUnsigned: true, cpuFamily: null });

  // Measured, not estimated: both packages on the same test images, on this runtime.
  const limit = Math.min(testImages, test.count);
  const fp32Top1 = evaluatePackage(withMeta, test, { limit }).top1;
  const quantizedTop1 = evaluatePackage(read(writePackage(content, key)), test, { limit }).top1;
  content.manifest.accuracy = { dataset: test.source, images: limit, top1: quantizedTop1 };
  if (dataset.test) {
    try {
      content.manifest.probe = probeFromTestSet(writePackage(content, key), dataset.test);
    } catch (err) {
      // A model that gets no test image right carries no probe; the health check then only asks for
      // finite outputs. Said, not hidden.
      console.error(`whittle quantize: no health-check probe: ${(err as Error).message}`);
    }
  }
  const bytes = writePackage(content, key);
  read(bytes); // the agent's reader must accept it before it is written
  writeFileSync(values.out, bytes);
  if (created) console.error(`whittle quantize: created the package signing key ${created}`);
  const layers = content.manifest.nodes.filter((n) =>
    format === 'int8'
      ? n.op === 'qconv2d' || n.op === 'qfully_connected'
      : (n.op === 'conv2d' || n.op === 'fully_connected') && n.format === format,
  );
  console.log(
    `whittle quantize: ${source} (${fp32.fileBytes} bytes, top-1 ${(100 * fp32Top1).toFixed(2)}%) -> ` +
      `${values.out} (${bytes.length} bytes, top-1 ${(100 * quantizedTop1).toFixed(2)}%, ${layers.length} ${format} ` +
      `layers) on ${limit} ${test.source} images; ${calibration.count} calibration images (${calibrationMethod}), ` +
      `${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return 0;
}
