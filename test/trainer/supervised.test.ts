/**
 * `cmc supervised` on generated data (wasm): the cross-entropy falls (a tiny two-view spec, fast), the test
 * split is scored every epoch, and an alexnet_small 32 px checkpoint loads as a CMC encoder pair (what
 * `cmc probe --checkpoint` does).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeTinySpec } from '../helpers/tiny_spec.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { writeSyntheticDataset } from '../../train/data/synthetic.ts';
import { readCheckpoint } from '../../core/formats/checkpoint.ts';
import { loadEncoder } from '../../train/eval/encoder.ts';
import { probe } from '../../train/eval/linear_probe.ts';
import { preNormDim, preNormFeatures, trainSupervised, type SupervisedConfig } from '../../train/trainer/supervised.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-supervised-test-'));
const data = path.join(tmp, 'data');
const quiet = () => {};

// A small two-view network in the spec language (as test/trainer/train.test.ts): conv, BN, ReLU, maxpool, linear, l2norm.
const tinySpecFile = path.join(tmp, 'tiny.json');

before(async () => {
  await initBackend('wasm', { quiet: true });
  writeSyntheticDataset(data, { size: 32, train: 64, test: 32, seed: 9 });
  writeTinySpec(tinySpecFile, { convStride: 1 });
});

/** The tiny network's run on the generated data (wasm, no loader threads). */
const tiny = (): Partial<SupervisedConfig> & { data_folder: string } => ({
  data_folder: data,
  model: tinySpecFile,
  image_size: 16,
  batch_size: 16,
  learning_rate: 0.05,
  lr_decay_epochs: [],
  crop_low: 0.8,
  backend: 'wasm',
  workers: 0,
  model_path: tmp,
  seed: 3,
});

test('supervised training lowers its cross-entropy and scores the test split every epoch', async () => {
  const losses: number[] = [];
  const r = await trainSupervised(
    { ...tiny(), epochs: 6, name: 'tiny' },
    { log: quiet, onStep: (_e, _s, l) => losses.push(l) },
  );
  assert.equal(r.metrics.length, 6);
  assert.equal(losses.length, 24);
  const first = r.metrics[0].loss,
    last = r.metrics[5].loss;
  assert.ok(last < first * 0.8, `epoch loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  assert.ok(r.metrics.every((m) => m.test_top1 !== undefined && m.test_top1 >= 0 && m.test_top5! >= m.test_top1));
  assert.deepEqual(r.classNames, ['disc', 'square', 'stripes', 'ring']);
  const ck = readCheckpoint<{ format: string; objective: string; epoch: number }>(r.checkpoint);
  assert.equal(ck.header.objective, 'supervised');
  assert.deepEqual(ck.tensors['classifier/weight'].shape, [32, 4]);
});

test('--val_split: trains on the rest, scores the held-out images every epoch and names the best epoch', async () => {
  const steps: number[] = [];
  const r = await trainSupervised(
    { ...tiny(), epochs: 3, name: 'tiny_val', val_split: 0.25 },
    { log: quiet, onStep: (_e, s) => steps.push(s) },
  );
  // 64 images, 16 per class: 4 per class held out, 48 trained on (3 batches of 16 per epoch).
  assert.equal(steps.length, 9);
  for (const m of r.metrics) {
    assert.ok(m.held_out_top1 !== undefined && m.held_out_top1 >= 0 && m.held_out_top1 <= 1);
    // 16 held-out images: top-1 is a multiple of 1/16.
    assert.equal(Math.round(m.held_out_top1 * 16), m.held_out_top1 * 16);
    assert.ok(m.test_top1 !== undefined, 'the test split is still scored');
  }
  const best = Math.max(...r.metrics.map((m) => m.held_out_top1!));
  assert.equal(r.bestHeldOut?.held_out_top1, best);
  assert.equal(r.bestHeldOut?.epoch, r.metrics.find((m) => m.held_out_top1 === best)!.epoch, 'the earliest best');
  await assert.rejects(
    trainSupervised({ data_folder: data, model: tinySpecFile, val_split: 1, backend: 'wasm' }, { log: quiet }),
    /--val_split must be in \[0, 1\)/,
  );
});

test("--extra_folder: trains on every folder's labelled images, scores --data_folder's test split; a folder given twice is refused", async () => {
  const extra = path.join(tmp, 'extra');
  writeSyntheticDataset(extra, { size: 32, train: 32, test: 8, seed: 11 });
  const steps: number[] = [];
  const r = await trainSupervised(
    { ...tiny(), epochs: 1, name: 'tiny_extra', extra_folder: [extra] },
    { log: quiet, onStep: (_e, s) => steps.push(s) },
  );
  // 64 + 32 images, batch 16: 6 steps (4 without the extra folder); the test split is data's 32 images.
  assert.equal(steps.length, 6);
  assert.equal(r.metrics[0].test_top1! * 32, Math.round(r.metrics[0].test_top1! * 32));
  await assert.rejects(
    trainSupervised({ ...tiny(), epochs: 1, extra_folder: [data] }, { log: quiet }),
    /a folder is given twice/,
  );
});

test('an alexnet_small supervised checkpoint is a cmc-train-checkpoint the probe loads', async () => {
  const r = await trainSupervised(
    {
      data_folder: data,
      model: 'alexnet_small',
      image_size: 32,
      batch_size: 32,
      epochs: 1,
      backend: 'wasm',
      workers: 0,
      model_path: tmp,
      name: 'alex',
      seed: 3,
    },
    { log: quiet },
  );
  const ck = readCheckpoint<{
    format: string;
    objective: string;
    config: { view: string; image_size: number };
    epoch: number;
  }>(r.checkpoint);
  assert.equal(ck.header.format, 'cmc-train-checkpoint');
  assert.equal(ck.header.config.image_size, 32);
  assert.deepEqual(ck.tensors['classifier/weight'].shape, [256, 4]);
  const enc = loadEncoder({ checkpoint: r.checkpoint });
  assert.equal(enc.imageSize, 32);
  assert.equal(preNormDim(enc.spec), 256);
  assert.deepEqual(
    Array.from(enc.model.params.get('ab.fc8.0.weight')!.dataSync()),
    Array.from(ck.tensors['model/ab.fc8.0.weight'].data),
  );
  const f = preNormFeatures(enc.model, tf.zeros([2, 32, 32, 3]) as tf.Tensor4D, false);
  assert.deepEqual(f.shape, [2, 256]);
  f.dispose();
  enc.model.dispose();
  const p = await probe({
    checkpoint: r.checkpoint,
    dataFolder: data,
    layer: 5,
    epochs: 1,
    mode: 'cached',
    batchSize: 64,
    backend: 'wasm',
    workers: 0,
    log: quiet,
  });
  assert.equal(p.encoder, r.checkpoint);
  assert.equal(p.head.inFeatures, 2304);
});
