/**
 * Gradient of Mean, replacing tfjs-core's, which builds `ones(x.shape)`, multiplies the broadcast dy into
 * it and divides by the count: three full-size passes per call. Batch norm in training mode (tf.moments)
 * takes two means per layer, so this ran ~28 times a step. Scaling the small dy first saves the full-size
 * division (two passes instead of three), with the same values.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mean, backend_util, util, type GradConfig, type NamedAttrMap } from '@tensorflow/tfjs-core';

export const meanGradConfig: GradConfig = {
  kernelName: Mean,
  inputsToSave: ['x'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved;
    const axes = util.parseAxisParam((attrs as unknown as { axis: number | number[] }).axis, x.shape);
    const [, reduceShape] = backend_util.computeOutAndReduceShapes(x.shape, axes);
    const reduceSize = util.sizeFromShape(reduceShape);
    return {
      x: () => {
        const expanded = x.shape.slice();
        for (const a of axes) expanded[a] = 1;
        const scaled = tf.div(tf.reshape(dy as tf.Tensor, expanded), tf.scalar(reduceSize));
        // Not tf.broadcastTo: its Tile kernel on wasm is a generic index loop (~150 ms for a 6 MB map).
        return tf.mul(scaled, tf.ones(x.shape, 'float32'));
      },
    };
  },
};
