import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

import { loadImageFolder } from '../../../optimize/datasets/image-folder.js';

const root = mkdtempSync(join(tmpdir(), 'whittle-folder-'));
after(() => rmSync(root, { recursive: true, force: true }));

function rgba(width: number, height: number, colour: [number, number, number]): Buffer {
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    data[i * 4] = colour[0];
    data[i * 4 + 1] = colour[1];
    data[i * 4 + 2] = colour[2];
    data[i * 4 + 3] = 255;
  }
  return data;
}

function png(path: string, width: number, height: number, colour: [number, number, number]): void {
  const image = new PNG({ width, height });
  rgba(width, height, colour).copy(image.data);
  writeFileSync(path, PNG.sync.write(image));
}

function jpg(path: string, width: number, height: number, colour: [number, number, number]): void {
  writeFileSync(path, jpeg.encode({ width, height, data: rgba(width, height, colour) }, 95).data);
}

function folder(name: string): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'cats'), { recursive: true });
  mkdirSync(join(dir, 'dogs'), { recursive: true });
  return dir;
}

test('loads PNG and JPEG classes, resized bilinearly, grey and RGB', () => {
  const dir = folder('good');
  png(join(dir, 'cats', 'a.png'), 8, 6, [255, 0, 0]);
  jpg(join(dir, 'cats', 'b.jpg'), 16, 12, [255, 0, 0]);
  png(join(dir, 'dogs', 'c.png'), 4, 4, [0, 0, 255]);
  writeFileSync(join(dir, 'dogs', 'notes.txt'), 'ignored');
  const rgb = loadImageFolder(dir, { channels: 3, height: 5, width: 5 });
  assert.deepEqual(rgb.classes, ['cats', 'dogs']);
  assert.equal(rgb.count, 3);
  assert.deepEqual([...rgb.labels], [0, 0, 1]);
  assert.equal(rgb.pixels.length, 3 * 5 * 5 * 3);
  assert.deepEqual([...rgb.pixels.subarray(0, 3)], [255, 0, 0]);
  const blue = rgb.pixels.subarray(2 * 75, 2 * 75 + 3);
  assert.deepEqual([...blue], [0, 0, 255]);
  const grey = loadImageFolder(dir, { channels: 1, height: 5, width: 5 });
  assert.equal(grey.pixels[0], Math.round(0.299 * 255));
});

test('images of another size are an error naming the file when no size is given', () => {
  const dir = folder('mixed');
  png(join(dir, 'cats', 'a.png'), 8, 8, [1, 2, 3]);
  png(join(dir, 'dogs', 'odd.png'), 9, 8, [1, 2, 3]);
  assert.throws(() => loadImageFolder(dir, { channels: 1 }), {
    name: 'DatasetError',
    message: /odd\.png: is 9x8 but the folder's images are 8x8/,
  });
});

test('an unreadable image is an error naming the file', () => {
  const dir = folder('broken');
  png(join(dir, 'cats', 'a.png'), 4, 4, [1, 2, 3]);
  writeFileSync(join(dir, 'dogs', 'broken.jpg'), Buffer.from('not a jpeg at all'));
  assert.throws(() => loadImageFolder(dir, { channels: 3, height: 4, width: 4 }), {
    name: 'DatasetError',
    message: /broken\.jpg: not a readable JPG image/,
  });
});

test('a folder without class subfolders or with an empty class is an error naming it', () => {
  const flat = join(root, 'flat');
  mkdirSync(flat);
  assert.throws(() => loadImageFolder(flat, { channels: 1 }), {
    name: 'DatasetError',
    message: /flat: expected one subfolder per class/,
  });
  const dir = folder('empty-class');
  png(join(dir, 'cats', 'a.png'), 4, 4, [1, 2, 3]);
  assert.throws(() => loadImageFolder(dir, { channels: 1 }), {
    name: 'DatasetError',
    message: /dogs: no \.png/,
  });
  assert.throws(() => loadImageFolder(join(root, 'missing'), { channels: 1 }), {
    name: 'DatasetError',
    message: /missing: cannot list/,
  });
});
