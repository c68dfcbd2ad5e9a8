/**
 * One linear head trained for a fixed schedule on frozen features (upstream `LinearProbing.py` +
 * `models/LinearModel.py`): weights N(0, 0.01), bias 0; softmax cross-entropy; SGD with momentum and a step
 * learning-rate schedule; after every epoch top-1/top-5 on the test split, and on the held-out images when
 * there are some. The weights kept are those of the epoch the selection picks.
 *
 *   const fit = await fitHead({ dim, classes, batches: cachedBatches(train, 256, seed), test, heldOut,
 *                               selectOn: 'held_out', schedule, seed, log });
 *   fit.best.top1; fit.weight;   // Float32Array [dim, classes] of the chosen epoch
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CmcModel } from '../model/cmc.ts';
import type { Loader } from '../data/loader.ts';
import { SGD } from '../optim/sgd.ts';
import { stepLr } from '../optim/schedule.ts';
import { Rng } from '../../core/util/rng.ts';
import { layerFeatures, type FeatureSet, type ProbeLayerInfo } from './features.ts';
import { crossEntropy, formatLr, pct, topkHits } from './metrics.ts';
import type { ProbeSelection } from './selection.ts';

export interface ProbeEpochMetrics {
  epoch: number;
  lr: number;
  /** Mean training cross-entropy over the epoch. */
  loss: number;
  train_top1: number;
  top1: number;
  top5: number;
  /** On the held-out training images, when some are held out (the key predates the word "held-out"). */
  val_top1?: number;
  val_top5?: number;
  epoch_sec: number;
}

export interface HeadSchedule {
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  decayEpochs: number[];
  decayRate: number;
}

/** One epoch's training batches: features [B, dim] (the consumer disposes them) and their labels. */
export type HeadBatches = (epoch: number) => AsyncIterable<{ x: tf.Tensor2D; labels: Int32Array }>;

/** Batches of cached features, reshuffled every epoch (seeded by seed and epoch). */
export function cachedBatches(set: FeatureSet, batchSize: number, seed: number): HeadBatches {
  const D = set.dim;
  return async function* (epoch) {
    const order = new Int32Array(set.n).map((_, i) => i);
    new Rng(seed * 7919 + epoch).shuffle(order);
    for (let s = 0; s < set.n; s += batchSize) {
      const rows = order.subarray(s, Math.min(s + batchSize, set.n));
      const xb = new Float32Array(rows.length * D);
      const labels = new Int32Array(rows.length);
      rows.forEach((r, k) => {
        xb.set(set.features.subarray(r * D, (r + 1) * D), k * D);
        labels[k] = set.labels[r];
      });
      yield { x: tf.tensor2d(xb, [rows.length, D]), labels };
    }
  };
}

/** Batches of a (training-transform) loader through the frozen encoders, every epoch (upstream's protocol). */
export function augmentedBatches(loader: Loader, model: CmcModel, info: ProbeLayerInfo): HeadBatches {
  return async function* (epoch) {
    for await (const batch of loader.epoch(epoch)) {
      const x = tf.tidy(() =>
        layerFeatures(model, tf.tensor4d(batch.x, [batch.size, batch.height, batch.width, batch.channels]), info),
      );
      yield { x, labels: batch.label };
    }
  };
}

/** Says once when the training loss diverges: not finite, or above 10x its first epoch's value. */
export class DivergenceWatch {
  private first: number | null = null;
  private warned = false;

  check(epoch: number, loss: number): string | null {
    if (this.first === null && Number.isFinite(loss)) this.first = loss;
    const diverged = !Number.isFinite(loss) || (this.first !== null && this.first > 0 && loss > 10 * this.first);
    if (!diverged || this.warned) return null;
    this.warned = true;
    return `[probe] warning: the training loss diverged in epoch ${epoch} (${loss}, first epoch ${this.first ?? 'n/a'}); try a lower --learning_rate`;
  }
}

export interface FitHeadInput {
  dim: number;
  classes: number;
  batches: HeadBatches;
  test: FeatureSet;
  /** Held-out training images, scored every epoch (null: none held out). */
  heldOut: FeatureSet | null;
  selectOn: ProbeSelection;
  schedule: HeadSchedule;
  /** Seeds the head's initialisation. */
  seed: number;
  log: (line: string) => void;
}

export interface FittedHead {
  epochs: ProbeEpochMetrics[];
  /** The epoch the selection picked. */
  best: ProbeEpochMetrics;
  /** Its weights, row-major [dim, classes], and bias. */
  weight: Float32Array;
  bias: Float32Array;
}

