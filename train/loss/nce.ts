/**
 * Pure CMC losses (no state): upstream's NCECriterion and NCESoftmaxLoss (HobbitLong/CMC `NCE/NCECriterion.py`).
 *
 *   const loss = sumLosses(nceLoss(outL, nData), nceLoss(outAb, nData));   // NCE mode
 *   const loss = sumLosses(softmaxLoss(outL), softmaxLoss(outAb));          // --softmax mode
 *
 * Inputs are the B×(K+1) outputs of MemoryBank.forward (column 0 = positive); upstream's trailing
 * singleton dimension is dropped. Both losses carry a hand-written gradient (tf.customGrad), so they are
 * differentiable inside tf.grads / tf.variableGrads whether or not tfjs-core's standard gradient configs
 * are registered in the process (tfjs-core alone does not register them).
 */
import * as tf from '@tensorflow/tfjs-core';
import { unaryCustomGrad } from '../engine/custom_grad.ts';

/** NCECriterion's epsilon. */
export const NCE_EPS = 1e-7;

/**
 * NCECriterion(n_data) on `out` = B×(K+1) NCE-mode outputs P (exp(s/T)/Z):
 *   c = K·Pn = K/N;  loss = −( Σᵢ log(Pᵢ₀/(Pᵢ₀+c+ε)) + Σᵢ Σⱼ≥1 log(c/(Pᵢⱼ+c+ε)) ) / B
 * (summed over the K negatives, averaged over the batch only). Scalar.
 */
export function nceLoss(out: tf.Tensor2D, nData: number): tf.Scalar {
  if (out.rank !== 2) throw new RangeError(`nceLoss expects B×(K+1) scores, got shape [${out.shape}]`);
  if (!(nData > 0)) throw new RangeError(`nceLoss: n_data must be positive, got ${nData}`);
  const [B, C] = out.shape;
  const K = C - 1;
  // Python computes m*Pn and m*Pn + eps in float64; the float32 tensor ops then use them as float32.
  const cPlusEps = K * (1 / nData) + NCE_EPS;
  const c = K * (1 / nData);
  const f = unaryCustomGrad((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const p = x as tf.Tensor2D;
    const value = tf.tidy(() => {
      const pPos = tf.slice(p, [0, 0], [B, 1]);
      const lnPmt = tf.log(tf.div(pPos, tf.add(pPos, tf.scalar(cPlusEps))));
      let total = tf.sum(lnPmt);
      if (K > 0) {
        const pNeg = tf.slice(p, [0, 1], [B, K]);
        const lnPon = tf.log(tf.div(tf.scalar(c), tf.add(pNeg, tf.scalar(cPlusEps))));
        total = tf.add(total, tf.sum(lnPon));
      }
      return tf.div(tf.neg(total), tf.scalar(B)) as tf.Scalar;
    });
    save([p]);
    return {
      value,
      // dL/dP₀ = −(c+ε)/(B·P₀·(P₀+c+ε));  dL/dPⱼ = 1/(B·(Pⱼ+c+ε))
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [ps] = saved;
          const pPos = tf.slice(ps, [0, 0], [B, 1]);
          const gPos = tf.div(tf.scalar(-cPlusEps / B), tf.mul(pPos, tf.add(pPos, tf.scalar(cPlusEps))));
          if (K === 0) return tf.mul(gPos, dy);
          const gNeg = tf.div(tf.scalar(1 / B), tf.add(tf.slice(ps, [0, 1], [B, K]), tf.scalar(cPlusEps)));
          // (tf.oneHot with a float32 dtype is broken on wasm 4.22, so the columns are concatenated.)
          return tf.mul(tf.concat([gPos, gNeg], 1), dy);
        }),
    };
  });
  return f(out) as tf.Scalar;
}

/**
 * NCESoftmaxLoss: cross-entropy of the B×(K+1) logits (s/T) with target class 0 for every row, averaged
 * over the batch. Uses a max-shifted logSumExp, so large logits do not overflow. Scalar.
 */
export function softmaxLoss(logits: tf.Tensor2D): tf.Scalar {
  if (logits.rank !== 2) throw new RangeError(`softmaxLoss expects B×(K+1) logits, got shape [${logits.shape}]`);
  const [B, C] = logits.shape;
  const f = unaryCustomGrad((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const z = x as tf.Tensor2D;
    const value = tf.tidy(() => {
      const lse = logSumExpRows(z);
      const pos = tf.reshape(tf.slice(z, [0, 0], [B, 1]), [B]);
      return tf.mean(tf.sub(lse, pos)) as tf.Scalar;
    });
    save([z]);
    return {
      value,
      // d/dz = (softmax(z) − onehot(0)) / B
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [zs] = saved;
          const p = tf.softmax(zs);
          const gPos = tf.sub(tf.slice(p, [0, 0], [B, 1]), tf.scalar(1));
          const g = C > 1 ? tf.concat([gPos, tf.slice(p, [0, 1], [B, C - 1])], 1) : gPos;
          return tf.mul(tf.div(g, tf.scalar(B)), dy);
        }),
    };
  });
  return f(logits) as tf.Scalar;
}

/**
 * Differentiable sum of scalar losses (upstream's loss_l + loss_ab). Equivalent to chaining tf.add, but
 * carries its own gradient, so it works even when tfjs-core's standard gradients are not registered.
 */
export function sumLosses(...losses: tf.Scalar[]): tf.Scalar {
  if (losses.length === 0) throw new RangeError('sumLosses: no losses');
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xs = args.slice(0, losses.length) as tf.Tensor[];
    return {
      value: tf.addN(xs) as tf.Scalar,
      gradFunc: (dy: tf.Scalar) => xs.map(() => tf.clone(dy)),
    };
  });
  return f(...losses);
}

/** Row-wise log Σ exp, shifted by the row max (B×C → B). */
function logSumExpRows(z: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const m = tf.max(z, 1, true);
    const s = tf.sum(tf.exp(tf.sub(z, m)), 1);
    return tf.add(tf.reshape(m, [z.shape[0]]), tf.log(s)) as tf.Tensor1D;
  });
}
