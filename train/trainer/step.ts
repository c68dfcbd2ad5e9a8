/**
 * One CMC optimisation step (the loop body of HobbitLong/CMC `train_CMC.py`): encode every view in training mode, score the memory bank's
 * pairs (bank.pairs: (anchor view, memory view), see objective.ts), NCE (or softmax-CE) loss per pair,
 * summed in pair order, backward, SGD update of the encoders, then the memory update of every view with
 * this batch's embeddings (scores used the pre-update memory). With two views the pairs are (L, ab) and
 * (ab, L): exactly upstream's l_loss + ab_loss (`train_CMC.py`).
 *
 *   const step = new CmcStep(model, bank, sgd);
 *   const r = await step.run(x, y);   // { loss, pairLoss, pairProb, lossL, lossAb, probL, probAb }
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CmcModel } from '../model/cmc.ts';
import type { MemoryBank } from '../loss/memory_bank.ts';
import { nceLoss, softmaxLoss } from '../loss/nce.ts';
import { batchSoftmaxLoss } from '../loss/batch_softmax.ts';
import type { SGD } from '../optim/sgd.ts';

export interface StepResult {
  loss: number;
  /** Loss of each of bank.pairs, in that order. */
  pairLoss: number[];
  /** Mean over the batch of each pair's positive output (out[:, 0]), upstream's logged "probability" (`train_CMC.py` l_prob, ab_prob). */
  pairProb: number[];
  /** pairLoss[0], pairLoss[1]: with two views the L-anchor and ab-anchor losses. */
  lossL: number;
  lossAb: number;
  probL: number;
  probAb: number;
}

export class CmcStep {
  /**
   * negatives 'memory' (upstream's `NCE/NCEAverage.py`): each pair scores the anchor against K memory rows of the other view;
   * 'batch' (ours): against the other view's current embeddings of the batch (loss/batch_softmax.ts), with
   * temperature T. The memory is updated either way, so kNN on the memory and checkpoints are unchanged.
   */
  constructor(
    readonly model: CmcModel,
    readonly bank: MemoryBank,
    readonly sgd: SGD,
    readonly negatives: 'memory' | 'batch' = 'memory',
  ) {}

  /** x: normalised view input [B, H, W, C]; y: dataset indices (memory-bank rows) of the batch. */
  async run(x: tf.Tensor4D, y: Int32Array, idx?: Int32Array): Promise<StepResult> {
    const vars = this.model.trainableVariables();
    let kept: tf.Tensor2D[] = [];
    const losses: tf.Scalar[] = [];
    const probs: tf.Scalar[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const { views } = this.model.forward(x, { training: true });
      let parts: tf.Scalar[];
      if (this.negatives === 'batch') {
        const scored = this.bank.pairs.map(([a, m]) =>
          batchSoftmaxLoss(views[a] as tf.Tensor2D, views[m] as tf.Tensor2D, this.bank.T),
        );
        parts = scored.map((s) => s.loss);
        probs.push(...scored.map((s) => tf.keep(s.prob)));
      } else {
        const outs = this.bank.forwardViews(views as tf.Tensor2D[], y, idx);
        parts = outs.map((out) => (this.bank.softmax ? softmaxLoss(out) : nceLoss(out, this.bank.nData)));
        probs.push(...outs.map((out) => tf.keep(positiveProb(out, this.bank.softmax))));
      }
      // Kept past the tape: the memory update needs the embeddings, the log needs the parts.
      kept = (views as tf.Tensor2D[]).map((v) => tf.keep(v));
      losses.push(...parts.map((p) => tf.keep(p)));
      // Left-to-right sum: for two pairs exactly tf.add(loss_l, loss_ab).
      return parts.slice(1).reduce((acc, p) => tf.add(acc, p) as tf.Scalar, parts[0]);
    }, vars);
    this.sgd.step(grads);
    tf.dispose(grads);
    this.bank.updateViews(kept, y);
    await this.bank.resolvePendingZ();
    // The step's one read back (the progress line's scalars, stacked): asynchronous, the only kind WebGPU
    // offers, and each read waits for the queued work, so one beats one per scalar.
    const scalars = tf.stack([value, ...losses, ...probs]);
    const [loss, ...rest] = Array.from(await scalars.data());
    tf.dispose([scalars, value, ...kept, ...losses, ...probs]);
    const pairLoss = rest.slice(0, losses.length);
    const pairProb = rest.slice(losses.length);
    return {
      loss,
      pairLoss,
      pairProb,
      lossL: pairLoss[0],
      lossAb: pairLoss[1],
      probL: pairProb[0],
      probAb: pairProb[1],
    };
  }
}

/** Mean positive "probability": out[:,0] in NCE mode, softmax(logits)[:,0] in softmax mode. */
function positiveProb(out: tf.Tensor2D, softmax: boolean): tf.Scalar {
  return tf.tidy(() => {
    const p = softmax ? tf.softmax(out) : out;
    return tf.mean(tf.slice(p, [0, 0], [-1, 1])) as tf.Scalar;
  });
}
