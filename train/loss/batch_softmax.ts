/**
 * Cross-view InfoNCE with in-batch negatives (ours, `--negatives batch`; upstream scores against the memory
 * bank): for the anchor view's embeddings A [B, D] and the other view's O [B, D] of the same images,
 *
 *   logits = A·Oᵀ / T   (B×B; row i's positive is column i, the other B−1 columns are its negatives)
 *   loss   = mean_i ( logsumexp_j logits_ij − logits_ii )
 *
 * Why: both sides are the current network's embeddings, so the signal is fresh from the first step; a
 * memory bank's rows are one epoch old, which on a few thousand images and a few epochs means stale or
 * still random targets. Summed over the objective's ordered pairs exactly as the memory-bank losses are.
 *
 *   const { loss, prob } = batchSoftmaxLoss(zL, zAb, 0.1);
 */
import * as tf from '@tensorflow/tfjs-core';
import { unaryCustomGrad } from '../engine/custom_grad.ts';

/** The identity as float32 (tf.oneHot/eye with float32 misbehave on wasm 4.22; a plain array does not). */
function eye(n: number): tf.Tensor2D {
  const a = new Float32Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = 1;
  return tf.tensor2d(a, [n, n]);
}

/**
 * Softmax cross-entropy of square logits with the diagonal as the targets, averaged over rows. Hand-written
 * gradient (softmax(logits) − I) / B, so it needs no registered gradient of logSumExp's Max.
 */
export function diagonalCrossEntropy(logits: tf.Tensor2D): tf.Scalar {
  const [B, C] = logits.shape;
  if (B !== C) throw new RangeError(`diagonalCrossEntropy expects square logits, got [${logits.shape}]`);
  const f = unaryCustomGrad((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const z = x as tf.Tensor2D;
    const value = tf.tidy(() => {
      const lse = tf.logSumExp(z, 1);
      const I = eye(B);
      const diag = tf.sum(tf.mul(z, I), 1);
      return tf.mean(tf.sub(lse, diag)) as tf.Scalar;
    });
    save([z]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => tf.mul(tf.div(tf.sub(tf.softmax(saved[0]), eye(B)), tf.scalar(B)), dy)),
    };
  });
  return f(logits) as tf.Scalar;
}

/** Loss and the mean softmax probability of the positive (the analogue of the memory-bank logs). */
export function batchSoftmaxLoss(
  anchor: tf.Tensor2D,
  other: tf.Tensor2D,
  T: number,
): { loss: tf.Scalar; prob: tf.Scalar } {
  if (anchor.shape[0] !== other.shape[0] || anchor.shape[1] !== other.shape[1]) {
    throw new RangeError(`batchSoftmaxLoss: views differ in shape [${anchor.shape}] vs [${other.shape}]`);
  }
  const logits = tf.div(tf.matMul(anchor, other, false, true), tf.scalar(T)) as tf.Tensor2D;
  const loss = diagonalCrossEntropy(logits);
  const prob = tf.tidy(() => tf.mean(tf.sum(tf.mul(tf.softmax(logits), eye(anchor.shape[0])), 1)) as tf.Scalar);
  return { loss, prob };
}
