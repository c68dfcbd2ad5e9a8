/**
 * Linear probing of frozen CMC encoders (SEED_NOTES §5.3, §6; the seed's LinearProbing.py + LinearModel.py),
 * plus the shared pieces `cmc knn` and `cmc supervised` use: loading an encoder pair (checkpoint or random
 * init), per-layer features with the seed's adaptive pooling, and the linear-head JSON format.
 *
 *   const r = await probe({ checkpoint: 'runs/x/current.ckpt', dataFolder: 'data/cifar', layer: 5, mode: 'cached', ... });
 *   r.best.top1; r.headPath;          // best epoch (on the held-out split when valSplit > 0, else on test)
 *
 * Protocol (the seed's): both encoders frozen in eval mode (BN running statistics, no gradient); features of
 * block `layer` of each view, concatenated along channels (L first, then ab); optional adaptive pooling
 * (AlexNet: max, ResNet: avg); flatten in PyTorch's NCHW order (channel-major, so a head maps one to one onto
 * the seed's nn.Linear); one Linear layer, weights N(0, 0.01), bias 0; softmax cross-entropy; SGD lr 0.1,
 * momentum 0.9, weight decay 0, batch 256, 60 epochs, lr x0.2 after epochs 30, 40, 50; top-1/top-5 after
 * every epoch.
 *
 * Features per architecture (`probeLayerInfo`):
 *  - AlexNet family ('alexnet', 'alexnet_small'), adaptive MAX pooling to the seed's sizes, capped at the map
 *    size (pool to min(map, seed size) per axis; a pool that would not change the map is reported as null):
 *      seed alexnet @224: layer 1 27x27 -> 10x10 (9600), 2 13x13 -> 6x6 (9216), 3/4 13x13 -> 5x5 (9600),
 *                         layer 5 6x6 unpooled (9216);
 *      alexnet_small:     layer 1 15x15 -> 10x10 (9600), 2 7x7 -> 6x6 (9216), 3/4 7x7 -> 5x5 (9600),
 *                         layer 5 3x3 unpooled (2304) — so layers 1-4 give the seed's feature sizes.
 *    EXTENSION (the seed's classifier rejects them): layer 6 = fc6, 7 = fc7 (2048 per view -> 4096), and
 *    8 = the L2-normalised embeddings (featDim per view, each unit-norm, concatenated as they are).
 *  - ResNet family: adaptive AVG pooling, layer 1 -> 8x8, 2 -> 6x6, 3 -> 4x4, 4 -> 3x3 (capped at the map as
 *    above), 5 unpooled, 6 = the pooled vector; EXTENSION: 7 = the embeddings.
 *  - Other (custom JSON specs): no pooling, unless `pool` is given.
 *
 * Modes: 'augmented' is the seed (every epoch, train transform = RandomResizedCrop(crop_low)+flip through the
 * frozen encoders); 'cached' computes the train features once with the val transform (resize + centre crop,
 * no augmentation) and trains the head on those (much faster; the head never sees augmented crops). The
 * test features do not depend on the epoch (frozen encoders, deterministic transform) and are computed once
 * in both modes.
 *
 * Model selection: with `valSplit` > 0 a stratified, seeded fraction of the TRAIN split is held out (never
 * trained on) and the best epoch is the one with the best held-out top-1; the test split is only reported.
 * Without it the best epoch is picked on the test split, as the seed does (its "val" folder is the test set):
 * that number is optimistic and marked `selectedOn: 'test'`.
 */
import * as tf from '@tensorflow/tfjs-core';
import fs from 'node:fs';
import { initBackend, type BackendInfo, type BackendName } from '../engine/backend.ts';
import { CmcModel } from '../model/cmc.ts';
import { getCmcSpec } from '../../core/network/registry.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { inferShapes } from '../../core/network/shapes.ts';
import { subsetSpec } from '../../core/network/input.ts';
import { readCheckpoint } from '../../core/formats/checkpoint.ts';
import { Loader, epochOrder, type LoaderOptions } from '../data/loader.ts';
import { NoTestSplitError, openSource, type DataSource, type SourceKind } from '../data/sources.ts';
import type { ColorView } from '../../core/preprocess/color.ts';
import { SGD } from '../optim/sgd.ts';
import { stepLr } from '../optim/schedule.ts';
import { Rng } from '../../core/util/rng.ts';
import { writeFileAtomic } from '../../core/util/atomic_write.ts';
import { weightedKnn } from './knn.ts';

