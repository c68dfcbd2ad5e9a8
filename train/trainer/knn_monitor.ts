/**
 * The kNN monitor of `cmc train --knn_freq N`: weighted kNN (train/eval/knn.ts) of the labelled test split
 * against the training images, with the encoders as they are now. The training side is either recomputed
 * by the frozen encoders (eval mode, val transform) or read from the memory bank (config.ts `knn_source`).
 * `source` is the labelled training set (--data_folder's); with --extra_folder the bank has more rows after
 * its own, which have no labels and are left out.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CmcSpec } from '../../core/network/layers.ts';
import type { CmcModel } from '../model/cmc.ts';
import type { MemoryBank } from '../loss/memory_bank.ts';
import { Loader } from '../data/loader.ts';
import type { DataSource } from '../data/sources.ts';
import { weightedKnn } from '../eval/knn.ts';
import { extractEmbeddings } from '../eval/features.ts';
import type { TrainConfig } from './config.ts';

export type KnnMonitor = (src: 'memory' | 'recompute') => Promise<{ top1: number; top5: number }>;

export function knnMonitor(o: {
  cfg: TrainConfig;
  spec: CmcSpec;
  model: CmcModel;
  bank: MemoryBank;
  source: DataSource;
  testSource: DataSource;
}): KnnMonitor {
  const { cfg, spec, model, bank, source, testSource } = o;
  const evalLoader = (src: DataSource) =>
    new Loader(src, {
      batchSize: 256,
      workers: 0,
      shuffle: false,
      transform: { mode: 'val', size: cfg.image_size, view: cfg.view, input: spec.input },
    });
  return async (src) => {
    const test = await extractEmbeddings(model, evalLoader(testSource));
    let trainFeat: tf.Tensor2D;
    if (src === 'memory') {
      trainFeat = tf.tidy(() =>
        l2rows(
          tf.concat(
            spec.views.map((_, v) => tf.slice(bank.memory(v), [0, 0], [source.length, -1])),
            1,
          ),
        ),
      );
    } else {
      trainFeat = (await extractEmbeddings(model, evalLoader(source))).features;
    }
    const r = await weightedKnn(trainFeat, source.labels()!, test.features, test.labels, {
      k: cfg.knn_k,
      T: cfg.nce_t,
      classes: Math.max(source.classNames.length, 1 + Math.max(...source.labels()!)),
    });
    tf.dispose([trainFeat, test.features]);
    return r;
  };
}

function l2rows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.norm(x, 2, 1, true)) as tf.Tensor2D;
}
