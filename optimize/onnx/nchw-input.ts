// An ONNX model as PyTorch exports it: Whittle's exporter keeps a package's NHWC input, PyTorch's takes
// NCHW. Used to check and measure the import of such models (the compile tests, `bench compile-ab`).
import { decodeModel, onnx } from './onnx-proto.js';

/** Whittle's exporter keeps the package's NHWC input; a PyTorch export takes NCHW. The model with an NCHW
 * input transposed to the NHWC one, as a PyTorch model's first layers see it. */
export function withNchwInput(bytes: Uint8Array): Uint8Array {
  const model = decodeModel(bytes, 'export');
  const input = model.graph!.input![0]!;
  const dims = input.type!.tensorType!.shape!.dim!;
  const nhwcName = input.name!;
  const nchw = {
    name: `${nhwcName}_nchw`,
    type: { tensorType: { elemType: 1, shape: { dim: [dims[0]!, dims[3]!, dims[1]!, dims[2]!] } } },
  };
  model.graph!.input = [nchw, ...model.graph!.input!.slice(1)];
  model.graph!.node = [
    {
      opType: 'Transpose',
      name: 'input_to_nhwc',
      input: [nchw.name],
      output: [nhwcName],
      attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [0, 2, 3, 1] }],
    },
    ...model.graph!.node!,
  ];
  return onnx.ModelProto.encode(model).finish();
}