// ------------------------------------------------------------------------------------------------------
// Adaptive pooling (PyTorch's bin rule)

export type PoolType = 'max' | 'avg';

/** PyTorch adaptive pooling bins: bin i covers [floor(i*in/out), ceil((i+1)*in/out)). */
export function adaptiveBins(inSize: number, outSize: number): [number, number][] {
  if (!(Number.isInteger(inSize) && Number.isInteger(outSize) && inSize > 0 && outSize > 0)) {
    throw new RangeError(`adaptive pooling: sizes must be positive integers (in ${inSize}, out ${outSize})`);
  }
  return Array.from({ length: outSize }, (_, i) => [
    Math.floor((i * inSize) / outSize),
    Math.ceil(((i + 1) * inSize) / outSize),
  ]);
}

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

// ------------------------------------------------------------------------------------------------------
// Which features a layer gives

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

/** The seed's pooling targets (LinearModel.py) per family and layer; undefined = no pooling. */
const SEED_POOL: Record<'alexnet' | 'resnet', Record<number, number>> = {
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
  } else if (mapShape.length === 3 && family !== 'other' && SEED_POOL[family][layer] !== undefined) {
    const t = SEED_POOL[family][layer];
    pool = [Math.min(mapShape[0], t), Math.min(mapShape[1], t)];
    note = `adaptive ${poolType} pool to min(map, seed ${t}x${t}) = ${pool[0]}x${pool[1]}`;
  } else {
    note = mapShape.length === 3 ? 'no pooling (flatten the map)' : 'vector features';
    if (family === 'alexnet' && layer >= 6) note += ' (extension: the seed probes AlexNet layers 1-5 only)';
    if (family === 'resnet' && layer >= 7) note += ' (extension: the seed probes ResNet layers 1-6 only)';
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

/** Frozen features of every sample a loader yields (use shuffle: false, mode 'val' for the seed's protocol). */
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

/** Rows `rows` of a feature set (a copy). */
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

// ------------------------------------------------------------------------------------------------------
// Encoders: from a checkpoint or randomly initialised

export interface LoadedEncoder {
  model: CmcModel;
  spec: CmcSpec;
  view: ColorView;
  imageSize: number;
  /** crop_low the encoder was trained with (the probe's train augmentation uses it by default). */
  cropLow: number;
  /** 'random' for a randomly initialised encoder (baseline). */
  source: string;
  classNames: string[];
}

export interface EncoderChoice {
  /** A training (or `cmc supervised`) checkpoint; null = random initialisation from `arch`. */
  checkpoint: string | null;
  arch?: string;
  imageSize?: number;
  featDim?: number;
  view?: ColorView;
  /** Views of a random-init encoder (core/preprocess/views.ts; default L,ab). */
  trainViews?: string[];
  /**
   * Use only these views' encoders, in this order (e.g. ['L']: the L encoder alone); default all views.
   * The features are their outputs concatenated in this order.
   */
  views?: string[];
  /** Initialisation seed for the random encoder. */
  seed?: number;
}

interface CkptHeaderView {
  format?: string;
  spec?: CmcSpec;
  config?: { view?: ColorView; image_size?: number; crop_low?: number; model?: string };
  classNames?: string[];
}

export function loadEncoder(c: EncoderChoice): LoadedEncoder {
  if (c.checkpoint) {
    const ck = readCheckpoint<CkptHeaderView>(c.checkpoint);
    const h = ck.header;
    if (h.format !== 'cmc-train-checkpoint' || !h.spec)
      throw new Error(`${c.checkpoint} is not a cmc training checkpoint (no network spec in its header)`);
    const model = new CmcModel(h.spec, 0);
    const arrays: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [k, v] of Object.entries(ck.tensors)) if (k.startsWith('model/')) arrays[k.slice(6)] = v;
    try {
      model.loadNamedArrays(arrays);
    } catch (e) {
      model.dispose();
      throw new Error(`${c.checkpoint}: ${(e as Error).message}`, { cause: e });
    }
    const sub = restrictViews(model, c.views);
    return {
      model: sub,
      spec: sub.spec,
      view: h.config?.view ?? 'Lab',
      imageSize: h.spec.imageSize,
      cropLow: h.config?.crop_low ?? 0.2,
      source: c.checkpoint,
      classNames: h.classNames ?? [],
    };
  }
  if (!c.arch) throw new Error('a random-init encoder needs --model (and --image_size)');
  const imageSize = c.imageSize ?? 224;
  const view = c.view ?? 'Lab';
  const spec = c.arch.endsWith('.json')
    ? (JSON.parse(fs.readFileSync(c.arch, 'utf8')) as CmcSpec)
    : getCmcSpec(c.arch, { imageSize, featDim: c.featDim ?? 128, view, views: c.trainViews });
  if (spec.imageSize !== imageSize && c.arch.endsWith('.json'))
    throw new Error(`${c.arch} is for ${spec.imageSize} px images, not ${imageSize}`);
  // All views are initialised (one Rng, view by view) before any subset, so a view's weights do not depend on the subset.
  const model = restrictViews(new CmcModel(spec, c.seed ?? 0), c.views);
  return { model, spec: model.spec, view, imageSize: spec.imageSize, cropLow: 0.2, source: 'random', classNames: [] };
}

