/**
 * `cmc train`: learns the view encoders as upstream's HobbitLong/CMC `train_CMC.py` does, or with `--views`
 * more than two views under the core-view or full-graph objective (objective.ts): data with dataset indices,
 * the NCE memory bank (upstream's `NCE/NCEAverage.py`), SGD with the step schedule, checkpoints every epoch
 * (atomic, resumable to the same losses), a progress line, metrics as JSON lines, TensorBoard scalars and an
 * optional weighted-kNN monitor.
 *
 * This file wires the parts: the resumed run's config (resume_config.ts), the data (training_data.ts), the
 * network and its trainers (parts.ts), their saved state (state.ts), the run folder (run_folder.ts), the kNN
 * monitor (knn_monitor.ts) and the epochs (epoch_loop.ts).
 */
import { initBackend, type BackendInfo } from '../engine/backend.ts';
import { Loader } from '../data/loader.ts';
import { RunEstimate } from '../log/progress.ts';
import { appendToFile } from '../../core/util/atomic_write.ts';
import { validateConfig, type TrainConfig } from './config.ts';
import { resumeConfig } from './resume_config.ts';
import { readResumeCheckpoint, restoreState, type TrainCheckpoint } from './state.ts';
import { describeFolders, openTrainingData } from './training_data.ts';
import { buildTraining, disposeTraining, networkSpec } from './parts.ts';
import { openRunFolder } from './run_folder.ts';
import { knnMonitor } from './knn_monitor.ts';
import { runEpochs } from './epoch_loop.ts';
import type { EpochMetrics } from './epoch_metrics.ts';

export interface TrainResult {
  runDir: string;
  checkpoint: string;
  metrics: EpochMetrics[];
  backend: BackendInfo;
  /** kNN of the encoder before any training (recomputed features), when --knn_freq > 0 on a fresh run. */
  knnAtInit?: { top1: number; top5: number };
}

export interface TrainHooks {
  log?: (line: string) => void;
  /** Stop (cleanly, after saving) once this epoch is done, as if interrupted: used by the resume test. */
  stopAfterEpoch?: number;
  /** Flags the user set explicitly (default: those that differ from TRAIN_DEFAULTS); matters on --resume. */
  explicit?: (keyof TrainConfig)[];
  /** Called with each step's losses (tests compare runs). */
  onStep?: (epoch: number, step: number, loss: number) => void;
  /** Called with the newest whole checkpoint (the resumed one first, then each epoch's): `cmc train` names it on Ctrl+C. */
  onCheckpoint?: (file: string, epoch: number) => void;
}

export async function train(cfgIn: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? ((l: string) => console.error(l));
  let resume: TrainCheckpoint | null = null;
  let cfg = { ...cfgIn };
  if (cfg.resume) {
    resume = readResumeCheckpoint(cfg.resume, log);
    cfg = resumeConfig(resume.header.config, cfgIn, hooks.explicit);
  }
  validateConfig(cfg);
  const backend = await initBackend(cfg.backend);
  const { source, labelled, testSource, folders } = await openTrainingData(cfg, resume?.header.nData ?? null, log);
  const net = networkSpec(cfg, resume?.spec ?? null);
  cfg = net.cfg;
  const spec = net.spec;
  const parts = buildTraining(cfg, spec, source.length, log);
  let from = { startEpoch: 1, globalStep: 0, metrics: [] as EpochMetrics[] };
  if (resume) {
    from = restoreState(resume, parts);
    log(`[cmc] resumed from ${cfg.resume}: epoch ${resume.header.epoch} done, step ${from.globalStep}`);
  }

  const run = openRunFolder(cfg, resume && { file: cfg.resume, epoch: resume.header.epoch }, log);
  if (resume) hooks.onCheckpoint?.(cfg.resume, resume.header.epoch);
  const loader = new Loader(source, {
    batchSize: cfg.batch_size,
    seed: cfg.seed,
    workers: cfg.workers,
    transform: { mode: 'train', size: cfg.image_size, view: cfg.view, input: spec.input, cropLow: cfg.crop_low },
    onWarn: (m) => log(`[data] ${m}`),
  });
  const stepsPerEpoch = Math.ceil(source.length / cfg.batch_size);
  log(
    `[cmc] ${cfg.model} (${parts.model.numParams().toLocaleString('en')} params) on ${backend.name} (${backend.device}); ` +
      `${source.length} images${folders.length > 1 ? ` (${describeFolders(folders)})` : ''} at ${cfg.image_size} px, batch ${cfg.batch_size} (${stepsPerEpoch} steps per epoch), epochs ${from.startEpoch}-${cfg.epochs}, ` +
      `K=${parts.bank.K}, ${cfg.negatives === 'batch' ? 'softmax-CE over in-batch negatives' : cfg.softmax ? 'softmax-CE' : 'NCE'} loss, run folder ${run.runDir}`,
  );
  const estimate = new RunEstimate(stepsPerEpoch, cfg.epochs - from.startEpoch + 1, backend.name, log);
  if (spec.views.length > 2)
    log(
      `[cmc] views ${spec.views.map((v) => v.name).join(', ')} (${spec.views.map((v) => v.channels.length).join('+')} input channels), objective ${cfg.objective}: pairs ${parts.pairLabels.join(' ')}`,
    );

  const knn =
    testSource && knnMonitor({ cfg, spec, model: parts.model, bank: parts.bank, source: labelled, testSource });
  let knnAtInit: TrainResult['knnAtInit'];
  let checkpoint = cfg.resume;
  try {
    if (knn && !resume) {
      const r = await knn('recompute');
      knnAtInit = { top1: r.top1, top5: r.top5 };
      log(
        `[knn] epoch 0 (random init, recomputed features): top-1 ${(100 * r.top1).toFixed(2)}%  top-5 ${(100 * r.top5).toFixed(2)}%`,
      );
      appendToFile(
        run.metricsFile,
        JSON.stringify({ epoch: 0, step: 0, knn_top1: r.top1, knn_top5: r.top5, knn_source: 'recompute' }) + '\n',
      );
    }
    checkpoint = await runEpochs(
      {
        cfg,
        spec,
        parts,
        step: parts.step,
        loader,
        data: source,
        run,
        pairLabels: parts.pairLabels,
        knn,
        estimate,
        work: `${cfg.model}, batch ${cfg.batch_size} at ${cfg.image_size} px on ${backend.name}`,
        log,
        hooks,
      },
      { ...from, lastCheckpoint: checkpoint },
    );
  } finally {
    run.tb.close();
    await loader.close();
    source.close();
    testSource?.close();
    disposeTraining(parts);
  }
  return { runDir: run.runDir, checkpoint, metrics: from.metrics, backend, knnAtInit };
}