export async function fitHead(input: FitHeadInput): Promise<FittedHead> {
  const { dim: D, classes, schedule: s, heldOut, selectOn, log } = input;
  if (selectOn === 'held_out' && !heldOut) throw new Error('choosing on the held-out split needs held-out images');
  // The head: weight N(0, 0.01), bias 0 (upstream `models/LinearModel.py` initilize()).
  const rng = new Rng(input.seed + 1000);
  const w0 = new Float32Array(D * classes);
  for (let i = 0; i < w0.length; i++) w0[i] = rng.normal() * 0.01;
  const W = tf.variable(tf.tensor2d(w0, [D, classes]), true);
  const b = tf.variable(tf.zeros([classes]), true);
  const sgd = new SGD([W, b], { lr: s.lr, momentum: s.momentum, weightDecay: s.weightDecay });
  const score = (m: ProbeEpochMetrics) =>
    selectOn === 'held_out' ? m.val_top1! : selectOn === 'test' ? m.top1 : m.epoch;
  const watch = new DivergenceWatch();
  const epochs: ProbeEpochMetrics[] = [];
  let best: FittedHead | null = null;
  try {
    for (let epoch = 1; epoch <= s.epochs; epoch++) {
      const te = performance.now();
      const lr = stepLr(s.lr, epoch, s.decayEpochs, s.decayRate);
      sgd.lr = lr;
      let lossSum = 0,
        hitSum = 0,
        n = 0;
      for await (const { x, labels } of input.batches(epoch)) {
        const r = await trainStep(x, labels, W, b, sgd, classes);
        x.dispose();
        lossSum += r.loss * labels.length;
        hitSum += r.hits;
        n += labels.length;
      }
      const warning = watch.check(epoch, lossSum / n);
      if (warning) log(warning);
      if (!Number.isFinite(lossSum))
        throw new Error(`probe: the loss became ${lossSum} in epoch ${epoch}; try a lower --learning_rate`);
      const t = await evaluate(input.test, W, b);
      const m: ProbeEpochMetrics = {
        epoch,
        lr,
        loss: lossSum / n,
        train_top1: hitSum / n,
        top1: t.top1,
        top5: t.top5,
        epoch_sec: 0,
      };
      if (heldOut) {
        const v = await evaluate(heldOut, W, b);
        m.val_top1 = v.top1;
        m.val_top5 = v.top5;
      }
      m.epoch_sec = (performance.now() - te) / 1000;
      epochs.push(m);
      if (!best || score(m) > score(best.best)) {
        best = {
          epochs,
          best: m,
          weight: Float32Array.from((await W.data()) as Float32Array),
          bias: Float32Array.from((await b.data()) as Float32Array),
        };
      }
      log(
        `[probe] epoch ${epoch}/${s.epochs} lr ${formatLr(lr)}: loss ${m.loss.toFixed(4)} train top-1 ${pct(m.train_top1)}` +
          (heldOut ? `  held-out top-1 ${pct(m.val_top1!)}` : '') +
          `  test top-1 ${pct(m.top1)} top-5 ${pct(m.top5)}  (${m.epoch_sec.toFixed(1)} s)`,
      );
    }
  } finally {
    sgd.dispose();
    tf.dispose([W, b]);
  }
  return best!;
}

/** One SGD step of the head on a batch; the loss and the top-1 hits of the logits before the step. */
async function trainStep(
  xb: tf.Tensor2D,
  yb: Int32Array,
  W: tf.Variable,
  b: tf.Variable,
  sgd: SGD,
  classes: number,
): Promise<{ loss: number; hits: number }> {
  const y = tf.tensor1d(yb, 'int32');
  let logitsKept: tf.Tensor2D | null = null;
  const { value, grads } = tf.variableGrads(() => {
    const logits = tf.add(tf.matMul(xb, W), b) as tf.Tensor2D;
    logitsKept = tf.keep(logits);
    return crossEntropy(logits, y, classes);
  }, [W, b]);
  sgd.step(grads);
  tf.dispose(grads);
  const hits = await topkHits(logitsKept!, yb);
  const loss = (await value.data())[0];
  tf.dispose([value, y, logitsKept!]);
  return { loss, hits: hits.hit1 };
}

/** Top-1 / top-5 of the head on a feature set, in chunks of 1024 rows. */
async function evaluate(set: FeatureSet, W: tf.Variable, b: tf.Variable): Promise<{ top1: number; top5: number }> {
  const D = set.dim;
  let hit1 = 0,
    hit5 = 0,
    n = 0;
  const chunk = 1024;
  for (let s = 0; s < set.n; s += chunk) {
    const rows = Math.min(chunk, set.n - s);
    const logits = tf.tidy(
      () =>
        tf.add(tf.matMul(tf.tensor2d(set.features.subarray(s * D, (s + rows) * D), [rows, D]), W), b) as tf.Tensor2D,
    );
    const h = await topkHits(logits, set.labels, s);
    logits.dispose();
    hit1 += h.hit1;
    hit5 += h.hit5;
    n += h.n;
  }
  return { top1: n ? hit1 / n : 0, top5: n ? hit5 / n : 0 };
}
