// Fuzzes Whittle's readers of untrusted files, one entry each in FUZZ_READERS: the package reader (and,
// through `target`, anything that loads a package) on mutated, truncated, re-signed and random packages;
// the ONNX importer (fuzz-onnx.ts) on mutated real ONNX models; the TFLite reader and importer
// (fuzz-tflite.ts) on damaged sample .tflite models. A run passes when every input is either
// accepted or refused with a typed error, and none takes longer than the hang limit. Used by the test suite
// (bounded runs) and by `npm run bench -- fuzz [--reader package,onnx] --iterations N`.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';

import { PackageError } from '../agent/package/errors.js';
import {
  HEADER_SIZE,
  ManifestEncoding,
  SECTION_ALIGNMENT,
  SECTION_ENTRY_SIZE,
  TRAILER_SIZE,
} from '../agent/package/layout.js';
import { MANIFEST_DICTIONARY_V1 } from '../agent/package/manifest-dictionary.js';
import { readPackage } from '../agent/package/reader.js';
import { keyId, sha256, signDigest } from '../agent/package/signing.js';
import { GraphError, MemoryBudgetError } from '../agent/runtime/graph-error.js';
import { Model } from '../agent/runtime/model.js';
import { samplePackageContent, samplePlanarInt8Content } from '../optimize/package/sample-package.js';
import { writePackage } from '../optimize/package/writer.js';
import { SeededRandom } from '../optimize/seeded-random.js';
import { onnxReader } from './fuzz-onnx.js';
import { tfliteReader } from './fuzz-tflite.js';

/** One reader under fuzzing: the strategies that make its inputs and what reads one. */
export interface FuzzReader {
  /** Strategy name -> a new input; run in turn. */
  strategies: Record<string, () => Buffer>;
  /** Reads one input; must throw only the typed errors. */
  target: (bytes: Buffer) => void;
  /** Error classes that count as a clean refusal. */
  typedErrors: readonly (abstract new (...args: never[]) => Error)[];
}

export interface FuzzOptions {
  iterations: number;
  seed?: number;
  /** An input slower than this counts as a hang. */
  hangMs?: number;
  /** What to run on each input; defaults to reading the package and loading it into the runtime (with a
   * 64 MiB budget, as a device has one). Must throw only typed errors. */
  target?: (bytes: Buffer, publicKey: KeyObject) => void;
  /** Error classes that count as a clean refusal (PackageError always does). */
  typedErrors?: readonly (abstract new (...args: never[]) => Error)[];
  signal?: AbortSignal;
  /** Only these of the reader's strategies (default: all of them, in turn). */
  strategies?: readonly string[];
  /** Called every 10,000 inputs with the count so far and the failures among them. */
  onProgress?: (done: number, failures: number) => void;
}

export interface FuzzFailure {
  iteration: number;
  strategy: string;
  kind: 'crash' | 'hang';
  message: string;
}

export interface FuzzReport {
  iterations: number;
  accepted: number;
  refused: Record<string, number>;
  failures: FuzzFailure[];
  byStrategy: Record<string, number>;
  slowestMs: number;
  elapsedMs: number;
  /** CPU time of the job (user + system): what it costs on an idle machine, whatever the load. */
  cpuMs: number;
}

export const EDGE_NUMBERS = [
  0,
  1,
  -1,
  2,
  255,
  256,
  65535,
  65536,
  2 ** 24,
  2 ** 28,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
];
const EDGE_U64 = [0n, 1n, 15n, 16n, 64n, 0xffffffffn, 0x100000000n, 0x7fffffffffffffffn, 0xffffffffffffffffn];

/** Re-hashes and re-signs the content part of a (possibly altered) package, so the mutation reaches the
 * parser behind the signature check. Keeps the header's content size in step with the file length. (The
 * package tests sign their hand-damaged packages with it too.) */
export function resign(content: Buffer, privateKey: KeyObject): Buffer {
  const body = Buffer.from(content);
  if (body.length >= 24) body.writeBigUInt64LE(BigInt(body.length), 16);
  const digest = sha256(body);
  const trailer = Buffer.alloc(TRAILER_SIZE);
  trailer.write('WHTLSIG\0', 0, 'latin1');
  trailer.writeUInt32LE(1, 8);
  digest.copy(trailer, 16);
  keyId(privateKey).copy(trailer, 48);
  signDigest(digest, privateKey).copy(trailer, 64);
  return Buffer.concat([body, trailer]);
}

