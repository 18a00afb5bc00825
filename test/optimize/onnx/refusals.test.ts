// What the ONNX importer says when it cannot take a model: missing op types one line each with their count
// and first node names, an opset outside the supported range, an input with a dimension only the user can
// fix (and the --input-shape fix itself), an attribute value a handler does not implement.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DynamicShapeError,
  importOnnx,
  ONNX_OPSETS,
  SUPPORTED_ONNX_OPS,
  UnsupportedAttributeError,
  UnsupportedOpsError,
  UnsupportedOpsetError,
} from '../../../optimize/onnx/import.js';
import { onnx, OnnxImportError } from '../../../optimize/onnx/onnx-proto.js';
import { buildModel, floatTensor, intTensor, type NodeSpec } from './build-model.js';

test('unsupported ops: one line per op type with its count and first node names, then the supported and folded ops', () => {
  const nodes: NodeSpec[] = [{ op: 'Relu', name: 'ok', inputs: ['x'], outputs: ['v0'] }];
  for (let i = 0; i < 9; i++)
    nodes.push({ op: 'LSTM', name: `p2o.LSTM.${i}`, inputs: [`v${i}`], outputs: [`v${i + 1}`] });
  nodes.push({ op: 'NonMaxSuppression', name: 'nms', inputs: ['v9'], outputs: ['y'] });
  const bytes = buildModel({
    nodes,
    inputs: [{ name: 'x', dims: [1, 4] }],
    outputs: [{ name: 'y', dims: [1, 4] }],
  });
  assert.throws(
    () => importOnnx(bytes),
    (error: unknown) => {
      assert.ok(error instanceof UnsupportedOpsError);
      assert.equal(error.code, 'unsupported-ops');
      assert.equal(error.nodes.length, 10);
      const lines = error.message.split('\n');
      assert.equal(lines[0], 'the model uses 2 op type(s) the importer lacks (10 node(s)):');
      assert.equal(lines[1], '  LSTM ×9 (p2o.LSTM.0, p2o.LSTM.1, p2o.LSTM.2, …)');
      assert.equal(lines[2], '  NonMaxSuppression ×1 (nms)');
      assert.equal(lines[3], `supported ops: ${SUPPORTED_ONNX_OPS.join(', ')}`);
      assert.match(lines[4]!, /^evaluated at import when their inputs are constants: .*Shape/);
      assert.equal(lines.length, 5);
      return true;
    },
  );
});

test('an op of another domain is named with its domain', () => {
  const bytes = buildModel({
    nodes: [{ op: 'Relu', name: 'r', inputs: ['x'], outputs: ['y'] }],
    inputs: [{ name: 'x', dims: [1, 4] }],
    outputs: [{ name: 'y', dims: [1, 4] }],
  });
  // Same bytes with the node moved to com.microsoft: the decoded model re-encoded.
  const model = onnx.ModelProto.decode(bytes);
  model.graph!.node![0]!.domain = 'com.microsoft';
  assert.throws(() => importOnnx(onnx.ModelProto.encode(model).finish()), /com\.microsoft\.Relu ×1 \(r\)/);
});

