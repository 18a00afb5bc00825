import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { loadDataset } from '../../../optimize/datasets/dataset-spec.js';
import { loadIdxPair } from '../../../optimize/datasets/idx-pair.js';

const dir = mkdtempSync(join(tmpdir(), 'whittle-idx-pair-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function idx(dims: number[], data: number[]): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  header[2] = 8;
  header[3] = dims.length;
  const view = new DataView(header.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  return new Uint8Array([...header, ...data]);
}

function write(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

test('reads an image/label pair, gzipped or not, and a 4-file dataset spec', () => {
  const images = write('img.idx', idx([3, 2, 2], [...Array(12).keys()]));
  const labels = write('lab.idx.gz', gzipSync(idx([3], [0, 2, 1])));
  const set = loadIdxPair(images, labels);
  assert.equal(set.count, 3);
  assert.equal(set.channels, 1);
  assert.deepEqual([...set.labels], [0, 2, 1]);
  assert.deepEqual(set.classes, ['0', '1', '2']);
  const both = loadDataset(`idx:${images},${labels},${images},${labels}`);
  assert.equal(both.test?.count, 3);
});

test('image and label counts that disagree are an error naming both files', () => {
  const images = write('img3.idx', idx([3, 2, 2], new Array<number>(12).fill(0)));
  const labels = write('lab2.idx', idx([2], [0, 1]));
  assert.throws(() => loadIdxPair(images, labels), {
    name: 'IdxFormatError',
    message: new RegExp(`lab2\\.idx: has 2 labels but .*img3\\.idx has 3 images`),
  });
});

test('truncated and corrupt files are errors naming the file', () => {
  const truncated = write('short.idx', idx([3, 2, 2], new Array<number>(12).fill(0)).subarray(0, 20));
  const labels = write('ok-labels.idx', idx([3], [0, 1, 1]));
  assert.throws(() => loadIdxPair(truncated, labels), {
    name: 'IdxFormatError',
    message: /short\.idx: .*truncated/,
  });
  const corrupt = write('bad.idx.gz', new Uint8Array([1, 2, 3, 4, 5]));
  assert.throws(() => loadIdxPair(corrupt, labels), {
    name: 'IdxFormatError',
    message: /bad\.idx\.gz: not a valid gzip/,
  });
  const wrongRank = write('rank2.idx', idx([3, 4], new Array<number>(12).fill(0)));
  assert.throws(() => loadIdxPair(wrongRank, labels), {
    name: 'IdxFormatError',
    message: /rank2\.idx: expected image dims/,
  });
});

test('dataset specs that are malformed name what was expected', () => {
  assert.throws(() => loadDataset('idx:only-one-file'), {
    name: 'DatasetError',
    message: /idx:TRAIN_IMAGES/,
  });
  assert.throws(() => loadDataset('mnist-please'), { name: 'DatasetError', message: /unknown dataset/ });
  assert.throws(() => loadDataset('folder:'), { name: 'DatasetError', message: /folder:PATH/ });
});
