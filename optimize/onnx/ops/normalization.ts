// Normalization: BatchNormalization that could not fold into a Conv (ops/conv.ts) runs as batch_norm;
// Softmax; LayerNormalization (opset 17) and InstanceNormalization.
import type { OnnxOpTable } from '../context.js';

export const NORMALIZATION_ONNX_OPS: OnnxOpTable = {
  LayerNormalization: (n) => {
    n.oneOf('stash_type', 1, [1]);
    const x = n.input(0, 'X');
    const [axis, epsilon] = [n.int('axis', -1), n.float('epsilon', 1e-5)];
    n.set(0, n.emit('layer_norm', [x, n.input(1, 'Scale'), n.optional(2)], { axis, epsilon }));
    if (n.outputCount > 1) {
      // The optional Mean and InvStdDev outputs, over the normalized axes kept as 1s.
      const rank = n.b.tensors[x]!.shape.length;
      const axes = [...Array(rank).keys()].slice(axis < 0 ? axis + rank : axis);
      const mean = n.emit('reduce_mean', [x], { axes, keepdims: 1 }, 'mean');
      const centered = n.emit('sub', [x, mean], {}, 'centered');
      const squares = n.emit('mul', [centered, centered], {}, 'squares');
      const variance = n.emit('reduce_mean', [squares], { axes, keepdims: 1 }, 'variance');
      const eps = n.b.constant(`${n.name}.epsilon`, 'f32', [], [epsilon]);
      const std = n.emit('sqrt', [n.emit('add', [variance, eps], {}, 'shifted')], {}, 'std');
      const one = n.b.constant(`${n.name}.one`, 'f32', [], [1]);
      n.set(1, mean);
      n.set(2, n.emit('div', [one, std], {}, 'inv_std'));
    }
  },
  InstanceNormalization: (n) => {
    const inputs = [n.input(0, 'input'), n.input(1, 'scale'), n.input(2, 'B')];
    n.set(0, n.emit('instance_norm', inputs, { axis: 1, epsilon: n.float('epsilon', 1e-5) }));
  },
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
