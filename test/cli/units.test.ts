import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, plural } from '../../bin/units.ts';

test('formatBytes: B below 1 kB, then kB, MB, GB with one decimal', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(999), '999 B');
  assert.equal(formatBytes(1000), '1.0 kB');
  assert.equal(formatBytes(1564), '1.6 kB');
  assert.equal(formatBytes(999_960), '1.0 MB');
  assert.equal(formatBytes(6_912_345), '6.9 MB');
  assert.equal(formatBytes(2.5e9), '2.5 GB');
});

test('plural: no s for exactly one', () => {
  assert.equal(plural(1, 'node'), '1 node');
  assert.equal(plural(0, 'node'), '0 nodes');
  assert.equal(plural(71, 'node'), '71 nodes');
});
