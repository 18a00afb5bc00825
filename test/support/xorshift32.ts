// The native tests' fixed data: a seed gives the same numbers on every run and machine, so a failure
// reproduces. Not the trainer's generator (optimize/seeded-random.ts): these tests pinned this sequence.

/** xorshift32, uniform in [0, 1). The state is a JS number kept to int32 by the shifts, exactly as the tests
 * that first wrote it inline did. */
export function xorshift32(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}