/** The model restricted to `views` (spec/input.ts subsetSpec) with the same weights; disposes `model` when it changes. */
export function restrictViews(model: CmcModel, views?: readonly string[]): CmcModel {
  if (!views || views.join() === model.spec.views.map((v) => v.name).join()) return model;
  let sub: CmcModel | null = null;
  try {
    const spec = subsetSpec(model.spec, views);
    sub = new CmcModel(spec, 0);
    const all = model.toNamedArrays();
    const keep = Object.fromEntries(Object.entries(all).filter(([k]) => views.some((v) => k.startsWith(`${v}.`))));
    sub.loadNamedArrays(keep);
    return sub;
  } catch (e) {
    sub?.dispose();
    throw e;
  } finally {
    model.dispose();
  }
}

// ------------------------------------------------------------------------------------------------------
// Data helpers

/** A Loader over a subset of a source's samples (indices into the full source), so workers still work. */
export class SubsetLoader extends Loader {
  constructor(
    source: DataSource,
    opts: LoaderOptions,
    readonly subset: Int32Array,
  ) {
    super(source, opts);
    if (subset.length === 0) throw new Error('SubsetLoader: empty subset');
  }

  override get length(): number {
    const n = this.subset.length,
      b = this.batchSize;
    return this.opts.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  override order(epoch: number): Int32Array {
    const o = epochOrder(this.subset.length, this.seed, epoch, this.opts.shuffle ?? true);
    return o.map((k) => this.subset[k]);
  }
}

/**
 * Stratified, seeded hold-out: per class, round(frac * count) samples (at least one when frac > 0 and the
 * class has two or more) go to `val`; the rest to `train`. Unlabelled samples (label < 0) are dropped.
 * Both lists are sorted ascending.
 */
export function splitTrainVal(labels: Int32Array, frac: number, seed: number): { train: Int32Array; val: Int32Array } {
  if (!(frac >= 0 && frac < 1)) throw new RangeError(`valSplit must be in [0, 1), got ${frac}`);
  const byClass = new Map<number, number[]>();
  labels.forEach((y, i) => {
    if (y < 0) return;
    if (!byClass.has(y)) byClass.set(y, []);
    byClass.get(y)!.push(i);
  });
  const rng = new Rng(seed ^ 0x5eed);
  const train: number[] = [];
  const val: number[] = [];
  for (const y of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = byClass.get(y)!;
    rng.shuffle(idx);
    let k = Math.round(frac * idx.length);
    if (frac > 0 && k === 0 && idx.length >= 2) k = 1;
    val.push(...idx.slice(0, k));
    train.push(...idx.slice(k));
  }
  return { train: Int32Array.from(train.sort((a, b) => a - b)), val: Int32Array.from(val.sort((a, b) => a - b)) };
}

/** Where the test images came from: the dataset's own test split, or a fraction of its training images held out. */
export type TestSplitInfo = { source: 'dataset' } | { source: 'held_out'; fraction: number; seed: number; n: number };

export interface TestSplit {
  /** The source to score: the dataset's test split, or the training source itself (then `testIdx` is set). */
  src: DataSource;
  /** Held-out training rows scored as the test split (null: all of `src`). */
  testIdx: Int32Array | null;
  /** Training labels with the held-out rows set to -1 (never trained on, never neighbours). */
  trainLabels: Int32Array;
  info: TestSplitInfo;
}

/**
 * The labelled test split to evaluate on: the dataset's own (ImageFolder val/ or test/, the binary formats' test
 * files) or, with `testSplit` > 0 for a dataset that has none, a stratified, seeded fraction of the training
 * images held out. A dataset without a test split and no `testSplit` is refused: evaluating on the training
 * folder would score training images (an ImageFolder without val/ used to give every image label 0).
 */
export async function openTestSplit(
  dataset: SourceKind | 'auto',
  dataFolder: string,
  trainSrc: DataSource,
  testSplit: number,
  seed: number,
  onWarn: (m: string) => void,
): Promise<TestSplit> {
  if (!(testSplit >= 0 && testSplit < 1)) throw new Error(`--test_split must be in [0, 1) (got ${testSplit})`);
  const labels = trainSrc.labels();
  if (!labels) throw new Error(`${dataFolder}: the training split has no labels; evaluation needs them`);
  let own: DataSource | null = null;
  try {
    own = await openSource(dataset, dataFolder, 'test', { onWarn });
  } catch (e) {
    if (!(e instanceof NoTestSplitError)) throw e;
    if (!(testSplit > 0)) {
      throw new Error(
        `${e.message}; evaluating on the training folder would score the training images themselves. ` +
          'Give it a test split (for an ImageFolder, a val/<class>/ folder of other images), or pass --test_split 0.2 to hold out 20% of the training images (per class, seeded by --seed) as the test split',
        { cause: e },
      );
    }
  }
  if (own) {
    if (testSplit > 0) {
      own.close();
      throw new Error(
        `--test_split is for datasets without a test split; ${dataFolder} has one (drop --test_split to evaluate on it)`,
      );
    }
    return { src: own, testIdx: null, trainLabels: labels, info: { source: 'dataset' } };
  }
  const { val: testIdx } = splitTrainVal(labels, testSplit, seed ^ 0x7e57);
  if (testIdx.length === 0)
    throw new Error(`--test_split ${testSplit} holds out no image of ${dataFolder} (${labels.length} images)`);
  const trainLabels = Int32Array.from(labels);
  for (const i of testIdx) trainLabels[i] = -1;
  return {
    src: trainSrc,
    testIdx,
    trainLabels,
    info: { source: 'held_out', fraction: testSplit, seed, n: testIdx.length },
  };
}

/** How the test split is named in output lines. */
export function describeTestSplit(t: TestSplitInfo): string {
  return t.source === 'dataset'
    ? "the dataset's test split"
    : `${t.n} training images held out as the test split (--test_split ${t.fraction}, seed ${t.seed})`;
}

// ------------------------------------------------------------------------------------------------------
// The linear head and its JSON format

export interface ProbeEpochMetrics {
  epoch: number;
  lr: number;
  /** Mean training cross-entropy over the epoch. */
  loss: number;
  train_top1: number;
  top1: number;
  top5: number;
  /** On the held-out part of train, when valSplit > 0. */
  val_top1?: number;
  val_top5?: number;
  epoch_sec: number;
}

export interface LinearHead {
  format: 'cmc-linear-head';
  version: 1;
  layer: number;
  /** Adaptive pooling target [h, w] of the concatenated map, or null (no pooling / vector features). */
  pool: [number, number] | null;
  poolType: PoolType;
  featureDim: number;
  classNames: string[];
  /** Row-major [featureDim, classes]: logits = features · weight + bias. */
  weight: number[];
  bias: number[];
  /** How features are laid out: views concatenated along channels in spec order, pooled, NCHW flatten. */
  featureLayout: string;
  arch: string;
  imageSize: number;
  view: ColorView;
  /** Views in concatenation order. */
  views: string[];
  probeConfig: Record<string, unknown>;
  metrics: {
    selectedOn: ProbeSelection;
    best: ProbeEpochMetrics;
    last: ProbeEpochMetrics;
    epochs: ProbeEpochMetrics[];
  };
}

export const FEATURE_LAYOUT = 'concat(views, channel axis) -> adaptive pool -> flatten C,H,W (PyTorch NCHW order)';

export function writeHead(file: string, head: LinearHead): void {
  writeFileAtomic(file, JSON.stringify(head));
}

export function readHead(file: string): LinearHead {
  const h = JSON.parse(fs.readFileSync(file, 'utf8')) as LinearHead;
  if (h.format !== 'cmc-linear-head') throw new Error(`${file} is not a cmc linear head`);
  const c = h.classNames.length;
  if (h.weight.length !== h.featureDim * c || h.bias.length !== c) {
    throw new Error(
      `${file}: weight has ${h.weight.length} values and bias ${h.bias.length} for featureDim ${h.featureDim} x ${c} classes`,
    );
  }
  return h;
}

/** features [N, featureDim] -> logits [N, classes] for a head. */
export function headLogits(head: LinearHead, features: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const c = head.classNames.length;
    const w = tf.tensor2d(head.weight, [head.featureDim, c]);
    return tf.add(tf.matMul(features, w), tf.tensor1d(head.bias)) as tf.Tensor2D;
  });
}

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

