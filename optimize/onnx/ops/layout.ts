// Layout and plumbing: Constant, Concat, Flatten, Reshape, Transpose, and the inference identities
// Dropout and Identity.
import { elements } from '../../../agent/runtime/tensor.js';
import type { OnnxOpTable } from '../context.js';
import { ElemType, type OnnxTensor } from '../onnx-proto.js';

export const LAYOUT_ONNX_OPS: OnnxOpTable = {
  Constant: (n) => {
    // A constant tensor (PyTorch writes Clip's bounds and Reshape's shape so): an initializer by another
    // name. Its value comes in one of several attributes (opset 12 added the scalar and list forms).
    const output = n.proto.output?.[0] ?? n.name;
    const scalarOrList = (elemType: number, values: number[], scalar: boolean): OnnxTensor => ({
      name: output,
      elemType,
      dims: scalar ? [] : [values.length],
      data: elemType === ElemType.FLOAT ? Float32Array.from(values) : values,
    });
    const value = n.attrs.has('value')
      ? n.tensor('value')
      : n.attrs.has('value_float')
        ? scalarOrList(ElemType.FLOAT, [n.float('value_float', 0)], true)
        : n.attrs.has('value_floats')
          ? scalarOrList(ElemType.FLOAT, n.floats('value_floats', []), false)
          : n.attrs.has('value_int')
            ? scalarOrList(ElemType.INT64, [n.int('value_int', 0)], true)
            : n.attrs.has('value_ints')
              ? scalarOrList(ElemType.INT64, n.ints('value_ints', []), false)
              : undefined;
    if (value === undefined)
      return n.fail(
        `attribute ${[...n.attrs.keys()].join(', ') || '(none)'} is not supported (value, value_float(s) and value_int(s) are)`,
      );
    n.ctx.declareConstant(value, output);
  },
  Concat: (n) => {
    const inputs = (n.proto.input ?? []).map((_, i) => n.input(i, `input ${i}`));
    n.set(0, n.emit('concat', inputs, { axis: n.int('axis', 0) }));
  },
  Flatten: (n) => {
    const x = n.input(0, 'input');
    const shape = n.b.tensors[x]!.shape;
    let axis = n.int('axis', 1);
    if (axis < 0) axis += shape.length;
    if (axis < 0 || axis > shape.length) n.fail(`axis ${axis} outside rank ${shape.length}`);
    // [-1, inner] rather than fixed numbers, so the package still runs at any batch size.
    const target = axis === 0 ? [1, -1] : [-1, elements(shape.slice(axis))];
    n.set(0, n.emit('reshape', [x], { shape: target }));
  },
  Reshape: (n) => {
    const x = n.input(0, 'data');
    const shape = n.opset >= 5 ? n.constant(1, 'shape') : n.ints('shape', []);
    n.set(0, n.emit('reshape', [x], { shape, allowzero: n.int('allowzero', 0) }));
  },
  Transpose: (n) => {
    const x = n.input(0, 'data');
    const rank = n.b.tensors[x]!.shape.length;
    n.set(0, n.emit('transpose', [x], { perm: n.ints('perm', [...Array(rank).keys()].reverse()) }));
  },
  Dropout: (n) => {
    const x = n.input(0, 'input');
    if (n.optional(2) >= 0) {
      // Training-mode dropout is random; it is the identity only when it is off or its ratio is 0.
      const training = n.constant(2, 'training_mode')[0] !== 0;
      const ratio = n.optional(1) >= 0 ? n.constant(1, 'ratio')[0]! : 0.5;
      if (training && ratio !== 0)
        n.fail('training-mode dropout (random) is not supported; export the model in eval mode');
    }
    // Inference: Dropout is the identity; its mask output (if asked for) is all true.
    n.set(0, n.emit('identity', [x]));
    if (n.proto.output?.[1]) {
      const shape = n.b.tensors[x]!.shape;
      n.set(1, n.b.constant(`${n.name}.mask`, 'bool', [...shape], new Uint8Array(elements(shape)).fill(1)));
    }
  },
  Identity: (n) => n.set(0, n.emit('identity', [n.input(0, 'input')])),
};
