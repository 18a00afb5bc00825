// Fashion-MNIST (Zalando): 28x28 grayscale clothing images in 10 classes, 60000 train + 10000 test, read
// from the IDX files the Debian package dataset-fashion-mnist installs.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { WhittleError } from '../../native/whittle-error.js';
import { IdxFormatError, readIdx } from './idx.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_LABELS = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

export interface GrayImageSet {
  count: number;
  width: number;
  height: number;
  /** [count][height][width] pixel bytes, 0 = black. */
  pixels: Uint8Array;
  /** [count] class indices. */
  labels: Uint8Array;
}

/** The dataset files were not found where the Debian package puts them. */
export class DatasetMissingError extends WhittleError {
  override readonly name = 'DatasetMissingError';
  readonly code = 'dataset-missing';
}

function locate(dir: string, base: string): string {
  for (const name of [base, `${base}.gz`]) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  throw new DatasetMissingError(
    `Fashion-MNIST file ${base}(.gz) not found in ${dir}; install it with \`apt-get install dataset-fashion-mnist\``,
  );
}

/** Loads one split; checks that images and labels agree in count. */
export function loadFashionMnist(split: 'train' | 'test', dir: string = FASHION_MNIST_DIR): GrayImageSet {
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagesFile = locate(dir, `${prefix}-images-idx3-ubyte`);
  const labelsFile = locate(dir, `${prefix}-labels-idx1-ubyte`);
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  const [count, height, width] = images.dims;
  if (images.dims.length !== 3 || count === undefined || height === undefined || width === undefined) {
    throw new IdxFormatError(`${imagesFile}: expected 3 dimensions but received [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1 || labels.dims[0] !== count) {
    throw new IdxFormatError(
      `${labelsFile}: expected ${count} labels to match ${imagesFile} but received dims [${labels.dims.join(', ')}]`,
    );
  }
  for (const label of labels.data) {
    if (label >= FASHION_MNIST_LABELS.length) {
      throw new IdxFormatError(`${labelsFile}: label ${label} is outside 0-9`);
    }
  }
  return { count, width, height, pixels: images.data, labels: labels.data };
}