// ------------------------------------------------------------------------------------------------------
// The probe

export interface ProbeOptions extends EncoderChoice {
  dataFolder: string;
  dataset?: SourceKind | 'auto';
  layer: number;
  epochs?: number;
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  batchSize?: number;
  decayEpochs?: number[];
  decayRate?: number;
  mode?: 'cached' | 'augmented';
  /** Fraction of TRAIN held out to choose the epoch (never the test split); 0 = seed behaviour. */
  valSplit?: number;
  /** For a dataset without a test split: this fraction of TRAIN held out as the test split (0 = refuse such a dataset). */
  testSplit?: number;
  /**
   * Weight decays to choose from (cached mode, valSplit > 0): one head per value on the features computed
   * once, the value whose best epoch scores highest on the held-out images wins; then a head with that
   * value is refitted on ALL training images for the fixed schedule and its last epoch is the result.
   */
  selectWeightDecay?: number[];
  /** RandomResizedCrop lower bound for 'augmented' (default: the checkpoint's crop_low, else 0.2). */
  cropLow?: number;
  /** Override the pooling (size or null = none). */
  pool?: [number, number] | null;
  poolType?: PoolType;
  backend?: BackendName;
  seed?: number;
  workers?: number;
  /** Where to write the head JSON ('' or undefined = do not write). */
  out?: string;
  log?: (line: string) => void;
}

