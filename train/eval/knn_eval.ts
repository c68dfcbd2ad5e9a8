/**
 * `cmc knn`: weighted kNN (knn.ts) of the test split against the training split, on frozen features
 * recomputed with the evaluation transform.
 *
 *   const r = await knnEvaluate({ checkpoint: 'runs/x/current.ckpt', dataFolder: 'data/cifar' });   // k 200, T 0.07
 *   r.top1; r.layer.featureDim;
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendInfo, type BackendName } from '../engine/backend.ts';
import { Loader, type LoaderOptions } from '../data/loader.ts';
import { SubsetLoader } from '../data/subset.ts';
import { openSource, type DataSource, type SourceKind } from '../data/sources.ts';
import type { PoolType } from '../../core/network/pooling.ts';
import { loadEncoder, type EncoderChoice, type LoadedEncoder } from './encoder.ts';
import { extractFeatures, probeLayerInfo, type FeatureSet, type ProbeLayerInfo } from './features.ts';
import { describeTestSplit, openTestSplit, type TestSplitInfo } from './splits.ts';
import { weightedKnn } from './knn.ts';
import { pct } from './metrics.ts';

export interface KnnEvalOptions extends EncoderChoice {
  dataFolder: string;
  dataset?: SourceKind | 'auto';
  /** Block whose features are compared (default: the last block, the L2-normalised embeddings). */
  layer?: number;
  pool?: [number, number] | null;
  poolType?: PoolType;
  k?: number;
  T?: number;
  backend?: BackendName;
  workers?: number;
  batchSize?: number;
  /** For a dataset without a test split: this fraction of TRAIN held out as the test split (0 = refuse such a dataset). */
  testSplit?: number;
  /** Seed of the held-out test split. */
  seed?: number;
  log?: (line: string) => void;
}

export interface KnnEvalResult {
  top1: number;
  top5: number;
  n: number;
  k: number;
  T: number;
  layer: ProbeLayerInfo;
  nTrain: number;
  testSplit: TestSplitInfo;
  encoder: string;
  backend: BackendInfo;
  seconds: number;
}

/**
 * Weighted kNN (k = 200, T = 0.07 by default) of the test split against the train split, both recomputed
 * with the frozen encoders in eval mode and the val transform. Features of `layer` (pooled and flattened as
 * for the probe) are L2-normalised per row, so for the embedding layer this is exactly the training-time
 * kNN monitor's 'recompute' mode.
 */
export async function knnEvaluate(opts: KnnEvalOptions): Promise<KnnEvalResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const t0 = performance.now();
  if (!opts.dataFolder) throw new Error('--data_folder is required');
  const backend = await initBackend(opts.backend ?? 'auto');
  const dataset = opts.dataset ?? 'auto';
  const onWarn = (m: string) => log(`[data] ${m}`);
  const trainSrc = await openSource(dataset, opts.dataFolder, 'train', { onWarn });
  let testSrc: DataSource | null = null;
  let enc: LoadedEncoder | null = null;
  const tensors: tf.Tensor[] = [];
  try {
    const held = await openTestSplit(dataset, opts.dataFolder, trainSrc, opts.testSplit ?? 0, opts.seed ?? 0, onWarn);
    testSrc = held.src === trainSrc ? null : held.src;
    enc = loadEncoder(opts);
    if (!held.src.labels()) throw new Error(`${opts.dataFolder}: kNN needs labelled train and test splits`);
    if (held.info.source === 'held_out') log(`[knn] test split: ${describeTestSplit(held.info)}`);
    const layer = opts.layer ?? enc.spec.views[0].encoder.blocks.length;
    const info = probeLayerInfo(
      enc.spec,
      layer,
      opts.pool !== undefined || opts.poolType ? { pool: opts.pool, poolType: opts.poolType } : undefined,
    );
    const k = opts.k ?? 200;
    const T = opts.T ?? 0.07;
    if (!(Number.isInteger(k) && k > 0) || !(T > 0))
      throw new Error(`k must be a positive integer and T > 0 (got ${k}, ${T})`);
    log(
      `[knn] encoder ${enc.source === 'random' ? `${enc.spec.arch} (random init)` : enc.source}; views ${enc.spec.views.map((v) => v.name).join(',')}; layer ${layer}: ${info.note} -> ${info.featureDim} features; k ${k}, T ${T}`,
    );
    const lo: LoaderOptions = {
      batchSize: opts.batchSize ?? 256,
      workers: opts.workers ?? 2,
      shuffle: false,
      transform: { mode: 'val', size: enc.imageSize, view: enc.view, input: enc.spec.input },
      onWarn,
    };
    const get = async (src: DataSource, subset: Int32Array | null) => {
      const loader = subset ? new SubsetLoader(src, lo, subset) : new Loader(src, lo);
      try {
        return await extractFeatures(enc!.model, loader, info);
      } finally {
        await loader.close();
      }
    };
    const trainIdx = held.testIdx
      ? Int32Array.from(held.trainLabels.keys()).filter((i) => held.trainLabels[i] >= 0)
      : null;
    const tr = await get(trainSrc, trainIdx);
    const te = await get(held.src, held.testIdx);
    const unit = (s: FeatureSet) =>
      tf.tidy(() => {
        const x = tf.tensor2d(s.features, [s.n, s.dim]);
        // A zero row (dead ReLU map) stays zero instead of NaN.
        return tf.div(x, tf.maximum(tf.norm(x, 2, 1, true), 1e-12)) as tf.Tensor2D;
      });
    const a = unit(tr),
      b = unit(te);
    tensors.push(a, b);
    const classes = Math.max(trainSrc.classNames.length, 1 + Math.max(...tr.labels, ...te.labels));
    const r = await weightedKnn(a, tr.labels, b, te.labels, { k, T, classes });
    log(`[knn] top-1 ${pct(r.top1)}  top-5 ${pct(r.top5)}  (${r.n} test images, ${tr.n} neighbours' pool)`);
    return {
      ...r,
      k,
      T,
      layer: info,
      nTrain: tr.n,
      testSplit: held.info,
      encoder: enc.source,
      backend,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    tf.dispose(tensors);
    enc?.model.dispose();
    trainSrc.close();
    testSrc?.close();
  }
}
