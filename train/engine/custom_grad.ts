/** tf.customGrad for a one-input function, with the (x, save) signature typed. */
import * as tf from '@tensorflow/tfjs-core';

export function unaryCustomGrad<T extends tf.Tensor>(
  fn: (x: tf.Tensor, save: tf.GradSaveFunc) => { value: T; gradFunc: (dy: T, saved: tf.Tensor[]) => tf.Tensor },
): (x: tf.Tensor) => T {
  const g = tf.customGrad<T>((...args: Array<tf.Tensor | tf.GradSaveFunc>) =>
    fn(args[0] as tf.Tensor, args[1] as tf.GradSaveFunc),
  );
  return (x: tf.Tensor) => g(x);
}
