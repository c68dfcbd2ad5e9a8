/**
 * The network and the parts that train it: the encoders (CmcModel), the memory bank with its own RNG, SGD and
 * the step that joins them (step.ts). Built fresh for every run; a resumed run then loads their state
 * (state.ts).
 */
import { loadCmcSpec } from '../../core/network/load.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { isDefaultViews } from '../../core/preprocess/views.ts';
import { Rng } from '../../core/util/rng.ts';
import { CmcModel } from '../model/cmc.ts';
import { MemoryBank } from '../loss/memory_bank.ts';
import { SGD } from '../optim/sgd.ts';
import type { TrainConfig } from './config.ts';
import { objectivePairs, pairName } from './objective.ts';
import { CmcStep } from './step.ts';
import type { TrainingParts } from './state.ts';

/**
 * The network: the resumed checkpoint's, else --model's. A JSON --model declares its own views (--views may
 * only restate them); the config then names them.
 */
export function networkSpec(cfg: TrainConfig, resumed: CmcSpec | null): { spec: CmcSpec; cfg: TrainConfig } {
  if (resumed) return { spec: resumed, cfg };
  const spec = loadCmcSpec(cfg.model, {
    imageSize: cfg.image_size,
    featDim: cfg.feat_dim,
    view: cfg.view,
    viewNames: cfg.views,
  });
  if (!cfg.model.endsWith('.json')) return { spec, cfg };
  const viewNames = spec.views.map((v) => v.name);
  if (!isDefaultViews(cfg.views) && viewNames.join() !== cfg.views.join())
    throw new Error(`--views ${cfg.views.join(',')} but ${cfg.model} declares the views ${viewNames.join(',')}`);
  return { spec, cfg: spec.input ? { ...cfg, views: viewNames } : cfg };
}

export interface Training extends TrainingParts {
  step: CmcStep;
  /** Labels of the scored pairs, in the bank's order ("L>ab": L anchor, ab memory). */
  pairLabels: string[];
}

/** Fresh parts for `nData` training images, initialised from cfg.seed (the bank's RNG from cfg.seed + 1). */
export function buildTraining(cfg: TrainConfig, spec: CmcSpec, nData: number, log: (line: string) => void): Training {
  const viewNames = spec.views.map((v) => v.name);
  const pairs = objectivePairs(viewNames, cfg.objective, cfg.core_view);
  const model = new CmcModel(spec, cfg.seed);
  const bankRng = new Rng(cfg.seed + 1);
  const bank = new MemoryBank({
    nData,
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
  const sgd = new SGD(model.trainableVariables(), {
    lr: cfg.learning_rate,
    momentum: cfg.momentum,
    weightDecay: cfg.weight_decay,
  });
  const step = new CmcStep(model, bank, sgd, cfg.negatives);
  return { model, bankRng, bank, sgd, step, pairLabels: pairs.map((p) => pairName(viewNames, p)) };
}

/** Frees the tensors of the parts. */
export function disposeTraining(t: TrainingParts): void {
  t.model.dispose();
  t.bank.dispose();
  t.sgd.dispose();
}
