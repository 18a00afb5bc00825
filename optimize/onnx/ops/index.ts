// ONNX_OPS: every ONNX op type the importer converts, merged from one table per op family in this folder
// (the handler signature is documented in ../context.ts). SUPPORTED_ONNX_OPS, the refusal message and the
// conformance tests all read this table: adding an op is adding an entry to its family's table.
import type { OnnxOpTable } from '../context.js';
import { CONV_ONNX_OPS } from './conv.js';
import { ELEMENTWISE_ONNX_OPS } from './elementwise.js';
import { LAYOUT_ONNX_OPS } from './layout.js';
import { MATMUL_ONNX_OPS } from './matmul.js';
import { NORMALIZATION_ONNX_OPS } from './normalization.js';
import { POOL_ONNX_OPS } from './pool.js';
import { QOPERATOR_ONNX_OPS } from './qoperator.js';
import { QUANTIZE_ONNX_OPS } from './quantize.js';
import { RESIZE_ONNX_OPS } from './resize.js';

export const ONNX_OPS: OnnxOpTable = {
  ...CONV_ONNX_OPS,
  ...MATMUL_ONNX_OPS,
  ...POOL_ONNX_OPS,
  ...ELEMENTWISE_ONNX_OPS,
  ...NORMALIZATION_ONNX_OPS,
  ...LAYOUT_ONNX_OPS,
  ...QUANTIZE_ONNX_OPS,
  ...QOPERATOR_ONNX_OPS,
  ...RESIZE_ONNX_OPS,
};

/** The ONNX op types the importer converts (outside the default domain as "domain.OpType"). */
export const SUPPORTED_ONNX_OPS: readonly string[] = Object.keys(ONNX_OPS);