export const PROBE_DEFAULTS = {
  epochs: 60,
  lr: 0.1,
  momentum: 0.9,
  weightDecay: 0,
  batchSize: 256,
  decayEpochs: [30, 40, 50],
  decayRate: 0.2,
  mode: 'augmented' as 'cached' | 'augmented',
  valSplit: 0,
  testSplit: 0,
  seed: 0,
  workers: 2,
};

/**
 * How the reported epoch was picked: 'val' = best on the held-out part of train; 'test' = best on the
 * test split (the seed's, optimistic); 'last' = no choice, the fixed schedule's last epoch.
 */
export type ProbeSelection = 'val' | 'test' | 'last';

export interface WeightDecayChoice {
  val_split: number;
  chosen: number;
  candidates: { weight_decay: number; val_top1: number; test_top1: number; best_epoch: number; seconds: number }[];
}

export interface ProbeResult {
  /** With selectWeightDecay: how the weight decay was chosen. */
  wdSelection?: WeightDecayChoice;
  layer: ProbeLayerInfo;
  epochs: ProbeEpochMetrics[];
  best: ProbeEpochMetrics;
  last: ProbeEpochMetrics;
  selectedOn: ProbeSelection;
  head: LinearHead;
  headPath: string | null;
  nTrain: number;
  nVal: number;
  nTest: number;
  testSplit: TestSplitInfo;
  encoder: string;
  backend: BackendInfo;
  featureSeconds: number;
  seconds: number;
}

