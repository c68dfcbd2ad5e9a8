/**
 * Gradient of Relu: the fused ReluGrad kernel (../fused.ts) where the backend has one, else tfjs-core's
 * own rule, dy·cast(step(x)) (three kernels, each a pass over the map), which stays the reference.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Relu, type GradConfig } from '@tensorflow/tfjs-core';
import { ReluGrad, useFused } from '../fused.ts';

export const reluGradConfig: GradConfig = {
  kernelName: Relu,
  inputsToSave: ['x'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
    const [x] = saved;
    const g = dy as tf.Tensor;
    if (useFused(ReluGrad) && x.dtype === 'float32' && g.dtype === 'float32')
      return { x: () => tf.engine().runKernel(ReluGrad, { dy: g, x }) as tf.Tensor };
    return { x: () => tf.mul(g, tf.cast(tf.step(x), 'float32')) };
  },
};
