// The typed refusals of the ONNX importer beyond a malformed file (OnnxImportError, onnx-proto.ts) and
// missing op types (UnsupportedOpsError, import.ts): each names what to change and, where one exists, the
// flag that changes it.
import { whittleError } from '../../native/whittle-error.js';

/** A model input with a dimension that is neither a number nor the batch: `--input-shape` fixes it. */
export class DynamicShapeError extends whittleError('DynamicShapeError', 'dynamic-shape') {
  constructor(
    readonly input: string,
    readonly dims: readonly (number | string)[],
    why: string,
  ) {
    super(
      `graph input "${input}" ${why}; the memory plan is static, so give its shape with ` +
        `--input-shape ${input}=${dims.map(String).join(',')} (e.g. --input-shape ${input}=1,3,224,224)`,
    );
  }
}

/** A model whose default-domain opset the handlers were not written for. */
export class UnsupportedOpsetError extends whittleError('UnsupportedOpsetError', 'unsupported-opset') {
  constructor(
    readonly domain: string,
    readonly version: number,
    readonly supported: { min: number; max: number },
  ) {
    super(
      `the model imports opset ${version} of domain "${domain || 'ai.onnx'}"; the importer supports ` +
        `ai.onnx opsets ${supported.min} to ${supported.max} (re-export it, e.g. torch.onnx.export(..., opset_version=13))`,
    );
  }
}

/** A node whose attribute asks for something its handler does not compute: refused rather than computed
 * differently. */
export class UnsupportedAttributeError extends whittleError(
  'UnsupportedAttributeError',
  'unsupported-attribute',
) {
  constructor(
    readonly node: string,
    readonly opType: string,
    readonly attribute: string,
    value: string,
    supported: string,
  ) {
    super(
      `node "${node}" (${opType}): attribute ${attribute}=${value} is not supported (supported: ${supported})`,
    );
  }
}
