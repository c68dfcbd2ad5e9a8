/** CmcModel: two views, channel split, parameter naming, checkpoints, disposal. */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { CmcModel, sliceChannels } from '../../train/model/cmc.ts';
import { getCmcSpec } from '../../core/network/registry.ts';
import { countParams } from '../../core/network/shapes.ts';
import { Rng } from '../../core/util/rng.ts';

before(async () => {
  await initBackend('cpu', { quiet: true });
});

function randn(rng: Rng, shape: [number, number, number, number]): tf.Tensor4D {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor4d(
    Float32Array.from({ length: n }, () => rng.normal()),
    shape,
  );
}

const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

test('alexnet_small pair: L and ab views give unit-norm [B, 128] embeddings; names and counts', () => {
  const spec = getCmcSpec('alexnet_small', { imageSize: 32, featDim: 128 });
  const model = new CmcModel(spec, 42);
  assert.equal(model.numParams(), 7_758_480 + 7_759_680);
  assert.equal(
    model.numParams(),
    spec.views.reduce((a, v) => a + countParams(v.encoder), 0),
  );
  assert.deepEqual(model.params.get('L.conv_block_1.0.weight')!.shape, [5, 5, 1, 48]);
  assert.deepEqual(model.params.get('ab.conv_block_1.0.weight')!.shape, [5, 5, 2, 48]);
  assert.ok(model.params.has('ab.fc8.0.bias') && model.params.has('L.fc6.1.running_var'));
  assert.deepEqual(
    [...model.params.keys()],
    CmcModel.paramNames(spec).map((p) => p.name),
  );
  assert.ok(model.trainableVariables().every((v) => v.trainable));
  assert.equal(model.trainableVariables().length, CmcModel.paramNames(spec).filter((p) => p.kind === 'param').length);

  const x = randn(new Rng(1), [2, 32, 32, 3]);
  const before = tf.memory().numTensors;
  const { views } = model.forward(x, { training: true });
  assert.equal(tf.memory().numTensors, before + 2, 'only the two outputs survive');
  assert.equal(views.length, 2);
  for (const v of views) {
    assert.deepEqual(v.shape, [2, 128]);
    const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(v), -1)));
    for (const n of norms.dataSync()) assert.ok(Math.abs(n - 1) < 1e-5);
    norms.dispose();
  }
  tf.dispose(views);
  // Each view sees only its channels: changing channel 0 leaves the ab view unchanged (eval mode).
  const x2 = tf.tidy(() => tf.concat([tf.mul(sliceChannels(x, [0]), -1), sliceChannels(x, [1, 2])], 3)) as tf.Tensor4D;
  const a = model.forward(x, { training: false, layer: 2 }).views;
  const b = model.forward(x2, { training: false, layer: 2 }).views;
  assert.deepEqual(a[0].shape, [2, 7, 7, 128]);
  assert.ok(maxAbsDiff(a[0], b[0]) > 1e-3);
  assert.equal(maxAbsDiff(a[1], b[1]), 0);
  tf.dispose([...a, ...b, x, x2]);
  model.dispose();
  assert.equal(tf.memory().numTensors, before - model.params.size - 1, 'all freed after dispose()');
});

test('same seed, same weights; different seed, different weights', () => {
  const spec = getCmcSpec('resnet18v1_small', { imageSize: 32, featDim: 128 });
  const m1 = new CmcModel(spec, 7);
  const m2 = new CmcModel(spec, 7);
  const m3 = new CmcModel(spec, 8);
  const k = 'ab.layer2.0.conv1.weight';
  assert.equal(maxAbsDiff(m1.params.get(k)!, m2.params.get(k)!), 0);
  assert.ok(maxAbsDiff(m1.params.get(k)!, m3.params.get(k)!) > 0);
  // the two views are initialised from one stream, so they differ
  assert.ok(maxAbsDiff(m1.params.get('L.layer2.0.conv1.weight')!, m1.params.get(k)!) > 0);
  assert.deepEqual(m1.params.get('L.conv1.weight')!.shape, [3, 3, 1, 64]);
  assert.deepEqual(m1.params.get('ab.fc.weight')!.shape, [256, 128]);
  [m1, m2, m3].forEach((m) => m.dispose());
});

