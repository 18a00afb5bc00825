// Trains and quantizes the demo Fashion-MNIST MLP and writes its whittle-int8-mlp file:
//   node dist/optimize/train-demo-model.js --out agent/models/fashion-mlp-int8.json [--epochs 6] [--seed 1]
//     [--data /usr/share/datasets/fashion-mnist]
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { FASHION_MNIST_DIR, loadFashionMnist } from './datasets/fashion-mnist.js';
import { buildDemoModel } from './demo-model.js';

function positiveInteger(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Expected a positive integer for --${name} but received ${text}`);
  }
  return value;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      epochs: { type: 'string', default: '6' },
      seed: { type: 'string', default: '1' },
      data: { type: 'string', default: FASHION_MNIST_DIR },
    },
  });
  if (values.out === undefined) {
    throw new RangeError('Expected --out <file.json> but received nothing');
  }
  const train = loadFashionMnist('train', values.data);
  const test = loadFashionMnist('test', values.data);
  const result = buildDemoModel(train, test, {
    epochs: positiveInteger(values.epochs, 'epochs'),
    seed: positiveInteger(values.seed, 'seed'),
    onProgress: (p) =>
      process.stderr.write(
        `epoch ${p.epoch}/${p.epochs}: loss ${p.loss.toFixed(4)}, train accuracy ` +
          `${(p.trainAccuracy * 100).toFixed(2)}%, ${p.seconds.toFixed(1)} s\n`,
      ),
  });
  const text = `${JSON.stringify(result.file, null, 2)}\n`;
  writeFileSync(values.out, text);
  process.stdout.write(
    `wrote ${values.out} (${text.length} bytes): test accuracy float ${(result.floatAccuracy * 100).toFixed(2)}%, ` +
      `int8 ${(result.int8Accuracy * 100).toFixed(2)}% on ${test.count} images; training ${result.trainSeconds.toFixed(1)} s\n`,
  );
}

main();
