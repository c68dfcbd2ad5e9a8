/**
 * Weighted k-nearest-neighbour classification on L2-normalised features (Instance Discrimination's
 * kNN monitor, Wu et al. 2018): the k most similar training features vote for their class with weight
 * exp(similarity / T). Computed on the tfjs backend in chunks of test rows.
 *
 *   const { top1, top5 } = await weightedKnn(train, trainLabels, test, testLabels, { k: 200, T: 0.07, classes: 10 });
 */
import * as tf from '@tensorflow/tfjs-core';

export interface KnnOptions {
  k?: number;
  T?: number;
  classes: number;
  /** Test rows per similarity matmul (bounds memory: chunk × N floats). */
  chunk?: number;
}

export interface KnnResult {
  top1: number;
  top5: number;
  n: number;
}

/** train: (N, D) unit rows with labels (N); test: (M, D) unit rows with labels (M). Labels < 0 are skipped. */
export async function weightedKnn(
  train: tf.Tensor2D,
  trainLabels: Int32Array,
  test: tf.Tensor2D,
  testLabels: Int32Array,
  opts: KnnOptions,
): Promise<KnnResult> {
  const N = train.shape[0];
  const M = test.shape[0];
  const k = Math.min(opts.k ?? 200, N);
  const T = opts.T ?? 0.07;
  const C = opts.classes;
  const chunk = opts.chunk ?? 256;
  let hit1 = 0;
  let hit5 = 0;
  let counted = 0;
  for (let s = 0; s < M; s += chunk) {
    const rows = Math.min(chunk, M - s);
    const { values, indices } = tf.tidy(() => {
      const q = tf.slice(test, [s, 0], [rows, -1]);
      return tf.topk(tf.matMul(q, train, false, true), k, true);
    });
    const [sim, idx] = await Promise.all([values.data(), indices.data()]);
    tf.dispose([values, indices]);
    const votes = new Float64Array(C);
    for (let r = 0; r < rows; r++) {
      const truth = testLabels[s + r];
      if (truth < 0) continue;
      votes.fill(0);
      for (let j = 0; j < k; j++) {
        const lab = trainLabels[idx[r * k + j]];
        if (lab >= 0) votes[lab] += Math.exp(sim[r * k + j] / T);
      }
      const order = [...votes.keys()].sort((a, b) => votes[b] - votes[a] || a - b);
      if (order[0] === truth) hit1++;
      if (order.slice(0, 5).includes(truth)) hit5++;
      counted++;
    }
  }
  return { top1: counted ? hit1 / counted : 0, top5: counted ? hit5 / counted : 0, n: counted };
}
