// Image preprocessing as a model package's manifest names it: resize, centre crop, grey or RGB, and
// per-channel normalization. ffmpeg does the pixel work (scale, crop, pixel format) in its filter graph,
// so the agent receives frames of exactly the model's input size; normalization, which needs floats,
// happens here through a 256-entry table per channel.
import { WhittleError } from '../../native/whittle-error.js';
import { roundHalfEven } from '../runtime/number/rounding.js';
import { intRange, saturate } from '../runtime/number/saturation.js';

/** The manifest's description of an image input (a package's `inputs[i].preprocessing` is one). */
export interface ImagePreprocessing {
  width: number;
  height: number;
  /** 1 = grey, 3 = RGB. */
  channels: 1 | 3;
  /** input = (pixel / 255 - mean[c]) / std[c]; one entry applies to every channel. */
  mean: readonly number[];
  std: readonly number[];
  /** `stretch` scales to width×height ignoring the aspect ratio; `center-crop` scales the shorter side
   * to fit and cuts the middle. Default stretch. */
  resize?: 'stretch' | 'center-crop';
  /** With center-crop: the fraction of the scaled image kept (ImageNet's 0.875). Default 1. */
  cropFraction?: number;
  /** Memory order the model wants: pixels interleaved (NHWC, ffmpeg's) or channel planes (NCHW). */
  layout?: 'NHWC' | 'NCHW';
}

export class PreprocessingError extends WhittleError {
  override name = 'PreprocessingError';
  readonly code = 'bad-preprocessing';
}

const MAX_SIDE = 8192;

/** Checks a description; throws PreprocessingError naming the field and the value. */
export function checkPreprocessing(p: ImagePreprocessing): void {
  const bad = (what: string, name: string, value: unknown): never => {
    throw new PreprocessingError(`Expected ${what} for ${name} but received ${JSON.stringify(value)}`);
  };
  for (const side of ['width', 'height'] as const) {
    const v = p[side];
    if (!Number.isInteger(v) || v < 1 || v > MAX_SIDE) bad(`an integer in 1..${MAX_SIDE}`, side, v);
  }
  if (p.channels !== 1 && p.channels !== 3) bad('1 (grey) or 3 (RGB)', 'channels', p.channels);
  for (const key of ['mean', 'std'] as const) {
    const values = p[key];
    if (!Array.isArray(values) || (values.length !== 1 && values.length !== p.channels))
      bad(`1 or ${p.channels} numbers`, key, values);
    for (const v of values)
      if (!Number.isFinite(v) || (key === 'std' && v <= 0))
        bad(key === 'std' ? 'positive finite numbers' : 'finite numbers', key, values);
  }
  if (p.resize !== undefined && p.resize !== 'stretch' && p.resize !== 'center-crop')
    bad('"stretch" or "center-crop"', 'resize', p.resize);
  if (p.cropFraction !== undefined) {
    if (!(p.cropFraction > 0 && p.cropFraction <= 1))
      bad('a number in (0, 1]', 'cropFraction', p.cropFraction);
    if (p.resize !== 'center-crop') bad('resize "center-crop" with', 'cropFraction', p.cropFraction);
  }
  if (p.layout !== undefined && p.layout !== 'NHWC' && p.layout !== 'NCHW')
    bad('"NHWC" or "NCHW"', 'layout', p.layout);
}

/** The shape of `batch` images of width×height×channels in an input tensor declared `layout`: NHWC
 * [batch][h][w][c], NCHW [batch][c][h][w], NC [batch][h·w·c]; undefined for a layout images do not come in. */
export function imageShape(
  layout: string,
  p: Pick<ImagePreprocessing, 'width' | 'height' | 'channels'>,
  batch = 1,
): number[] | undefined {
  const { width: w, height: h, channels: c } = p;
  if (layout === 'NHWC') return [batch, h, w, c];
  if (layout === 'NCHW') return [batch, c, h, w];
  if (layout === 'NC') return [batch, h * w * c];
  return undefined;
}

/** How an image lies in an input tensor declared `layout`: channel planes for NCHW; interleaved, as the
 * camera and the image decoders deliver it, for NHWC and NC (which flattens it). frameWriter's `layout`. */
export function frameOrder(layout: string): 'NHWC' | 'NCHW' {
  return layout === 'NCHW' ? 'NCHW' : 'NHWC';
}

/** ffmpeg's pixel format for the frames. */
export function pixelFormat(p: Pick<ImagePreprocessing, 'channels'>): 'gray' | 'rgb24' {
  return p.channels === 1 ? 'gray' : 'rgb24';
}

/** ffmpeg's input options for raw frames of `width`x`height` pixels of 1 (gray) or 3 (rgb24) channels
 * read from `source` (a file, or pipe:0 for stdin). */
export function rawFramesInput(
  frame: { width: number; height: number } & Pick<ImagePreprocessing, 'channels'>,
  source: string,
): string[] {
  return [
    '-f',
    'rawvideo',
    '-pix_fmt',
    pixelFormat(frame),
    '-s',
    `${frame.width}x${frame.height}`,
    '-i',
    source,
  ];
}

