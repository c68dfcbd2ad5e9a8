/**
 * One epoch's metrics (a line of metrics.jsonl, an entry of the checkpoint's `metrics`): the step results
 * averaged over the epoch's images, weighted by batch size.
 */
import type { StepResult } from './step.ts';

export interface EpochMetrics {
  epoch: number;
  step: number;
  lr: number;
  loss: number;
  loss_l: number;
  loss_ab: number;
  prob_l: number;
  prob_ab: number;
  /** More than two views: mean loss and positive probability of each scored pair ("L>ab": L anchor, ab memory). */
  pairs?: { pair: string; loss: number; prob: number }[];
  epoch_sec: number;
  images_per_s: number;
  knn_top1?: number;
  knn_top5?: number;
  knn_source?: 'memory' | 'recompute';
}

/** Sums of the step results over an epoch's images. */
export class EpochSums {
  loss = 0;
  lossL = 0;
  lossAb = 0;
  probL = 0;
  probAb = 0;
  n = 0;
  private readonly pairs: { loss: number; prob: number }[];

  constructor(private readonly pairLabels: readonly string[]) {
    this.pairs = pairLabels.map(() => ({ loss: 0, prob: 0 }));
  }

  add(r: StepResult, batchSize: number): void {
    this.loss += r.loss * batchSize;
    this.lossL += r.lossL * batchSize;
    this.lossAb += r.lossAb * batchSize;
    this.probL += r.probL * batchSize;
    this.probAb += r.probAb * batchSize;
    this.n += batchSize;
    r.pairLoss.forEach(
      (l, p) => ((this.pairs[p].loss += l * batchSize), (this.pairs[p].prob += r.pairProb[p] * batchSize)),
    );
  }

  /** The epoch's metrics; `pairs` only with more than two views. */
  metrics(o: { epoch: number; step: number; lr: number; sec: number; multi: boolean }): EpochMetrics {
    const n = this.n;
    return {
      epoch: o.epoch,
      step: o.step,
      lr: o.lr,
      loss: this.loss / n,
      loss_l: this.lossL / n,
      loss_ab: this.lossAb / n,
      prob_l: this.probL / n,
      prob_ab: this.probAb / n,
      ...(o.multi
        ? {
            pairs: this.pairLabels.map((pair, p) => ({
              pair,
              loss: this.pairs[p].loss / n,
              prob: this.pairs[p].prob / n,
            })),
          }
        : {}),
      epoch_sec: o.sec,
      images_per_s: n / o.sec,
    };
  }
}
