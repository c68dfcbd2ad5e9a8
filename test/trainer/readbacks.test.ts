/**
 * A training step reads back from the backend only the scalars the progress line prints, in one read
 * (on WebGPU every read is a device-to-host copy and a wait); the counter itself counts each kind of read
 * once. Runs on the backends under test (CMC_TEST_BACKENDS, default wasm and webgpu); one that cannot start
 * here is skipped with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { countReadbacks } from '../../train/engine/readbacks.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import { MemoryBank } from '../../train/loss/memory_bank.ts';
import { SGD } from '../../train/optim/sgd.ts';
import { CmcStep } from '../../train/trainer/step.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { Rng } from '../../core/util/rng.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';
import { BACKENDS_UNDER_TEST, unavailableReason } from '../helpers/backends.ts';

const N = 40,
  B = 6,
  K = 9;

test('countReadbacks counts data(), dataSync() and arraySync() once each (wasm)', async () => {
  await initBackend('wasm', { quiet: true });
  const t = tf.tensor1d([1, 2, 3]);
  const counter = countReadbacks();
  try {
    await t.data();
    t.dataSync();
    t.arraySync();
    assert.equal(counter.count, 3);
    counter.reset();
    assert.equal(counter.count, 0);
  } finally {
    counter.stop();
    t.dispose();
  }
  assert.throws(() => {
    const c = countReadbacks();
    try {
      countReadbacks();
    } finally {
      c.stop();
    }
  }, /already being counted/);
});

for (const backend of BACKENDS_UNDER_TEST) {
  for (const scoring of ['bank', 'gather'] as const) {
    test(`a training step reads back once (${backend}, ${scoring} scoring)`, async (t) => {
      const why = await unavailableReason(backend);
      if (why) return void t.skip(`${backend} unavailable: ${why}`);
      await initBackend(backend, { quiet: true });
      const model = new CmcModel(tinySpec() as CmcSpec, 7);
      const bank = new MemoryBank({ nData: N, featDim: 16, K, rng: new Rng(8), scoring, log: () => {} });
      const sgd = new SGD(model.trainableVariables(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
      const step = new CmcStep(model, bank, sgd);
      const rng = new Rng(3);
      const x = tf.tensor4d(
        Float32Array.from({ length: B * 16 * 16 * 3 }, () => rng.uniform() * 2 - 1),
        [B, 16, 16, 3],
      );
      const y = Int32Array.from([3, 17, 0, 39, 22, 8]);
      const counter = countReadbacks();
      try {
        await step.run(x, y); // the first step also estimates Z (one read per pair)
        assert.ok(counter.count <= 1 + bank.pairs.length, `first step: ${counter.count} reads`);
        for (let s = 0; s < 2; s++) {
          counter.reset();
          const r = await step.run(x, y);
          assert.ok(Number.isFinite(r.loss) && r.pairLoss.every(Number.isFinite) && r.pairProb.every(Number.isFinite));
          assert.equal(counter.count, 1, `step ${s + 2}: ${counter.count} reads back`);
        }
      } finally {
        counter.stop();
        x.dispose();
        model.dispose();
        bank.dispose();
        sgd.dispose();
      }
    });
  }
}
