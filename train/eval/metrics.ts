/**
 * Classification metrics of the probe and the supervised baseline on tfjs: softmax cross-entropy, top-1 /
 * top-5 hit counts (upstream `eval/util.py` accuracy()), and how the probe prints them.
 *
 *   const { hit1, hit5, n } = await topkHits(logits, labels);
 */
import * as tf from '@tensorflow/tfjs-core';

/** Mean softmax cross-entropy of logits [B, C] against integer labels. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, classes: number): tf.Scalar {
  return tf.tidy(
    () => tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, classes), tf.logSoftmax(logits)), 1))) as tf.Scalar,
  );
}

/** Top-1 / top-5 hit counts of logits against labels (labels < 0 skipped). */
export async function topkHits(
  logits: tf.Tensor2D,
  labels: ArrayLike<number>,
  offset = 0,
): Promise<{ hit1: number; hit5: number; n: number }> {
  const C = logits.shape[1];
  const k = Math.min(5, C);
  const { indices } = tf.topk(logits, k, true);
  const idx = (await indices.data()) as Int32Array;
  indices.dispose();
  let hit1 = 0,
    hit5 = 0,
    n = 0;
  for (let r = 0; r < logits.shape[0]; r++) {
    const y = labels[offset + r];
    if (y < 0) continue;
    n++;
    if (idx[r * k] === y) hit1++;
    for (let j = 0; j < k; j++) if (idx[r * k + j] === y) hit5++;
  }
  return { hit1, hit5, n };
}

/** A fraction as a percentage with two decimals: 0.6123 -> '61.23%'. */
export function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

/** A learning rate for people: six significant digits, trailing zeros dropped (0.004000000000000001 -> '0.004'). */
export function formatLr(lr: number): string {
  return String(Number(lr.toPrecision(6)));
}
