/**
 * The N-view training step (cpu, tiny spec): with two views it is bit for bit the step as it was before
 * views were declarable (loss, weights, memories, Z, random state); with 3 and 4 views and the core /
 * full objectives the loss is the sum of per-pair losses computed independently from the same embeddings
 * with the NCE code, the gradients are those of that sum, and every view's memory gets its own update.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import { MemoryBank } from '../../train/loss/memory_bank.ts';
import { nceLoss, softmaxLoss } from '../../train/loss/nce.ts';
import { SGD } from '../../train/optim/sgd.ts';
import { CmcStep } from '../../train/trainer/step.ts';
import { objectivePairs, type Objective } from '../../train/trainer/objective.ts';
import { layoutChannels } from '../../core/preprocess/views.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { Rng } from '../../core/util/rng.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';

const N = 40,
  B = 6,
  K = 9;
const quiet = () => {};
const SGD_OPTS = { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 };

before(async () => {
  await initBackend('cpu', { quiet: true });
});

function batch(channels: number, seed: number): { x: tf.Tensor4D; y: Int32Array } {
  const rng = new Rng(seed);
  const x = tf.tensor4d(
    Float32Array.from({ length: B * 16 * 16 * channels }, () => rng.uniform() * 2 - 1),
    [B, 16, 16, channels],
  );
  const y = Int32Array.from([3, 17, 0, 39, 22, 8].map((v) => (v + seed) % N));
  return { x, y };
}

function setup(spec: CmcSpec, softmax: boolean, pairs?: [number, number][]) {
  const model = new CmcModel(spec, 7);
  const rng = new Rng(8);
  const bank = new MemoryBank({ nData: N, featDim: 16, K, softmax, rng, log: quiet, views: spec.views.length, pairs });
  const sgd = new SGD(model.trainableVariables(), SGD_OPTS);
  return { model, rng, bank, sgd };
}

/** The step as it was before N views (two views hard-coded), kept here as the reference. */
async function twoViewStepBefore(
  model: CmcModel,
  bank: MemoryBank,
  sgd: SGD,
  x: tf.Tensor4D,
  y: Int32Array,
): Promise<number> {
  let kept: tf.Tensor2D[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const [l, ab] = model.forward(x, { training: true }).views as [tf.Tensor2D, tf.Tensor2D];
    const { outL, outAb } = bank.forward(l, ab, y);
    const lossL = bank.softmax ? softmaxLoss(outL) : nceLoss(outL, bank.nData);
    const lossAb = bank.softmax ? softmaxLoss(outAb) : nceLoss(outAb, bank.nData);
    kept = [tf.keep(l), tf.keep(ab)];
    return tf.add(lossL, lossAb) as tf.Scalar;
  }, model.trainableVariables());
  sgd.step(grads);
  tf.dispose(grads);
  bank.update(kept[0], kept[1], y);
  const loss = (await value.data())[0];
  tf.dispose([value, ...kept]);
  return loss;
}

function dispose(...xs: { dispose(): void }[]): void {
  for (const x of xs) x.dispose();
}

test('objective pairs: core = (core, v) both ways for every other v; full = every pair; two views = [[0,1],[1,0]]', () => {
  assert.deepEqual(objectivePairs(['L', 'ab'], 'core'), [
    [0, 1],
    [1, 0],
  ]);
  assert.deepEqual(objectivePairs(['L', 'ab'], 'full'), [
    [0, 1],
    [1, 0],
  ]);
  assert.deepEqual(objectivePairs(['L', 'ab'], 'core', 'ab'), [
    [0, 1],
    [1, 0],
  ]);
  assert.deepEqual(objectivePairs(['L', 'ab', 'DbDr'], 'core'), [
    [0, 1],
    [1, 0],
    [0, 2],
    [2, 0],
  ]);
  assert.deepEqual(objectivePairs(['L', 'ab', 'DbDr'], 'core', 'ab'), [
    [0, 1],
    [1, 0],
    [1, 2],
    [2, 1],
  ]);
  assert.deepEqual(objectivePairs(['L', 'ab', 'DbDr'], 'full'), [
    [0, 1],
    [1, 0],
    [0, 2],
    [2, 0],
    [1, 2],
    [2, 1],
  ]);
  assert.equal(objectivePairs(['L', 'ab', 'DbDr', 'grad'], 'full').length, 12);
  assert.throws(() => objectivePairs(['L', 'ab'], 'core', 'Y'), /--core_view Y is not one of the views/);
});

for (const softmax of [false, true]) {
  test(`two views (${softmax ? 'softmax' : 'NCE'}): CmcStep is bit for bit the step before N views (3 steps)`, async () => {
    const spec = tinySpec() as CmcSpec;
    const a = setup(spec, softmax, objectivePairs(['L', 'ab'], 'core'));
    const b = setup(spec, softmax);
    const step = new CmcStep(a.model, a.bank, a.sgd);
    for (let s = 0; s < 3; s++) {
      const { x, y } = batch(3, s);
      const r = await step.run(x, y);
      const want = await twoViewStepBefore(b.model, b.bank, b.sgd, x, y);
      x.dispose();
      assert.equal(r.loss, want, `step ${s} loss`);
      assert.deepEqual(r.pairLoss.length, 2);
    }
    assert.deepEqual(a.model.toNamedArrays(), b.model.toNamedArrays());
    assert.deepEqual(a.bank.state(), b.bank.state());
    assert.deepEqual(a.rng.getState(), b.rng.getState());
    dispose(a.model, a.bank, a.sgd, b.model, b.bank, b.sgd);
  });
}

