/**
 * Frozen-encoder features, in eval mode (BN running statistics, no gradient): what a layer gives
 * (`probeLayerInfo`: map shape, upstream's adaptive pooling, feature size), the features of a batch
 * (`layerFeatures`) or of a whole loader (`extractFeatures`, a `FeatureSet`), and the concatenated
 * L2-normalised embeddings the training-time kNN monitor compares (`extractEmbeddings`).
 *
 *   const info = probeLayerInfo(model.spec, 5);                 // e.g. alexnet_small: 3x3 map, no pool, 2304
 *   const set = await extractFeatures(model, loader, info);     // set.features [n, info.featureDim]
 *
 * Features per architecture (`probeLayerInfo`, upstream `models/LinearModel.py`):
 *  - AlexNet family ('alexnet', 'alexnet_small'), adaptive MAX pooling to upstream's sizes, capped at the map
 *    size (pool to min(map, upstream size) per axis; a pool that would not change the map is reported as null):
 *      upstream alexnet @224: layer 1 27x27 -> 10x10 (9600), 2 13x13 -> 6x6 (9216), 3/4 13x13 -> 5x5 (9600),
 *                             layer 5 6x6 unpooled (9216);
 *      alexnet_small:         layer 1 15x15 -> 10x10 (9600), 2 7x7 -> 6x6 (9216), 3/4 7x7 -> 5x5 (9600),
 *                             layer 5 3x3 unpooled (2304) — so layers 1-4 give upstream's feature sizes.
 *    EXTENSION (upstream's classifier rejects them): layer 6 = fc6, 7 = fc7 (2048 per view -> 4096), and
 *    8 = the L2-normalised embeddings (featDim per view, each unit-norm, concatenated as they are).
 *  - ResNet family: adaptive AVG pooling, layer 1 -> 8x8, 2 -> 6x6, 3 -> 4x4, 4 -> 3x3 (capped at the map as
 *    above), 5 unpooled, 6 = the pooled vector; EXTENSION: 7 = the embeddings.
 *  - Other (custom JSON specs): no pooling, unless `pool` is given.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CmcModel } from '../model/cmc.ts';
import type { Loader } from '../data/loader.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { inferShapes } from '../../core/network/shapes.ts';
import type { PoolType } from '../../core/network/pooling.ts';
import { adaptivePool2d } from './pooling.ts';

export interface ProbeLayerInfo {
  layer: number;
  /** Concatenated (all views) block output per example: [H, W, C] or [C]. */
  mapShape: number[];
  /** Adaptive pooling target, or null (no pooling). */
  pool: [number, number] | null;
  poolType: PoolType;
  /** Flattened feature size fed to the linear head. */
  featureDim: number;
  /** A sentence saying what was chosen (for logs). */
  note: string;
}

/** Upstream's pooling targets (`models/LinearModel.py`) per family and layer; undefined = no pooling. */
const UPSTREAM_POOL: Record<'alexnet' | 'resnet', Record<number, number>> = {
  alexnet: { 1: 10, 2: 6, 3: 5, 4: 5 },
  resnet: { 1: 8, 2: 6, 3: 4, 4: 3 },
};

export function archFamily(arch: string): 'alexnet' | 'resnet' | 'other' {
  if (arch.startsWith('alexnet')) return 'alexnet';
  if (arch.startsWith('resnet')) return 'resnet';
  return 'other';
}

/**
 * Features of `layer` for this model (see the module comment). `override` replaces the pooling choice:
 * a size, or null for none (type defaults to the family's).
 */
