/**
 * `cmc supervised`: the supervised-from-scratch baseline for the same encoder pair (upstream's README compares
 * CMC with a supervised AlexNet). Both view encoders (L and ab, same spec as `cmc train`) are trained jointly
 * with softmax cross-entropy on the labels, through ONE linear classifier on the concatenation of the views'
 * fc8 outputs BEFORE the L2 normalisation (for AlexNet 2 x featDim = 256 inputs, for the ResNets 2 x 128).
 *
 * Why there (and not on fc7): every block of the encoder, fc8 included, gets a supervised signal, so every
 * later evaluation is meaningful on the saved checkpoint — `cmc probe --layer 1..7`, and `cmc knn` / export /
 * serve on the L2-normalised embedding (which is then a supervised embedding). The price is a 2 x featDim
 * bottleneck before the classifier (fine for 10-100 classes; for ImageNet-1k fc7 would be the roomier choice).
 *
 * Same data pipeline as CMC pre-training (RandomResizedCrop(crop_low) + flip + colour conversion), same
 * optimiser (SGD, momentum, coupled weight decay on every parameter, the classifier included) and the same
 * step schedule and defaults as `cmc train`. The checkpoint is a 'cmc-train-checkpoint' (header.config,
 * header.spec, tensors 'model/<param>'), marked `objective: 'supervised'`, with the classifier as tensors
 * 'classifier/weight' [in, classes] and 'classifier/bias'. It has no memory bank: it cannot be resumed
 * with `cmc train --resume`.
 *
 *   const r = await trainSupervised({ ...SUPERVISED_DEFAULTS, data_folder: 'data/cifar', model: 'alexnet_small', image_size: 32 });
 *   r.metrics.at(-1).test_top1; r.checkpoint;   // then: cmc probe --checkpoint r.checkpoint --layer 5
 */
import * as tf from '@tensorflow/tfjs-core';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend, type BackendInfo } from '../engine/backend.ts';
import { CmcModel, sliceChannels } from '../model/cmc.ts';
import { encoderForward, layerForward } from '../model/build_tfjs.ts';
import { loadCmcSpec } from '../../core/network/load.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { inferShapes, layerOutputShape } from '../../core/network/shapes.ts';
import { SGD } from '../optim/sgd.ts';
import { epochLr } from '../optim/schedule.ts';
import {
  TRAIN_CHECKPOINT_FORMAT,
  writeCheckpoint,
  type CheckpointHeader,
  type TensorEntry,
} from '../../core/formats/checkpoint.ts';
import { appendToFile } from '../../core/util/atomic_write.ts';
import { TRAIN_DEFAULTS, type TrainConfig } from './config.ts';
import { Loader } from '../data/loader.ts';
import { SubsetLoader } from '../data/subset.ts';
import { splitTrainVal } from '../eval/splits.ts';
import { ConcatSource, openSource, type DataSource } from '../data/sources.ts';
import { Rng } from '../../core/util/rng.ts';
import { crossEntropy, topkHits } from '../eval/metrics.ts';

export type SupervisedConfig = Pick<
  TrainConfig,
  | 'data_folder'
  | 'extra_folder'
  | 'dataset'
  | 'model'
  | 'image_size'
  | 'feat_dim'
  | 'view'
  | 'crop_low'
  | 'batch_size'
  | 'epochs'
  | 'learning_rate'
  | 'lr_decay_epochs'
  | 'lr_decay_rate'
  | 'cosine'
  | 'momentum'
  | 'weight_decay'
  | 'backend'
  | 'seed'
  | 'workers'
  | 'model_path'
  | 'name'
> & {
  /**
   * Fraction of the training images per class held out (stratified, seeded by `seed`) and scored every
   * epoch: the epochs and schedule of the baseline are chosen on it, never on the test split. 0 = train on all.
   */
  val_split: number;
};

