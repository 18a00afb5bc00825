// `npm run bench -- hashed-fc [--json] [--rounds 9] [--batch 1,8]`: the hashed fully-connected kernel
// (native/src/hashed_fc.h) on LeNet-300-100's dense layers at 1/8, expanded at load and expanded a row at a
// time on every run, against the dense fp32 fully-connected layer of the same expanded weights. One thread;
// the three are timed in turn within each round (interleaved, so a noisy neighbour slows all alike) and the
// report gives the medians and each one's ratio to fp32 (> 1: slower).
import { toFloat32 } from '../agent/package/encodings.js';
import { createHashedFullyConnected } from '../native/formats.js';
import { createFullyConnectedF32, setThreads } from '../native/index.js';
import {
  benchOptions,
  calibrate,
  type Contender,
  jsContender,
  median,
  positiveInteger,
  positiveIntegers,
  timeBatch,
} from './kernels.js';
import { seededRandom } from './onnx-layers.js';

export const HASHED_FC_HELP =
  'hashed-fc options: --rounds 9 (interleaved rounds), --batch 1,8 (batch sizes), --json';

const LAYERS = [
  { name: 'fc1 784->300', inChannels: 784, outChannels: 300 },
  { name: 'fc2 300->100', inChannels: 300, outChannels: 100 },
  { name: 'fc3 100->10', inChannels: 100, outChannels: 10 },
];

export async function hashedFcCommand(args: string[], machine: string): Promise<number> {
  const values = benchOptions(
    args,
    { rounds: { type: 'string' }, batch: { type: 'string' }, json: { type: 'boolean' } },
    HASHED_FC_HELP,
  );
  if (values === undefined) return 0;
  const rounds = positiveInteger(values.rounds, 9, '--rounds');
  const batches = positiveIntegers(values.batch ?? '1,8', '--batch', 1 << 16);
  setThreads(1);
  const random = seededRandom(15);
  const rows: Record<string, unknown>[] = [];
  for (const layer of LAYERS) {
    const elements = layer.inChannels * layer.outChannels;
    const buckets = Float32Array.from({ length: Math.ceil(elements / 8) }, () => random() - 0.5);
    const bias = Float32Array.from({ length: layer.outChannels }, () => random() - 0.5);
    const weights = toFloat32({ kind: 'hashed', buckets, seed: 3 }, elements);
    for (const batch of batches) {
      const shape = { batch, inChannels: layer.inChannels, outChannels: layer.outChannels };
      const input = Float32Array.from({ length: batch * layer.inChannels }, () => random() - 0.5);
      const output = new Float32Array(batch * layer.outChannels);
      const dense = createFullyConnectedF32({ ...shape, weights, bias });
      const loaded = createHashedFullyConnected({ ...shape, buckets, seed: 3, bias });
      const onTheFly = createHashedFullyConnected({ ...shape, buckets, seed: 3, bias, expandWeights: false });
      const contenders: Contender[] = [
        jsContender('fp32', () => dense.run(input, output)),
        jsContender('hashed, expanded at load', () => loaded.run(input, output)),
        jsContender('hashed, on the fly', () => onTheFly.run(input, output)),
      ];
      for (const c of contenders) await calibrate(c, 20);
      for (let r = 0; r < rounds; r++) for (const c of contenders) c.samplesUs.push(await timeBatch(c));
      const fp32 = median(contenders[0]!.samplesUs);
      for (const c of contenders) {
        const us = median(c.samplesUs);
        rows.push({ layer: layer.name, batch, kernel: c.id, median_us: us, vs_fp32: us / fp32 });
      }
      dense.dispose();
      loaded.dispose();
      onTheFly.dispose();
    }
  }
  const say = (line: string): void => void (values.json ? process.stderr : process.stdout).write(`${line}\n`);
  say(`hashed-fc: ${machine}; 1 thread, ${rounds} interleaved rounds, medians`);
  for (const r of rows)
    say(
      `  ${String(r.layer).padEnd(14)} batch ${String(r.batch).padStart(3)}  ${String(r.kernel).padEnd(26)} ` +
        `${(r.median_us as number).toFixed(2).padStart(9)} us  ${(r.vs_fp32 as number).toFixed(2)}x fp32`,
    );
  if (values.json) console.log(JSON.stringify({ machine, rounds, results: rows }));
  return 0;
}