/** Replaces the manifest (section 0) with new bytes, moving the other sections to keep alignment. */
function withManifest(pkg: Buffer, manifest: Buffer): Buffer {
  const count = pkg.readUInt32LE(24);
  const tableEnd = HEADER_SIZE + count * SECTION_ENTRY_SIZE;
  const parts: Buffer[] = [];
  const table = Buffer.from(pkg.subarray(0, tableEnd));
  let offset = Math.ceil(tableEnd / SECTION_ALIGNMENT) * SECTION_ALIGNMENT;
  for (let i = 0; i < count; i++) {
    const at = HEADER_SIZE + i * SECTION_ENTRY_SIZE;
    const oldOffset = Number(pkg.readBigUInt64LE(at + 8));
    const oldLength = Number(pkg.readBigUInt64LE(at + 16));
    const data = i === 0 ? manifest : pkg.subarray(oldOffset, oldOffset + oldLength);
    table.writeBigUInt64LE(BigInt(offset), at + 8);
    table.writeBigUInt64LE(BigInt(data.length), at + 16);
    parts.push(Buffer.alloc(offset - (parts.reduce((n, p) => n + p.length, 0) + tableEnd)), data);
    offset = Math.ceil((offset + data.length) / SECTION_ALIGNMENT) * SECTION_ALIGNMENT;
  }
  const body = Buffer.concat([table, ...parts]);
  return Buffer.concat([body, Buffer.alloc(offset - body.length)]);
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Changes one random leaf (or removes/duplicates an entry) of a JSON value. */
function mutateJson(value: Json, random: SeededRandom): Json {
  if (Array.isArray(value)) {
    if (value.length === 0 || random.next() < 0.1) return [...value, value[0] ?? 0];
    const i = random.int(0, value.length - 1);
    if (random.next() < 0.1) return value.filter((_, j) => j !== i);
    return value.map((v, j) => (j === i ? mutateJson(v, random) : v));
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return { x: 1 };
    const key = keys[random.int(0, keys.length - 1)]!;
    if (random.next() < 0.05) {
      const rest = { ...value };
      delete rest[key];
      return rest;
    }
    return { ...value, [key]: mutateJson(value[key] as Json, random) };
  }
  const pick = random.next();
  if (pick < 0.5)
    return EDGE_NUMBERS[random.int(0, EDGE_NUMBERS.length - 1)]! * (random.next() < 0.2 ? -1 : 1);
  if (pick < 0.6) return 'x'.repeat(random.int(0, 300));
  if (pick < 0.7) return null;
  if (pick < 0.8) return [1, 2, 3];
  if (typeof value === 'number') return value + random.int(-3, 3);
  return typeof value === 'string' ? `${value}_` : 0.5;
}

/** The package reader's inputs: damaged seed packages, unsigned (must die at the hash or signature) and
 * re-signed (reaching the section table, the manifest, the weights and the runtime loader). */
function packageReader(random: SeededRandom, options: FuzzOptions): FuzzReader {
  const keys = generateKeyPairSync('ed25519');
  const target =
    options.target ??
    ((bytes: Buffer, publicKey: KeyObject) =>
      void Model.fromPackage(readPackage(bytes, { publicKey, cpuFamily: null }), {
        memoryBudgetBytes: 64 << 20,
      }));
  const typedErrors = [PackageError, GraphError, MemoryBudgetError, ...(options.typedErrors ?? [])];
  // The sample packages (every encoding) first: the strategies that need a sample's tensors take seeds[0, 3).
  const samples = 3;
  const seeds = [
    ...[1, 2, 3].map((s) => writePackage(samplePackageContent(s), keys.privateKey)),
    // An int8 layer whose weights are ternary int8 bit planes (1.5): the planes' magnitudes checked, expanded.
    writePackage(samplePlanarInt8Content(), keys.privateKey),
  ];
  // The same packages with their manifests deflated (format 1.3), also with their sections packed (1.4), and
  // deflated with the preset dictionary (1.5, packed), as the compressor writes them.
  const compactSeeds = (
    [
      [ManifestEncoding.deflate, false],
      [ManifestEncoding.deflate, true],
      [ManifestEncoding.deflateDictionary, true],
    ] as const
  ).flatMap(([manifestEncoding, packedSections]) =>
    [1, 2, 3].map((s) =>
      writePackage({ ...samplePackageContent(s), manifestEncoding, packedSections }, keys.privateKey),
    ),
  );
  const manifestOf = (pkg: Buffer): Json => {
    const offset = Number(pkg.readBigUInt64LE(HEADER_SIZE + 8));
    const length = Number(pkg.readBigUInt64LE(HEADER_SIZE + 16));
    return JSON.parse(pkg.subarray(offset, offset + length).toString('utf8')) as Json;
  };
  const manifests = seeds.map(manifestOf);
  const contentOf = (pkg: Buffer): Buffer => pkg.subarray(0, pkg.length - TRAILER_SIZE);

  const strategies: Record<string, () => Buffer> = {
    // Unsigned damage: must die at the hash or signature check.
    'flip-bytes': () => {
      const pkg = Buffer.from(seeds[random.int(0, seeds.length - 1)]!);
      for (let n = random.int(1, 8); n > 0; n--) pkg[random.int(0, pkg.length - 1)] = random.int(0, 255);
      return pkg;
    },
    truncate: () => {
      const pkg = seeds[random.int(0, seeds.length - 1)]!;
      return pkg.subarray(0, random.int(0, pkg.length - 1));
    },
    'random-bytes': () => {
      const length = random.int(0, 600);
      const pkg = Buffer.alloc(length);
      for (let i = 0; i < length; i++) pkg[i] = random.int(0, 255);
      if (length >= 8 && random.next() < 0.7) pkg.write('WHTLPKG\0', 0, 'latin1');
      if (length >= 16 && random.next() < 0.5) pkg.writeUInt32LE(0x00400001, 8);
      return random.next() < 0.5 && length >= 24 ? resign(pkg.subarray(0, length), keys.privateKey) : pkg;
    },
    // Re-signed damage: reaches the section table, the manifest and the weight decoders.
    'resigned-flip': () => {
      const content = Buffer.from(contentOf(seeds[random.int(0, seeds.length - 1)]!));
      for (let n = random.int(1, 4); n > 0; n--)
        content[random.int(0, content.length - 1)] = random.int(0, 255);
      return resign(content, keys.privateKey);
    },
    'resigned-truncate': () => {
      const content = contentOf(seeds[random.int(0, seeds.length - 1)]!);
      return resign(content.subarray(0, random.int(0, content.length)), keys.privateKey);
    },
    'resigned-table': () => {
      const content = Buffer.from(contentOf(seeds[random.int(0, seeds.length - 1)]!));
      const count = content.readUInt32LE(24);
      const at = HEADER_SIZE + random.int(0, count - 1) * SECTION_ENTRY_SIZE;
      const field = random.int(0, 4);
      if (field === 0) content.writeUInt32LE(random.int(0, 10), at);
      else if (field === 1) content.writeUInt32LE(random.int(0, 10), at + 4);
      else if (field === 4) content.writeUInt32LE(EDGE_NUMBERS[random.int(0, 12)]! >>> 0, at + 24);
      else
        content.writeBigUInt64LE(EDGE_U64[random.int(0, EDGE_U64.length - 1)]!, at + (field === 2 ? 8 : 16));
      return resign(content, keys.privateKey);
    },
    'resigned-manifest': () => {
      const i = random.int(0, seeds.length - 1);
      let manifest: Json = manifests[i] ?? null;
      for (let n = random.int(1, 3); n > 0; n--) manifest = mutateJson(manifest, random);
      return resign(
        withManifest(contentOf(seeds[i]!), Buffer.from(JSON.stringify(manifest))),
        keys.privateKey,
      );
    },
    // Well-formed manifests with one graph detail changed: reaches the runtime loader's checks.
    'resigned-graph': () => {
      const i = random.int(0, seeds.length - 1);
      const manifest = structuredClone(manifests[i]) as {
        nodes: { attrs: Record<string, Json>; inputs: number[]; op: string }[];
        tensors: { shape: number[] }[];
      };
      const node = manifest.nodes[random.int(0, manifest.nodes.length - 1)]!;
      const pick = random.int(0, 4);
      if (pick === 0) {
        const keys = [
          'strides',
          'pads',
          'dilations',
          'groups',
          'min',
          'max',
          'axis',
          'kernel',
          'perm',
          'shape',
        ];
        node.attrs[keys[random.int(0, keys.length - 1)]!] = mutateJson(node.attrs.pads ?? [1, 1], random);
      } else if (pick === 1) {
        node.inputs[random.int(0, node.inputs.length - 1)] = random.int(-1, manifest.tensors.length - 1);
      } else if (pick === 2) {
        const ops = [
          'conv2d',
          'fully_connected',
          'softmax',
          'reshape',
          'concat',
          'qconv2d',
          'max_pool',
          'transpose',
        ];
        node.op = ops[random.int(0, ops.length - 1)]!;
      } else {
        const tensor = manifest.tensors[random.int(0, manifest.tensors.length - 1)]!;
        if (tensor.shape.length > 0) tensor.shape[random.int(0, tensor.shape.length - 1)] = random.int(0, 9);
      }
      return resign(
        withManifest(contentOf(seeds[i]!), Buffer.from(JSON.stringify(manifest))),
        keys.privateKey,
      );
    },
    // The sparse-codebook tensor's counts and stream sizes changed with its section length kept (so they
    // reach its decoder: gaps past the tensor, counts the streams disagree with, truncated and overlong
    // Huffman streams), or its streams damaged.
    'resigned-sparse-codebook': () => {
      const i = random.int(0, samples - 1);
      const content = Buffer.from(contentOf(seeds[i]!));
      const manifest = structuredClone(manifests[i]) as { tensors: { section?: number; encoding?: Json }[] };
      const tensor = manifest.tensors.find(
        (t) => (t.encoding as { kind?: string } | undefined)?.kind === 'sparse-codebook',
      )!;
      const encoding = tensor.encoding as Record<string, number>;
      const pick = random.int(0, 3);
      if (pick === 0) {
        const at = HEADER_SIZE + tensor.section! * SECTION_ENTRY_SIZE;
        const offset = Number(content.readBigUInt64LE(at + 8));
        const length = Number(content.readBigUInt64LE(at + 16));
        // Mostly in the streams at the end of the section, the codebook and code lengths sometimes.
        const from = random.next() < 0.7 ? Math.max(0, length - 64) : 0;
        for (let n = random.int(1, 3); n > 0; n--)
          content[offset + random.int(from, length - 1)] = random.int(0, 255);
        return resign(content, keys.privateKey);
      }
      if (pick === 1) {
        const key = random.next() < 0.5 ? 'nnz' : 'gaps';
        encoding[key] = Math.max(0, encoding[key]! + random.int(-3, 3));
      } else if (pick === 2) {
        const moved = random.int(-4, 4);
        encoding.indexStreamBytes = Math.max(0, encoding.indexStreamBytes! + moved);
        encoding.gapStreamBytes = Math.max(0, encoding.gapStreamBytes! - moved);
      } else {
        const bits = random.int(1, 8);
        encoding.gapStreamBytes = Math.max(0, encoding.gapStreamBytes! + 2 ** encoding.gapBits! - 2 ** bits);
        encoding.gapBits = bits;
      }
      return resign(withManifest(content, Buffer.from(JSON.stringify(manifest))), keys.privateKey);
    },
    // A deflated manifest damaged: its stream's bytes, its recorded inflated length, bytes after the stream,
    // a mutated manifest deflated again, a header that declares 1.2, JSON in a section marked deflated, or
    // the stream marked as deflated with the other dictionary (none, or the preset).
    'resigned-deflated-manifest': () => {
      const seed = random.int(0, compactSeeds.length - 1);
      const content = Buffer.from(contentOf(compactSeeds[seed]!));
      const i = seed % samples;
      const offset = Number(content.readBigUInt64LE(HEADER_SIZE + 8));
      const length = Number(content.readBigUInt64LE(HEADER_SIZE + 16));
      const stream = Buffer.from(content.subarray(offset, offset + length));
      const inflatedLength = HEADER_SIZE + 24;
      const encodingAt = HEADER_SIZE + 4;
      const dictionary = content.readUInt32LE(encodingAt) === ManifestEncoding.deflateDictionary;
      const pick = random.int(0, 6);
      if (pick === 0) {
        for (let n = random.int(1, 3); n > 0; n--) stream[random.int(0, length - 1)] = random.int(0, 255);
      } else if (pick === 1) {
        const recorded = content.readUInt32LE(inflatedLength);
        content.writeUInt32LE(Math.max(0, recorded + random.int(-40, 40)) >>> 0, inflatedLength);
        return resign(content, keys.privateKey);
      } else if (pick === 2) {
        const tail = Buffer.alloc(random.int(1, 16));
        for (let k = 0; k < tail.length; k++) tail[k] = random.int(0, 255);
        return resign(withManifest(content, Buffer.concat([stream, tail])), keys.privateKey);
      } else if (pick === 3) {
        let manifest: Json = manifests[i] ?? null;
        for (let n = random.int(1, 3); n > 0; n--) manifest = mutateJson(manifest, random);
        const json = Buffer.from(JSON.stringify(manifest));
        content.writeUInt32LE(json.length, inflatedLength);
        const deflated = deflateRawSync(json, dictionary ? { dictionary: MANIFEST_DICTIONARY_V1 } : {});
        return resign(withManifest(content, deflated), keys.privateKey);
      } else if (pick === 4) {
        content.writeUInt16LE(2, 10);
        return resign(content, keys.privateKey);
      } else if (pick === 5) {
        return resign(withManifest(content, Buffer.from(JSON.stringify(manifests[i]))), keys.privateKey);
      } else {
        const other = dictionary ? ManifestEncoding.deflate : ManifestEncoding.deflateDictionary;
        content.writeUInt32LE(other, encodingAt);
        if (other === ManifestEncoding.deflateDictionary) content.writeUInt16LE(5, 10);
        return resign(content, keys.privateKey);
      }
      return resign(withManifest(content, stream), keys.privateKey);
    },
    'resigned-section-data': () => {
      const content = Buffer.from(contentOf(seeds[random.int(0, seeds.length - 1)]!));
      const count = content.readUInt32LE(24);
      const at = HEADER_SIZE + random.int(1, count - 1) * SECTION_ENTRY_SIZE;
      const offset = Number(content.readBigUInt64LE(at + 8));
      const length = Number(content.readBigUInt64LE(at + 16));
      for (let n = random.int(1, 6); n > 0 && length > 0; n--)
        content[offset + random.int(0, length - 1)] = random.int(0, 255);
      return resign(content, keys.privateKey);
    },
  };
  return { strategies, target: (bytes) => target(bytes, keys.publicKey), typedErrors };
}

/** The readers `npm run bench -- fuzz --reader NAME` fuzzes, by name (default: all of them). */
export const FUZZ_READERS: Readonly<
  Record<string, (random: SeededRandom, options: FuzzOptions) => FuzzReader>
> = {
  package: packageReader,
  onnx: onnxReader,
  tflite: tfliteReader,
};

/** Runs `options.iterations` inputs of the named reader. */
export function runFuzz(reader: string, options: FuzzOptions): FuzzReport {
  const make = FUZZ_READERS[reader];
  if (make === undefined) throw new RangeError(`no fuzz reader "${reader}"`);
  const random = new SeededRandom(options.seed ?? 1);
  const hangMs = options.hangMs ?? 1000;
  const { strategies, target, typedErrors: typed } = make(random, options);
  const names = Object.keys(strategies).filter((name) => options.strategies?.includes(name) ?? true);
  if (names.length === 0)
    throw new RangeError(`no fuzz strategy of "${reader}" among ${options.strategies?.join(', ')}`);
  const report: FuzzReport = {
    iterations: 0,
    accepted: 0,
    refused: {},
    failures: [],
    byStrategy: {},
    slowestMs: 0,
    elapsedMs: 0,
    cpuMs: 0,
  };
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  for (let iteration = 0; iteration < options.iterations; iteration++) {
    if (options.signal?.aborted) break;
    const strategy = names[iteration % names.length]!;
    const input = strategies[strategy]!();
    report.byStrategy[strategy] = (report.byStrategy[strategy] ?? 0) + 1;
    const t0 = performance.now();
    try {
      target(input);
      report.accepted++;
    } catch (error) {
      if (typed.some((type) => error instanceof type)) {
        const code = error instanceof PackageError ? error.code : (error as Error).name;
        report.refused[code] = (report.refused[code] ?? 0) + 1;
      } else {
        report.failures.push({
          iteration,
          strategy,
          kind: 'crash',
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        });
      }
    }
    const ms = performance.now() - t0;
    report.slowestMs = Math.max(report.slowestMs, ms);
    if (ms > hangMs)
      report.failures.push({ iteration, strategy, kind: 'hang', message: `took ${ms.toFixed(0)} ms` });
    report.iterations++;
    if (options.onProgress && iteration % 10000 === 9999)
      options.onProgress(iteration + 1, report.failures.length);
  }
  report.elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  report.cpuMs = (cpu.user + cpu.system) / 1000;
  return report;
}
