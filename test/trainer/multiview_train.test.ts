/**
 * Training with more than two views end to end on generated images (cpu, tiny spec): exact resume with 3
 * views, what the checkpoint holds (one memory per view, one Z per pair, the view config), `--views` with a
 * registry model (wasm), the probe / kNN of a view subset (the L encoder alone), and two-view checkpoints
 * written before `views` existed still resuming and loading.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { writeSyntheticDataset } from '../../train/data/synthetic.ts';
import { TRAIN_DEFAULTS, validateConfig, type TrainConfig } from '../../train/trainer/config.ts';
import { train } from '../../train/trainer/train.ts';
import { readCheckpoint, writeCheckpoint } from '../../core/formats/checkpoint.ts';
import { loadEncoder } from '../../train/eval/encoder.ts';
import { layerFeatures, probeLayerInfo } from '../../train/eval/features.ts';
import { knnEvaluate } from '../../train/eval/knn_eval.ts';
import { probe } from '../../train/eval/linear_probe.ts';
import { toLayoutInput } from '../../core/preprocess/views.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { Rng } from '../../core/util/rng.ts';
import { writeTinySpec } from '../helpers/tiny_spec.ts';
import { Command } from 'commander';
import { addEvalCommands } from '../../bin/commands/eval.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-multiview-test-'));
const data = path.join(tmp, 'data');
const quiet = () => {};
const tiny3 = path.join(tmp, 'tiny3.json');
const tiny2 = path.join(tmp, 'tiny2.json');
const VIEWS = ['L', 'ab', 'DbDr'];

before(() => {
  writeSyntheticDataset(data, { size: 32, train: 48, test: 16, seed: 3 });
  writeTinySpec(tiny3, { views: VIEWS });
  writeTinySpec(tiny2);
});

function config(over: Partial<TrainConfig>): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data_folder: data,
    model: tiny3,
    image_size: 16,
    feat_dim: 16,
    batch_size: 16,
    epochs: 2,
    nce_k: 20,
    lr_decay_epochs: [1],
    workers: 0,
    backend: 'cpu',
    tb_path: path.join(tmp, 'tb'),
    views: VIEWS,
    ...over,
  };
}

let ckpt3 = '';

test('3 views (full graph) on cpu: 2 epochs == 1 epoch + resume; the checkpoint holds 3 memories, 6 Z, the view config', async () => {
  await initBackend('cpu', { quiet: true });
  const straight: number[] = [];
  const a = await train(config({ objective: 'full', model_path: path.join(tmp, 'a'), name: 'run' }), {
    log: quiet,
    onStep: (_e, _s, l) => straight.push(l),
  });
  const resumed: number[] = [];
  const b1 = await train(config({ objective: 'full', model_path: path.join(tmp, 'b'), name: 'run' }), {
    log: quiet,
    stopAfterEpoch: 1,
    onStep: (_e, _s, l) => resumed.push(l),
  });
  // Resume without restating the views: they come from the checkpoint.
  await train(
    {
      ...TRAIN_DEFAULTS,
      backend: 'cpu',
      workers: 0,
      data_folder: data,
      epochs: 2,
      tb_path: path.join(tmp, 'tb'),
      resume: b1.checkpoint,
    },
    { log: quiet, onStep: (_e, _s, l) => resumed.push(l) },
  );
  assert.equal(resumed.length, straight.length);
  straight.forEach((l, i) =>
    assert.ok(Math.abs(resumed[i] - l) <= 1e-6 * Math.max(1, Math.abs(l)), `step ${i}: ${resumed[i]} vs ${l}`),
  );
  assert.notEqual(straight[0], straight[straight.length - 1]);

  const ck = readCheckpoint<{ config: TrainConfig; spec: CmcSpec; bank: { z: number[]; views: number } }>(a.checkpoint);
  assert.deepEqual(ck.header.config.views, VIEWS);
  assert.equal(ck.header.config.objective, 'full');
  assert.deepEqual(ck.header.spec.input, VIEWS);
  assert.equal(ck.header.bank.views, 3);
  assert.equal(ck.header.bank.z.length, 6);
  assert.ok(ck.header.bank.z.every((z) => z > 0));
  for (const v of ['0', '1', '2']) assert.deepEqual(ck.tensors[`memory/${v}`].shape, [48, 16]);
  assert.ok(Object.keys(ck.tensors).includes('model/DbDr.fc.0.weight'));
  const m = a.metrics[1];
  assert.deepEqual(
    m.pairs?.map((p) => p.pair),
    ['L>ab', 'ab>L', 'L>DbDr', 'DbDr>L', 'ab>DbDr', 'DbDr>ab'],
  );
  const sum = m.pairs!.reduce((s, p) => s + p.loss, 0);
  assert.ok(Math.abs(sum - m.loss) <= 1e-4 * Math.abs(m.loss), `pair losses ${sum} sum to the loss ${m.loss}`);
  ckpt3 = a.checkpoint;
});

test('config checks: unknown views, YCbCr with other views, a core view outside the list, a JSON model with other views', async () => {
  const base = { ...TRAIN_DEFAULTS, data_folder: data };
  assert.throws(() => validateConfig({ ...base, views: ['L', 'xyz'] }), /--views: Unknown view 'xyz'/);
  assert.throws(
    () => validateConfig({ ...base, views: ['L', 'ab', 'grad'], view: 'YCbCr' }),
    /--view YCbCr only applies/,
  );
  assert.throws(
    () => validateConfig({ ...base, views: ['L', 'ab'], core_view: 'grad' }),
    /--core_view grad is not one of --views/,
  );
  assert.throws(() => validateConfig({ ...base, objective: 'star' as 'core' }), /--objective must be core or full/);
  await assert.rejects(
    train(config({ views: ['L', 'ab', 'grad'], model_path: path.join(tmp, 'bad') }), { log: quiet }),
    /declares the views L,ab,DbDr/,
  );
});

test('probe and kNN of a view subset: the L encoder alone gives the L columns of the full features', async () => {
  const full = loadEncoder({ checkpoint: ckpt3 });
  const onlyL = loadEncoder({ checkpoint: ckpt3, views: ['L'] });
  assert.deepEqual(
    onlyL.spec.views.map((v) => v.name),
    ['L'],
  );
  assert.deepEqual(onlyL.spec.input, ['L']);
  const rng = new Rng(4);
  const rgb = Uint8Array.from({ length: 2 * 16 * 16 * 3 }, () => rng.int(256));
  const input = (layout: string[], c: number) => {
    const x = new Float32Array(2 * 256 * c);
    for (let b = 0; b < 2; b++)
      toLayoutInput(rgb.subarray(b * 768, (b + 1) * 768), 16, 16, layout, x.subarray(b * 256 * c, (b + 1) * 256 * c));
    return tf.tensor4d(x, [2, 16, 16, c]);
  };
  for (const layer of [1, 2]) {
    const f = layerFeatures(full.model, input(VIEWS, 5), probeLayerInfo(full.spec, layer)).arraySync();
    const l = layerFeatures(onlyL.model, input(['L'], 1), probeLayerInfo(onlyL.spec, layer)).arraySync();
    assert.equal(f[0].length, 3 * l[0].length);
    // Layer 1 is a map (channels concatenated, then NCHW flatten): L's channels come first; layer 2 is a vector.
    l.forEach((row, b) =>
      row.forEach((v, i) => assert.ok(Math.abs(v - f[b][i]) < 1e-6, `layer ${layer} [${b}, ${i}]`)),
    );
  }
  full.model.dispose();
  onlyL.model.dispose();

  const r = await probe({
    checkpoint: ckpt3,
    views: ['L'],
    dataFolder: data,
    layer: 2,
    epochs: 2,
    batchSize: 16,
    mode: 'cached',
    backend: 'cpu',
    workers: 0,
    log: quiet,
  });
  assert.deepEqual(r.head.views, ['L']);
  assert.equal(r.head.inFeatures, 16);
  const all = await probe({
    checkpoint: ckpt3,
    dataFolder: data,
    layer: 2,
    epochs: 1,
    batchSize: 16,
    mode: 'cached',
    backend: 'cpu',
    workers: 0,
    log: quiet,
  });
  assert.deepEqual(all.head.views, VIEWS);
  assert.equal(all.head.inFeatures, 48);
  const k = await knnEvaluate({
    checkpoint: ckpt3,
    views: ['ab', 'L'],
    dataFolder: data,
    k: 5,
    backend: 'cpu',
    workers: 0,
    log: quiet,
  });
  assert.equal(k.layer.featureDim, 32);
  assert.throws(() => loadEncoder({ checkpoint: ckpt3, views: ['grad'] }), /has no view 'grad'/);

  // The CLI flag: cmc knn --probe_views L.
  const program = new Command('cmc').exitOverride();
  addEvalCommands(program);
  const lines: string[] = [];
  const log = console.log,
    err = console.error;
  console.log = (line: string) => lines.push(line);
  console.error = () => {};
  try {
    await program.parseAsync(
      [
        'knn',
        '--checkpoint',
        ckpt3,
        '--data_folder',
        data,
        '--probe_views',
        'L',
        '--k',
        '5',
        '--backend',
        'cpu',
        '--workers',
        '0',
        '--json',
      ],
      { from: 'user' },
    );
  } finally {
    console.log = log;
    console.error = err;
  }
  assert.equal(JSON.parse(lines[0]).layer.featureDim, 16);
});

test('a two-view checkpoint written before --views existed resumes (defaults L,ab / core) and loads for evaluation', async () => {
  const r = await train(
    config({ model: tiny2, views: ['L', 'ab'], epochs: 1, model_path: path.join(tmp, 'old'), name: 'run' }),
    { log: quiet },
  );
  const ck = readCheckpoint<{ config: Record<string, unknown> }>(r.checkpoint);
  for (const k of ['views', 'objective', 'core_view']) delete ck.header.config[k];
  const old = path.join(tmp, 'old', 'old.ckpt');
  writeCheckpoint(old, ck);
  const r2 = await train(
    {
      ...TRAIN_DEFAULTS,
      backend: 'cpu',
      workers: 0,
      data_folder: data,
      epochs: 2,
      tb_path: path.join(tmp, 'tb'),
      resume: old,
    },
    { log: quiet },
  );
  const h = readCheckpoint<{ config: TrainConfig; bank: { z: number[] } }>(r2.checkpoint).header;
  assert.deepEqual(h.config.views, ['L', 'ab']);
  assert.equal(h.config.objective, 'core');
  assert.equal(h.bank.z.length, 2);
  const enc = loadEncoder({ checkpoint: old });
  assert.deepEqual(
    enc.spec.views.map((v) => v.name),
    ['L', 'ab'],
  );
  enc.model.dispose();
});

test('--views with a registry model (alexnet_mini, wasm): one encoder per view, a 4-view core objective trains', async () => {
  await initBackend('wasm', { quiet: true });
  const r = await train(
    config({
      model: 'alexnet_mini',
      image_size: 32,
      feat_dim: 32,
      views: ['L', 'ab', 'Y', 'grad'],
      core_view: 'ab',
      backend: 'wasm',
      epochs: 1,
      model_path: path.join(tmp, 'mini'),
    }),
    { log: quiet },
  );
  assert.match(path.basename(r.runDir), /_view_Lab_views_L-ab-Y-grad_core-ab$/);
  const h = readCheckpoint<{ spec: CmcSpec; bank: { z: number[] } }>(r.checkpoint).header;
  assert.deepEqual(
    h.spec.views.map((v) => [v.name, v.encoder.inChannels]),
    [
      ['L', 1],
      ['ab', 2],
      ['Y', 1],
      ['grad', 2],
    ],
  );
  assert.equal(h.bank.z.length, 6);
  assert.deepEqual(
    r.metrics[0].pairs?.map((p) => p.pair),
    ['L>ab', 'ab>L', 'ab>Y', 'Y>ab', 'ab>grad', 'grad>ab'],
  );
  assert.ok(Number.isFinite(r.metrics[0].loss));
});
