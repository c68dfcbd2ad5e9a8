/**
 * The fused training kernels (train/kernels/fused.ts) against the cpu backend's stock, composed result,
 * forward and gradient, and against finite differences; each on the backends under test that have it.
 */
import { it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackends, onBoth, scaledError, seededTensor, unavailableReason } from '../helpers/backends.ts';
import { fdCheck } from '../helpers/fd.ts';
import { initBackend } from '../../train/engine/backend.ts';
import { BatchNormTrain, useFused } from '../../train/kernels/fused.ts';
import { Rng } from '../../core/util/rng.ts';

const TOL = 2e-5; // float32 summation-order differences, relative to the output's scale

/** Training-mode batch norm: the fused kernel where the backend has it, else tf.moments + tf.batchNorm. */
function batchNormTrain(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor[] {
  if (useFused(BatchNormTrain))
    return tf
      .engine()
      .runKernel(BatchNormTrain, { x, scale: gamma, offset: beta }, { varianceEpsilon: 1e-5 }) as tf.Tensor[];
  const { mean, variance } = tf.moments(x, x.shape.map((_, i) => i).slice(0, -1));
  return [tf.batchNorm(x, mean, variance, beta, gamma, 1e-5), mean, variance];
}

describeBackends('fused kernels', (name) => {
  let skip: string | null = null;
  before(async () => {
    skip = await unavailableReason(name);
    if (!skip) {
      await initBackend(name, { quiet: true });
      if (!useFused(BatchNormTrain)) skip = `${name} has no fused kernels`;
    }
  });

  for (const shape of [
    [4, 5, 5, 6],
    [9, 7],
  ]) {
    it(`batch norm, training mode [${shape}]: y, mean, variance and the gradients of a loss using all three`, async (t) => {
      if (skip) return t.skip(skip);
      const c = shape[shape.length - 1];
      const { ref, got } = await onBoth(name, () => {
        const x = tf.add(seededTensor(shape, 31, 3), 0.7); // |mean| well above 0
        const gamma = seededTensor([c], 32);
        const beta = seededTensor([c], 33);
        const w = seededTensor(shape, 34);
        const wm = seededTensor([c], 35);
        const wv = seededTensor([c], 36);
        const loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
          const [y, mean, variance] = batchNormTrain(a, g, b);
          return tf.addN([
            tf.sum(tf.mul(tf.relu(y), w)),
            tf.sum(tf.mul(mean, wm)),
            tf.sum(tf.mul(variance, wv)),
          ]) as tf.Scalar;
        };
        return [...batchNormTrain(x, gamma, beta), ...tf.grads(loss)([x, gamma, beta])];
      });
      ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'].forEach((what, i) => {
        const e = scaledError(ref[i], got[i]);
        assert.ok(e < TOL, `${what}: scaled error ${e.toExponential(2)} >= ${TOL}`);
      });
    });
  }

  // Only y reaches the loss, as in training: the statistics' gradients are zeros (native runs oneDNN's backward).
  for (const shape of [
    [4, 6, 5, 24],
    [9, 7],
  ]) {
    it(`batch norm, training mode [${shape}]: gradients of a loss using y only`, async (t) => {
      if (skip) return t.skip(skip);
      const c = shape[shape.length - 1];
      const { ref, got } = await onBoth(name, () => {
        const x = tf.add(seededTensor(shape, 51, 3), 0.7);
        const gamma = seededTensor([c], 52);
        const beta = seededTensor([c], 53);
        const w = seededTensor(shape, 54);
        const loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.relu(batchNormTrain(a, g, b)[0]), w)) as tf.Scalar;
        return tf.grads(loss)([x, gamma, beta]);
      });
      ['dx', 'dgamma', 'dbeta'].forEach((what, i) => {
        const e = scaledError(ref[i], got[i]);
        assert.ok(e < TOL, `${what}: scaled error ${e.toExponential(2)} >= ${TOL}`);
      });
    });
  }

  it('batch norm, training mode: gradients match finite differences', async (t) => {
    if (skip) return t.skip(skip);
    await initBackend(name, { quiet: true });
    const x = tf.variable(seededTensor([3, 4, 4, 5], 41, 2), true, 'fd_bn_x');
    const gamma = tf.variable(seededTensor([5], 42), true, 'fd_bn_gamma');
    const beta = tf.variable(seededTensor([5], 43), true, 'fd_bn_beta');
    // Weights correlated with x, so the terms of dx through the batch statistics are not negligible.
    const w = tf.tidy(() => tf.add(x, seededTensor([3, 4, 4, 5], 44)));
    try {
      const r = await fdCheck({
        loss: () => tf.tidy(() => tf.sum(tf.mul(batchNormTrain(x, gamma, beta)[0], w))),
        vars: [
          { name: 'x', variable: x },
          { name: 'gamma', variable: gamma },
          { name: 'beta', variable: beta },
        ],
        rng: new Rng(5),
        samplesPerVar: 4,
      });
      assert.ok(r.ok, r.report);
    } finally {
      tf.dispose([x, gamma, beta, w]);
    }
  });
});
