import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Backoff } from '../../../agent/link/backoff.js';

test('delays double up to the ceiling, with jitter in the upper half, and reset', () => {
  const highest = new Backoff({ initialMs: 1000, maxMs: 8000, random: () => 0.999999 });
  assert.deepEqual(
    Array.from({ length: 6 }, () => highest.next()),
    [1000, 2000, 4000, 8000, 8000, 8000],
  );
  const lowest = new Backoff({ initialMs: 1000, maxMs: 8000, random: () => 0 });
  assert.deepEqual(
    Array.from({ length: 4 }, () => lowest.next()),
    [500, 1000, 2000, 4000],
  );
  lowest.reset();
  assert.equal(lowest.next(), 500);
});