/** `cmc train`'s defaults (those of HobbitLong/CMC `train_CMC.py`), so the two runs differ only in the objective. */
export const SUPERVISED_DEFAULTS: SupervisedConfig = {
  data_folder: TRAIN_DEFAULTS.data_folder,
  extra_folder: [],
  dataset: TRAIN_DEFAULTS.dataset,
  model: TRAIN_DEFAULTS.model,
  image_size: TRAIN_DEFAULTS.image_size,
  feat_dim: TRAIN_DEFAULTS.feat_dim,
  view: TRAIN_DEFAULTS.view,
  crop_low: TRAIN_DEFAULTS.crop_low,
  batch_size: TRAIN_DEFAULTS.batch_size,
  epochs: TRAIN_DEFAULTS.epochs,
  learning_rate: TRAIN_DEFAULTS.learning_rate,
  lr_decay_epochs: TRAIN_DEFAULTS.lr_decay_epochs,
  lr_decay_rate: TRAIN_DEFAULTS.lr_decay_rate,
  cosine: TRAIN_DEFAULTS.cosine,
  momentum: TRAIN_DEFAULTS.momentum,
  weight_decay: TRAIN_DEFAULTS.weight_decay,
  backend: TRAIN_DEFAULTS.backend,
  seed: TRAIN_DEFAULTS.seed,
  workers: TRAIN_DEFAULTS.workers,
  model_path: TRAIN_DEFAULTS.model_path,
  name: '',
  val_split: 0,
};

export interface SupervisedEpoch {
  epoch: number;
  step: number;
  lr: number;
  /** Mean training cross-entropy over the epoch (augmented crops, BN in training mode). */
  loss: number;
  train_top1: number;
  /** Held-out training images (--val_split; val transform, eval mode). */
  held_out_top1?: number;
  held_out_top5?: number;
  /** Test split (val transform, eval mode), when the dataset has one. */
  test_top1?: number;
  test_top5?: number;
  epoch_sec: number;
  images_per_s: number;
}

export interface SupervisedResult {
  runDir: string;
  checkpoint: string;
  metrics: SupervisedEpoch[];
  /** With --val_split: the epoch of the best held-out top-1 (the earliest on a tie) and its metrics. */
  bestHeldOut?: SupervisedEpoch;
  classNames: string[];
  backend: BackendInfo;
}

export interface SupervisedHooks {
  log?: (line: string) => void;
  onStep?: (epoch: number, step: number, loss: number) => void;
}

export function supervisedRunName(c: SupervisedConfig): string {
  return (
    c.name || `supervised_${c.model}_lr_${c.learning_rate}_decay_${c.weight_decay}_bsz_${c.batch_size}_view_${c.view}`
  );
}

/** Width of the classifier input: the views' last-block outputs without the final l2norm, summed. */
export function preNormDim(spec: CmcSpec): number {
  return spec.views.reduce((acc, v) => {
    const n = v.encoder.blocks.length;
    let shape = inferShapes(v.encoder)[n - 1].shape;
    for (const l of v.encoder.blocks[n - 1].layers) if (l.kind !== 'l2norm') shape = layerOutputShape(l, shape);
    if (shape.length !== 1) throw new Error(`${spec.arch}: the last block does not give vectors`);
    return acc + shape[0];
  }, 0);
}

/** [B, preNormDim]: each view's last block without the l2norm, concatenated in spec order. */
export function preNormFeatures(model: CmcModel, x: tf.Tensor4D, training: boolean): tf.Tensor2D {
  return tf.tidy(() => {
    const parts = model.spec.views.map((view, i) => {
      const enc = view.encoder;
      const n = enc.blocks.length;
      const params = model.viewParams[i];
      let h = encoderForward(enc, params, sliceChannels(x, view.channels), { training, layer: n - 1 });
      for (const l of enc.blocks[n - 1].layers) if (l.kind !== 'l2norm') h = layerForward(l, params, h, training);
      return h;
    });
    return (parts.length === 1 ? parts[0] : tf.concat(parts, 1)) as tf.Tensor2D;
  });
}

