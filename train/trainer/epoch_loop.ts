/**
 * The epochs of `cmc train`: per step the learning rate of the step schedule (upstream's HobbitLong/CMC
 * `train_CMC.py` adjust_learning_rate), the step, TensorBoard scalars and the progress line; per epoch the
 * metrics, the kNN monitor when due, and the checkpoint (current.ckpt every epoch, ckpt_epoch_N every
 * --save_freq epochs and at the end). A non-finite loss stops the run, naming the last good checkpoint.
 */
import * as tf from '@tensorflow/tfjs-core';
import path from 'node:path';
import type { CmcSpec } from '../../core/network/layers.ts';
import { writeCheckpoint } from '../../core/formats/checkpoint.ts';
import { appendToFile, copyFileAtomic } from '../../core/util/atomic_write.ts';
import type { Loader } from '../data/loader.ts';
import { Progress, type RunEstimate, formatDuration } from '../log/progress.ts';
import { epochLr } from '../optim/schedule.ts';
import type { TrainConfig } from './config.ts';
import type { CmcStep } from './step.ts';
import { EpochSums, type EpochMetrics } from './epoch_metrics.ts';
import { firstStepHeartbeat } from './first_step.ts';
import type { KnnMonitor } from './knn_monitor.ts';
import type { RunFolder } from './run_folder.ts';
import { trainingCheckpoint, type TrainingParts } from './state.ts';

export class NonFiniteLossError extends Error {}

export interface EpochLoop {
  cfg: TrainConfig;
  spec: CmcSpec;
  parts: TrainingParts;
  step: CmcStep;
  loader: Loader;
  data: { length: number; classNames: readonly string[] };
  run: RunFolder;
  /** Labels of the scored pairs (objective.ts pairName). */
  pairLabels: string[];
  knn: KnnMonitor | null;
  estimate: RunEstimate;
  /** What the first step computes, for the heartbeat until it finishes (first_step.ts). */
  work: string;
  log: (line: string) => void;
  hooks: {
    stopAfterEpoch?: number;
    onStep?: (epoch: number, step: number, loss: number) => void;
    onCheckpoint?: (file: string, epoch: number) => void;
  };
}

/**
 * Runs epochs startEpoch..cfg.epochs (or up to hooks.stopAfterEpoch), appending to `metrics`; returns the
 * newest whole checkpoint ('' when none).
 */
export async function runEpochs(
  o: EpochLoop,
  from: { startEpoch: number; globalStep: number; metrics: EpochMetrics[]; lastCheckpoint: string },
): Promise<string> {
  const { cfg, parts, run, log, hooks } = o;
  const multi = o.spec.views.length > 2;
  const { metrics } = from;
  let globalStep = from.globalStep;
  let lastCkpt = from.lastCheckpoint;
  const heartbeat = firstStepHeartbeat(o.work);
  try {
    for (let epoch = from.startEpoch; epoch <= cfg.epochs; epoch++) {
      const lr = epochLr(cfg, epoch);
      parts.sgd.lr = lr;
      const progress = new Progress(o.data.length, `epoch ${epoch}/${cfg.epochs}`, { every: cfg.print_freq });
      const sums = new EpochSums(o.pairLabels);
      for await (const batch of o.loader.epoch(epoch)) {
        const x = tf.tensor4d(batch.x, [batch.size, batch.height, batch.width, batch.channels]);
        let r;
        try {
          r = await o.step.run(x, batch.index);
        } finally {
          x.dispose();
        }
        globalStep++;
        heartbeat.step();
        o.estimate.step();
        // One macrotask turn per step: on a synchronous backend (cpu, and the in-thread loader) the loop is all
        // microtasks, so without it signals (Ctrl+C) and timers would wait until the run ends.
        await new Promise<void>((res) => setImmediate(res));
        if (!Number.isFinite(r.loss)) {
          throw new NonFiniteLossError(
            `loss became ${r.loss} at epoch ${epoch}, step ${globalStep}; stopping. The last good checkpoint is ${lastCkpt || '(none yet)'}; ` +
              'try a lower --learning_rate.',
          );
        }
        hooks.onStep?.(epoch, globalStep, r.loss);
        sums.add(r, batch.size);
        run.tb.scalar('train/loss', r.loss, globalStep);
        const avg = `loss ${r.loss.toFixed(3)} (avg ${(sums.loss / sums.n).toFixed(3)})`;
        if (multi) {
          o.pairLabels.forEach((name, p) => {
            run.tb.scalar(`train/loss_${name}`, r.pairLoss[p], globalStep);
            run.tb.scalar(`train/prob_${name}`, r.pairProb[p], globalStep);
          });
          const each = o.pairLabels.map((name, p) => `${name} ${r.pairLoss[p].toFixed(2)}`).join(' ');
          progress.tick(batch.size, `${avg}  [${each}]  lr ${lr}`);
        } else {
          run.tb.scalar('train/prob_l', r.probL, globalStep);
          run.tb.scalar('train/prob_ab', r.probAb, globalStep);
          progress.tick(
            batch.size,
            `${avg}  p_l ${r.probL.toExponential(2)}  p_ab ${r.probAb.toExponential(2)}  lr ${lr}`,
          );
        }
      }
      const m = sums.metrics({ epoch, step: globalStep, lr, sec: progress.elapsedSec, multi });
      if (o.knn && (epoch % cfg.knn_freq === 0 || epoch === cfg.epochs)) {
        const r = await o.knn(cfg.knn_source);
        Object.assign(m, { knn_top1: r.top1, knn_top5: r.top5, knn_source: cfg.knn_source });
        run.tb.scalar('knn/top1', r.top1, globalStep);
        log(`[knn] epoch ${epoch}: top-1 ${(100 * r.top1).toFixed(2)}%  top-5 ${(100 * r.top5).toFixed(2)}%`);
      }
      metrics.push(m);
      run.tb.scalar('train/epoch_loss', m.loss, globalStep);
      run.tb.scalar('train/lr', lr, globalStep);
      run.tb.flush();
      appendToFile(run.metricsFile, JSON.stringify(m) + '\n');
      log(
        `[cmc] epoch ${epoch} done in ${formatDuration(m.epoch_sec)} (${m.images_per_s.toFixed(1)} img/s): loss ${m.loss.toFixed(4)}`,
      );

      const ckpt = await trainingCheckpoint(parts, {
        cfg,
        spec: o.spec,
        epoch,
        step: globalStep,
        nData: o.data.length,
        classNames: o.data.classNames,
        metrics,
      });
      lastCkpt = path.join(run.runDir, 'current.ckpt');
      writeCheckpoint(lastCkpt, ckpt);
      hooks.onCheckpoint?.(lastCkpt, epoch);
      if (epoch % cfg.save_freq === 0 || epoch === cfg.epochs)
        copyFileAtomic(lastCkpt, path.join(run.runDir, `ckpt_epoch_${epoch}.ckpt`));
      if (hooks.stopAfterEpoch === epoch) break;
    }
  } finally {
    heartbeat.stop();
  }
  return lastCkpt;
}
