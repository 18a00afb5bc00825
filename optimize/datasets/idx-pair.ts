// Any IDX image/label file pair (MNIST, Fashion-MNIST, KMNIST, EMNIST...): images of dims
// [count, rows, columns] (grey) or [count, rows, columns, channels], labels of dims [count]. Gzipped files
// are read as they are.
import { IdxFormatError, readIdx } from './idx.js';
import type { ImageSet } from './image-set.js';

/** Loads an image file and its label file; throws IdxFormatError naming the file that is wrong. */
export function loadIdxPair(
  imagesFile: string,
  labelsFile: string,
  classNames?: readonly string[],
): ImageSet {
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  const [count, height, width, channels = 1] = images.dims;
  if (
    (images.dims.length !== 3 && images.dims.length !== 4) ||
    count === undefined ||
    height === undefined ||
    width === undefined
  ) {
    throw new IdxFormatError(
      `${imagesFile}: expected image dims [count, rows, columns(, channels)] but received [${images.dims.join(', ')}]`,
    );
  }
  if (channels !== 1 && channels !== 3) {
    throw new IdxFormatError(`${imagesFile}: expected 1 or 3 channels but the file has ${channels}`);
  }
  if (height === 0 || width === 0)
    throw new IdxFormatError(`${imagesFile}: images of size ${height}x${width}`);
  if (labels.dims.length !== 1) {
    throw new IdxFormatError(
      `${labelsFile}: expected label dims [count] but received [${labels.dims.join(', ')}]`,
    );
  }
  if (labels.dims[0] !== count) {
    throw new IdxFormatError(
      `${labelsFile}: has ${labels.dims[0]} labels but ${imagesFile} has ${count} images; the counts must agree`,
    );
  }
  let maxLabel = 0;
  for (const label of labels.data) maxLabel = Math.max(maxLabel, label);
  const classCount = classNames?.length ?? Math.max(2, maxLabel + 1);
  if (maxLabel >= classCount) {
    throw new IdxFormatError(`${labelsFile}: label ${maxLabel} is outside 0-${classCount - 1}`);
  }
  return {
    count,
    height,
    width,
    channels,
    pixels: images.data,
    labels: labels.data,
    classes: classNames ? [...classNames] : Array.from({ length: classCount }, (_, i) => String(i)),
    source: imagesFile,
  };
}
