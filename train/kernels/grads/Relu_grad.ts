/**
 * Gradient of Relu, replacing tfjs-core's (tfjs-core/src/gradients/Relu_grad.ts: dy · cast(step(x)), two
 * kernels) with the one-pass ReluGrad kernel where the backend has it (../wasm/ReluGrad.ts), else core's.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Relu, type GradConfig } from '@tensorflow/tfjs-core';
import { ReluGrad, useFused } from '../fused.ts';

export const reluGradientConfig: GradConfig = {
  kernelName: Relu,
  inputsToSave: ['x'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
    const [x] = saved;
    const g = dy as tf.Tensor;
    if (useFused(ReluGrad) && x.dtype === 'float32' && g.dtype === 'float32') {
      return { x: () => tf.engine().runKernel(ReluGrad, { dy: g, x }) as tf.Tensor };
    }
    return { x: () => tf.mul(g, tf.cast(tf.step(x), 'float32')) };
  },
};
