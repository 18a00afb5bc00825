// Entry of the script bench/arm-bit-exact.ts bundles into an emulated device:
//   node package-outputs.mjs PACKAGE INPUT.f32 COUNT OUT
// INPUT.f32 holds COUNT fp32 inputs back to back; OUT receives top1 (COUNT bytes) then the raw int8 scores;
// stdout one JSON line {arch, isa, ms}.
import { readFileSync, writeFileSync } from 'node:fs';

import { readPackageFile } from '../agent/package/reader.js';
import { packageOutputs } from './package-outputs.js';

const [packagePath, inputPath, countText, outPath] = process.argv.slice(2);
if (!packagePath || !inputPath || !countText || !outPath) {
  console.error('usage: package-outputs.mjs PACKAGE INPUT.f32 COUNT OUT');
  process.exit(2);
}
// Copied into a fresh buffer: a Buffer's offset into its pool need not be a multiple of 4.
const input = new Float32Array(new Uint8Array(readFileSync(inputPath)).buffer);
// The hash is checked; the signature is the manager's concern, not this comparison's.
const pkg = readPackageFile(packagePath, { allowUnsigned: true, cpuFamily: null });
const out = packageOutputs(pkg, input, Number(countText));
writeFileSync(outPath, Buffer.concat([out.top1, new Uint8Array(out.raw.buffer)]));
console.log(JSON.stringify({ arch: out.arch, isa: out.isa, ms: out.ms }));
