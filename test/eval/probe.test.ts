/**
 * Linear probe and kNN evaluation on generated data (alexnet_small, 32 px, wasm): adaptive pooling against
 * a hand computation, upstream's feature sizes, the held-out split and where the reported epoch is chosen
 * (held-out by default, the test split only when asked, labelled optimistic), the probe learning the
 * synthetic task, the head JSON round trip (and heads in the shape written before core/formats/head.ts),
 * kNN on a hand-computed example, and the CLI.
 *
 * Over 500 lines: sixteen cases of one command share one generated data set written once in before().
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { initBackend } from '../../train/engine/backend.ts';
import { writeSyntheticDataset } from '../../train/data/synthetic.ts';
import { openSource } from '../../train/data/sources.ts';
import { Loader } from '../../train/data/loader.ts';
import { getCmcSpec } from '../../core/network/registry.ts';
import { weightedKnn } from '../../train/eval/knn.ts';
import { SubsetLoader } from '../../train/data/subset.ts';
import { readHeadFile } from '../../core/formats/head.ts';
import { adaptivePool2d } from '../../train/eval/pooling.ts';
import { extractFeatures, probeLayerInfo } from '../../train/eval/features.ts';
import { loadEncoder } from '../../train/eval/encoder.ts';
import { splitTrainVal } from '../../train/eval/splits.ts';
import { headLogits } from '../../train/eval/head.ts';
import { knnEvaluate } from '../../train/eval/knn_eval.ts';
import { probe } from '../../train/eval/linear_probe.ts';
import { DivergenceWatch } from '../../train/eval/fit_head.ts';
import { formatLr } from '../../train/eval/metrics.ts';
import { HELD_OUT_DEFAULT, planSelection } from '../../train/eval/selection.ts';
import { addEvalCommands } from '../../bin/commands/eval.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-eval-test-'));
const data = path.join(tmp, 'data');
const quiet = () => {};

before(async () => {
  await initBackend('wasm', { quiet: true });
  writeSyntheticDataset(data, { size: 32, train: 160, test: 48, seed: 5 });
});

test('adaptive max / avg pooling equal a hand computation (non-divisible sizes)', () => {
  // 3x3 map 1..9, one channel, to 2x2: bins [0,2) and [1,3) on both axes (overlapping).
  const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
  assert.deepEqual(Array.from(adaptivePool2d(x, [2, 2], 'max').dataSync()), [5, 6, 8, 9]);
  assert.deepEqual(Array.from(adaptivePool2d(x, [2, 2], 'avg').dataSync()), [3, 4, 6, 7]);
  // 5x7 map, two channels, to 3x4 against a loop over the PyTorch bins.
  const [H, W, C, OH, OW] = [5, 7, 2, 3, 4];
  const v = Float32Array.from({ length: H * W * C }, (_, i) => Math.sin(i * 1.7) * 10);
  const t = tf.tensor4d(v, [1, H, W, C]);
  for (const type of ['max', 'avg'] as const) {
    const got = adaptivePool2d(t, [OH, OW], type);
    assert.deepEqual(got.shape, [1, OH, OW, C]);
    const g = got.dataSync();
    for (let i = 0; i < OH; i++) {
      const hs = Math.floor((i * H) / OH),
        he = Math.ceil(((i + 1) * H) / OH);
      for (let j = 0; j < OW; j++) {
        const ws = Math.floor((j * W) / OW),
          we = Math.ceil(((j + 1) * W) / OW);
        for (let c = 0; c < C; c++) {
          let m = -Infinity,
            s = 0,
            n = 0;
          for (let a = hs; a < he; a++)
            for (let b = ws; b < we; b++) {
              const e = v[(a * W + b) * C + c];
              m = Math.max(m, e);
              s += e;
              n++;
            }
          const want = type === 'max' ? m : s / n;
          assert.ok(
            Math.abs(g[(i * OW + j) * C + c] - want) < 1e-5,
            `${type} (${i},${j},${c}): ${g[(i * OW + j) * C + c]} vs ${want}`,
          );
        }
      }
    }
    got.dispose();
  }
  tf.dispose([x, t]);
});

test("feature sizes: upstream's table for alexnet at 224, min(map, upstream size) for alexnet_small, ResNet avg pooling", () => {
  const upstream = getCmcSpec('alexnet', { imageSize: 224, featDim: 128 });
  const dims = [1, 2, 3, 4, 5].map((l) => probeLayerInfo(upstream, l));
  assert.deepEqual(
    dims.map((d) => d.featureDim),
    [9600, 9216, 9600, 9600, 9216],
  );
  assert.deepEqual(
    dims.map((d) => d.pool),
    [[10, 10], [6, 6], [5, 5], [5, 5], null],
  );
  assert.ok(dims.every((d) => d.poolType === 'max'));
  const small = getCmcSpec('alexnet_small', { imageSize: 32, featDim: 128 });
  const sd = [1, 2, 3, 4, 5, 6, 7, 8].map((l) => probeLayerInfo(small, l));
  assert.deepEqual(
    sd.map((d) => d.mapShape.slice(0, 2).join('x')),
    ['15x15', '7x7', '7x7', '7x7', '3x3', '4096', '4096', '256'],
  );
  assert.deepEqual(
    sd.map((d) => d.featureDim),
    [9600, 9216, 9600, 9600, 2304, 4096, 4096, 256],
  );
  const r = getCmcSpec('resnet50v1', { imageSize: 224, featDim: 128 });
  const rd = [1, 2, 3, 4, 5, 6].map((l) => probeLayerInfo(r, l));
  assert.deepEqual(
    rd.map((d) => d.pool),
    [[8, 8], [6, 6], [4, 4], [3, 3], null, null],
  );
  assert.ok(rd.every((d) => d.poolType === 'avg'));
  assert.equal(rd[5].featureDim, 2048);
  assert.equal(rd[4].featureDim, 100352);
  assert.throws(() => probeLayerInfo(small, 9), /1\.\.8/);
  assert.equal(probeLayerInfo(small, 5, { pool: [2, 2] }).featureDim, 256 * 4);
});

test('held-out split: stratified, disjoint, taken from the train labels only', () => {
  const labels = Int32Array.from({ length: 40 }, (_, i) => i % 4);
  const { train, val } = splitTrainVal(labels, 0.25, 3);
  assert.equal(val.length, 12); // round(0.25 * 10) = 3 per class
  assert.equal(train.length + val.length, 40);
  assert.equal(new Set([...train, ...val]).size, 40);
  for (let c = 0; c < 4; c++) assert.equal([...val].filter((i) => labels[i] === c).length, 3);
  assert.deepEqual(splitTrainVal(labels, 0.25, 3), { train, val }, 'seeded');
});

test('SubsetLoader yields exactly the subset (indices into the full source)', async () => {
  const src = await openSource('auto', data, 'train');
  const subset = Int32Array.from([3, 10, 11, 50, 159]);
  const loader = new SubsetLoader(
    src,
    { batchSize: 2, shuffle: true, seed: 1, transform: { mode: 'val', size: 32, view: 'Lab' } },
    subset,
  );
  assert.equal(loader.length, 3);
  const seen: number[] = [];
  for await (const b of loader.epoch(1)) seen.push(...b.index);
  assert.deepEqual(
    seen.sort((a, b) => a - b),
    [...subset],
  );
  src.close();
});

test('cached probe learns the synthetic task; held-out split from train; head JSON round-trips to the same logits', async () => {
  const out = path.join(tmp, 'head.json');
  const r = await probe({
    checkpoint: null,
    arch: 'alexnet_small',
    imageSize: 32,
    seed: 1,
    dataFolder: data,
    layer: 3,
    epochs: 6,
    lr: 0.1,
    batchSize: 32,
    decayEpochs: [4],
    decayRate: 0.2,
    mode: 'cached',
    valSplit: 0.25,
    backend: 'wasm',
    workers: 0,
    out,
    log: quiet,
  });
  assert.equal(r.nHeldOut, 40);
  assert.equal(r.nTrain, 120);
  assert.equal(r.nTest, 48);
  assert.equal(r.selectedOn, 'held_out');
  assert.equal(r.chosenOn, 'chosen on the held-out split (40 training images, --val_split 0.25)');
  assert.equal(r.epochs.length, 6);
  assert.ok(r.epochs.every((m) => m.val_top1 !== undefined && m.top5 >= m.top1));
  assert.equal(r.epochs[4].lr, 0.1 * 0.2);
  assert.ok(r.epochs[5].loss < r.epochs[0].loss, 'training loss falls');
  assert.ok(r.best.top1 > 0.6, `test top-1 ${r.best.top1} (chance 0.25)`);
  const bestByVal = Math.max(...r.epochs.map((m) => m.val_top1!));
  assert.equal(r.best.val_top1, bestByVal);

  const head = await readHeadFile(out);
  assert.equal(head.format, 'cmc-linear-head');
  assert.equal(head.version, 1);
  assert.equal(head.layer, 3);
  assert.deepEqual(head.pool, [5, 5]);
  assert.equal(head.inFeatures, 9600);
  assert.deepEqual(head.classNames, ['disc', 'square', 'stripes', 'ring']);
  assert.equal(head.weight.length, 9600 * 4);
  assert.equal((head.metrics as { best: { epoch: number } }).best.epoch, r.best.epoch);
  assert.equal(head.metrics!.selectedOn, 'held_out');
  assert.equal(head.metrics!.nHeldOut, 40);
  assert.equal(head.probe!.layer, 3);
  assert.deepEqual([head.arch, head.imageSize, head.view], ['alexnet_small', 32, 'Lab']);

  // Recompute: same random encoder, test features, logits from the JSON by tfjs and by hand.
  const enc = loadEncoder({ checkpoint: null, arch: 'alexnet_small', imageSize: 32, seed: 1 });
  const src = await openSource('auto', data, 'test');
  const info = probeLayerInfo(enc.spec, 3);
  const feats = await extractFeatures(
    enc.model,
    new Loader(src, { batchSize: 64, shuffle: false, transform: { mode: 'val', size: 32, view: 'Lab' } }),
    info,
  );
  const logits = headLogits(head, tf.tensor2d(feats.features, [feats.n, feats.dim]));
  const L = logits.dataSync();
  const C = 4;
  let maxErr = 0,
    hits = 0;
  for (let i = 0; i < feats.n; i++) {
    let arg = 0;
    for (let c = 0; c < C; c++) {
      let s = head.bias[c];
      for (let d = 0; d < head.inFeatures; d++) s += feats.features[i * head.inFeatures + d] * head.weight[d * C + c];
      maxErr = Math.max(maxErr, Math.abs(s - L[i * C + c]) / (1 + Math.abs(s)));
      if (L[i * C + c] > L[i * C + arg]) arg = c;
    }
    if (arg === feats.labels[i]) hits++;
  }
  assert.ok(maxErr < 1e-4, `head logits tfjs vs by hand: ${maxErr}`);
  assert.equal(hits / feats.n, r.best.top1, "the saved head reproduces the best epoch's test top-1");
  logits.dispose();
  enc.model.dispose();
  src.close();
});

test('weight decay chosen on held-out train images, then one head refitted on all of train (last epoch)', async () => {
  const r = await probe({
    checkpoint: null,
    arch: 'alexnet_mini',
    imageSize: 32,
    seed: 1,
    dataFolder: data,
    layer: 5,
    epochs: 3,
    lr: 0.1,
    batchSize: 32,
    mode: 'cached',
    valSplit: 0.25,
    selectWeightDecay: [0, 0.5],
    backend: 'wasm',
    workers: 0,
    log: quiet,
  });
  const sel = r.wdSelection!;
  assert.deepEqual(
    sel.candidates.map((c) => c.weight_decay),
    [0, 0.5],
  );
  const top = Math.max(...sel.candidates.map((c) => c.val_top1));
  assert.equal(sel.chosen, sel.candidates.find((c) => c.val_top1 === top)!.weight_decay);
  assert.equal(r.head.probe!.weightDecay, sel.chosen);
  assert.equal(sel.n_held_out, 40);
  // The refit: every training image, no held-out part, the last epoch reported and kept.
  assert.equal(r.nTrain, 160);
  assert.equal(r.nHeldOut, 0);
  assert.equal(r.selectedOn, 'last');
  assert.equal(r.best.epoch, 3);
  assert.deepEqual(r.best, r.last);
  assert.ok(r.epochs.every((m) => m.val_top1 === undefined));
  await assert.rejects(
    probe({
      checkpoint: null,
      arch: 'alexnet_mini',
      imageSize: 32,
      dataFolder: data,
      layer: 5,
      mode: 'cached',
      valSplit: 0,
      selectWeightDecay: [0],
      backend: 'wasm',
      log: quiet,
    }),
    /--val_split > 0/,
  );
});

test("featureBatch: the frozen encoder's forward batch changes nothing in the result (cached mode); 0 is refused", async () => {
  const opts = {
    checkpoint: null,
    arch: 'alexnet_mini',
    imageSize: 32,
    seed: 1,
    dataFolder: data,
    layer: 5,
    epochs: 2,
    lr: 0.1,
    batchSize: 32,
    mode: 'cached' as const,
    valSplit: 0.25,
    backend: 'wasm' as const,
    workers: 0,
    log: quiet,
  };
  const a = await probe(opts);
  const b = await probe({ ...opts, featureBatch: 7 });
  const noTime = ({ epoch_sec: _t, ...m }: { epoch_sec?: number }) => m;
  assert.deepEqual(noTime(b.best), noTime(a.best));
  assert.deepEqual(noTime(b.last), noTime(a.last));
  assert.deepEqual(Array.from(b.head.weight), Array.from(a.head.weight));
  await assert.rejects(probe({ ...opts, featureBatch: 0 }), /featureBatch must be a positive integer/);
});

test("augmented probe chosen on the test split (upstream's protocol, explicit) runs through the frozen encoder each epoch", async () => {
  const r = await probe({
    checkpoint: null,
    arch: 'alexnet_small',
    imageSize: 32,
    seed: 2,
    dataFolder: data,
    layer: 5,
    epochs: 1,
    lr: 0.1,
    batchSize: 64,
    mode: 'augmented',
    selectOn: 'test',
    backend: 'wasm',
    workers: 0,
    log: quiet,
  });
  assert.equal(r.epochs.length, 1);
  assert.equal(r.selectedOn, 'test');
  assert.equal(r.chosenOn, 'chosen on the test split (optimistic)');
  assert.equal(r.nTrain, 160);
  assert.equal(r.nHeldOut, 0);
  assert.equal(r.head.inFeatures, 2304);
  assert.equal(r.head.pool, null);
  assert.ok(Number.isFinite(r.epochs[0].loss));
});

test('where the epoch is chosen: held-out 10% by default, --val_split 0 alone means last, the test split only when asked', () => {
  assert.deepEqual(planSelection({}), { selectOn: 'held_out', heldOut: HELD_OUT_DEFAULT, note: null });
  assert.equal(HELD_OUT_DEFAULT, 0.1);
  assert.deepEqual(planSelection({ valSplit: 0.2 }), { selectOn: 'held_out', heldOut: 0.2, note: null });
  const zero = planSelection({ valSplit: 0 });
  assert.equal(zero.selectOn, 'last');
  assert.equal(zero.heldOut, 0);
  assert.match(zero.note!, /last epoch/);
  assert.deepEqual(planSelection({ selectOn: 'test' }), { selectOn: 'test', heldOut: 0, note: null });
  assert.deepEqual(planSelection({ selectOn: 'last', valSplit: 0.2 }), { selectOn: 'last', heldOut: 0.2, note: null });
  assert.deepEqual(planSelection({ selectOn: 'held_out' }), { selectOn: 'held_out', heldOut: 0.1, note: null });
  assert.throws(() => planSelection({ selectOn: 'held_out', valSplit: 0 }), /needs held-out images/);
  assert.throws(() => planSelection({ valSplit: 1 }), /\[0, 1\)/);
  assert.throws(() => planSelection({ selectOn: 'val' as never }), /held_out, test, last/);
});

test('learning rates print rounded; a diverging loss is warned about once', () => {
  assert.equal(formatLr(0.004000000000000001), '0.004');
  assert.equal(formatLr(0.1 * 0.2), '0.02');
  assert.equal(formatLr(30), '30');
  assert.equal(formatLr(1.2345678e-7), '1.23457e-7');
  const w = new DivergenceWatch();
  assert.equal(w.check(1, 1.3), null);
  assert.equal(w.check(2, 12), null, 'below 10x the first epoch');
  assert.match(w.check(3, 14)!, /diverged in epoch 3/);
  assert.equal(w.check(4, NaN), null, 'once');
  assert.match(new DivergenceWatch().check(1, NaN)!, /diverged in epoch 1/);
});

test('by default the probe chooses its epoch on 10% of the training images held out, and says so', async () => {
  const lines: string[] = [];
  const r = await probe({
    checkpoint: null,
    arch: 'alexnet_small',
    imageSize: 32,
    seed: 1,
    dataFolder: data,
    layer: 5,
    epochs: 3,
    lr: 0.1,
    batchSize: 32,
    decayEpochs: [2],
    decayRate: 0.2,
    mode: 'cached',
    backend: 'wasm',
    workers: 0,
    log: (l) => lines.push(l),
  });
  assert.equal(r.selectedOn, 'held_out');
  assert.equal(r.heldOutFraction, 0.1);
  assert.equal(r.nHeldOut, 16); // round(0.1 * 40) per class
  assert.equal(r.nTrain, 144);
  assert.equal(r.chosenOn, 'chosen on the held-out split (16 training images, --val_split 0.1)');
  assert.equal(r.best.val_top1, Math.max(...r.epochs.map((m) => m.val_top1!)));
  assert.equal(r.head.probe!.selectOn, 'held_out');
  assert.equal(r.head.probe!.valSplit, 0.1);
  assert.ok(lines.some((l) => l.includes('reported epoch') && l.includes('chosen on the held-out split')));
  assert.ok(
    lines.some((l) => /epoch 3\/3 lr 0\.02:/.test(l)),
    'the decayed lr printed rounded',
  );
  assert.ok(!lines.some((l) => /lr 0\.0200000/.test(l)));
});

test('--val_split 0 alone reports the last epoch (and says why); --select_on held_out needs held-out images', async () => {
  const lines: string[] = [];
  const base = {
    checkpoint: null,
    arch: 'alexnet_mini',
    imageSize: 32,
    seed: 1,
    dataFolder: data,
    layer: 5,
    epochs: 2,
    batchSize: 32,
    mode: 'cached' as const,
    backend: 'wasm' as const,
    workers: 0,
  };
  const r = await probe({ ...base, valSplit: 0, log: (l) => lines.push(l) });
  assert.equal(r.selectedOn, 'last');
  assert.equal(r.nHeldOut, 0);
  assert.equal(r.nTrain, 160);
  assert.deepEqual(r.best, r.last);
  assert.equal(r.chosenOn, 'not chosen: the last epoch of the schedule');
  assert.ok(lines.some((l) => l.includes('--val_split 0 holds out no training image')));
  await assert.rejects(probe({ ...base, valSplit: 0, selectOn: 'held_out', log: quiet }), /needs held-out images/);
});

test('a head file in the shape the probe wrote before core/formats/head.ts is still read', async () => {
  const file = path.join(tmp, 'old_head.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      format: 'cmc-linear-head',
      version: 1,
      layer: 3,
      pool: null,
      poolType: 'max',
      featureDim: 3,
      classNames: ['a', 'b'],
      weight: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
      bias: [0, 1],
      featureLayout: 'concat(views, channel axis) -> adaptive pool -> flatten C,H,W (PyTorch NCHW order)',
      arch: 'alexnet_small',
      imageSize: 32,
      view: 'Lab',
      views: ['L', 'ab'],
      probeConfig: { lr: 0.1, layer: 3 },
      metrics: { selectedOn: 'val', best: { epoch: 2 }, last: { epoch: 3 }, epochs: [] },
    }),
  );
  const h = await readHeadFile(file);
  assert.equal(h.inFeatures, 3);
  assert.equal(h.pool, null);
  assert.deepEqual(h.probe, { lr: 0.1, layer: 3 });
  assert.deepEqual(h.views, ['L', 'ab']);
  assert.deepEqual([h.arch, h.imageSize, h.view], ['alexnet_small', 32, 'Lab']);
  assert.equal((h.metrics as { best: { epoch: number } }).best.epoch, 2);
  const logits = headLogits(h, tf.tensor2d([1, 0, 2], [1, 3]));
  const got = Array.from(logits.dataSync());
  [0.1 + 2 * 0.5, 0.2 + 2 * 0.6 + 1].forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 1e-6));
  logits.dispose();
});

test('weighted kNN on a hand-computed example: the exp(sim/T) weights decide', async () => {
  // Query q = e1 (label 0). Neighbours: e1 (label 0, sim 1), (0.8, ±0.6, 0) (label 1, sim 0.8 each), e3 (label 0, sim 0).
  const train = tf.tensor2d([1, 0, 0, 0.8, 0.6, 0, 0.8, -0.6, 0, 0, 0, 1], [4, 3]);
  const labels = Int32Array.from([0, 1, 1, 0]);
  const q = tf.tensor2d([1, 0, 0], [1, 3]);
  // T = 0.07: e^(1/0.07) = e^14.29 > 2 e^(0.8/0.07) = 2 e^11.43, so label 0 wins (top-1 = 1).
  const a = await weightedKnn(train, labels, q, Int32Array.from([0]), { k: 3, T: 0.07, classes: 2 });
  assert.deepEqual([a.top1, a.top5, a.n], [1, 1, 1]);
  // T = 1: e^1 = 2.72 < 2 e^0.8 = 4.45, so label 1 wins (top-1 = 0); k = 3 excludes e3.
  const b = await weightedKnn(train, labels, q, Int32Array.from([0]), { k: 3, T: 1, classes: 2 });
  assert.deepEqual([b.top1, b.top5], [0, 1]);
  // k = 4 adds e3 (label 0, weight e^0 = 1): 2.72 + 1 = 3.72 < 4.45, still label 1.
  const c = await weightedKnn(train, labels, q, Int32Array.from([0]), { k: 4, T: 1, classes: 2 });
  assert.equal(c.top1, 0);
  tf.dispose([train, q]);
});

test('knnEvaluate on frozen features: embedding by default, a pooled conv layer on request', async () => {
  const e = await knnEvaluate({
    checkpoint: null,
    arch: 'alexnet_small',
    imageSize: 32,
    seed: 1,
    dataFolder: data,
    k: 20,
    backend: 'wasm',
    workers: 0,
    log: quiet,
  });
  assert.equal(e.layer.layer, 8);
  assert.equal(e.n, 48);
  assert.ok(e.top1 >= 0 && e.top1 <= e.top5);
  const c = await knnEvaluate({
    checkpoint: null,
    arch: 'alexnet_small',
    imageSize: 32,
    seed: 1,
    dataFolder: data,
    layer: 3,
    k: 20,
    backend: 'wasm',
    workers: 0,
    log: quiet,
  });
  assert.equal(c.layer.featureDim, 9600);
  assert.ok(c.top1 > 0.4, `conv3 kNN top-1 ${c.top1} (chance 0.25)`);
});

test('cmc probe / knn / supervised: registered with --help, and probe --json runs', async () => {
  const program = new Command('cmc').exitOverride();
  addEvalCommands(program);
  assert.deepEqual(
    program.commands.map((c) => c.name()),
    ['probe', 'knn', 'supervised'],
  );
  for (const c of program.commands) {
    const help = c.helpInformation();
    assert.match(help, /--json/);
    assert.match(help, /--backend/);
  }
  assert.match(program.commands[0].helpInformation(), /--layer <n>[\s\S]*default: 5/);
  const lines: string[] = [];
  const log = console.log,
    err = console.error;
  console.log = (s: string) => lines.push(s);
  console.error = () => {};
  try {
    await program.parseAsync(
      [
        'probe',
        '--random',
        '--model',
        'alexnet_small',
        '--image_size',
        '32',
        '--data_folder',
        data,
        '--layer',
        '2',
        '--mode',
        'cached',
        '--epochs',
        '2',
        '--batch_size',
        '64',
        '--backend',
        'wasm',
        '--workers',
        '0',
        '--out',
        path.join(tmp, 'cli.json'),
        '--json',
      ],
      { from: 'user' },
    );
  } finally {
    console.log = log;
    console.error = err;
  }
  const j = JSON.parse(lines[0]);
  assert.equal(j.layer.featureDim, 9216);
  assert.equal(j.epochs.length, 2);
  assert.equal(j.head, path.join(tmp, 'cli.json'));
  assert.ok(fs.existsSync(j.head));
  assert.equal(j.selected_on, 'held_out');
  assert.equal(j.n_held_out, 16);
  assert.equal(j.config.val_split, 0.1);
  assert.match(j.chosen_on, /^chosen on the held-out split \(16 training images/);
});

test('cmc probe --select_on test is labelled optimistic in the output and the JSON', async () => {
  const help = new Command('cmc').exitOverride();
  addEvalCommands(help);
  assert.match(help.commands[0].helpInformation(), /--select_on <split>[\s\S]*held_out[\s\S]*optimistic/);
  const run = async (extra: string[]) => {
    const program = new Command('cmc').exitOverride();
    addEvalCommands(program);
    const lines: string[] = [];
    const log = console.log,
      err = console.error;
    console.log = (s: string) => lines.push(s);
    console.error = () => {};
    try {
      await program.parseAsync(
        [
          'probe',
          '--random',
          '--model',
          'alexnet_mini',
          '--image_size',
          '32',
          '--data_folder',
          data,
          '--mode',
          'cached',
          '--epochs',
          '1',
          '--backend',
          'wasm',
          '--workers',
          '0',
          '--out',
          path.join(tmp, 'cli_test.json'),
          '--select_on',
          'test',
          ...extra,
        ],
        { from: 'user' },
      );
    } finally {
      console.log = log;
      console.error = err;
    }
    return lines;
  };
  const printed = await run([]);
  assert.match(printed[0], /\(chosen on the test split \(optimistic\)\)/);
  const j = JSON.parse((await run(['--json']))[0]);
  assert.equal(j.selected_on, 'test');
  assert.equal(j.chosen_on, 'chosen on the test split (optimistic)');
  assert.equal(j.n_held_out, 0);
  const head = await readHeadFile(path.join(tmp, 'cli_test.json'));
  assert.equal(head.metrics!.chosenOn, 'chosen on the test split (optimistic)');
});