const CASES: { views: string[]; objective: Objective; core?: string; softmax: boolean }[] = [
  { views: ['L', 'ab', 'DbDr'], objective: 'core', softmax: false },
  { views: ['L', 'ab', 'DbDr'], objective: 'full', softmax: false },
  { views: ['L', 'ab', 'Y', 'grad'], objective: 'core', core: 'ab', softmax: true },
  { views: ['L', 'ab', 'Y', 'grad'], objective: 'full', softmax: false },
];

for (const c of CASES) {
  test(`${c.views.length} views ${c.views.join(',')}, ${c.objective}${c.core ? ` (core ${c.core})` : ''}, ${c.softmax ? 'softmax' : 'NCE'}: loss = sum of independent pair losses, same gradients, per-view memory updates`, async () => {
    const spec = tinySpec({ views: c.views }) as CmcSpec;
    const pairs = objectivePairs(c.views, c.objective, c.core);
    const run = setup(spec, c.softmax, pairs);
    const ref = setup(spec, c.softmax, pairs); // same seeds: same weights and memories
    const { x, y } = batch(layoutChannels(c.views), 1);
    const idx = new MemoryBank({ nData: N, featDim: 16, K, rng: new Rng(99), log: quiet }).sampleIdx(y);
    const before = c.views.map((_, v) => ref.bank.memory(v).arraySync());

    const r = await new CmcStep(run.model, run.bank, run.sgd).run(x, y, idx);
    assert.equal(r.pairLoss.length, pairs.length);

    // Reference: the same embeddings, each pair scored with rawScores and the NCE code, summed.
    let feats: tf.Tensor2D[] = [];
    const parts: number[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const views = ref.model.forward(x, { training: true }).views as tf.Tensor2D[];
      feats = views.map((v) => tf.keep(v));
      const losses = pairs.map(([a, m], p) => {
        const s = ref.bank.rawScores(views[a], m, idx);
        const T = ref.bank.T;
        const loss = c.softmax
          ? softmaxLoss(tf.div(s, T) as tf.Tensor2D)
          : nceLoss(tf.div(tf.exp(tf.div(s, T)), run.bank.zValues[p]) as tf.Tensor2D, N);
        parts.push(loss.dataSync()[0]);
        return loss;
      });
      return tf.addN(losses) as tf.Scalar;
    }, ref.model.trainableVariables());
    const want = value.dataSync()[0];
    assert.ok(Math.abs(r.loss - want) <= 1e-5 * Math.abs(want), `loss ${r.loss} vs ${want}`);
    parts.forEach((p, i) =>
      assert.ok(Math.abs(r.pairLoss[i] - p) <= 1e-5 * Math.abs(p), `pair ${i}: ${r.pairLoss[i]} vs ${p}`),
    );
    if (!c.softmax) {
      // Z of each pair: mean(exp(s/T)) * N on this first batch, per pair.
      pairs.forEach(([a, m], p) => {
        const z = tf.tidy(
          () => tf.mean(tf.exp(tf.div(ref.bank.rawScores(feats[a], m, idx), ref.bank.T))).dataSync()[0] * N,
        );
        assert.ok(Math.abs(run.bank.zValues[p] - z) <= 1e-5 * z, `Z ${p}`);
      });
    }
    // Gradients: the same SGD step from the reference gradients gives the same weights; every encoder moved.
    ref.sgd.step(grads);
    tf.dispose([value, ...Object.values(grads)]);
    const got = run.model.toNamedArrays();
    const exp = ref.model.toNamedArrays();
    const init = new CmcModel(spec, 7).toNamedArrays();
    for (const k of Object.keys(exp)) {
      let d = 0;
      for (let i = 0; i < exp[k].data.length; i++) d = Math.max(d, Math.abs(got[k].data[i] - exp[k].data[i]));
      assert.ok(d <= 1e-5, `${k}: max |diff| ${d}`);
    }
    for (const v of c.views) {
      const w = `${v}.c1.0.weight`;
      assert.notDeepEqual(got[w].data, init[w].data, `${v} encoder was updated`);
    }
    // Memories: rows y of view v <- normalise(m * old + (1 - m) * feat_v); other rows unchanged.
    const m = run.bank.momentum;
    c.views.forEach((name, v) => {
      const after = run.bank.memory(v).arraySync();
      const f = feats[v].arraySync();
      for (let row = 0; row < N; row++) {
        const i = y.indexOf(row);
        if (i < 0) {
          assert.deepEqual(after[row], before[v][row], `${name} row ${row} untouched`);
          continue;
        }
        const r2 = before[v][row].map((o, d) => m * o + (1 - m) * f[i][d]);
        const norm = Math.hypot(...r2);
        r2.forEach((val, d) => assert.ok(Math.abs(after[row][d] - val / norm) < 1e-5, `${name} row ${row}`));
      }
    });
    tf.dispose([x, ...feats]);
    dispose(run.model, run.bank, run.sgd, ref.model, ref.bank, ref.sgd);
  });
}
