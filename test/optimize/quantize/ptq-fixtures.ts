// What the hand-built quantizer graphs share (ptq-graph.test.ts, ptq-v3.test.ts): a package read back from
// its bytes, and seeded values.
import { generateKeyPairSync } from 'node:crypto';

import { type Package, readPackage } from '../../../agent/package/reader.js';
import { type PackageContent, writePackage } from '../../../optimize/package/writer.js';

const { privateKey } = generateKeyPairSync('ed25519');

/** The package `content` as the runtime reads it from disk. */
export const read = (content: PackageContent): Package =>
  readPackage(writePackage(content, privateKey), { allowUnsigned: true, cpuFamily: null });

/** Deterministic values in [-scale, scale) (a linear congruential generator; Math.random is not seedable). */
export function values(count: number, seed: number, scale = 1): Float32Array {
  let s = seed;
  return Float32Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  });
}
