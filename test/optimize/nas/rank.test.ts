// The supernet's ranking check's statistic (Kendall's tau-b) and the sandwich rule's extreme paths.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { kendallTau } from '../../../optimize/nas/rank-check.js';
import { parseArch, sampleArch, SEARCH_SPACE } from '../../../optimize/nas/space.js';
import { extremeArch } from '../../../optimize/nas/supernet.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

describe('NAS ranking', () => {
  test("Kendall's tau-b: the same order 1, the reverse -1, ties counted as neither", () => {
    assert.equal(kendallTau([1, 2, 3, 4], [10, 20, 30, 40]), 1);
    assert.equal(kendallTau([1, 2, 3, 4], [4, 3, 2, 1]), -1);
    // Pairs (1,2) concordant, (1,3) concordant, (2,3) tied in b: (2 - 0) / sqrt(3 * 2).
    assert.ok(Math.abs(kendallTau([1, 2, 3], [1, 2, 2]) - 2 / Math.sqrt(6)) < 1e-12);
    assert.ok(Number.isNaN(kendallTau([1, 1], [1, 2])));
    assert.throws(() => kendallTau([1], [1, 2]), RangeError);
  });

  test("the sandwich rule's extremes keep the draw's block types and stem stride", () => {
    const draw = sampleArch(new SeededRandom(4));
    const large = extremeArch(draw, 'largest');
    const small = extremeArch(draw, 'smallest');
    for (const [a, side] of [
      [large, Math.max],
      [small, Math.min],
    ] as const) {
      assert.deepEqual(parseArch(a), a);
      assert.equal(a.stem.stride, draw.stem.stride);
      assert.equal(a.stem.width, side(...SEARCH_SPACE.stemWidths));
      a.stages.forEach((s, i) => {
        assert.equal(s.block, draw.stages[i]!.block);
        assert.equal(s.width, side(...SEARCH_SPACE.stageWidths[i]!));
        assert.equal(s.depth, side(...SEARCH_SPACE.depths));
        assert.equal(s.kernel, side(...SEARCH_SPACE.kernels));
      });
    }
  });
});
