// The layer shapes of the kernel benchmark, read from a checked-in JSON file (bench/shapes.json) and
// decoded with a schema at the edge.
import { readFileSync } from 'node:fs';

import { z } from 'zod';

import { uniformPadding } from '../native/index.js';
import { WhittleError } from '../native/whittle-error.js';

/** What every benchmark shape has: the name its rows are reported under. */
const namedShape = z.object({ name: z.string().min(1) });

const conv2dShape = namedShape
  .extend({
    kind: z.literal('conv2d'),
    inputChannels: z.number().int().min(1),
    outputChannels: z.number().int().min(1),
    /** Square kernel side. */
    kernel: z.number().int().min(1),
    /** Square input side. */
    inputSize: z.number().int().min(1),
    /** Same padding on every side. */
    padding: z.number().int().min(0),
    /** Same stride on both axes; 1 when absent (the stems of MobileNet-like models use 2). */
    stride: z.number().int().min(1).default(1),
    groups: z.number().int().min(1),
  })
  .strict()
  .refine((s) => s.inputChannels % s.groups === 0 && s.outputChannels % s.groups === 0, {
    message: 'inputChannels and outputChannels must be multiples of groups',
  })
  .refine((s) => s.inputSize + 2 * s.padding >= s.kernel, { message: 'the kernel is larger than the input' });

const fullyConnectedShape = namedShape
  .extend({
    kind: z.literal('fullyConnected'),
    inChannels: z.number().int().min(1),
    outChannels: z.number().int().min(1),
  })
  .strict();

const shapesFile = z.object({
  version: z.literal(1),
  shapes: z.array(z.discriminatedUnion('kind', [conv2dShape, fullyConnectedShape])).min(1),
});

export type Conv2dBenchShape = z.infer<typeof conv2dShape>;
export type FullyConnectedBenchShape = z.infer<typeof fullyConnectedShape>;
export type BenchShape = Conv2dBenchShape | FullyConnectedBenchShape;

/** A conv2d shape as the native create functions take it, at batch 1 (same padding and stride on both axes). */
export function conv2dDims(shape: Conv2dBenchShape) {
  return {
    batch: 1,
    inputHeight: shape.inputSize,
    inputWidth: shape.inputSize,
    inputChannels: shape.inputChannels,
    outputChannels: shape.outputChannels,
    kernelHeight: shape.kernel,
    kernelWidth: shape.kernel,
    ...uniformPadding(shape.padding),
    strideHeight: shape.stride,
    strideWidth: shape.stride,
    groups: shape.groups,
  };
}

/** A fully-connected shape as the native create functions take it, at batch 1. */
export function fullyConnectedDims(shape: FullyConnectedBenchShape) {
  return { batch: 1, inChannels: shape.inChannels, outChannels: shape.outChannels };
}

/** The shapes file is missing, not JSON, or does not match the schema. */
export class ShapesFileError extends WhittleError {
  override readonly name = 'ShapesFileError';
  readonly code = 'bad-shapes-file';
}

export function parseShapes(text: string, source: string): BenchShape[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ShapesFileError(`${source} is not JSON: ${(error as Error).message}`);
  }
  const parsed = shapesFile.safeParse(json);
  if (!parsed.success)
    throw new ShapesFileError(
      `${source} is not a shapes file (version 1, shapes: conv2d or fullyConnected): ` +
        parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
    );
  const names = new Set<string>();
  for (const shape of parsed.data.shapes) {
    if (names.has(shape.name))
      throw new ShapesFileError(`${source}: shape name "${shape.name}" appears twice`);
    names.add(shape.name);
  }
  return parsed.data.shapes;
}

export function readShapes(path: string): BenchShape[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ShapesFileError(`Cannot read the shapes file ${path}: ${(error as Error).message}`);
  }
  return parseShapes(text, path);
}

/** Output side of a conv2d shape. */
export function outputSize(s: Conv2dBenchShape): number {
  return Math.floor((s.inputSize + 2 * s.padding - s.kernel) / s.stride) + 1;
}

/** Multiply-accumulates of one run (batch 1). */
export function macs(s: BenchShape): number {
  if (s.kind === 'fullyConnected') return s.inChannels * s.outChannels;
  const o = outputSize(s);
  return o * o * s.outputChannels * s.kernel * s.kernel * (s.inputChannels / s.groups);
}
