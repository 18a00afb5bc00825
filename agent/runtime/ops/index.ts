// The registry of the runtime's operators.
//
// REFERENCE_OPS holds each op's definition (attributes, shape inference, MAC count) with one TypeScript
// reference executor per number format it supports, grouped by family in this folder; the reference
// executors are the oracle. EXECUTORS is the one list of (op, format) pairs: each pair's reference executor
// and, where the kernel library has one, its native factory (native-executors.ts NATIVE_EXECUTORS). What
// the runtime prepares nodes with (OPS: model.ts, unsupportedNodes), the benchmark's compressed formats
// (bench/format-layers.ts) and the native-against-reference tests all come from this list, so a native
// factory added to NATIVE_EXECUTORS runs, is benchmarked and is tested without another list to edit.
import type { Format as FormatKernelName } from '../../../native/formats.js';
import type { NumberFormat } from '../../package/manifest.js';
import type { ExecutorFactory, NativeFactory, OpDefinition } from '../executor.js';
import { formatKernelName, NATIVE_EXECUTORS, nativeAvailable } from '../native-executors.js';
import { CONV_OPS } from './conv.js';
import { ELEMENTWISE_OPS } from './elementwise.js';
import { LAYOUT_OPS } from './layout.js';
import { MATMUL_OPS } from './matmul.js';
import { NORMALIZATION_OPS } from './normalization.js';
import { POOL_OPS } from './pool.js';
import { QUANTIZE_OPS } from './quantize.js';
import { QUANTIZED_CONV_OPS } from './quantized-conv.js';
import { REDUCE_OPS } from './reduce.js';
import { RESIZE_OPS } from './resize.js';

const REFERENCE_OPS = {
  ...CONV_OPS,
  ...QUANTIZED_CONV_OPS,
  ...MATMUL_OPS,
  ...POOL_OPS,
  ...ELEMENTWISE_OPS,
  ...LAYOUT_OPS,
  ...QUANTIZE_OPS,
  ...NORMALIZATION_OPS,
  ...REDUCE_OPS,
  ...RESIZE_OPS,
} satisfies Record<string, OpDefinition>;

/** An op of the IR (a key of the registry). */
export type OpName = keyof typeof REFERENCE_OPS;

/** One (op, number format) pair the runtime executes. */
export interface ExecutorEntry {
  readonly op: OpName;
  readonly format: NumberFormat;
  /** The TypeScript reference executor: always there, the oracle the native one is tested against. */
  readonly reference: ExecutorFactory;
  /** The native kernel's factory, where the kernel library has one for the pair. */
  readonly native?: NativeFactory;
}

const opNames = Object.keys(REFERENCE_OPS) as OpName[];

export const EXECUTORS: readonly ExecutorEntry[] = opNames.flatMap((op) =>
  Object.entries(REFERENCE_OPS[op].executors).map(([key, reference]): ExecutorEntry => {
    const format = key as NumberFormat;
    const native = NATIVE_EXECUTORS[op]?.[format];
    return native === undefined ? { op, format, reference } : { op, format, reference, native };
  }),
);

/** The pair's executor as the runtime prepares it: native first (when the addon loads, the model does not ask
 * for the reference, and the kernel takes the node), the reference otherwise. */
function nativeFirst({ reference, native }: ExecutorEntry): ExecutorFactory {
  if (native === undefined) return reference;
  return (context) =>
    (context.referenceOnly === true || !nativeAvailable() ? undefined : native(context)) ??
    reference(context);
}

/** Every op's definition with the executors the runtime prepares nodes with. */
export const OPS: Readonly<Record<string, OpDefinition>> = Object.fromEntries(
  opNames.map((op) => [
    op,
    {
      ...REFERENCE_OPS[op],
      executors: Object.fromEntries(
        EXECUTORS.filter((entry) => entry.op === op).map((entry) => [entry.format, nativeFirst(entry)]),
      ),
    },
  ]),
);

/** The compressed weight formats whose conv2d layers run on a native kernel of their own, by the kernels'
 * names (native/formats.ts FORMAT_LAYERS), in registry order: what bench/format-layers.ts measures. */
export const NATIVE_FORMAT_KERNELS: readonly FormatKernelName[] = [
  // Once each: several number formats may share a kernel (sparse-codebook runs on the sparse kernels).
  ...new Set(
    EXECUTORS.flatMap((entry) => {
      const name = entry.op === 'conv2d' && entry.native ? formatKernelName(entry.format) : undefined;
      return name === undefined ? [] : [name];
    }),
  ),
];
