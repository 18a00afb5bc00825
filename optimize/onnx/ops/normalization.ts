// Normalization: BatchNormalization that could not fold into a Conv (ops/conv.ts) runs as batch_norm;
// Softmax.
import type { OnnxOpTable } from '../context.js';

export const NORMALIZATION_ONNX_OPS: OnnxOpTable = {
  BatchNormalization: (n) => {
    if (n.int('training_mode', 0) === 1) n.fail('training_mode=1 is not supported (inference only)');
    if (n.outputCount > 1) n.fail('running mean/variance outputs are training-only');
    // Before opset 9, spatial=0 normalized each (C, H, W) position on its own: not what batch_norm does.
    n.oneOf('spatial', 1, [1]);
    const inputs = ['X', 'scale', 'B', 'mean', 'var'].map((what, i) => n.input(i, what));
    const attrs = { epsilon: n.float('epsilon', 1e-5), axis: 1 };
    n.set(0, n.b.emit(n.name, 'batch_norm', 'f32', inputs, attrs)[0]!);
  },
  Softmax: (n) => {
    // Opset 13 made Softmax one axis (default -1); before, it flattened to 2-D at `axis` (default 1).
    const coerce2d = n.opset >= 13 ? 0 : 1;
    const axis = n.int('axis', coerce2d ? 1 : -1);
    n.set(0, n.b.emit(n.name, 'softmax', 'f32', [n.input(0, 'input')], { axis, coerce2d })[0]!);
  },
};
