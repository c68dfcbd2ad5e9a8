/**
 * `cmc train`: learns the view encoders exactly as the seed's train_CMC.py (SEED_NOTES §1-4, 6-7), or with
 * `--views` more than two views under the core-view or full-graph objective (objective.ts):
 * data with dataset indices, the NCE memory bank, SGD with the step schedule, checkpoints every epoch
 * (atomic, resumable to the same losses), a progress line, metrics as JSON lines, TensorBoard scalars and
 * an optional weighted-kNN monitor.
 */
import * as tf from '@tensorflow/tfjs-core';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend, type BackendInfo } from '../engine/backend.ts';
import { loadCmcSpec } from '../../core/network/load.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { CmcModel } from '../model/cmc.ts';
import { MemoryBank, type MemoryBankState } from '../loss/memory_bank.ts';
import { SGD, type SGDState } from '../optim/sgd.ts';
import { stepLr } from '../optim/schedule.ts';
import { CmcStep } from './step.ts';
import { readCheckpoint, writeCheckpoint, type TensorEntry } from '../../core/formats/checkpoint.ts';
import { appendToFile, copyFileAtomic, removeStaleTemps, writeFileAtomic } from '../../core/util/atomic_write.ts';
import { isSeedViews, runName, TRAIN_DEFAULTS, validateConfig, withViewDefaults, type TrainConfig } from './config.ts';
import { objectivePairs, pairName } from './objective.ts';
import { Rng, type RngState } from '../../core/util/rng.ts';
import { detectKind, openSource, type DataSource } from '../data/sources.ts';
import { Loader } from '../data/loader.ts';
import { Progress, RunEstimate, formatDuration } from '../log/progress.ts';
import { TbWriter } from '../log/tensorboard.ts';
import { weightedKnn } from '../eval/knn.ts';
import { extractEmbeddings } from '../eval/features.ts';

export interface CheckpointHeader {
  format: 'cmc-train-checkpoint';
  version: 1;
  config: TrainConfig;
  spec: CmcSpec;
  /** Last completed epoch (1-based). */
  epoch: number;
  /** SGD steps done so far. */
  step: number;
  bankRng: RngState;
  bank: Omit<MemoryBankState, 'memories'>;
  sgd: Omit<SGDState, 'buffers'>;
  nData: number;
  classNames: string[];
  metrics: EpochMetrics[];
}

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

export interface TrainResult {
  runDir: string;
  checkpoint: string;
  metrics: EpochMetrics[];
  backend: BackendInfo;
  /** kNN of the encoder before any training (recomputed features), when --knn_freq > 0 on a fresh run. */
  knnAtInit?: { top1: number; top5: number };
}

