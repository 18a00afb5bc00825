import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { decodeIdx, readIdx } from '../../../optimize/datasets/idx.js';

/** A 2x3 unsigned-byte IDX file. */
function sampleIdx(): Uint8Array {
  return new Uint8Array([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
}

test('decodes dims and data, from plain and gzipped files', () => {
  assert.deepEqual(decodeIdx(sampleIdx(), 'sample'), {
    dims: [2, 3],
    data: new Uint8Array([1, 2, 3, 4, 5, 6]),
  });
  const dir = mkdtempSync(join(tmpdir(), 'whittle-idx-'));
  try {
    writeFileSync(join(dir, 'a-idx2-ubyte'), sampleIdx());
    writeFileSync(join(dir, 'a-idx2-ubyte.gz'), gzipSync(sampleIdx()));
    writeFileSync(join(dir, 'broken.gz'), sampleIdx());
    assert.deepEqual(readIdx(join(dir, 'a-idx2-ubyte')).dims, [2, 3]);
    assert.deepEqual([...readIdx(join(dir, 'a-idx2-ubyte.gz')).data], [1, 2, 3, 4, 5, 6]);
    assert.throws(() => readIdx(join(dir, 'broken.gz')), {
      name: 'IdxFormatError',
      message: /broken\.gz: not a valid gzip/,
    });
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('refuses bad magic, unsupported types and sizes that disagree with the header, naming the file', () => {
  const bytes = sampleIdx();
  assert.throws(() => decodeIdx(bytes.subarray(0, 17), 'short.idx'), {
    name: 'IdxFormatError',
    message: 'short.idx: dims [2, 3] need 18 bytes but the file has 17 (truncated or not this dataset)',
  });
  assert.throws(() => decodeIdx(new Uint8Array([...bytes, 7]), 'long.idx'), {
    message: /long\.idx: dims \[2, 3\] need 18 bytes/,
  });
  assert.throws(() => decodeIdx(new Uint8Array([1, 0, 8, 2]), 'magic.idx'), {
    message: /magic\.idx: not an IDX file/,
  });
  assert.throws(() => decodeIdx(new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 0]), 'float.idx'), {
    message: /float\.idx: IDX element type 0x0d/,
  });
  assert.throws(() => decodeIdx(new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1]), 'header.idx'), {
    message: /header\.idx: .* 3-dimension IDX header/,
  });
  assert.throws(() => decodeIdx(new Uint8Array([0, 0]), 'tiny.idx'), { message: /tiny\.idx: 2 bytes/ });
});
