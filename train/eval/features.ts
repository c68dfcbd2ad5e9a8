/**
 * Frozen-encoder features: runs every batch of a loader through the encoders in eval mode (BN running
 * statistics) and returns the concatenated, L2-normalised view embeddings (or a layer's features).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CmcModel } from '../model/cmc.ts';
import type { Loader } from '../data/loader.ts';

export async function extractEmbeddings(
  model: CmcModel,
  loader: Loader,
): Promise<{ features: tf.Tensor2D; labels: Int32Array; index: Int32Array }> {
  const parts: tf.Tensor2D[] = [];
  const labels: number[] = [];
  const index: number[] = [];
  for await (const batch of loader.epoch(0)) {
    const f = tf.tidy(() => {
      const x = tf.tensor4d(batch.x, [batch.size, batch.height, batch.width, batch.channels]);
      const { views } = model.forward(x, { training: false });
      const cat = tf.concat(views as tf.Tensor2D[], 1);
      // Each view's embedding is unit-norm; normalise the concatenation so cosine similarity is a dot.
      return tf.div(cat, tf.norm(cat, 2, 1, true)) as tf.Tensor2D;
    });
    parts.push(f);
    labels.push(...batch.label);
    index.push(...batch.index);
  }
  const features = tf.concat(parts, 0) as tf.Tensor2D;
  tf.dispose(parts);
  return { features, labels: Int32Array.from(labels), index: Int32Array.from(index) };
}
