// The latency table's schema and parser (agent/profile/latency-table.ts measures tables), in a module that
// imports nothing of Node's, so the API contract (electron/api/contract.ts), which the renderer type-checks,
// can carry tables.
import { z } from 'zod';

import { whittleError } from '../../native/whittle-error.js';
import { NUMBER_FORMATS, type NumberFormat } from '../package/number-formats.js';

/** The layer kinds a latency table times. `conv2d` covers depthwise (groups = channels) too; `call` is the
 * smallest native plan call (a clip of one value): the cost of a run with nothing in it; `ts_step` is one
 * node on a TypeScript executor between native runs (a one-element sub); `network` is a whole small network
 * (latency-graphs.ts networkGraph: a stem, three stages, a classifier in mixed formats, its structure drawn
 * from `seed`), timed end to end for the predictor's per-model term. */
export const LATENCY_OPS = [
  'conv2d',
  'fully_connected',
  'max_pool',
  'avg_pool',
  'global_avgpool',
  'add',
  'concat',
  'channel_shuffle',
  'clip',
  'reshape',
  'quantize',
  'dequantize',
  'softmax',
  'call',
  'ts_step',
  'network',
] as const;
export type LatencyOp = (typeof LATENCY_OPS)[number];

/** One grid point: a layer kind in a number format at one shape. Spatial sizes are square; `elements` is the
 * tensor size of the elementwise and edge kinds. */
export interface LatencyPoint {
  op: LatencyOp;
  format: NumberFormat;
  /** Input side (conv2d, pools). */
  size?: number;
  /** Input channels (conv2d, fully_connected, pools). */
  inC?: number;
  /** Output channels (conv2d, fully_connected). */
  outC?: number;
  kernel?: number;
  stride?: number;
  /** conv2d: groups = inC = outC. */
  depthwise?: boolean;
  /** conv2d: a grouped conv of this many groups (inC and outC split evenly; the kernels run once per group). */
  groups?: number;
  /** add, concat, channel_shuffle, quantize, dequantize, softmax: elements of the (each) input. */
  elements?: number;
  /** sparse and sparse-codebook layers: the fraction of weights pruned (default SPARSITY). */
  sparsity?: number;
  /** network: the seed its structure is drawn from. */
  seed?: number;
}

/** A point's stable key, e.g. `conv2d/int8/k3s1/r16/c16-32` (table entries are matched by it). */
export function latencyKey(p: LatencyPoint): string {
  const parts: string[] = [p.op, p.format];
  if (p.kernel !== undefined)
    parts.push(
      `k${p.kernel}s${p.stride ?? 1}${p.depthwise === true ? 'dw' : ''}${p.groups !== undefined ? `g${p.groups}` : ''}`,
    );
  if (p.size !== undefined) parts.push(`r${p.size}`);
  if (p.inC !== undefined) parts.push(p.outC !== undefined ? `c${p.inC}-${p.outC}` : `c${p.inC}`);
  if (p.elements !== undefined) parts.push(`n${p.elements}`);
  if (p.sparsity !== undefined) parts.push(`p${Math.round(p.sparsity * 100)}`);
  if (p.seed !== undefined) parts.push(`seed${p.seed}`);
  return parts.join('/');
}

/** 3: an entry is its point's warm run, the lower quartile of its samples timed in blocks of its own spread
 * over the measurement (`block_ms`: each block's). Refused: 2 (one block per point: its entries carry that
 * block's placement and moment, a median 3 %, p90 10 %) and 1 (the median of rounds interleaved with other
 * points); their times are not comparable. */
export const LATENCY_TABLE_VERSION = 3;

/** A latency table that cannot be used: malformed, another table_version, another kernel build, another grid. */
export class LatencyTableError extends whittleError('LatencyTableError', 'bad-latency-table') {}

const Count = z.number().int().min(0);
const Conditions = z
  .object({ temps_c: z.array(z.number().finite()), freq_khz: z.array(z.number().finite().min(0)) })
  .strict();

const PointSchema = z
  .object({
    op: z.enum(LATENCY_OPS),
    format: z.enum(NUMBER_FORMATS),
    size: Count.optional(),
    inC: Count.optional(),
    outC: Count.optional(),
    kernel: Count.optional(),
    stride: Count.optional(),
    depthwise: z.boolean().optional(),
    groups: z.number().int().min(1).optional(),
    elements: Count.optional(),
    sparsity: z.number().min(0).max(1).optional(),
    seed: Count.optional(),
  })
  .strict();