export class NonFiniteLossError extends Error {}

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
  let cfg = { ...cfgIn };
  let resume: ReturnType<typeof readCheckpoint<CheckpointHeader>> | null = null;
  if (cfg.resume) {
    resume = readCheckpoint<CheckpointHeader>(cfg.resume, { onNote: (m) => log(`[cmc] ${m}`) });
    if (resume.header.format !== 'cmc-train-checkpoint') throw new Error(`${cfg.resume} is not a training checkpoint`);
    if ((resume.header as { objective?: string }).objective === 'supervised') {
      throw new Error(
        `${cfg.resume} is a supervised-baseline checkpoint (cmc supervised); it has no memory bank to resume CMC training from`,
      );
    }
    const imported = (resume.header as { importedFrom?: { file: string } }).importedFrom;
    if (imported)
      throw new Error(
        `${cfg.resume} was imported from the PyTorch trainer (cmc import-torch); continue its training there (torch_ddp: --resume ${imported.file})`,
      );
    // The run's hyper-parameters come from the checkpoint. How to run may change, and so may its length and
    // learning-rate schedule when asked for explicitly (the seed re-reads them from its flags); a bare --resume
    // finishes the run as it was planned (length, checkpoint and kNN frequency), not with the flags' defaults.
    const always = ['backend', 'workers', 'print_freq', 'resume', 'data_folder'] as const;
    // A new --name (or --model_path) forks the run: the same history up to the checkpoint, continued in its own
    // folder, so a longer schedule can branch off an earlier checkpoint without overwriting the original run.
    const ifGiven = [
      'epochs',
      'save_freq',
      'knn_freq',
      'learning_rate',
      'lr_decay_epochs',
      'lr_decay_rate',
      'knn_k',
      'knn_source',
      'name',
      'model_path',
      'tb_path',
    ] as const;
    const given =
      hooks.explicit ??
      (Object.keys(cfgIn) as (keyof TrainConfig)[]).filter(
        (k) => JSON.stringify(cfgIn[k]) !== JSON.stringify(TRAIN_DEFAULTS[k]),
      );
    const saved = { ...resume.header.config } as Record<string, unknown>;
    for (const k of always) if (k !== 'data_folder' || cfgIn.data_folder) saved[k] = cfgIn[k];
    for (const k of ifGiven) if (given.includes(k)) saved[k] = cfgIn[k];
    saved.knn_source ??= 'recompute'; // checkpoints written before the option existed
    saved.negatives ??= 'memory';
    cfg = withViewDefaults(saved as unknown as TrainConfig); // ... and before --views / --objective
  }
  validateConfig(cfg);
  const backend = await initBackend(cfg.backend);

  // Data first: a missing or empty dataset stops before anything is allocated.
  // Pre-training never reads labels; on STL-10 it uses the unlabeled images too, as the CMC paper does.
  const kind = cfg.dataset === 'auto' ? detectKind(cfg.data_folder) : cfg.dataset;
  const trainSplit = kind === 'stl10' ? 'train+unlabeled' : 'train';
  const source = await openSource(cfg.dataset, cfg.data_folder, trainSplit, {
    onWarn: (m: string) => log(`[data] ${m}`),
  });
  if (source.length === 0) throw new Error(`no training images in ${cfg.data_folder}`);
  if (resume && resume.header.nData !== source.length) {
    throw new Error(
      `the checkpoint's memory bank has ${resume.header.nData} rows but ${cfg.data_folder} has ${source.length} images`,
    );
  }
  let testSource: DataSource | null = null;
  if (cfg.knn_freq > 0) {
    testSource = await openSource(cfg.dataset, cfg.data_folder, 'test').catch((e: Error) => {
      throw new Error(`--knn_freq needs a labelled test split next to the training data: ${e.message}`);
    });
    if (!source.labels())
      throw new Error("--knn_freq needs labels for the training images (for the neighbours' votes)");
  }

  const spec =
    resume?.header.spec ??
    loadCmcSpec(cfg.model, { imageSize: cfg.image_size, featDim: cfg.feat_dim, view: cfg.view, viewNames: cfg.views });
  const viewNames = spec.views.map((v) => v.name);
  if (!resume && cfg.model.endsWith('.json')) {
    // A JSON --model declares its own views; --views may only restate them.
    if (!isSeedViews(cfg) && viewNames.join() !== cfg.views.join())
      throw new Error(`--views ${cfg.views.join(',')} but ${cfg.model} declares the views ${viewNames.join(',')}`);
    if (spec.input) cfg = { ...cfg, views: viewNames };
  }
  const pairs = objectivePairs(viewNames, cfg.objective, cfg.core_view);
  const model = new CmcModel(spec, cfg.seed);
  const bankRng = new Rng(cfg.seed + 1);
  const bank = new MemoryBank({
    nData: source.length,
    featDim: spec.featDim,
    K: cfg.nce_k,
    T: cfg.nce_t,
    momentum: cfg.nce_m,
    softmax: cfg.softmax,
    views: viewNames.length,
    pairs,
    rng: bankRng,
    log,
    onZ: (pair, z) => log(`[cmc] normalization constant Z for ${pairName(viewNames, pair)}: ${z.toFixed(1)}`),
  });
  const multi = viewNames.length > 2;
  const pairLabels = pairs.map((p) => pairName(viewNames, p));
  const sgd = new SGD(model.trainableVariables(), {
    lr: cfg.learning_rate,
    momentum: cfg.momentum,
    weightDecay: cfg.weight_decay,
  });
  const step = new CmcStep(model, bank, sgd, cfg.negatives);
  let startEpoch = 1;
  let globalStep = 0;
  const metrics: EpochMetrics[] = [];
  if (resume) {
    const t = resume.tensors;
    const pick = (prefix: string) =>
      Object.fromEntries(
        Object.entries(t)
          .filter(([k]) => k.startsWith(prefix))
          .map(([k, v]) => [k.slice(prefix.length), v]),
      );
    model.loadNamedArrays(pick('model/'));
    // Momentum buffers are saved under parameter names; tfjs variable names differ from run to run.
    const buffers = Object.fromEntries(
      Object.entries(pick('sgd/')).map(([k, v]) => {
        const variable = model.params.get(k);
        if (!variable) throw new Error(`checkpoint has optimiser state for unknown parameter ${k}`);
        return [variable.name, v];
      }),
    );
    sgd.loadState({ ...resume.header.sgd, buffers });
    const mems = Object.keys(pick('memory/'))
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => t[`memory/${k}`].data);
    bank.loadState({ ...resume.header.bank, memories: mems });
    bankRng.setState(resume.header.bankRng);
    startEpoch = resume.header.epoch + 1;
    globalStep = resume.header.step;
    metrics.push(...resume.header.metrics);
    log(`[cmc] resumed from ${cfg.resume}: epoch ${resume.header.epoch} done, step ${globalStep}`);
  }

  const name = runName(cfg);
  const runDir = runFolder(cfg.model_path, name);
  fs.mkdirSync(runDir, { recursive: true });
  for (const f of removeStaleTemps(runDir)) log(`[cmc] removed ${f}, left by a write that did not finish`);
  const tb = new TbWriter(path.join(cfg.tb_path, name));
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  startMetrics(
    resume ? path.join(path.dirname(cfg.resume), 'metrics.jsonl') : null,
    metricsFile,
    resume?.header.epoch ?? 0,
  );
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
    `[cmc] ${cfg.model} (${model.numParams().toLocaleString('en')} params) on ${backend.name} (${backend.device}); ` +
      `${source.length} images at ${cfg.image_size} px, batch ${cfg.batch_size} (${stepsPerEpoch} steps per epoch), epochs ${startEpoch}-${cfg.epochs}, ` +
      `K=${bank.K}, ${cfg.negatives === 'batch' ? 'softmax-CE over in-batch negatives' : cfg.softmax ? 'softmax-CE' : 'NCE'} loss, run folder ${runDir}`,
  );
  const estimate = new RunEstimate(stepsPerEpoch, cfg.epochs - startEpoch + 1, backend.name, log);
  if (multi)
    log(
      `[cmc] views ${viewNames.join(', ')} (${spec.views.map((v) => v.channels.length).join('+')} input channels), objective ${cfg.objective}: pairs ${pairLabels.join(' ')}`,
    );

  const knn = async (src: 'memory' | 'recompute') => {
    const testLoader = new Loader(testSource!, {
      batchSize: 256,
      workers: 0,
      shuffle: false,
      transform: { mode: 'val', size: cfg.image_size, view: cfg.view, input: spec.input },
    });
    const test = await extractEmbeddings(model, testLoader);
    let trainFeat: tf.Tensor2D;
    if (src === 'memory') {
      trainFeat = tf.tidy(() =>
        l2rows(
          tf.concat(
            viewNames.map((_, v) => bank.memory(v)),
            1,
          ),
        ),
      );
    } else {
      const trainLoader = new Loader(source, {
        batchSize: 256,
        workers: 0,
        shuffle: false,
        transform: { mode: 'val', size: cfg.image_size, view: cfg.view, input: spec.input },
      });
      const tr = await extractEmbeddings(model, trainLoader);
      trainFeat = tr.features;
    }
    const r = await weightedKnn(trainFeat, source.labels()!, test.features, test.labels, {
      k: cfg.knn_k,
      T: cfg.nce_t,
      classes: Math.max(source.classNames.length, 1 + Math.max(...source.labels()!)),
    });
    tf.dispose([trainFeat, test.features]);
    return r;
  };

  let knnAtInit: TrainResult['knnAtInit'];
  if (cfg.knn_freq > 0 && !resume) {
    const r = await knn('recompute');
    knnAtInit = { top1: r.top1, top5: r.top5 };
    log(
      `[knn] epoch 0 (random init, recomputed features): top-1 ${(100 * r.top1).toFixed(2)}%  top-5 ${(100 * r.top5).toFixed(2)}%`,
    );
    appendToFile(
      metricsFile,
      JSON.stringify({ epoch: 0, step: 0, knn_top1: r.top1, knn_top5: r.top5, knn_source: 'recompute' }) + '\n',
    );
  }

  let lastCkpt = cfg.resume;
  try {
    for (let epoch = startEpoch; epoch <= cfg.epochs; epoch++) {
      const lr = stepLr(cfg.learning_rate, epoch, cfg.lr_decay_epochs, cfg.lr_decay_rate);
      sgd.lr = lr;
      const progress = new Progress(source.length, `epoch ${epoch}/${cfg.epochs}`, { every: cfg.print_freq });
      const sums = { loss: 0, loss_l: 0, loss_ab: 0, prob_l: 0, prob_ab: 0, n: 0 };
      const pairSums = pairs.map(() => ({ loss: 0, prob: 0 }));
      for await (const batch of loader.epoch(epoch)) {
        const x = tf.tensor4d(batch.x, [batch.size, batch.height, batch.width, batch.channels]);
        let r;
        try {
          r = await step.run(x, batch.index);
        } finally {
          x.dispose();
        }
        globalStep++;
        estimate.step();
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
        sums.loss += r.loss * batch.size;
        sums.loss_l += r.lossL * batch.size;
        sums.loss_ab += r.lossAb * batch.size;
        sums.prob_l += r.probL * batch.size;
        sums.prob_ab += r.probAb * batch.size;
        sums.n += batch.size;
        r.pairLoss.forEach(
          (l, p) => ((pairSums[p].loss += l * batch.size), (pairSums[p].prob += r.pairProb[p] * batch.size)),
        );
        tb.scalar('train/loss', r.loss, globalStep);
        if (multi) {
          pairLabels.forEach((name, p) => {
            tb.scalar(`train/loss_${name}`, r.pairLoss[p], globalStep);
            tb.scalar(`train/prob_${name}`, r.pairProb[p], globalStep);
          });
          const each = pairLabels.map((name, p) => `${name} ${r.pairLoss[p].toFixed(2)}`).join(' ');
          progress.tick(
            batch.size,
            `loss ${r.loss.toFixed(3)} (avg ${(sums.loss / sums.n).toFixed(3)})  [${each}]  lr ${lr}`,
          );
        } else {
          tb.scalar('train/prob_l', r.probL, globalStep);
          tb.scalar('train/prob_ab', r.probAb, globalStep);
          progress.tick(
            batch.size,
            `loss ${r.loss.toFixed(3)} (avg ${(sums.loss / sums.n).toFixed(3)})  p_l ${r.probL.toExponential(2)}  p_ab ${r.probAb.toExponential(2)}  lr ${lr}`,
          );
        }
      }
      const m: EpochMetrics = {
        epoch,
        step: globalStep,
        lr,
        loss: sums.loss / sums.n,
        loss_l: sums.loss_l / sums.n,
        loss_ab: sums.loss_ab / sums.n,
        prob_l: sums.prob_l / sums.n,
        prob_ab: sums.prob_ab / sums.n,
        ...(multi
          ? {
              pairs: pairLabels.map((pair, p) => ({
                pair,
                loss: pairSums[p].loss / sums.n,
                prob: pairSums[p].prob / sums.n,
              })),
            }
          : {}),
        epoch_sec: progress.elapsedSec,
        images_per_s: sums.n / progress.elapsedSec,
      };
      if (cfg.knn_freq > 0 && (epoch % cfg.knn_freq === 0 || epoch === cfg.epochs)) {
        const r = await knn(cfg.knn_source);
        Object.assign(m, { knn_top1: r.top1, knn_top5: r.top5, knn_source: cfg.knn_source });
        tb.scalar('knn/top1', r.top1, globalStep);
        log(`[knn] epoch ${epoch}: top-1 ${(100 * r.top1).toFixed(2)}%  top-5 ${(100 * r.top5).toFixed(2)}%`);
      }
      metrics.push(m);
      tb.scalar('train/epoch_loss', m.loss, globalStep);
      tb.scalar('train/lr', lr, globalStep);
      tb.flush();
      appendToFile(metricsFile, JSON.stringify(m) + '\n');
      log(
        `[cmc] epoch ${epoch} done in ${formatDuration(m.epoch_sec)} (${m.images_per_s.toFixed(1)} img/s): loss ${m.loss.toFixed(4)}`,
      );

      const { memories, ...bankState } = await bank.snapshot();
      const header: CheckpointHeader = {
        format: 'cmc-train-checkpoint',
        version: 1,
        config: cfg,
        spec,
        epoch,
        step: globalStep,
        bankRng: bankRng.getState(),
        bank: bankState,
        sgd: { lr: sgd.lr, momentum: sgd.momentum, weightDecay: sgd.weightDecay },
        nData: source.length,
        classNames: [...source.classNames],
        metrics,
      };
      const tensors: Record<string, TensorEntry> = {};
      for (const [k, v] of Object.entries(await model.snapshot())) tensors[`model/${k}`] = v;
      const paramName = new Map([...model.params].map(([k, v]) => [v.name, k]));
      for (const [k, v] of Object.entries((await sgd.snapshot()).buffers)) tensors[`sgd/${paramName.get(k)}`] = v;
      memories.forEach((mem, v) => (tensors[`memory/${v}`] = { shape: [source.length, spec.featDim], data: mem }));
      lastCkpt = path.join(runDir, 'current.ckpt');
      writeCheckpoint(lastCkpt, { header: header as unknown as Record<string, unknown>, tensors });
      hooks.onCheckpoint?.(lastCkpt, epoch);
      if (epoch % cfg.save_freq === 0 || epoch === cfg.epochs)
        copyFileAtomic(lastCkpt, path.join(runDir, `ckpt_epoch_${epoch}.ckpt`));
      if (hooks.stopAfterEpoch === epoch) break;
    }
  } finally {
    tb.close();
    await loader.close();
    source.close();
    testSource?.close();
    model.dispose();
    bank.dispose();
    sgd.dispose();
  }
  return { runDir, checkpoint: lastCkpt, metrics, backend, knnAtInit };
}

