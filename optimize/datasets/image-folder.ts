// A folder of labelled images, one subfolder per class (the subfolder's name is the class name), PNG or
// JPEG, decoded with pngjs and jpeg-js, converted to grey or RGB and resized with bilinear interpolation.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';

import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

import { DatasetError, type ImageSet } from './image-set.js';

export interface ImageFolderOptions {
  /** Output channels: 1 (grey, luma) or 3 (RGB). */
  channels: 1 | 3;
  /** Output size; when absent, the first image's size, and an image of another size is an error. */
  height?: number;
  width?: number;
  /** Most images per class to load (for quick runs); all by default. */
  limitPerClass?: number;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
/** Largest decoded image accepted, in pixels (a 8192x8192 frame); stops decompression bombs. */
const MAX_PIXELS = 8192 * 8192;

interface Decoded {
  width: number;
  height: number;
  /** RGBA bytes. */
  rgba: Uint8Array;
}

function decode(file: string): Decoded {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new DatasetError(`${file}: cannot read (${(error as Error).message})`);
  }
  const ext = extname(file).toLowerCase();
  try {
    if (ext === '.png') {
      const png = PNG.sync.read(bytes);
      return { width: png.width, height: png.height, rgba: png.data };
    }
    const image = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      maxResolutionInMP: MAX_PIXELS / 1e6,
    });
    return { width: image.width, height: image.height, rgba: image.data };
  } catch (error) {
    throw new DatasetError(
      `${file}: not a readable ${ext.slice(1).toUpperCase()} image (${(error as Error).message})`,
    );
  }
}

/** Bilinear resize of one RGBA image into `channels` channels at outH x outW (half-pixel centres, as
 * OpenCV and tf.image.resizeBilinear with halfPixelCenters). Grey is the Rec. 601 luma. */
export function resizeBilinear(
  image: Decoded,
  outH: number,
  outW: number,
  channels: 1 | 3,
  out: Uint8Array,
  offset: number,
): void {
  const { width: inW, height: inH, rgba } = image;
  const sy = inH / outH;
  const sx = inW / outW;
  const pixel = (x: number, y: number, c: number): number => rgba[(y * inW + x) * 4 + c]!;
  for (let oy = 0; oy < outH; oy++) {
    const fy = Math.min(Math.max((oy + 0.5) * sy - 0.5, 0), inH - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, inH - 1);
    const wy = fy - y0;
    for (let ox = 0; ox < outW; ox++) {
      const fx = Math.min(Math.max((ox + 0.5) * sx - 0.5, 0), inW - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, inW - 1);
      const wx = fx - x0;
      const rgb = [0, 0, 0];
      for (let c = 0; c < 3; c++) {
        const top = pixel(x0, y0, c) * (1 - wx) + pixel(x1, y0, c) * wx;
        const bottom = pixel(x0, y1, c) * (1 - wx) + pixel(x1, y1, c) * wx;
        rgb[c] = top * (1 - wy) + bottom * wy;
      }
      const at = offset + (oy * outW + ox) * channels;
      if (channels === 1) out[at] = Math.round(0.299 * rgb[0]! + 0.587 * rgb[1]! + 0.114 * rgb[2]!);
      else for (let c = 0; c < 3; c++) out[at + c] = Math.round(rgb[c]!);
    }
  }
}

/** Loads every image under dir/<class>/; throws DatasetError naming the file or folder at fault. */
export function loadImageFolder(dir: string, options: ImageFolderOptions): ImageSet {
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (error) {
    throw new DatasetError(`${dir}: cannot list the image folder (${(error as Error).message})`);
  }
  const classes = entries.filter((name) => !name.startsWith('.') && statSync(join(dir, name)).isDirectory());
  if (classes.length < 2) {
    throw new DatasetError(
      `${dir}: expected one subfolder per class (at least 2) but found ${classes.length}`,
    );
  }
  if (classes.length > 256)
    throw new DatasetError(`${dir}: ${classes.length} classes; at most 256 are supported`);
  const files: { path: string; label: number }[] = [];
  classes.forEach((name, label) => {
    const classDir = join(dir, name);
    let images = readdirSync(classDir)
      .filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase()))
      .sort();
    if (options.limitPerClass !== undefined) images = images.slice(0, options.limitPerClass);
    if (images.length === 0)
      throw new DatasetError(`${classDir}: no .png, .jpg or .jpeg images in this class`);
    for (const f of images) files.push({ path: join(classDir, f), label });
  });
  const first = decode(files[0]!.path);
  const height = options.height ?? first.height;
  const width = options.width ?? first.width;
  const fixedSize = options.height === undefined && options.width === undefined;
  const bytesPerImage = height * width * options.channels;
  const pixels = new Uint8Array(files.length * bytesPerImage);
  const labels = new Uint8Array(files.length);
  files.forEach((file, i) => {
    const image = i === 0 ? first : decode(file.path);
    if (image.width * image.height > MAX_PIXELS)
      throw new DatasetError(`${file.path}: ${image.width}x${image.height} is larger than 8192x8192`);
    if (fixedSize && (image.width !== width || image.height !== height)) {
      throw new DatasetError(
        `${file.path}: is ${image.width}x${image.height} but the folder's images are ${width}x${height}; ` +
          `give a size to resize them all`,
      );
    }
    resizeBilinear(image, height, width, options.channels, pixels, i * bytesPerImage);
    labels[i] = file.label;
  });
  return {
    count: files.length,
    height,
    width,
    channels: options.channels,
    pixels,
    labels,
    classes,
    source: dir,
  };
}