test('resnet18v1_small pair forward and gradients reach both views', () => {
  const model = new CmcModel(getCmcSpec('resnet18v1_small', { imageSize: 32, featDim: 64 }), 3);
  assert.equal(model.spec.featDim, 128); // MyResNetsCMC ignores feat_dim
  const x = randn(new Rng(2), [2, 32, 32, 3]);
  const r = tf.randomNormal([2, 128], 0, 1, 'float32', 5);
  const heads = ['L.fc.weight', 'ab.fc.weight', 'L.fc.bias'].map((n) => model.params.get(n)!);
  const { value, grads } = tf.variableGrads(() => {
    const { views } = model.forward(x, { training: true });
    return tf.add(tf.sum(tf.mul(views[0], r)), tf.sum(tf.mul(views[1], r))) as tf.Scalar;
  }, heads);
  for (const h of heads) {
    const g = grads[h.name];
    assert.deepEqual(g.shape, h.shape);
    assert.ok(tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]) > 0);
  }
  tf.dispose([value, ...Object.values(grads), x, r]);
  model.dispose();
});

test('toNamedArrays / loadNamedArrays round trip (parameters and BN buffers), with checks', () => {
  const spec = getCmcSpec('alexnet_small', { imageSize: 32, featDim: 16 });
  const a = new CmcModel(spec, 1);
  const x = randn(new Rng(3), [2, 32, 32, 3]);
  tf.dispose(a.forward(x, { training: true }).views); // moves the running statistics off their init
  const saved = a.toNamedArrays();
  assert.equal(Object.keys(saved).length, a.params.size);
  assert.ok(saved['L.conv_block_1.1.running_mean'].data.some((v) => v !== 0));
  const b = new CmcModel(spec, 2);
  b.loadNamedArrays(saved);
  const ya = a.forward(x, { training: false }).views;
  const yb = b.forward(x, { training: false }).views;
  assert.equal(maxAbsDiff(ya[0], yb[0]), 0);
  assert.equal(maxAbsDiff(ya[1], yb[1]), 0);
  // the snapshot is a copy
  saved['L.fc8.0.bias'].data[0] += 1;
  assert.notEqual(a.params.get('L.fc8.0.bias')!.dataSync()[0], saved['L.fc8.0.bias'].data[0]);

  const { ['ab.fc8.0.bias']: _dropped, ...missing } = saved;
  assert.throws(() => b.loadNamedArrays(missing), /lacks parameter ab.fc8.0.bias/);
  b.loadNamedArrays(missing, { strict: false });
  assert.throws(
    () => b.loadNamedArrays({ ...saved, 'L.extra': { shape: [1], data: new Float32Array(1) } }),
    /unknown parameter L.extra/,
  );
  assert.throws(
    () => b.loadNamedArrays({ ...saved, 'L.fc8.0.bias': { shape: [17], data: new Float32Array(17) } }),
    /checkpoint shape \[17\] but model \[16\]/,
  );
  tf.dispose([...ya, ...yb, x]);
  a.dispose();
  b.dispose();
  assert.throws(() => a.forward(x, { training: false }), /after dispose/);
});

test('sliceChannels: slice for contiguous channels, gather otherwise', () => {
  const x = tf.tensor4d([0, 1, 2, 10, 11, 12], [1, 1, 2, 3]);
  assert.deepEqual(Array.from(sliceChannels(x, [1, 2]).dataSync()), [1, 2, 11, 12]);
  assert.deepEqual(Array.from(sliceChannels(x, [2, 0]).dataSync()), [2, 0, 12, 10]);
  x.dispose();
});
