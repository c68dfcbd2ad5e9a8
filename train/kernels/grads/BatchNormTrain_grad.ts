/**
 * Gradient of the fused training-mode batch norm (../fused.ts BatchNormTrain): one BatchNormTrainGrad
 * kernel gives dx, dγ and dβ, including what reaches x through the batch mean and variance outputs (their
 * gradients are zeros unless something besides the running statistics uses them).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { BatchNormTrain, BatchNormTrainGrad } from '../fused.ts';

export const batchNormTrainGradientConfig: GradConfig = {
  kernelName: BatchNormTrain,
  inputsToSave: ['x', 'scale'],
  outputsToSave: [false, true, true],
  gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    const [dy, dmean, dvariance] = dys as tf.Tensor[];
    const [x, scale, mean, variance] = saved;
    // One kernel gives all three, so it runs here, once: tfjs calls each input's function in a scope of
    // its own, and the backward pass's scope frees whichever output no input asks for.
    const [dx, dScale, dOffset] = tf
      .engine()
      .runKernel(BatchNormTrainGrad, { dy, x, mean, variance, scale, dmean, dvariance }, attrs) as tf.Tensor[];
    return { x: () => dx, scale: () => dScale, offset: () => dOffset };
  },
};
