/**
 * Export of models with more than two views (tiny spec, random weights and BN statistics): the ONNX graph
 * computes every view (L, ab, Y, CbCr, DbDr, grad) from the uint8 RGB input and matches tfjs's eval forward
 * on toLayoutInput (onnxruntime-node, CPU); a view subset exports only those encoders and computes only
 * their inputs; the manifest lists the views in order; a head's views must match the exported ones.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { maxAbsDiff, ortRun } from '../helpers/ort.ts';
import { initBackend } from '../../train/engine/backend.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { subsetSpec } from '../../core/network/input.ts';
import { layoutChannels, toLayoutInput } from '../../core/preprocess/views.ts';
import { Rng } from '../../core/util/rng.ts';
import type { Checkpoint, TensorEntry } from '../../core/formats/checkpoint.ts';
import { exportModel } from '../../train/export/export.ts';
import type { LinearHead } from '../../core/formats/head.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';
import { randomizeBatchNorm } from '../helpers/random_model.ts';

const VIEWS = ['L', 'ab', 'Y', 'CbCr', 'DbDr', 'grad'];
const N = 3,
  SIZE = 16;

let tmp = '';
before(async () => {
  await initBackend('cpu', { quiet: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-export-multiview-'));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** A checkpoint of a random model with random BN statistics (so the BN folding is exercised). */
function randomCheckpoint(views: string[], seed: number): { model: CmcModel; checkpoint: Checkpoint } {
  const spec = tinySpec({ views }) as CmcSpec;
  const model = new CmcModel(spec, seed);
  const arrays = randomizeBatchNorm(model, new Rng(seed + 1));
  const tensors: Record<string, TensorEntry> = {};
  for (const [k, t] of Object.entries(arrays)) tensors[`model/${k}`] = t;
  const header = {
    format: 'cmc-train-checkpoint',
    config: { model: 'tiny', image_size: SIZE, feat_dim: 16, view: 'Lab', views, name: 'tiny' },
    spec,
    classNames: ['a', 'b'],
  };
  return { model, checkpoint: { header, tensors } };
}

/** Random RGB with a smooth gradient in part of it, so the Sobel view sees edges of every size. */
function images(seed: number): Uint8Array {
  const rng = new Rng(seed);
  const img = new Uint8Array(N * SIZE * SIZE * 3);
  for (let i = 0; i < img.length; i++) img[i] = rng.int(256);
  for (let y = 0; y < SIZE; y++)
    for (let x = 0; x < 8; x++) img.fill(x * 30 + y, (y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3);
  return img;
}

/** tfjs eval-mode embedding and layer-1 features (views concatenated in spec order, NCHW flatten). */
function tfjsForward(model: CmcModel, img: Uint8Array): { embedding: Float32Array; features: Float32Array } {
  const layout = model.spec.input!;
  const c = layoutChannels(layout);
  const px = SIZE * SIZE;
  const x = new Float32Array(N * px * c);
  for (let b = 0; b < N; b++)
    toLayoutInput(
      img.subarray(b * px * 3, (b + 1) * px * 3),
      SIZE,
      SIZE,
      layout,
      x.subarray(b * px * c, (b + 1) * px * c),
    );
  return tf.tidy(() => {
    const input = tf.tensor4d(x, [N, SIZE, SIZE, c]);
    const emb = tf.concat(model.forward(input, { training: false }).views as tf.Tensor2D[], 1);
    const maps = model.forward(input, { training: false, layer: 1 }).views;
    const feat = tf.concat(
      maps.map((t) => tf.reshape(tf.transpose(t, [0, 3, 1, 2]), [N, -1])),
      1,
    );
    return { embedding: emb.dataSync() as Float32Array, features: feat.dataSync() as Float32Array };
  });
}

async function runEncoder(dir: string, img: Uint8Array): Promise<Record<string, Float32Array>> {
  return ortRun(fs.readFileSync(path.join(dir, 'encoder.onnx')), {
    images: new ort.Tensor('uint8', img, [N, SIZE, SIZE, 3]),
  });
}

test('6 views (L, ab, Y, CbCr, DbDr, grad): encoder.onnx computes every view from RGB; == tfjs (1e-4)', async () => {
  const { model, checkpoint } = randomCheckpoint(VIEWS, 11);
  const img = images(12);
  const r = await exportModel({ checkpoint, outDir: path.join(tmp, 'all'), layer: 1 });
  assert.deepEqual(r.manifest.views, VIEWS);
  assert.deepEqual(r.manifest.inputViews, VIEWS);
  assert.equal(r.manifest.embeddingDim, 16 * VIEWS.length);
  const got = await runEncoder(r.outDir, img);
  const want = tfjsForward(model, img);
  const de = maxAbsDiff(got.embedding, want.embedding);
  const df = maxAbsDiff(got.features, want.features);
  assert.ok(de <= 1e-4 && df <= 1e-4, `embedding ${de}, features ${df}`);
  model.dispose();
});

test('a view subset (--export_views grad,L) exports those encoders in that order and computes only their inputs', async () => {
  const { model, checkpoint } = randomCheckpoint(['L', 'ab', 'DbDr', 'grad'], 21);
  const img = images(22);
  const r = await exportModel({ checkpoint, outDir: path.join(tmp, 'sub'), views: ['grad', 'L'], layer: 1 });
  assert.deepEqual(r.manifest.views, ['grad', 'L']);
  assert.deepEqual(r.manifest.inputViews, ['L', 'grad']);
  assert.equal(r.manifest.embeddingDim, 32);
  const bytes = fs.readFileSync(path.join(r.outDir, 'encoder.onnx'));
  assert.ok(
    !bytes.includes('preprocess/DbDr') && !bytes.includes('ab.fc.0'),
    'no DbDr input and no ab encoder in the graph',
  );
  const got = await runEncoder(r.outDir, img);
  const sub = new CmcModel(subsetSpec(model.spec, ['grad', 'L']), 0);
  sub.loadNamedArrays(
    Object.fromEntries(
      Object.entries(model.toNamedArrays()).filter(([k]) => k.startsWith('grad.') || k.startsWith('L.')),
    ),
  );
  const want = tfjsForward(sub, img);
  assert.ok(maxAbsDiff(got.embedding, want.embedding) <= 1e-4);
  assert.ok(maxAbsDiff(got.features, want.features) <= 1e-4);
  model.dispose();
  sub.dispose();
});

test("a head's views choose the exported views; a conflicting --export_views is refused", async () => {
  const { model, checkpoint } = randomCheckpoint(['L', 'ab', 'DbDr'], 31);
  const rng = new Rng(32);
  const head: LinearHead = {
    format: 'cmc-linear-head',
    version: 1,
    layer: 2,
    features: 'flatten',
    classNames: ['a', 'b'],
    inFeatures: 16,
    weight: Float32Array.from({ length: 32 }, () => rng.normal()),
    bias: new Float32Array(2),
    views: ['L'],
  };
  const r = await exportModel({ checkpoint, head, outDir: path.join(tmp, 'head') });
  assert.deepEqual(r.manifest.views, ['L']);
  assert.deepEqual(r.manifest.inputViews, ['L']);
  assert.ok(fs.existsSync(path.join(r.outDir, 'classifier.onnx')));
  await assert.rejects(
    exportModel({ checkpoint, head, outDir: path.join(tmp, 'head2'), views: ['ab'] }),
    /--export_views ab but the head was trained on the views L/,
  );
  await assert.rejects(exportModel({ checkpoint, outDir: path.join(tmp, 'head3'), views: ['Y'] }), /has no view 'Y'/);
  model.dispose();
});