export function probeLayerInfo(
  spec: CmcSpec,
  layer: number,
  override?: { pool?: [number, number] | null; poolType?: PoolType },
): ProbeLayerInfo {
  const nBlocks = spec.views[0].encoder.blocks.length;
  if (!(Number.isInteger(layer) && layer >= 1 && layer <= nBlocks)) {
    throw new Error(`--layer must be an integer in 1..${nBlocks} for ${spec.arch} (got ${layer})`);
  }
  const shapes = spec.views.map((v) => inferShapes(v.encoder)[layer].shape);
  let mapShape: number[];
  if (shapes[0].length === 3) {
    for (const s of shapes) {
      if (s.length !== 3 || s[0] !== shapes[0][0] || s[1] !== shapes[0][1])
        throw new Error(`layer ${layer}: the views' maps differ in size`);
    }
    mapShape = [shapes[0][0], shapes[0][1], shapes.reduce((a, s) => a + s[2], 0)];
  } else {
    mapShape = [shapes.reduce((a, s) => a + s[0], 0)];
  }
  const family = archFamily(spec.arch);
  const poolType: PoolType = override?.poolType ?? (family === 'resnet' ? 'avg' : 'max');
  let pool: [number, number] | null = null;
  let note: string;
  if (override && override.pool !== undefined) {
    pool = override.pool;
    note = pool ? `adaptive ${poolType} pool to ${pool[0]}x${pool[1]} (override)` : 'no pooling (override)';
  } else if (mapShape.length === 3 && family !== 'other' && UPSTREAM_POOL[family][layer] !== undefined) {
    const t = UPSTREAM_POOL[family][layer];
    pool = [Math.min(mapShape[0], t), Math.min(mapShape[1], t)];
    note = `adaptive ${poolType} pool to min(map, upstream ${t}x${t}) = ${pool[0]}x${pool[1]}`;
  } else {
    note = mapShape.length === 3 ? 'no pooling (flatten the map)' : 'vector features';
    if (family === 'alexnet' && layer >= 6) note += ' (extension: upstream probes AlexNet layers 1-5 only)';
    if (family === 'resnet' && layer >= 7) note += ' (extension: upstream probes ResNet layers 1-6 only)';
  }
  if (pool && mapShape.length !== 3) throw new Error(`layer ${layer} gives vectors; it cannot be pooled`);
  if (pool && pool[0] === mapShape[0] && pool[1] === mapShape[1]) {
    pool = null; // identity
    note += ' (same as the map: no pooling)';
  }
  const featureDim =
    mapShape.length === 3 ? (pool ? pool[0] * pool[1] : mapShape[0] * mapShape[1]) * mapShape[2] : mapShape[0];
  return { layer, mapShape, pool, poolType, featureDim, note };
}

/**
 * x [B, H, W, 3] -> frozen features [B, featureDim]: eval-mode forward to block `info.layer`, views
 * concatenated along channels (spec order: L then ab), pooled, flattened channel-major (NCHW order).
 */
export function layerFeatures(model: CmcModel, x: tf.Tensor4D, info: ProbeLayerInfo): tf.Tensor2D {
  return tf.tidy(() => {
    const { views } = model.forward(x, { training: false, layer: info.layer });
    let f = views.length === 1 ? views[0] : tf.concat(views, views[0].rank - 1);
    if (f.rank === 4) {
      if (info.pool) f = adaptivePool2d(f as tf.Tensor4D, info.pool, info.poolType);
      f = tf.transpose(f, [0, 3, 1, 2]);
    }
    return tf.reshape(f, [x.shape[0], -1]) as tf.Tensor2D;
  });
}

export interface FeatureSet {
  /** Row-major [n, dim]; row r belongs to sample index[r] of the source. */
  features: Float32Array;
  dim: number;
  n: number;
  labels: Int32Array;
  index: Int32Array;
}

/** Frozen features of every sample a loader yields (use shuffle: false and the 'val' transform for upstream's protocol). */
export async function extractFeatures(
  model: CmcModel,
  loader: Loader,
  info: ProbeLayerInfo,
  epoch = 0,
): Promise<FeatureSet> {
  const rows: Float32Array[] = [];
  const labels: number[] = [];
  const index: number[] = [];
  for await (const batch of loader.epoch(epoch)) {
    const f = tf.tidy(() =>
      layerFeatures(model, tf.tensor4d(batch.x, [batch.size, batch.height, batch.width, batch.channels]), info),
    );
    rows.push(Float32Array.from((await f.data()) as Float32Array));
    f.dispose();
    labels.push(...batch.label);
    index.push(...batch.index);
  }
  const n = labels.length;
  const features = new Float32Array(n * info.featureDim);
  let o = 0;
  for (const r of rows) {
    features.set(r, o);
    o += r.length;
  }
  return { features, dim: info.featureDim, n, labels: Int32Array.from(labels), index: Int32Array.from(index) };
}

/** Rows of `a` then rows of `b` (same feature size). */
export function concatSets(a: FeatureSet, b: FeatureSet): FeatureSet {
  if (a.dim !== b.dim) throw new Error(`feature sizes differ: ${a.dim} vs ${b.dim}`);
  const features = new Float32Array(a.features.length + b.features.length);
  features.set(a.features);
  features.set(b.features, a.features.length);
  const cat = <T extends Int32Array>(x: T, y: T) => {
    const out = new Int32Array(x.length + y.length);
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  return { features, dim: a.dim, n: a.n + b.n, labels: cat(a.labels, b.labels), index: cat(a.index, b.index) };
}

/** Rows `rows` of a feature set (a copy). */
export function takeRows(set: FeatureSet, rows: ArrayLike<number>): FeatureSet {
  const d = set.dim;
  const features = new Float32Array(rows.length * d);
  const labels = new Int32Array(rows.length);
  const index = new Int32Array(rows.length);
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k];
    features.set(set.features.subarray(r * d, (r + 1) * d), k * d);
    labels[k] = set.labels[r];
    index[k] = set.index[r];
  }
  return { features, dim: d, n: rows.length, labels, index };
}

/** The views' embeddings of every sample a loader yields, concatenated and L2-normalised (the kNN monitor's). */
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
