/**
 * --negatives batch in the training step (cpu, tiny spec, 3 views, full objective): the step's loss is the
 * sum over the objective's pairs of batchSoftmaxLoss on the same embeddings, the weights move by the
 * gradient of that sum, and each view's memory is still updated with its embeddings.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { ensureGradients } from '../../train/engine/gradients.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import { MemoryBank } from '../../train/loss/memory_bank.ts';
import { batchSoftmaxLoss } from '../../train/loss/batch_softmax.ts';
import { SGD } from '../../train/optim/sgd.ts';
import { CmcStep } from '../../train/trainer/step.ts';
import { objectivePairs } from '../../train/trainer/objective.ts';
import { validateConfig, TRAIN_DEFAULTS, runName } from '../../train/trainer/config.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { Rng } from '../../core/util/rng.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';

const N = 30,
  B = 5,
  T = 0.2;

before(async () => {
  await initBackend('cpu', { quiet: true });
  await ensureGradients();
});

test('batch negatives: loss = sum of per-pair in-batch losses; SGD follows its gradient; memories updated', async () => {
  const views = ['L', 'ab', 'DbDr'];
  const spec = tinySpec({ views }) as unknown as CmcSpec;
  const pairs = objectivePairs(views, 'full', '');
  const channels = spec.views.reduce((m, v) => Math.max(m, ...v.channels), 0) + 1;
  const rng = new Rng(5);
  const x = tf.tensor4d(
    Float32Array.from({ length: B * 16 * 16 * channels }, () => rng.uniform() * 2 - 1),
    [B, 16, 16, channels],
  );
  const y = Int32Array.from([4, 9, 0, 29, 17]);

  // Reference: same initial weights, the loss summed by hand, one plain SGD step (lr 0.5, no momentum/decay).
  const ref = new CmcModel(spec, 3);
  const { value: refLoss, grads } = tf.variableGrads(() => {
    const z = ref.forward(x, { training: true }).views as tf.Tensor2D[];
    return pairs.map(([a, m]) => batchSoftmaxLoss(z[a], z[m], T).loss).reduce((s, l) => tf.add(s, l) as tf.Scalar);
  }, ref.trainableVariables());
  const before = ref.trainableVariables().map((v) => v.dataSync().slice());
  const expectedAfter = ref.trainableVariables().map((v, i) => {
    const g = grads[v.name].dataSync();
    return before[i].map((w, k) => w - 0.5 * g[k]);
  });

  const model = new CmcModel(spec, 3);
  const bank = new MemoryBank({
    nData: N,
    featDim: 16,
    K: 7,
    T,
    softmax: true,
    rng: new Rng(8),
    log: () => {},
    views: views.length,
    pairs,
  });
  const memBefore = bank.state().memories.map((m) => m.slice());
  const step = new CmcStep(
    model,
    bank,
    new SGD(model.trainableVariables(), { lr: 0.5, momentum: 0, weightDecay: 0 }),
    'batch',
  );
  const r = await step.run(x, y);

  assert.ok(Math.abs(r.loss - (await refLoss.data())[0]) < 1e-5, `loss ${r.loss} vs ${(await refLoss.data())[0]}`);
  assert.equal(r.pairLoss.length, pairs.length);
  assert.ok(Math.abs(r.pairLoss.reduce((a, b) => a + b, 0) - r.loss) < 1e-4);
  for (const p of r.pairProb) assert.ok(p > 0 && p < 1);
  model.trainableVariables().forEach((v, i) => {
    const got = v.dataSync();
    for (let k = 0; k < got.length; k++) assert.ok(Math.abs(got[k] - expectedAfter[i][k]) < 1e-5, `${v.name}[${k}]`);
  });
  const memAfter = bank.state().memories;
  for (let v = 0; v < views.length; v++) {
    for (const row of y) {
      const changed = memAfter[v].subarray(row * 16, row * 16 + 16).some((a, k) => a !== memBefore[v][row * 16 + k]);
      assert.ok(changed, `view ${views[v]} memory row ${row} updated`);
    }
    assert.deepEqual(memAfter[v].subarray(16, 32), memBefore[v].subarray(16, 32)); // row 1 not in the batch
  }
  tf.dispose([x, refLoss, ...Object.values(grads)]);
});

test('--negatives: validated, defaults to upstream (memory), and names the run', () => {
  assert.equal(TRAIN_DEFAULTS.negatives, 'memory');
  const c = { ...TRAIN_DEFAULTS, data_folder: 'x' };
  assert.throws(() => validateConfig({ ...c, negatives: 'both' as 'batch' }), /--negatives must be memory or batch/);
  assert.throws(() => validateConfig({ ...c, negatives: 'batch', batch_size: 1 }), /batch_size >= 2/);
  assert.match(runName({ ...c, negatives: 'batch' }), /^batch_softmax_alexnet_/);
  assert.match(runName(c), /^memory_nce_16384_alexnet_/);
});