function validate(c: SupervisedConfig): void {
  const bad: string[] = [];
  if (!c.data_folder) bad.push('--data_folder is required');
  for (const k of ['batch_size', 'epochs', 'feat_dim', 'image_size'] as const)
    if (!(Number.isInteger(c[k]) && c[k] > 0)) bad.push(`--${k} must be a positive integer (got ${c[k]})`);
  if (!(c.learning_rate > 0)) bad.push('--learning_rate must be > 0');
  if (!(c.crop_low > 0 && c.crop_low <= 1)) bad.push('--crop_low must be in (0, 1]');
  if (!(c.momentum >= 0) || !(c.weight_decay >= 0)) bad.push('--momentum and --weight_decay must be >= 0');
  if (!(c.val_split >= 0 && c.val_split < 1)) bad.push(`--val_split must be in [0, 1) (got ${c.val_split})`);
  const folders = [c.data_folder, ...c.extra_folder].map((f) => path.resolve(f));
  if (new Set(folders).size !== folders.length)
    bad.push('a folder is given twice (--data_folder / --extra_folder): its images would count twice');
  if (bad.length) throw new Error(bad.join('; '));
}

/**
 * --data_folder's training images, then each --extra_folder's with their labels (ConcatSource labelled):
 * a supervised run on more labels, e.g. the upper bound on every label of imagenette64-sub + -extra. The
 * test split stays --data_folder's.
 */
async function openLabelledTraining(cfg: SupervisedConfig, onWarn: (m: string) => void): Promise<DataSource> {
  const first = await openSource(cfg.dataset, cfg.data_folder, 'train', { onWarn });
  if (!cfg.extra_folder.length) return first;
  const parts: DataSource[] = [first];
  try {
    for (const f of cfg.extra_folder) parts.push(await openSource('auto', f, 'train', { onWarn }));
    return new ConcatSource(parts, [cfg.data_folder, ...cfg.extra_folder], { labelled: true });
  } catch (e) {
    for (const s of parts) s.close();
    throw e;
  }
}

