// The dataset forms the trainer and the CLI accept:
//   fashion-mnist                                        Debian's dataset-fashion-mnist package
//   idx:TRAIN_IMAGES,TRAIN_LABELS[,TEST_IMAGES,TEST_LABELS]  any IDX pair, gzipped or not
//   folder:PATH                                           one subfolder per class (PATH/test/ is not special)
import { FASHION_MNIST_LABELS, loadFashionMnist } from './fashion-mnist.js';
import { loadIdxPair } from './idx-pair.js';
import { type ImageFolderOptions, loadImageFolder } from './image-folder.js';
import { DatasetError, type ImageSet } from './image-set.js';

export interface LoadedDataset {
  train: ImageSet;
  /** Held-out test set when the source has one. */
  test?: ImageSet;
}

export interface DatasetLoadOptions {
  /** For folders: output channels and size. */
  folder?: Partial<ImageFolderOptions>;
}

/** Parsed once per process: a compression run (optimize/compress) loads it for every retraining phase, and
 * decompressing the 60,000 images takes seconds. The sets are read-only views for every caller. */
const fashionSplits = new Map<'train' | 'test', ImageSet>();

function fashion(split: 'train' | 'test'): ImageSet {
  const known = fashionSplits.get(split);
  if (known) return known;
  const raw = loadFashionMnist(split);
  const set: ImageSet = {
    ...raw,
    channels: 1,
    classes: [...FASHION_MNIST_LABELS],
    source: `fashion-mnist ${split}`,
  };
  fashionSplits.set(split, set);
  return set;
}

export function loadDataset(spec: string, options: DatasetLoadOptions = {}): LoadedDataset {
  if (spec === 'fashion-mnist') return { train: fashion('train'), test: fashion('test') };
  if (spec.startsWith('idx:')) {
    const files = spec.slice(4).split(',');
    if ((files.length !== 2 && files.length !== 4) || files.some((f) => f === ''))
      throw new DatasetError(
        `dataset "${spec}": expected idx:TRAIN_IMAGES,TRAIN_LABELS[,TEST_IMAGES,TEST_LABELS]`,
      );
    const train = loadIdxPair(files[0]!, files[1]!);
    if (files.length === 2) return { train };
    const test = loadIdxPair(files[2]!, files[3]!, train.classes);
    if (test.height !== train.height || test.width !== train.width || test.channels !== train.channels)
      throw new DatasetError(
        `${files[2]}: test images are ${test.height}x${test.width}x${test.channels} but training images are ` +
          `${train.height}x${train.width}x${train.channels}`,
      );
    return { train, test };
  }
  if (spec.startsWith('folder:')) {
    const dir = spec.slice(7);
    if (dir === '') throw new DatasetError(`dataset "${spec}": expected folder:PATH`);
    return { train: loadImageFolder(dir, { channels: 1, ...options.folder }) };
  }
  throw new DatasetError(
    `unknown dataset "${spec}"; expected fashion-mnist, idx:TRAIN_IMAGES,TRAIN_LABELS[,TEST_IMAGES,TEST_LABELS] or folder:PATH`,
  );
}

/** The first `count` images of a set (views, no copy): CI-sized subsets. */
export function firstImages(set: ImageSet, count: number): ImageSet {
  const n = Math.min(count, set.count);
  const per = set.height * set.width * set.channels;
  return { ...set, count: n, pixels: set.pixels.subarray(0, n * per), labels: set.labels.subarray(0, n) };
}
