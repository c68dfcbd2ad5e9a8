/**
 * Adaptive pooling on tfjs, with PyTorch's bins (core/network/pooling.ts): the probe pools a block's map to
 * upstream's sizes (`models/LinearModel.py`) before the flatten; the exporter emits the same in ONNX
 * (train/export/emit.ts).
 *
 *   const y = adaptivePool2d(x, [5, 5], 'max');   // [B, H, W, C] -> [B, 5, 5, C]
 */
import * as tf from '@tensorflow/tfjs-core';
import { adaptiveBins, type PoolType } from '../../core/network/pooling.ts';

/**
 * AdaptiveMaxPool2d / AdaptiveAvgPool2d on NHWC [B, H, W, C] -> [B, oh, ow, C]. Bins are rectangles (a product
 * of a row interval and a column interval), so both reductions are separable: rows first, then columns.
 * Works when out > in too (bins then repeat cells, as in PyTorch).
 */
export function adaptivePool2d(x: tf.Tensor4D, out: [number, number], type: PoolType): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const reduce = (t: tf.Tensor4D, axis: 1 | 2, s: number, e: number) => {
      const begin = [0, 0, 0, 0];
      const size = [-1, -1, -1, -1];
      begin[axis] = s;
      size[axis] = e - s;
      const sl = tf.slice(t, begin, size);
      return type === 'max' ? tf.max(sl, axis, true) : tf.mean(sl, axis, true);
    };
    const rows = tf.concat(
      adaptiveBins(h, out[0]).map(([s, e]) => reduce(x, 1, s, e)),
      1,
    ) as tf.Tensor4D;
    return tf.concat(
      adaptiveBins(w, out[1]).map(([s, e]) => reduce(rows, 2, s, e)),
      2,
    ) as tf.Tensor4D;
  });
}
