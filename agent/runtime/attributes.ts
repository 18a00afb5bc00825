// The one set of readers of a node's attributes and inputs, shared by the op definitions (ops/), the native
// executors (native-executors.ts) and the fixed-point layers (fixed-point-layer.ts). Every problem is a
// GraphError naming the node.
import type { ManifestNode } from '../package/manifest.js';
import type { PrepareContext } from './executor.js';
import { GraphError } from './graph-error.js';
import type { TensorData, TensorSpec } from './tensor.js';

export function intsAttr(
  node: ManifestNode,
  name: string,
  length: number,
  fallback: number[],
  min = 0,
): number[] {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (
    !Array.isArray(value) ||
    value.length !== length ||
    value.some((v) => !Number.isInteger(v) || v < min || v > 1 << 24)
  ) {
    throw new GraphError(
      `attribute ${name} must be ${length} integers >= ${min}, got ${JSON.stringify(value)}`,
      node.name,
    );
  }
  return value;
}

/** A list of integers of any length (slice bounds, gather indices, sizes); safe integers only. */
export function intListAttr(node: ManifestNode, name: string, fallback: number[]): number[] {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (!Array.isArray(value) || value.some((v) => !Number.isSafeInteger(v))) {
    throw new GraphError(
      `attribute ${name} must be a list of integers, got ${JSON.stringify(value)}`,
      node.name,
    );
  }
  return value;
}

export function intAttr(
  node: ManifestNode,
  name: string,
  fallback: number,
  min = -(1 << 24),
  max = 1 << 24,
): number {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new GraphError(
      `attribute ${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`,
      node.name,
    );
  }
  return value;
}

/** A number attribute: any number but NaN (infinities bound nothing, as a missing min / max). */
export function numberAttr(node: ManifestNode, name: string, fallback: number): number {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value))
    throw new GraphError(`attribute ${name} must be a number, got ${JSON.stringify(value)}`, node.name);
  return value;
}

export function stringAttr<T extends string>(
  node: ManifestNode,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const value = node.attrs[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new GraphError(
      `attribute ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`,
      node.name,
    );
  }
  return value as T;
}

export function input(
  node: ManifestNode,
  inputs: readonly (TensorSpec | undefined)[],
  index: number,
  what: string,
): TensorSpec {
  const spec = inputs[index];
  if (spec === undefined) throw new GraphError(`input ${index} (${what}) is missing`, node.name);
  return spec;
}

export function expect(condition: boolean, node: ManifestNode, message: string): asserts condition {
  if (!condition) throw new GraphError(message, node.name);
}

export function normalizeAxis(node: ManifestNode, axis: number, rank: number): number {
  expect(axis >= -rank && axis < Math.max(rank, 1), node, `axis ${axis} is outside a rank-${rank} tensor`);
  return axis < 0 ? axis + rank : axis;
}

export const scalarOrChannel = (values: readonly number[], o: number): number =>
  values.length === 1 ? values[0]! : values[o]!;

export function needQuant(
  node: ManifestNode,
  spec: TensorSpec,
  what: string,
): { scale: number[]; zeroPoint: number[] } {
  expect(spec.quant !== undefined, node, `${what} needs a scale and zero point`);
  return spec.quant;
}

export function isInt8(spec: TensorSpec): boolean {
  return spec.dtype === 'i8' || spec.dtype === 'u8';
}

/** Data of input i: a constant baked at prepare time, or the runtime tensor. */
export function pick(
  context: PrepareContext,
  inputs: readonly (TensorData | undefined)[],
  i: number,
): TensorData | undefined {
  return context.constants[i] ?? inputs[i];
}
