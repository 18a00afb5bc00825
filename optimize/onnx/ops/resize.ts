// Resampling: Resize (opsets 10-18: scales or sizes as inputs, the coordinate transformation and nearest
// rounding as attributes) and Upsample (opsets 7-9: scales as an attribute, then an input; asymmetric
// coordinates, nearest rounding down). Cubic interpolation, tf_crop_and_resize, antialias and
// exclude_outside are refused by name.
import { COORDINATE_MODES, NEAREST_MODES } from '../../../agent/runtime/ops/resize.js';
import type { OnnxNode, OnnxOpTable } from '../context.js';

function resize(n: OnnxNode): void {
  const x = n.input(0, 'X');
  const rank = n.b.tensors[x]!.shape.length;
  const upsample = n.opType === 'Upsample' || n.opset < 11;
  const mode = n.oneOf('mode', 'nearest', ['nearest', 'linear', 'bilinear']);
  // Resize-10 and Upsample read scales at input 1; Resize-11+ at 2 (after roi), with sizes at 3.
  const scalesIndex = upsample ? 1 : 2;
  const scales =
    n.opType === 'Upsample' && n.opset < 9
      ? n.floats('scales', [])
      : n.optional(scalesIndex) < 0
        ? []
        : n.constant(scalesIndex, 'scales');
  const sizes = !upsample && n.optional(3) >= 0 ? n.constant(3, 'sizes') : [];
  const attrs: Record<string, string | number[]> = {
    mode: mode === 'nearest' ? 'nearest' : 'linear',
    coordinate_transformation_mode: upsample
      ? 'asymmetric'
      : n.oneOf('coordinate_transformation_mode', 'half_pixel', COORDINATE_MODES),
    nearest_mode: upsample ? 'floor' : n.oneOf('nearest_mode', 'round_prefer_floor', NEAREST_MODES),
  };
  if (!upsample) {
    n.oneOf('exclude_outside', 0, [0]);
    n.oneOf('antialias', 0, [0]);
    n.oneOf('keep_aspect_ratio_policy', 'stretch', ['stretch']);
  }
  // Opset 18: scales or sizes of some axes only.
  const axes = n.ints('axes', [...Array(rank).keys()]).map((a) => (a < 0 ? a + rank : a));
  const full = (given: number[], fill: (a: number) => number): number[] => {
    if (given.length !== axes.length) n.fail(`${given.length} values for ${axes.length} axes`);
    return [...Array(rank).keys()].map((a) => (axes.includes(a) ? given[axes.indexOf(a)]! : fill(a)));
  };
  if (sizes.length > 0) {
    // The batch axis as 0, "the input's": the sizes an exporter computes from a Shape of the declared input
    // would otherwise fix the batch, and a package built at another batch size would not run.
    const out = full(sizes, (a) => n.b.tensors[x]!.shape[a]!);
    if (out[0] !== n.b.tensors[x]!.shape[0])
      n.fail(`resizing the batch axis (${n.b.tensors[x]!.shape[0]} -> ${out[0]}) is not supported`);
    attrs.sizes = [0, ...out.slice(1)];
  } else if (scales.length > 0) attrs.scales = full(scales, () => 1);
  else n.fail('neither scales nor sizes is given');
  n.set(0, n.emit('resize', [x], attrs));
}

export const RESIZE_ONNX_OPS: OnnxOpTable = { Resize: resize, Upsample: resize };
