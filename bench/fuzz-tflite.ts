// The TFLite entry of the fuzz benchmark (FUZZ_READERS in fuzz.ts): the reader's verifier and graph
// checks and the importer behind them (optimize/tflite/), on damaged copies of two sample models (float and
// int8): bytes flipped, truncation, 32-bit and 16-bit words set to edge numbers (offsets, lengths, vtable
// entries, indices, dims), chunks copied elsewhere, and random bytes behind the "TFL3" identifier. Every
// input must import or be refused with a TfliteImportError, UnsupportedOpsError or GraphError.
import { GraphError } from '../agent/runtime/graph-error.js';
import { UnsupportedOpsError } from '../optimize/package/unsupported-ops.js';
import type { SeededRandom } from '../optimize/seeded-random.js';
import { importTflite } from '../optimize/tflite/import.js';
import { TfliteImportError } from '../optimize/tflite/reader.js';
import { sampleTfliteModels } from '../optimize/tflite/sample-model.js';
import { EDGE_NUMBERS, type FuzzReader } from './fuzz.js';

export function tfliteReader(random: SeededRandom): FuzzReader {
  const seeds = [1, 2].flatMap((s) => sampleTfliteModels(s));
  const pick = (): Uint8Array => Uint8Array.from(seeds[random.int(0, seeds.length - 1)]!);
  const strategies: FuzzReader['strategies'] = {
    'flip-bytes': () => {
      const model = pick();
      for (let n = random.int(1, 8); n > 0; n--) model[random.int(0, model.length - 1)] = random.int(0, 255);
      return Buffer.from(model);
    },
    truncate: () => {
      const model = pick();
      return Buffer.from(model.subarray(0, random.int(0, model.length - 1)));
    },
    'edge-word': () => {
      const model = pick();
      const view = new DataView(model.buffer);
      for (let n = random.int(1, 3); n > 0; n--) {
        const at = random.int(0, (model.length >> 2) - 1) * 4;
        const value = EDGE_NUMBERS[random.int(0, EDGE_NUMBERS.length - 1)]! * (random.next() < 0.2 ? -1 : 1);
        view.setUint32(at, value >>> 0, true);
      }
      return Buffer.from(model);
    },
    'edge-short': () => {
      // vtable entries are 16-bit.
      const model = pick();
      const view = new DataView(model.buffer);
      const at = random.int(0, (model.length >> 1) - 1) * 2;
      view.setUint16(at, [0, 1, 2, 3, 4, 6, 0xfffe, 0xffff, random.int(0, 0xffff)][random.int(0, 8)]!, true);
      return Buffer.from(model);
    },
    'copy-chunk': () => {
      const model = pick();
      const length = random.int(1, 64);
      const from = random.int(0, model.length - 1);
      model.copyWithin(random.int(0, model.length - 1), from, Math.min(model.length, from + length));
      return Buffer.from(model);
    },
    'random-bytes': () => {
      const model = new Uint8Array(random.int(0, 600));
      for (let i = 0; i < model.length; i++) model[i] = random.int(0, 255);
      if (model.length >= 8) model.set([0x54, 0x46, 0x4c, 0x33], 4);
      return Buffer.from(model);
    },
  };
  return {
    strategies,
    target: (input) => void importTflite(input),
    typedErrors: [TfliteImportError, UnsupportedOpsError, GraphError],
  };
}
