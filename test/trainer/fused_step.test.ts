/**
 * Three training steps with the fused kernels (train/kernels/fused.ts) and three with fusion off (the
 * composed tfjs ops), from the same start: the same losses and, after the steps, the same weights, BN
 * running statistics and memories, up to float32 summation order. On the backends under test that have
 * the fused kernels (wasm by default).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { BatchNormTrain, BatchNormTrainGrad, SgdStep, setFusedKernels, useFused } from '../../train/kernels/fused.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import { MemoryBank } from '../../train/loss/memory_bank.ts';
import { SGD } from '../../train/optim/sgd.ts';
import { CmcStep } from '../../train/trainer/step.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { Rng } from '../../core/util/rng.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';
import { BACKENDS_UNDER_TEST, scaledError, unavailableReason } from '../helpers/backends.ts';

const N = 40,
  B = 6,
  K = 9;
const FUSED = [SgdStep, BatchNormTrain, BatchNormTrainGrad];

async function threeSteps(fused: boolean, softmax: boolean) {
  setFusedKernels(fused);
  try {
    const model = new CmcModel(tinySpec() as CmcSpec, 7);
    const bank = new MemoryBank({ nData: N, featDim: 16, K, softmax, rng: new Rng(8), log: () => {} });
    const sgd = new SGD(model.trainableVariables(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
    const step = new CmcStep(model, bank, sgd);
    const rng = new Rng(3);
    const losses: number[] = [];
    const kernels = new Set<string>();
    for (let s = 0; s < 3; s++) {
      const x = tf.tensor4d(
        Float32Array.from({ length: B * 16 * 16 * 3 }, () => rng.uniform() * 2 - 1),
        [B, 16, 16, 3],
      );
      const y = Int32Array.from({ length: B }, (_, i) => (7 * s + 5 * i) % N);
      const info = await tf.profile(async () => {
        losses.push((await step.run(x, y)).loss);
      });
      info.kernels.forEach((k) => kernels.add(k.name));
      x.dispose();
    }
    const weights = await model.snapshot();
    const memories = (await bank.snapshot()).memories;
    model.dispose();
    bank.dispose();
    sgd.dispose();
    return { losses, weights, memories, kernels };
  } finally {
    setFusedKernels(true);
  }
}

for (const backend of BACKENDS_UNDER_TEST) {
  for (const softmax of [false, true]) {
    test(`3 steps fused = 3 steps composed (${backend}, ${softmax ? 'softmax' : 'NCE'})`, async (t) => {
      const why = await unavailableReason(backend);
      if (why) return void t.skip(`${backend} unavailable: ${why}`);
      await initBackend(backend, { quiet: true });
      if (!useFused(SgdStep)) return void t.skip(`${backend} has no fused kernels`);
      const fused = await threeSteps(true, softmax);
      const composed = await threeSteps(false, softmax);
      for (const k of FUSED) {
        assert.ok(fused.kernels.has(k), `the fused step runs ${k}`);
        assert.ok(!composed.kernels.has(k), `the composed step does not run ${k}`);
      }
      fused.losses.forEach((l, s) =>
        assert.ok(
          Math.abs(l - composed.losses[s]) <= 1e-5 * Math.abs(composed.losses[s]),
          `step ${s + 1} loss ${l} vs ${composed.losses[s]}`,
        ),
      );
      for (const [name, w] of Object.entries(composed.weights)) {
        const e = scaledError(w.data, fused.weights[name].data);
        assert.ok(e < 1e-5, `${name}: scaled error ${e.toExponential(2)}`);
      }
      composed.memories.forEach((m, v) => assert.ok(scaledError(m, fused.memories[v]) < 1e-5, `memory ${v}`));
    });
  }
}
