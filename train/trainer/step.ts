/**
 * One CMC optimisation step (SEED_NOTES §1): encode both views in training mode, score them against the
 * memory bank, NCE (or softmax-CE) loss per view, backward, SGD update of the encoders, then the memory
 * update with this batch's embeddings (scores used the pre-update memory).
 *
 *   const step = new CmcStep(model, bank, sgd, { nData });
 *   const r = await step.run(x, y);   // { loss, lossL, lossAb, probL, probAb }
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CmcModel } from '../model/cmc.ts';
import type { MemoryBank } from '../loss/memory_bank.ts';
import { nceLoss, softmaxLoss } from '../loss/nce.ts';
import type { SGD } from '../optim/sgd.ts';

export interface StepResult {
  loss: number;
  lossL: number;
  lossAb: number;
  /** Mean over the batch of the positive's output (out[:, 0]), the seed's logged "probability". */
  probL: number;
  probAb: number;
}

export class CmcStep {
  constructor(
    readonly model: CmcModel,
    readonly bank: MemoryBank,
    readonly sgd: SGD,
  ) {}

  /** x: normalised view input [B, H, W, 3]; y: dataset indices (memory-bank rows) of the batch. */
  async run(x: tf.Tensor4D, y: Int32Array, idx?: Int32Array): Promise<StepResult> {
    const vars = this.model.trainableVariables();
    let kept: tf.Tensor[] = [];
    const parts: tf.Scalar[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const { views } = this.model.forward(x, { training: true });
      const [l, ab] = views as [tf.Tensor2D, tf.Tensor2D];
      const { outL, outAb } = this.bank.forward(l, ab, y, idx);
      const lossL = this.bank.softmax ? softmaxLoss(outL) : nceLoss(outL, this.bank.nData);
      const lossAb = this.bank.softmax ? softmaxLoss(outAb) : nceLoss(outAb, this.bank.nData);
      // Kept past the tape: the memory update needs the embeddings, the log needs the parts.
      kept = [tf.keep(l), tf.keep(ab)];
      parts.push(
        tf.keep(lossL),
        tf.keep(lossAb),
        tf.keep(positiveProb(outL, this.bank.softmax)),
        tf.keep(positiveProb(outAb, this.bank.softmax)),
      );
      return tf.add(lossL, lossAb) as tf.Scalar;
    }, vars);
    this.sgd.step(grads);
    tf.dispose(grads);
    const [l, ab] = kept as [tf.Tensor2D, tf.Tensor2D];
    this.bank.update(l, ab, y);
    await this.bank.resolvePendingZ();
    // Asynchronous reads: the only kind WebGPU offers, and they let the backend finish queued work first.
    const [loss, lossL, lossAb, probL, probAb] = await Promise.all([value, ...parts].map(async (t) => (await t.data())[0]));
    tf.dispose([value, ...kept, ...parts]);
    return { loss, lossL, lossAb, probL, probAb };
  }
}

/** Mean positive "probability": out[:,0] in NCE mode, softmax(logits)[:,0] in softmax mode. */
function positiveProb(out: tf.Tensor2D, softmax: boolean): tf.Scalar {
  return tf.tidy(() => {
    const p = softmax ? tf.softmax(out) : out;
    return tf.mean(tf.slice(p, [0, 0], [-1, 1])) as tf.Scalar;
  });
}
