/**
 * A probe's linear head (core/formats/head.ts `LinearHead`, the one head type and JSON format) on tfjs and
 * on disk: its logits, and writing it atomically. Reading is core/formats/head.ts `readHeadFile`.
 *
 *   writeHead('runs/x/linear_layer5.json', head);
 *   const logits = headLogits(await readHeadFile('runs/x/linear_layer5.json'), features);
 */
import * as tf from '@tensorflow/tfjs-core';
import { headToJson, type LinearHead } from '../../core/formats/head.ts';
import { writeFileAtomic } from '../../core/util/atomic_write.ts';

/** features [N, inFeatures] -> logits [N, classes]. */
export function headLogits(head: LinearHead, features: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const w = tf.tensor2d(head.weight, [head.inFeatures, head.classNames.length]);
    return tf.add(tf.matMul(features, w), tf.tensor1d(head.bias)) as tf.Tensor2D;
  });
}

export function writeHead(file: string, head: LinearHead): void {
  writeFileAtomic(file, JSON.stringify(headToJson(head)));
}