test('an opset outside the supported range names the domain and version', () => {
  for (const opset of [ONNX_OPSETS.min - 1, ONNX_OPSETS.max + 1]) {
    const bytes = buildModel({
      nodes: [{ op: 'Relu', name: 'r', inputs: ['x'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [1, 4] }],
      outputs: [{ name: 'y', dims: [1, 4] }],
      opset,
    });
    assert.throws(
      () => importOnnx(bytes),
      (error: unknown) =>
        error instanceof UnsupportedOpsetError &&
        error.code === 'unsupported-opset' &&
        error.version === opset &&
        error.message.startsWith(`the model imports opset ${opset} of domain "ai.onnx"`),
    );
  }
});

const dynamicModel = (): Uint8Array =>
  buildModel({
    nodes: [{ op: 'Relu', name: 'r', inputs: ['image'], outputs: ['y'] }],
    inputs: [{ name: 'image', dims: ['batch', 3, 'height', 'width'] }],
    outputs: [{ name: 'y', dims: ['batch', 3, 'height', 'width'] }],
  });

test('a symbolic dimension other than the batch names the input and the --input-shape flag', () => {
  assert.throws(
    () => importOnnx(dynamicModel()),
    (error: unknown) =>
      error instanceof DynamicShapeError &&
      error.code === 'dynamic-shape' &&
      error.input === 'image' &&
      error.message.includes('graph input "image" has a symbolic dimension 2 (height)') &&
      error.message.includes('--input-shape image=1,3,<height>,<width>'),
  );
});

test('--input-shape fixes the symbolic dimensions, and one that contradicts a fixed dimension is refused', () => {
  const content = importOnnx(dynamicModel(), { inputShapes: new Map([['image', [2, 3, 8, 6]]]) });
  const input = content.manifest.inputs[0]!;
  const shape = content.manifest.tensors[input.tensor]!.shape;
  // The compile pass declares an image input NHWC.
  assert.deepEqual(input.layout === 'NHWC' ? shape : [shape[0], shape[2], shape[3], shape[1]], [2, 8, 6, 3]);
  assert.throws(
    () => importOnnx(dynamicModel(), { inputShapes: new Map([['image', [1, 4, 8, 6]]]) }),
    (error: unknown) =>
      error instanceof DynamicShapeError &&
      /does not fit/.test(error.message) &&
      /image=1,4,8,6/.test(error.message),
  );
});

test('an attribute value a handler does not implement names the node and the attribute', () => {
  const bytes = buildModel({
    nodes: [
      {
        op: 'Conv',
        name: 'conv',
        inputs: ['x', 'w'],
        outputs: ['y'],
        attrs: { auto_pad: 'SAME_SIDEWAYS', kernel_shape: [1, 1] },
      },
    ],
    inputs: [{ name: 'x', dims: [1, 1, 4, 4] }],
    outputs: [{ name: 'y', dims: [1, 1, 4, 4] }],
    initializers: [floatTensor('w', [1, 1, 1, 1], [1])],
  });
  assert.throws(
    () => importOnnx(bytes),
    (error: unknown) =>
      error instanceof UnsupportedAttributeError &&
      error.code === 'unsupported-attribute' &&
      error.message.startsWith('node "conv" (Conv): attribute auto_pad=SAME_SIDEWAYS is not supported'),
  );
});

test('a cycle of Identity nodes feeding a per-channel Mul after a Conv is refused, not followed forever', () => {
  // The conv fusions follow Identity chains to the initializer a Mul reads; a hostile file's chain loops.
  const bytes = buildModel({
    nodes: [
      { op: 'Conv', name: 'conv', inputs: ['x', 'w'], outputs: ['y'] },
      { op: 'Identity', name: 'i1', inputs: ['s2'], outputs: ['s1'] },
      { op: 'Identity', name: 'i2', inputs: ['s1'], outputs: ['s2'] },
      { op: 'Mul', name: 'scale', inputs: ['y', 's1'], outputs: ['z'] },
    ],
    inputs: [{ name: 'x', dims: [1, 1, 4, 4] }],
    outputs: [{ name: 'z', dims: [1, 1, 4, 4] }],
    initializers: [floatTensor('w', [1, 1, 1, 1], [1])],
  });
  assert.throws(
    () => importOnnx(bytes),
    (error: unknown) =>
      error instanceof OnnxImportError && /"i1" \(Identity\).*not defined/.test(error.message),
  );
});

test('a Resize whose sizes change the batch axis is refused naming the node', () => {
  const bytes = buildModel({
    nodes: [
      {
        op: 'Resize',
        name: 'up',
        inputs: ['x', '', '', 'sizes'],
        outputs: ['y'],
        attrs: { mode: 'nearest' },
      },
    ],
    inputs: [{ name: 'x', dims: [1, 2, 4, 4] }],
    outputs: [{ name: 'y', dims: [2, 2, 8, 8] }],
    initializers: [intTensor('sizes', [4], [2, 2, 8, 8])],
  });
  assert.throws(
    () => importOnnx(bytes),
    (error: unknown) =>
      error instanceof OnnxImportError &&
      /"up" \(Resize\).*resizing the batch axis \(1 -> 2\) is not supported/.test(error.message),
  );
});
