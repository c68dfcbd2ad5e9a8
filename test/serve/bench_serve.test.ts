/** `cmc bench serve`'s latency percentiles (bench/serve.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentiles } from '../../bench/serve.ts';

test('bench percentiles (cmc bench serve): nearest rank over every response', () => {
  const p = percentiles(Array.from({ length: 200 }, (_, i) => 200 - i));
  assert.deepEqual([p(50), p(90), p(95), p(99), p(100)], [100, 180, 190, 198, 200]);
  assert.ok(Number.isNaN(percentiles([])(50)));
});
