// Normalization: BatchNormalization that could not fold into a Conv (ops/conv.ts) runs as batch_norm;
// Softmax; LayerNormalization (opset 17) and InstanceNormalization.
import type { OnnxOpTable } from '../context.js';

export const NORMALIZATION_ONNX_OPS: OnnxOpTable = {
  LayerNormalization: (n) => {
    if (n.outputCount > 1) n.fail('the Mean and InvStdDev outputs are training-only');
    n.oneOf('stash_type', 1, [1]);
    const inputs = [n.input(0, 'X'), n.input(1, 'Scale'), n.optional(2)];
    n.set(0, n.emit('layer_norm', inputs, { axis: n.int('axis', -1), epsilon: n.float('epsilon', 1e-5) }));
  },
  InstanceNormalization: (n) => {
    const inputs = [n.input(0, 'input'), n.input(1, 'scale'), n.input(2, 'B')];
    n.set(0, n.emit('instance_norm', inputs, { axis: 1, epsilon: n.float('epsilon', 1e-5) }));
  },
  BatchNormalization: (n) => {
    if (n.int('training_mode', 0) === 1) n.fail('training_mode=1 is not supported (inference only)');
    if (n.outputCount > 1) n.fail('running mean/variance outputs are training-only');
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