/** The ffmpeg filter chain producing width×height frames of the right pixel format. */
export function ffmpegFilter(p: ImagePreprocessing): string {
  const { width: w, height: h } = p;
  const format = `format=${pixelFormat(p)}`;
  if ((p.resize ?? 'stretch') === 'stretch') return `scale=${w}:${h},${format}`;
  const f = p.cropFraction ?? 1;
  // Scale so the crop box (w/f × h/f) is covered, keeping the aspect ratio, then cut the centre w×h.
  const sw = Math.ceil(w / f);
  const sh = Math.ceil(h / f);
  return `scale=${sw}:${sh}:force_original_aspect_ratio=increase,crop=${w}:${h},${format}`;
}

/** The tensor a frame is written into: its element type and, for integer inputs, the affine
 * quantization the model's first layer expects (real = scale * (q - zeroPoint)). */
export type FrameTensorType = { dtype: 'f32' } | { dtype: 'i8' | 'u8'; scale: number; zeroPoint: number };

export type FrameTensor = Float32Array | Int8Array | Uint8Array;

/** One 256-entry table per channel: pixel byte -> the input tensor's value. Floats are rounded to f32
 * first, exactly as a Float32Array input would hold them. */
function channelTables(p: ImagePreprocessing, type: FrameTensorType): FrameTensor[] {
  return Array.from({ length: p.channels }, (_, c) => {
    const mean = p.mean[p.mean.length === 1 ? 0 : c]!;
    const std = p.std[p.std.length === 1 ? 0 : c]!;
    const real = (v: number): number => Math.fround((v / 255 - mean) / std);
    if (type.dtype === 'f32') return Float32Array.from({ length: 256 }, (_, v) => real(v));
    const [lo, hi] = intRange(type.dtype);
    // Round half to even, as the runtime's quantize_linear does, so a quantized input here has the bits
    // the float input path would have produced.
    const quantize = (v: number): number =>
      saturate(roundHalfEven(real(v) / type.scale) + type.zeroPoint, lo, hi);
    return type.dtype === 'i8'
      ? Int8Array.from({ length: 256 }, (_, v) => quantize(v))
      : Uint8Array.from({ length: 256 }, (_, v) => quantize(v));
  });
}

/** The preprocessing and the input tensor's type, checked; the tables of each channel. */
function checkedTables(p: ImagePreprocessing, type: FrameTensorType): FrameTensor[] {
  checkPreprocessing(p);
  if (type.dtype !== 'f32') {
    if (!(type.scale > 0 && Number.isFinite(type.scale)))
      throw new PreprocessingError(`Expected a positive finite scale but received ${type.scale}`);
    const [lo, hi] = type.dtype === 'i8' ? [-128, 127] : [0, 255];
    if (!Number.isInteger(type.zeroPoint) || type.zeroPoint < lo || type.zeroPoint > hi)
      throw new PreprocessingError(
        `Expected an integer in ${lo}..${hi} for zeroPoint but received ${type.zeroPoint}`,
      );
  }
  return channelTables(p, type);
}

/** frameWriter's tables in one array, channel after channel (256 values each): what the native plan's
 * frame runner writes frames through (native/plan.ts PlanFrame), to the same values. */
export function frameTables(p: ImagePreprocessing, type: FrameTensorType): FrameTensor {
  const tables = checkedTables(p, type);
  const all =
    type.dtype === 'f32'
      ? new Float32Array(256 * tables.length)
      : type.dtype === 'i8'
        ? new Int8Array(256 * tables.length)
        : new Uint8Array(256 * tables.length);
  tables.forEach((t, c) => all.set(t, 256 * c));
  return all;
}

/** Refuses a frame that is not [height][width][channels] bytes of `p`'s size. */
export function expectFrame(
  p: Pick<ImagePreprocessing, 'width' | 'height' | 'channels'>,
  frame: Uint8Array,
): void {
  const { width, height, channels } = p;
  if (frame.length !== width * height * channels)
    throw new PreprocessingError(
      `Expected a frame of ${width * height * channels} bytes (${width}x${height}x${channels}) but received ${frame.length}`,
    );
}

/** Returns a function writing one frame ([height][width][channels] bytes as ffmpeg sends them) into the
 * model's input tensor `out`: normalized, quantized when the input is an integer tensor, and in the
 * layout the preprocessing names (NHWC keeps ffmpeg's interleaving, NCHW splits channel planes). */
export function frameWriter(
  p: ImagePreprocessing,
  type: FrameTensorType,
): (frame: Uint8Array, out: FrameTensor) => void {
  const tables = checkedTables(p, type);
  const { width, height, channels } = p;
  const pixels = width * height;
  const bytes = pixels * channels;
  const planar = p.layout === 'NCHW';
  return (frame, out) => {
    expectFrame(p, frame);
    if (out.length !== bytes)
      throw new PreprocessingError(`Expected an input tensor of ${bytes} values but received ${out.length}`);
    if (channels === 1) {
      const t = tables[0]!;
      for (let i = 0; i < pixels; i++) out[i] = t[frame[i]!]!;
      return;
    }
    for (let c = 0; c < channels; c++) {
      const t = tables[c]!;
      for (let i = 0; i < pixels; i++)
        out[planar ? c * pixels + i : i * channels + c] = t[frame[i * channels + c]!]!;
    }
  };
}

/** Returns a function writing the normalized float input of one frame into out (allocated once).
 * frame: [height][width][channels] bytes as ffmpeg sends them. */
export function normalizer(p: ImagePreprocessing): (frame: Uint8Array) => Float32Array {
  const write = frameWriter(p, { dtype: 'f32' });
  const out = new Float32Array(p.width * p.height * p.channels);
  return (frame) => {
    write(frame, out);
    return out;
  };
}
