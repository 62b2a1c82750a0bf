import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { median, percentile } from '../stats.js';

test('percentile is nearest-rank and does not reorder its input', () => {
  const v = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
  assert.is(percentile(v, 50), 5);
  assert.is(percentile(v, 90), 9);
  assert.is(percentile(v, 95), 10);
  assert.is(percentile(v, 100), 10);
  assert.is(percentile(v, 0), 1);
  assert.is(percentile([42], 95), 42);
  assert.equal(v, [5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('median takes the middle value, or the mean of the two middle ones', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test.run();
