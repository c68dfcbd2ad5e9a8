/** Adaptive pooling's bin rule (core/network/pooling.ts), shared by the probe and the ONNX emitter. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adaptiveBins } from '../../core/network/pooling.ts';

test('adaptive bins follow PyTorch (start = floor(i*in/out), end = ceil((i+1)*in/out))', () => {
  assert.deepEqual(adaptiveBins(3, 2), [
    [0, 2],
    [1, 3],
  ]);
  assert.deepEqual(adaptiveBins(27, 10), [
    [0, 3],
    [2, 6],
    [5, 9],
    [8, 11],
    [10, 14],
    [13, 17],
    [16, 19],
    [18, 22],
    [21, 25],
    [24, 27],
  ]);
  assert.deepEqual(adaptiveBins(13, 6), [
    [0, 3],
    [2, 5],
    [4, 7],
    [6, 9],
    [8, 11],
    [10, 13],
  ]);
  assert.deepEqual(adaptiveBins(4, 4), [
    [0, 1],
    [1, 2],
    [2, 3],
    [3, 4],
  ]);
});

test('adaptive bins refuse sizes that are not positive integers', () => {
  assert.throws(() => adaptiveBins(0, 2), RangeError);
  assert.throws(() => adaptiveBins(3, 1.5), RangeError);
});