function l2rows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.norm(x, 2, 1, true)) as tf.Tensor2D;
}

/** `<model_path>/<name>`, refused when the name would leave model_path (`--name ../x`, an absolute path). */
export function runFolder(modelPath: string, name: string): string {
  const root = path.resolve(modelPath);
  const dir = path.resolve(root, name);
  const rel = path.relative(root, dir);
  if (!rel || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new Error(
      `the run folder ${JSON.stringify(name)} would not be inside --model_path ${modelPath}; use --name with a plain folder name (letters, digits, . _ -)`,
    );
  }
  return path.join(modelPath, name);
}

/**
 * The run's metrics.jsonl as of its checkpoint: a fresh run starts an empty file (as it starts a new
 * current.ckpt); a resumed run keeps the lines up to the checkpoint's epoch, once each (the epoch-0 kNN
 * included): lines of epochs that finished after the checkpoint was written, a line torn by a kill, or a
 * second copy of an epoch are dropped, so resuming never duplicates an epoch. A forked run (a new --name)
 * starts with the source run's lines up to the resumed epoch, so its curves start at step 0; the source
 * run's file is not touched.
 */
function startMetrics(from: string | null, to: string, lastEpoch: number): void {
  if (from === null) {
    if (fs.existsSync(to)) writeFileAtomic(to, '');
    return;
  }
  // In place, from === to; a fork reads the source run's file unless it has a log of its own already.
  const src = fs.existsSync(to) ? to : fs.existsSync(from) ? from : null;
  if (!src) return;
  const epochOf = (l: string): number => {
    try {
      return (JSON.parse(l) as { epoch: number }).epoch;
    } catch {
      return NaN;
    }
  };
  const seen = new Set<number>();
  const kept = fs
    .readFileSync(src, 'utf8')
    .split('\n')
    .filter((l) => {
      const e = epochOf(l);
      if (!(e <= lastEpoch) || seen.has(e)) return false;
      seen.add(e);
      return true;
    });
  writeFileAtomic(to, kept.map((l) => l + '\n').join(''));
}
