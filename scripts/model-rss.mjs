// node --expose-gc scripts/model-rss.mjs DIST [LAYERS] [SIZE]
// The resident memory a model takes in the runtime built in DIST (a dist/ directory): a package of LAYERS
// hashed fully-connected layers of SIZE x SIZE weights (1/8 of them as buckets) is read, then loaded with
// Model.fromPackage; prints JSON with the RSS growth of the load (after a GC) and the model's own report
// (weightBytes, scratchBytes). Run it against two builds to compare them (docs/benchmarks.md).
import { generateKeyPairSync } from 'node:crypto';
import { join, resolve } from 'node:path';

const [dist, layersArg = '4', sizeArg = '2000'] = process.argv.slice(2);
if (dist === undefined || typeof globalThis.gc !== 'function') {
  console.error('usage: node --expose-gc scripts/model-rss.mjs DIST [LAYERS] [SIZE]');
  process.exit(2);
}
const layers = Number(layersArg);
const size = Number(sizeArg);
const from = (path) => import(join(resolve(dist), path));
const { encodeHashed, encodeRaw } = await from('agent/package/encodings.js');
const { readPackage } = await from('agent/package/reader.js');
const { Model } = await from('agent/runtime/model.js');
const { samplePackageContent } = await from('optimize/package/sample-package.js');
const { writePackage } = await from('optimize/package/writer.js');

const keys = generateKeyPairSync('ed25519');
const base = samplePackageContent().manifest;
const tensors = [{ name: 'x', dtype: 'f32', shape: [1, size] }];
const constants = new Map();
const nodes = [];
let seed = 1;
const weights = new Float32Array(size * size);
for (let l = 0; l < layers; l++) {
  for (let i = 0; i < weights.length; i++) weights[i] = Math.sin(i * 0.618 + l) * 0.05;
  const w = tensors.length;
  tensors.push({ name: `w${l}`, dtype: 'f32', shape: [size, size] });
  tensors.push({ name: `b${l}`, dtype: 'f32', shape: [size] });
  tensors.push({ name: `y${l}`, dtype: 'f32', shape: [1, size] });
  constants.set(w, encodeHashed(weights, Math.ceil(weights.length / 8), seed++));
  constants.set(w + 1, encodeRaw(new Float32Array(size)));
  nodes.push({
    name: `fc${l}`,
    op: 'fully_connected',
    format: 'hashed',
    inputs: [l === 0 ? 0 : w - 1, w, w + 1],
    outputs: [w + 2],
    attrs: { min: 0 },
  });
}
const manifest = {
  ...base,
  inputs: [{ name: 'x', tensor: 0, layout: 'NHWC' }],
  outputs: [{ name: 'y', tensor: tensors.length - 1 }],
  tensors,
  nodes,
};
const pkg = readPackage(writePackage({ constants, manifest }, keys.privateKey), {
  publicKey: keys.publicKey,
});
globalThis.gc();
const before = process.memoryUsage();
const model = Model.fromPackage(pkg);
globalThis.gc();
const after = process.memoryUsage();
model.run([new Float32Array(size).fill(0.01)]);
const mib = (bytes) => Math.round((bytes / 2 ** 20) * 10) / 10;
console.log(
  JSON.stringify({
    dist,
    layers,
    size,
    kernel: model.layers[0].kernel,
    rss_load_mib: mib(after.rss - before.rss),
    array_buffers_load_mib: mib(after.arrayBuffers - before.arrayBuffers),
    weight_bytes: model.weightBytes,
    scratch_bytes: model.scratchBytes,
  }),
);
