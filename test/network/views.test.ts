/**
 * Specs with declared views: one encoder per view with its channel count, channels offset in the input
 * layout, the two-view spec unchanged, and view subsets (the L encoder alone) with remapped inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getCmcSpec } from '../../core/network/registry.ts';
import { checkSpecInput, inputChannelCount, subsetSpec } from '../../core/network/input.ts';
import { CmcModel } from '../../train/model/cmc.ts';

const opts = { imageSize: 32, featDim: 64 };

test('the default views (L,ab) give exactly the two-view spec, for Lab and YCbCr', () => {
  for (const view of ['Lab', 'YCbCr'] as const) {
    assert.deepEqual(
      getCmcSpec('alexnet_small', { ...opts, view, views: ['L', 'ab'] }),
      getCmcSpec('alexnet_small', { ...opts, view }),
    );
  }
  const s = getCmcSpec('alexnet_small', opts);
  assert.equal(s.input, undefined);
  assert.equal(inputChannelCount(s), 3);
});

test('--views L,ab,DbDr,grad: one encoder per view, channels offset in the declared input', () => {
  const s = getCmcSpec('alexnet_small', { ...opts, views: ['L', 'ab', 'DbDr', 'grad'] });
  assert.deepEqual(s.input, ['L', 'ab', 'DbDr', 'grad']);
  assert.deepEqual(
    s.views.map((v) => [v.name, v.channels, v.encoder.inChannels]),
    [
      ['L', [0], 1],
      ['ab', [1, 2], 2],
      ['DbDr', [3, 4], 2],
      ['grad', [5, 6], 2],
    ],
  );
  assert.equal(s.featDim, 64);
  assert.equal(inputChannelCount(s), 7);
  checkSpecInput(s);
  // Parameter names keep the `${view}.` prefix, so the L and ab encoders are named as in two-view checkpoints.
  const names = CmcModel.paramNames(s).map((p) => p.name);
  assert.ok(names.includes('L.conv_block_1.0.weight') && names.includes('grad.fc8.0.bias'));
  assert.deepEqual(
    CmcModel.paramNames(s).filter((p) => p.name.startsWith('L.') || p.name.startsWith('ab.')),
    CmcModel.paramNames(getCmcSpec('alexnet_small', opts)),
  );
  assert.throws(
    () => getCmcSpec('alexnet_small', { ...opts, view: 'YCbCr', views: ['L', 'ab', 'grad'] }),
    /--view YCbCr only applies/,
  );
  assert.throws(() => getCmcSpec('alexnet_small', { ...opts, views: ['L', 'nope'] }), /Unknown view 'nope'/);
});

test('subsetSpec: the chosen encoders in the given order, the input shrunk to what they read', () => {
  const s = getCmcSpec('alexnet_small', { ...opts, views: ['L', 'ab', 'DbDr', 'grad'] });
  const l = subsetSpec(s, ['L']);
  assert.deepEqual(l.input, ['L']);
  assert.deepEqual(
    l.views.map((v) => [v.name, v.channels]),
    [['L', [0]]],
  );
  const gl = subsetSpec(s, ['grad', 'L']);
  assert.deepEqual(gl.input, ['L', 'grad']);
  assert.deepEqual(
    gl.views.map((v) => [v.name, v.channels]),
    [
      ['grad', [1, 2]],
      ['L', [0]],
    ],
  );
  assert.equal(gl.views[0].encoder, s.views[3].encoder);
  // Two-view specs (no declared input) keep their 3-channel colour input.
  const two = subsetSpec(getCmcSpec('alexnet_small', opts), ['ab']);
  assert.equal(two.input, undefined);
  assert.deepEqual(
    two.views.map((v) => [v.name, v.channels]),
    [['ab', [1, 2]]],
  );
  assert.throws(() => subsetSpec(s, ['Y']), /has no view 'Y'; its views are L, ab, DbDr, grad/);
  assert.throws(() => subsetSpec(s, ['L', 'L']), /twice/);
  assert.throws(
    () => checkSpecInput({ ...s, input: ['L', 'ab'] }),
    /view DbDr takes channels \[3,4\] but the input has 3/,
  );
});
