// The IDX format of MNIST-style datasets (http://yann.lecun.com/exdb/mnist/): a big-endian header
//   0x00 0x00 <type code> <number of dims>, then one uint32 size per dimension, then the data row-major.
// Only unsigned bytes (type 0x08) are read: images and labels of every MNIST-family dataset use it.
// Files ending in .gz are gunzipped first.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

import { WhittleError } from '../../native/whittle-error.js';

const UNSIGNED_BYTE = 0x08;

/** A dataset file that is not the IDX data it should be; the message names the file. */
export class IdxFormatError extends WhittleError {
  override readonly name = 'IdxFormatError';
  readonly code = 'bad-idx';
}

export interface IdxArray {
  /** Sizes of each dimension, outermost first: [count] for labels, [count, rows, columns] for images. */
  dims: number[];
  /** Row-major values, product(dims) bytes. */
  data: Uint8Array;
}

/** Decodes an IDX file already in memory; `file` only names it in errors. */
export function decodeIdx(bytes: Uint8Array, file: string): IdxArray {
  if (bytes.length < 4) {
    throw new IdxFormatError(`${file}: ${bytes.length} bytes is too short for an IDX header`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new IdxFormatError(`${file}: not an IDX file (the magic number must start with two zero bytes)`);
  }
  const typeCode = bytes[2]!;
  const rank = bytes[3]!;
  if (typeCode !== UNSIGNED_BYTE) {
    throw new IdxFormatError(
      `${file}: IDX element type 0x${typeCode.toString(16).padStart(2, '0')} is not supported (only 0x08, unsigned byte)`,
    );
  }
  if (rank === 0) throw new IdxFormatError(`${file}: IDX header declares 0 dimensions`);
  const headerLength = 4 + 4 * rank;
  if (bytes.length < headerLength) {
    throw new IdxFormatError(
      `${file}: ${bytes.length} bytes is too short for a ${rank}-dimension IDX header`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let d = 0; d < rank; d++) {
    const size = view.getUint32(4 + 4 * d, false);
    dims.push(size);
    count *= size;
  }
  const expected = headerLength + count;
  if (bytes.length !== expected) {
    throw new IdxFormatError(
      `${file}: dims [${dims.join(', ')}] need ${expected} bytes but the file has ${bytes.length} ` +
        `(truncated or not this dataset)`,
    );
  }
  return { dims, data: bytes.subarray(headerLength) };
}

/** Reads an IDX file from disk, gunzipping it when the name ends in .gz. */
export function readIdx(file: string): IdxArray {
  let bytes: Uint8Array = readFileSync(file);
  if (file.endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new IdxFormatError(`${file}: not a valid gzip file (${(error as Error).message})`);
    }
  }
  return decodeIdx(bytes, file);
}
