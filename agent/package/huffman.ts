// Canonical Huffman coding of codebook indices (Deep Compression's last stage). Only the code length of
// each symbol is stored; codes are assigned canonically (shorter first, then by symbol), bits MSB-first.
import { PackageError, type PackageErrorLocation } from './errors.js';

export const MAX_CODE_LENGTH = 24;

/** Code lengths (0 = symbol unused) from symbol counts, each <= MAX_CODE_LENGTH. */
export function huffmanCodeLengths(counts: readonly number[]): number[] {
  const used = counts.map((count, symbol) => ({ count, symbol })).filter((entry) => entry.count > 0);
  const lengths = counts.map(() => 0);
  if (used.length === 0) return lengths;
  if (used.length === 1) {
    lengths[used[0]!.symbol] = 1;
    return lengths;
  }
  // Nodes: leaves are symbols; internal nodes record children. A sorted array suffices for <= 256 symbols.
  interface Node {
    weight: number;
    symbols: number[];
  }
  let queue: Node[] = used.map((entry) => ({ weight: entry.count, symbols: [entry.symbol] }));
  while (queue.length > 1) {
    queue.sort((a, b) => a.weight - b.weight);
    const [a, b] = queue as [Node, Node];
    for (const symbol of [...a.symbols, ...b.symbols]) lengths[symbol]! += 1;
    queue = [{ weight: a.weight + b.weight, symbols: [...a.symbols, ...b.symbols] }, ...queue.slice(2)];
  }
  if (Math.max(...lengths) > MAX_CODE_LENGTH) {
    // Pathological counts: fall back to a flat code, still a valid prefix code.
    const flat = Math.max(1, Math.ceil(Math.log2(used.length)));
    return counts.map((count) => (count > 0 ? flat : 0));
  }
  return lengths;
}

interface CanonicalCode {
  /** codes[symbol] for symbols with length > 0. */
  codes: number[];
  /** Per length L: first canonical code, index of its first symbol in `sorted`, and how many there are. */
  firstCode: number[];
  firstIndex: number[];
  count: number[];
  sorted: number[];
}

function canonicalCode(lengths: readonly number[], location: PackageErrorLocation): CanonicalCode {
  const count = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  for (const length of lengths) {
    if (!Number.isInteger(length) || length < 0 || length > MAX_CODE_LENGTH) {
      throw new PackageError(
        'bad-weights',
        `Huffman code length ${length} is outside [0, ${MAX_CODE_LENGTH}]`,
        location,
      );
    }
    if (length > 0) count[length]! += 1;
  }
  // Kraft: sum 2^-L <= 1, otherwise the lengths do not form a prefix code.
  let kraft = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++)
    kraft += count[length]! * 2 ** (MAX_CODE_LENGTH - length);
  if (kraft > 2 ** MAX_CODE_LENGTH) {
    throw new PackageError(
      'bad-weights',
      'Huffman code lengths do not form a prefix code (Kraft sum > 1)',
      location,
    );
  }
  const sorted: number[] = [];
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    lengths.forEach((l, symbol) => {
      if (l === length) sorted.push(symbol);
    });
  }
  const firstCode = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  const firstIndex = new Array<number>(MAX_CODE_LENGTH + 1).fill(0);
  let code = 0;
  let index = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    code = (code + (count[length - 1] ?? 0)) << 1;
    firstCode[length] = code;
    firstIndex[length] = index;
    index += count[length]!;
  }
  const codes = lengths.map(() => 0);
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    for (let i = 0; i < count[length]!; i++) codes[sorted[firstIndex[length]! + i]!] = firstCode[length]! + i;
  }
  return { codes, firstCode, firstIndex, count, sorted };
}

export function huffmanEncode(symbols: Uint8Array, lengths: readonly number[]): Buffer {
  const { codes } = canonicalCode(lengths, {});
  let totalBits = 0;
  for (const symbol of symbols) totalBits += lengths[symbol]!;
  const out = Buffer.alloc(Math.ceil(totalBits / 8));
  let bit = 0;
  for (const symbol of symbols) {
    const length = lengths[symbol]!;
    const code = codes[symbol]!;
    for (let b = length - 1; b >= 0; b--) {
      if ((code >>> b) & 1) out[bit >>> 3]! |= 0x80 >>> (bit & 7);
      bit++;
    }
  }
  return out;
}

/** Decodes exactly `n` symbols; the stream must end within its last byte and the padding bits be zero. */
export function huffmanDecode(
  stream: Uint8Array,
  lengths: readonly number[],
  n: number,
  location: PackageErrorLocation,
): Uint8Array {
  const { firstCode, firstIndex, count, sorted } = canonicalCode(lengths, location);
  if (sorted.length === 0 && n > 0)
    throw new PackageError('bad-weights', 'Huffman code has no symbols', location);
  const out = new Uint8Array(n);
  const totalBits = stream.length * 8;
  let bit = 0;
  for (let i = 0; i < n; i++) {
    let code = 0;
    let length = 0;
    for (;;) {
      if (bit >= totalBits) {
        throw new PackageError('bad-weights', `Huffman stream ends after ${i} of ${n} indices`, location);
      }
      code = (code << 1) | ((stream[bit >>> 3]! >>> (7 - (bit & 7))) & 1);
      bit++;
      length++;
      if (length > MAX_CODE_LENGTH) {
        throw new PackageError('bad-weights', `Huffman stream holds an invalid code at index ${i}`, location);
      }
      const offset = code - firstCode[length]!;
      if (offset >= 0 && offset < count[length]!) {
        out[i] = sorted[firstIndex[length]! + offset]!;
        break;
      }
    }
  }
  if (Math.ceil(bit / 8) !== stream.length) {
    throw new PackageError(
      'bad-weights',
      `Huffman stream is ${stream.length} bytes but its ${n} indices take ${Math.ceil(bit / 8)}`,
      location,
    );
  }
  for (let b = bit; b < totalBits; b++) {
    if ((stream[b >>> 3]! >>> (7 - (b & 7))) & 1) {
      throw new PackageError('bad-weights', 'Huffman stream padding bits must be zero', location);
    }
  }
  return out;
}