export const LatencyEntrySchema = z
  .object({
    /** latencyKey(shape): matches grid points and entries. */
    key: z.string().min(1).max(256),
    /** The op as the runtime ran it, after the compile pass: e.g. `conv2d+relu` (the clip fused), `qconv2d`. */
    op: z.string().min(1).max(64),
    format: z.enum(NUMBER_FORMATS),
    /** The kernel the runtime chose (LayerInfo.kernel), e.g. a microkernel name or `reference:conv2d_hashed`. */
    kernel: z.string().max(256),
    shape: PointSchema,
    /** Multiply-accumulates of the layer (0 for the elementwise and edge kinds). */
    macs: Count,
    /** Elements the layer reads (its inputs, activations only) and writes. */
    in_elements: Count,
    out_elements: Count,
    /** The fraction of the weights the kernel reads (weightDensity: below 1 for the sparse formats). */
    density: z.number().min(0).max(1),
    /** Bytes of its weights as the runtime holds them. */
    weight_bytes: Count,
    /** Calls a run makes: native plan calls plus TypeScript steps. */
    calls: Count,
    /** Milliseconds of one warm batch-1 run of the graph, its call overhead included (latency-table.ts
     * latencyStatistic: the median of its blocks' lower quartiles). */
    ms: z.number().finite().min(0),
    /** Each block's own statistic, in the order timed (absent in a table estimated rather than measured). */
    block_ms: z.array(z.number().finite().min(0)).min(1).max(64).optional(),
    /** Runs made in all (the warm-up and the samples). */
    runs: z.number().int().min(1),
  })
  .strict();
export type LatencyEntry = z.infer<typeof LatencyEntrySchema>;

export const LatencyTableSchema = z
  .object({
    table_version: z.literal(LATENCY_TABLE_VERSION),
    build_hash: z.string().min(1).max(64),
    isa: z.string().min(1).max(64),
    threads: z.number().int().min(1).max(64),
    grid_id: z.string().min(1).max(64),
    complete: z.boolean(),
    /** ms since the epoch, when the measurement finished (or stopped). */
    measured_at: z.number().int().min(0),
    conditions: z.object({ before: Conditions, after: Conditions }).strict(),
    entries: z.array(LatencyEntrySchema).max(100000),
  })
  .strict();
export type LatencyTable = z.infer<typeof LatencyTableSchema>;

/** Decodes a stored or received table; refuses (LatencyTableError) one that is malformed, of another
 * table_version, measured with another kernel build (`expect.buildHash`) or over another grid
 * (`expect.gridId`), or whose entries repeat a key. */
export function parseLatencyTable(
  value: unknown,
  expect: { buildHash?: string; gridId?: string } = {},
): LatencyTable {
  if (typeof value === 'object' && value !== null && 'table_version' in value) {
    const version = value.table_version;
    if (version !== LATENCY_TABLE_VERSION)
      throw new LatencyTableError(
        `latency table version ${JSON.stringify(version)} cannot be read; this agent reads version ${LATENCY_TABLE_VERSION}: measure the table again`,
      );
  }
  const parsed = LatencyTableSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(table)'}: ${i.message}`)
      .join('; ');
    throw new LatencyTableError(`malformed latency table: ${issues}`);
  }
  const table = parsed.data;
  if (expect.buildHash !== undefined && table.build_hash !== expect.buildHash)
    throw new LatencyTableError(
      `the latency table was measured with kernel build ${table.build_hash}; this device runs build ${expect.buildHash}: measure it again`,
    );
  if (expect.gridId !== undefined && table.grid_id !== expect.gridId)
    throw new LatencyTableError(
      `the latency table is over grid ${table.grid_id}, not the expected grid ${expect.gridId}`,
    );
  const keys = new Set<string>();
  for (const entry of table.entries) {
    if (keys.has(entry.key))
      throw new LatencyTableError(`malformed latency table: entry ${entry.key} appears twice`);
    if (entry.key !== latencyKey(entry.shape))
      throw new LatencyTableError(`malformed latency table: entry ${entry.key} does not match its shape`);
    keys.add(entry.key);
  }
  return table;
}