export async function probe(opts: ProbeOptions): Promise<ProbeResult> {
  const o: ProbeOptions & typeof PROBE_DEFAULTS = { ...PROBE_DEFAULTS, ...(stripUndefined(opts) as ProbeOptions) };
  const log = opts.log ?? ((l: string) => console.error(l));
  if (!o.dataFolder) throw new Error('--data_folder is required');
  for (const k of ['epochs', 'batchSize'] as const)
    if (!(Number.isInteger(o[k]) && o[k] > 0)) throw new Error(`${k} must be a positive integer (got ${o[k]})`);
  if (!(o.lr > 0)) throw new Error(`learning rate must be > 0 (got ${o.lr})`);
  if (o.mode !== 'cached' && o.mode !== 'augmented')
    throw new Error(`mode must be 'cached' or 'augmented' (got ${o.mode})`);
  const wdList = o.selectWeightDecay;
  if (wdList) {
    if (!wdList.length || wdList.some((w) => !(w >= 0)))
      throw new Error(`weight decays to choose from must be >= 0 (got ${wdList.join(',')})`);
    if (o.mode !== 'cached' || !((o.valSplit ?? 0) > 0))
      throw new Error('choosing the weight decay needs --mode cached and --val_split > 0');
  }
  const t0 = performance.now();
  const backend = await initBackend(o.backend ?? 'auto');
  const dataset = o.dataset ?? 'auto';
  const trainSrc = await openSource(dataset, o.dataFolder, 'train', { onWarn: (m: string) => log(`[data] ${m}`) });
  let testSrc: DataSource | null = null;
  let enc: LoadedEncoder;
  try {
    enc = loadEncoder(o);
  } catch (e) {
    trainSrc.close();
    throw e;
  }
  try {
    const held = await openTestSplit(dataset, o.dataFolder, trainSrc, o.testSplit, o.seed, (m: string) =>
      log(`[data] ${m}`),
    );
    testSrc = held.src === trainSrc ? null : held.src;
    const trainLabels = held.trainLabels;
    const info = probeLayerInfo(
      enc.spec,
      o.layer,
      o.pool !== undefined || o.poolType ? { pool: o.pool, poolType: o.poolType } : undefined,
    );
    const maxLabel = Math.max(...trainLabels, ...(held.src.labels() ?? [0]));
    const nClasses = Math.max(trainSrc.classNames.length, maxLabel + 1);
    const classNames = Array.from({ length: nClasses }, (_, k) => trainSrc.classNames[k] ?? String(k));
    const valSplit = o.valSplit ?? 0;
    const split = valSplit > 0 ? splitTrainVal(trainLabels, valSplit, o.seed) : null;
    const trainIdx = split ? split.train : Int32Array.from(trainLabels.keys()).filter((i) => trainLabels[i] >= 0);
    const valIdx = split ? split.val : new Int32Array(0);
    log(
      `[probe] encoder ${enc.source === 'random' ? `${enc.spec.arch} (random init, seed ${o.seed ?? 0})` : enc.source}; views ${enc.spec.views.map((v) => v.name).join(',')}; layer ${o.layer}: ` +
        `map [${info.mapShape.join('x')}], ${info.note} -> ${info.featureDim} features; ${nClasses} classes; ` +
        `${trainIdx.length} train${split ? ` + ${valIdx.length} held out` : ''}, ${held.testIdx?.length ?? held.src.length} test; mode ${o.mode}; ${backend.name}`,
    );
    if (held.info.source === 'held_out') log(`[probe] test split: ${describeTestSplit(held.info)}`);

    const valTf = { mode: 'val' as const, size: enc.imageSize, view: enc.view, input: enc.spec.input };
    const extract = async (src: DataSource, subset: Int32Array | null) => {
      const lo: LoaderOptions = {
        batchSize: Math.max(o.batchSize, 64),
        workers: o.workers,
        shuffle: false,
        transform: valTf,
        onWarn: (m) => log(`[data] ${m}`),
      };
      const loader = subset ? new SubsetLoader(src, lo, subset) : new Loader(src, lo);
      try {
        return await extractFeatures(enc.model, loader, info);
      } finally {
        await loader.close();
      }
    };
    const tf0 = performance.now();
    const test = await extract(held.src, held.testIdx);
    const val = valIdx.length ? await extract(trainSrc, valIdx) : null;
    const cached = o.mode === 'cached' ? await extract(trainSrc, trainIdx) : null;
    const featureSeconds = (performance.now() - tf0) / 1000;
    const mb = ((test.features.length + (val?.features.length ?? 0) + (cached?.features.length ?? 0)) * 4) / 2 ** 20;
    log(`[probe] features computed in ${featureSeconds.toFixed(1)} s (${mb.toFixed(0)} MB cached)`);

    const D = info.featureDim;
    /**
     * One head trained for the schedule on `cached` (or the augmented loader), scored on the test split
     * every epoch and on `val` when given; the kept weights are those of the epoch `selection` picks.
     */
    const fit = async (
      weightDecay: number,
      cached: FeatureSet | null,
      val: FeatureSet | null,
      selection: ProbeSelection,
    ) => {
      // The head: weight N(0, 0.01), bias 0 (LinearModel.py's initilize()).
      const rng = new Rng(o.seed + 1000);
      const w0 = new Float32Array(D * nClasses);
      for (let i = 0; i < w0.length; i++) w0[i] = rng.normal() * 0.01;
      const W = tf.variable(tf.tensor2d(w0, [D, nClasses]), true);
      const b = tf.variable(tf.zeros([nClasses]), true);
      const sgd = new SGD([W, b], { lr: o.lr, momentum: o.momentum, weightDecay });
      const trainStep = async (xb: tf.Tensor2D, yb: Int32Array): Promise<{ loss: number; hits: number }> => {
        const y = tf.tensor1d(yb, 'int32');
        let logitsKept: tf.Tensor2D | null = null;
        const { value, grads } = tf.variableGrads(() => {
          const logits = tf.add(tf.matMul(xb, W), b) as tf.Tensor2D;
          logitsKept = tf.keep(logits);
          return crossEntropy(logits, y, nClasses);
        }, [W, b]);
        sgd.step(grads);
        tf.dispose(grads);
        const hits = await topkHits(logitsKept!, yb);
        const loss = (await value.data())[0];
        tf.dispose([value, y, logitsKept!]);
        return { loss, hits: hits.hit1 };
      };
      const evaluate = async (set: FeatureSet) => {
        let hit1 = 0,
          hit5 = 0,
          n = 0;
        const chunk = 1024;
        for (let s = 0; s < set.n; s += chunk) {
          const rows = Math.min(chunk, set.n - s);
          const logits = tf.tidy(
            () =>
              tf.add(
                tf.matMul(tf.tensor2d(set.features.subarray(s * D, (s + rows) * D), [rows, D]), W),
                b,
              ) as tf.Tensor2D,
          );
          const h = await topkHits(logits, set.labels, s);
          logits.dispose();
          hit1 += h.hit1;
          hit5 += h.hit5;
          n += h.n;
        }
        return { top1: n ? hit1 / n : 0, top5: n ? hit5 / n : 0 };
      };

      const augLoader =
        o.mode === 'augmented'
          ? new SubsetLoader(
              trainSrc,
              {
                batchSize: o.batchSize,
                seed: o.seed,
                workers: o.workers,
                transform: {
                  mode: 'train',
                  size: enc.imageSize,
                  view: enc.view,
                  input: enc.spec.input,
                  cropLow: o.cropLow ?? enc.cropLow,
                },
                onWarn: (m) => log(`[data] ${m}`),
              },
              trainIdx,
            )
          : null;
      const epochs: ProbeEpochMetrics[] = [];
      let best: ProbeEpochMetrics | null = null;
      let bestW: Float32Array | null = null;
      let bestB: Float32Array | null = null;
      const score = (m: ProbeEpochMetrics) =>
        selection === 'val' ? m.val_top1! : selection === 'test' ? m.top1 : m.epoch;
      try {
        for (let epoch = 1; epoch <= o.epochs; epoch++) {
          const te = performance.now();
          const lr = stepLr(o.lr, epoch, o.decayEpochs, o.decayRate);
          sgd.lr = lr;
          let lossSum = 0,
            hitSum = 0,
            n = 0;
          if (cached) {
            const order = new Int32Array(cached.n).map((_, i) => i);
            new Rng(o.seed * 7919 + epoch).shuffle(order);
            for (let s = 0; s < cached.n; s += o.batchSize) {
              const rows = order.subarray(s, Math.min(s + o.batchSize, cached.n));
              const xb = new Float32Array(rows.length * D);
              const yb = new Int32Array(rows.length);
              rows.forEach((r, k) => {
                xb.set(cached.features.subarray(r * D, (r + 1) * D), k * D);
                yb[k] = cached.labels[r];
              });
              const x = tf.tensor2d(xb, [rows.length, D]);
              const r = await trainStep(x, yb);
              x.dispose();
              lossSum += r.loss * rows.length;
              hitSum += r.hits;
              n += rows.length;
            }
          } else {
            for await (const batch of augLoader!.epoch(epoch)) {
              const x = tf.tidy(() =>
                layerFeatures(
                  enc.model,
                  tf.tensor4d(batch.x, [batch.size, batch.height, batch.width, batch.channels]),
                  info,
                ),
              );
              const r = await trainStep(x, batch.label);
              x.dispose();
              lossSum += r.loss * batch.size;
              hitSum += r.hits;
              n += batch.size;
            }
          }
          if (!Number.isFinite(lossSum))
            throw new Error(`probe: the loss became ${lossSum} in epoch ${epoch}; try a lower --learning_rate`);
          const t = await evaluate(test);
          const m: ProbeEpochMetrics = {
            epoch,
            lr,
            loss: lossSum / n,
            train_top1: hitSum / n,
            top1: t.top1,
            top5: t.top5,
            epoch_sec: 0,
          };
          if (val) {
            const v = await evaluate(val);
            m.val_top1 = v.top1;
            m.val_top5 = v.top5;
          }
          m.epoch_sec = (performance.now() - te) / 1000;
          epochs.push(m);
          if (!best || score(m) > score(best)) {
            best = m;
            bestW = Float32Array.from((await W.data()) as Float32Array);
            bestB = Float32Array.from((await b.data()) as Float32Array);
          }
          log(
            `[probe] epoch ${epoch}/${o.epochs} lr ${lr}: loss ${m.loss.toFixed(4)} train top-1 ${pct(m.train_top1)}` +
              (val ? `  held-out top-1 ${pct(m.val_top1!)}` : '') +
              `  test top-1 ${pct(m.top1)} top-5 ${pct(m.top5)}  (${m.epoch_sec.toFixed(1)} s)`,
          );
        }
      } finally {
        await augLoader?.close();
        sgd.dispose();
        tf.dispose([W, b]);
      }
      return { epochs, best: best!, bestW: bestW!, bestB: bestB! };
    };

    const selectedOn: ProbeSelection = wdList ? 'last' : val ? 'val' : 'test';
    let wdSelection: WeightDecayChoice | undefined;
    let fitted;
    if (wdList) {
      const candidates: WeightDecayChoice['candidates'] = [];
      for (const wd of wdList) {
        const tw = performance.now();
        log(`[probe] weight decay ${wd}: fitting on ${cached!.n} images, scoring on the ${val!.n} held out`);
        const r = await fit(wd, cached, val, 'val');
        candidates.push({
          weight_decay: wd,
          val_top1: r.best.val_top1!,
          test_top1: r.best.top1,
          best_epoch: r.best.epoch,
          seconds: (performance.now() - tw) / 1000,
        });
      }
      // Ties go to the value listed first.
      const chosen = candidates.reduce((a, c) => (c.val_top1 > a.val_top1 ? c : a), candidates[0]).weight_decay;
      wdSelection = { val_split: o.valSplit, chosen, candidates };
      log(
        `[probe] weight decay ${chosen} chosen on the held-out images (${candidates.map((c) => `${c.weight_decay}: ${pct(c.val_top1)}`).join(', ')}); refitting on all ${cached!.n + val!.n} training images`,
      );
      fitted = await fit(chosen, concatSets(cached!, val!), null, 'last');
    } else {
      fitted = await fit(o.weightDecay, cached, val, selectedOn);
    }
    const { epochs, best, bestW, bestB } = fitted;
    const last = epochs[epochs.length - 1];
    const { log: _l, out: _o, ...cfg } = opts;
    const head: LinearHead = {
      format: 'cmc-linear-head',
      version: 1,
      layer: o.layer,
      pool: info.pool,
      poolType: info.poolType,
      featureDim: D,
      classNames,
      weight: Array.from(bestW),
      bias: Array.from(bestB),
      featureLayout: FEATURE_LAYOUT,
      arch: enc.spec.arch,
      imageSize: enc.imageSize,
      view: enc.view,
      views: enc.spec.views.map((v) => v.name),
      probeConfig: {
        ...PROBE_DEFAULTS,
        ...stripUndefined(cfg),
        ...(wdSelection ? { weightDecay: wdSelection.chosen } : {}),
        encoder: enc.source,
      },
      metrics: { selectedOn, best, last, epochs },
    };
    let headPath: string | null = null;
    if (o.out) {
      writeHead(o.out, head);
      headPath = o.out;
    }
    const chosenOn = {
      val: 'the held-out train split',
      test: 'the test split, as the seed',
      last: 'none: the last epoch of the schedule',
    }[selectedOn];
    log(
      `[probe] reported epoch ${best.epoch} (chosen on ${chosenOn}): ` +
        `test top-1 ${pct(best.top1)} top-5 ${pct(best.top5)}; last epoch top-1 ${pct(last.top1)}` +
        (headPath ? `; head -> ${headPath}` : ''),
    );
    return {
      wdSelection,
      layer: info,
      epochs,
      best,
      last,
      selectedOn,
      head,
      headPath,
      nTrain: wdSelection ? trainIdx.length + valIdx.length : trainIdx.length,
      nVal: wdSelection ? 0 : valIdx.length,
      nTest: test.n,
      testSplit: held.info,
      encoder: enc.source,
      backend,
      featureSeconds,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    enc.model.dispose();
    trainSrc.close();
    testSrc?.close();
  }
}

function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ------------------------------------------------------------------------------------------------------
// Weighted kNN on frozen features

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