export async function trainSupervised(
  cfgIn: Partial<SupervisedConfig> & { data_folder: string },
  hooks: SupervisedHooks = {},
): Promise<SupervisedResult> {
  const cfg: SupervisedConfig = {
    ...SUPERVISED_DEFAULTS,
    ...Object.fromEntries(Object.entries(cfgIn).filter(([, v]) => v !== undefined)),
  };
  const log = hooks.log ?? ((l: string) => console.error(l));
  validate(cfg);
  const backend = await initBackend(cfg.backend);
  const onWarn = (m: string) => log(`[data] ${m}`);
  const source = await openLabelledTraining(cfg, onWarn);
  let testSource: DataSource | null = null;
  const disposables: { dispose(): void }[] = [];
  const loaders: Loader[] = [];
  try {
    const labels = source.labels();
    if (!labels || labels.every((y) => y < 0))
      throw new Error(`${cfg.data_folder}: supervised training needs labelled training images`);
    testSource = await openSource(cfg.dataset, cfg.data_folder, 'test').catch(() => null);
    const maxLabel = Math.max(...labels, ...(testSource?.labels() ?? [0]));
    const nClasses = Math.max(source.classNames.length, maxLabel + 1);
    const classNames = Array.from({ length: nClasses }, (_, k) => source.classNames[k] ?? String(k));

    const spec = loadCmcSpec(cfg.model, { imageSize: cfg.image_size, featDim: cfg.feat_dim, view: cfg.view });
    const model = new CmcModel(spec, cfg.seed);
    disposables.push(model);
    const inDim = preNormDim(spec);
    // PyTorch nn.Linear default: U(+-1/sqrt(fan_in)) for weight and bias.
    const rng = new Rng(cfg.seed + 2);
    const bound = 1 / Math.sqrt(inDim);
    const W = tf.variable(
      tf.tensor2d(
        Float32Array.from({ length: inDim * nClasses }, () => rng.range(-bound, bound)),
        [inDim, nClasses],
      ),
      true,
    );
    const b = tf.variable(tf.tensor1d(Float32Array.from({ length: nClasses }, () => rng.range(-bound, bound))), true);
    disposables.push(W, b);
    const sgd = new SGD([...model.trainableVariables(), W, b], {
      lr: cfg.learning_rate,
      momentum: cfg.momentum,
      weightDecay: cfg.weight_decay,
    });
    disposables.push(sgd);

    const runDir = path.join(cfg.model_path, supervisedRunName(cfg));
    fs.mkdirSync(runDir, { recursive: true });
    const ckptPath = path.join(runDir, 'current.ckpt');
    const split = cfg.val_split > 0 ? splitTrainVal(labels, cfg.val_split, cfg.seed) : null;
    const trainOpts = {
      batchSize: cfg.batch_size,
      seed: cfg.seed,
      workers: cfg.workers,
      transform: { mode: 'train' as const, size: cfg.image_size, view: cfg.view, cropLow: cfg.crop_low },
      onWarn,
    };
    const loader = split ? new SubsetLoader(source, trainOpts, split.train) : new Loader(source, trainOpts);
    loaders.push(loader);
    const evalOpts = {
      batchSize: 256,
      workers: cfg.workers,
      shuffle: false,
      transform: { mode: 'val' as const, size: cfg.image_size, view: cfg.view },
      onWarn,
    };
    const heldOutLoader = split ? new SubsetLoader(source, evalOpts, split.val) : null;
    if (heldOutLoader) loaders.push(heldOutLoader);
    const testLoader = testSource ? new Loader(testSource, evalOpts) : null;
    if (testLoader) loaders.push(testLoader);
    /** Top-1/top-5 of the classifier on a loader's images (eval mode), or null when it holds none. */
    const score = async (l: Loader): Promise<{ top1: number; top5: number } | null> => {
      let h1 = 0,
        h5 = 0,
        nt = 0;
      for await (const batch of l.epoch(0)) {
        const logits = tf.tidy(
          () =>
            tf.add(
              tf.matMul(
                preNormFeatures(
                  model,
                  tf.tensor4d(batch.x, [batch.size, batch.height, batch.width, batch.channels]),
                  false,
                ),
                W,
              ),
              b,
            ) as tf.Tensor2D,
        );
        const h = await topkHits(logits, batch.label);
        logits.dispose();
        h1 += h.hit1;
        h5 += h.hit5;
        nt += h.n;
      }
      return nt > 0 ? { top1: h1 / nt, top5: h5 / nt } : null;
    };
    log(
      `[supervised] ${cfg.model} (${model.numParams().toLocaleString('en')} params) + linear ${inDim}->${nClasses} on pre-normalisation fc8 ` +
        `features; ${split ? `${split.train.length} train images (${split.val.length} held out)` : `${source.length} train images`}${testSource ? `, ${testSource.length} test` : ' (no test split)'}; ${backend.name}; run folder ${runDir}`,
    );

    const metrics: SupervisedEpoch[] = [];
    let step = 0;
    for (let epoch = 1; epoch <= cfg.epochs; epoch++) {
      const t0 = performance.now();
      const lr = epochLr(cfg, epoch);
      sgd.lr = lr;
      let lossSum = 0,
        hitSum = 0,
        n = 0;
      for await (const batch of loader.epoch(epoch)) {
        // Unlabelled samples (STL-10 'train+unlabeled' style sources) carry no signal here: skip them.
        const keep = [...batch.label.keys()].filter((k) => batch.label[k] >= 0);
        if (keep.length === 0) continue;
        const x = tf.tidy(() => {
          const full = tf.tensor4d(batch.x, [batch.size, batch.height, batch.width, batch.channels]);
          return keep.length === batch.size ? full : (tf.gather(full, keep) as tf.Tensor4D);
        });
        const yArr = Int32Array.from(keep, (k) => batch.label[k]);
        const y = tf.tensor1d(yArr, 'int32');
        let logitsKept: tf.Tensor2D | null = null;
        const { value, grads } = tf.variableGrads(() => {
          const logits = tf.add(tf.matMul(preNormFeatures(model, x, true), W), b) as tf.Tensor2D;
          logitsKept = tf.keep(logits);
          return crossEntropy(logits, y, nClasses);
        }, [...model.trainableVariables(), W, b]);
        sgd.step(grads);
        tf.dispose(grads);
        const loss = (await value.data())[0];
        const hits = await topkHits(logitsKept!, yArr);
        tf.dispose([value, x, y, logitsKept!]);
        step++;
        if (!Number.isFinite(loss))
          throw new Error(
            `supervised: the loss became ${loss} at epoch ${epoch}, step ${step}; try a lower --learning_rate`,
          );
        hooks.onStep?.(epoch, step, loss);
        lossSum += loss * yArr.length;
        hitSum += hits.hit1;
        n += yArr.length;
      }
      const sec = (performance.now() - t0) / 1000;
      const m: SupervisedEpoch = {
        epoch,
        step,
        lr,
        loss: lossSum / n,
        train_top1: hitSum / n,
        epoch_sec: sec,
        images_per_s: n / sec,
      };
      const held = heldOutLoader ? await score(heldOutLoader) : null;
      if (held) {
        m.held_out_top1 = held.top1;
        m.held_out_top5 = held.top5;
      }
      const test = testLoader ? await score(testLoader) : null;
      if (test) {
        m.test_top1 = test.top1;
        m.test_top5 = test.top5;
      }
      metrics.push(m);
      appendToFile(path.join(runDir, 'metrics.jsonl'), JSON.stringify(m) + '\n');
      log(
        `[supervised] epoch ${epoch}/${cfg.epochs} lr ${lr}: loss ${m.loss.toFixed(4)}  train top-1 ${(100 * m.train_top1).toFixed(2)}%` +
          (m.held_out_top1 !== undefined ? `  held-out top-1 ${(100 * m.held_out_top1).toFixed(2)}%` : '') +
          (m.test_top1 !== undefined
            ? `  test top-1 ${(100 * m.test_top1).toFixed(2)}% top-5 ${(100 * m.test_top5!).toFixed(2)}%`
            : '') +
          `  (${sec.toFixed(1)} s)`,
      );

      const config: TrainConfig = { ...TRAIN_DEFAULTS, ...cfg, name: supervisedRunName(cfg) };
      const header: CheckpointHeader<TrainConfig, SupervisedEpoch> = {
        format: TRAIN_CHECKPOINT_FORMAT,
        version: 1,
        objective: 'supervised',
        config,
        spec,
        epoch,
        step,
        sgd: { lr: sgd.lr, momentum: sgd.momentum, weightDecay: sgd.weightDecay },
        nData: source.length,
        classNames,
        metrics,
        classifier: {
          input: 'concatenated pre-L2-normalisation fc8 outputs of the views, in spec order',
          inDim,
          classes: nClasses,
        },
      };
      const tensors: Record<string, TensorEntry> = {};
      for (const [k, v] of Object.entries(await model.snapshot())) tensors[`model/${k}`] = v;
      tensors['classifier/weight'] = {
        shape: [inDim, nClasses],
        data: Float32Array.from((await W.data()) as Float32Array),
      };
      tensors['classifier/bias'] = { shape: [nClasses], data: Float32Array.from((await b.data()) as Float32Array) };
      writeCheckpoint(ckptPath, { header, tensors });
    }
    const bestHeldOut = split
      ? metrics.reduce((a, e) => ((e.held_out_top1 ?? -1) > (a.held_out_top1 ?? -1) ? e : a), metrics[0])
      : undefined;
    return { runDir, checkpoint: ckptPath, metrics, bestHeldOut, classNames, backend };
  } finally {
    for (const l of loaders) await l.close();
    for (const d of disposables) d.dispose();
    source.close();
    testSource?.close();
  }
}
