import path from 'node:path';
import { isDefaultViews, parseViews } from '../../core/preprocess/views.ts';
import { OBJECTIVES, type Objective } from './objective.ts';

/**
 * The training configuration: the flags of upstream's HobbitLong/CMC `train_CMC.py` with the same names and
 * defaults, plus ours. Saved inside every checkpoint; `--resume` reads it back.
 */
export interface TrainConfig {
  data_folder: string;
  /**
   * More training images for pre-training only (ours): each folder's training split joins data_folder's in
   * one memory bank, after it (rows 0..n-1 stay data_folder's); their labels are never read. The kNN monitor
   * and evaluation use data_folder alone.
   */
  extra_folder: string[];
  /** Where run folders (checkpoints, metrics.jsonl) go. */
  model_path: string;
  /** TensorBoard event files go to tb_path/<run name>. */
  tb_path: string;
  model: string;
  batch_size: number;
  epochs: number;
  learning_rate: number;
  lr_decay_epochs: number[];
  lr_decay_rate: number;
  /** Cosine learning-rate schedule instead of the step one (train/optim/schedule.ts). */
  cosine: boolean;
  momentum: number;
  weight_decay: number;
  nce_k: number;
  nce_t: number;
  nce_m: number;
  feat_dim: number;
  softmax: boolean;
  /**
   * Where each pair's negatives come from: 'memory' = K rows of the other view's memory bank (upstream's `NCE/NCEAverage.py`);
   * 'batch' = the other view's embeddings of the rest of the batch, softmax-CE at temperature nce_t (ours,
   * loss/batch_softmax.ts): fresher targets when the data is small and the epochs few.
   */
  negatives: 'memory' | 'batch';
  crop_low: number;
  view: 'Lab' | 'YCbCr';
  /**
   * The views, each with its own encoder and memory (core/preprocess/views.ts: L, ab, Y, CbCr, DbDr, grad).
   * The default L,ab is upstream's model (with --view YCbCr: Y and CbCr under the names L and ab).
   */
  views: string[];
  /** Pairs contrasted: 'core' = (core_view, v) for every other v; 'full' = every pair (CMC paper §3.3). */
  objective: Objective;
  /** The core view of --objective core ('' = the first view). */
  core_view: string;
  /** Path of a checkpoint to resume from ('' = fresh run). */
  resume: string;
  // ours
  dataset: 'auto' | 'raw' | 'imagefolder' | 'cifar10' | 'stl10';
  image_size: number;
  backend: 'auto' | 'tensorflow' | 'webgpu' | 'native' | 'wasm' | 'cpu';
  seed: number;
  /** Weighted kNN on the labelled test split every N epochs (0 = never). */
  knn_freq: number;
  knn_k: number;
  /**
   * Training-set features for the kNN monitor: 'recompute' runs the frozen encoders over the training
   * images (eval mode, val transform), like the test side and the random-init baseline; 'memory' reuses
   * the memory bank (free, as Instance Discrimination does, but its rows lag: with nce_m 0.5 they are half
   * the previous visit, and after one epoch half their random initialisation).
   */
  knn_source: 'recompute' | 'memory';
  workers: number;
  print_freq: number;
  /** Keep ckpt_epoch_N every N epochs (the rolling current.ckpt is written every epoch). */
  save_freq: number;
  /** Run folder name ('' = derived from the hyper-parameters, as upstream's `train_CMC.py` does). */
  name: string;
}

export const TRAIN_DEFAULTS: TrainConfig = {
  data_folder: '',
  extra_folder: [],
  model_path: 'runs',
  tb_path: 'runs/tensorboard',
  model: 'alexnet',
  batch_size: 128,
  epochs: 240,
  learning_rate: 0.03,
  lr_decay_epochs: [120, 160, 200],
  lr_decay_rate: 0.1,
  cosine: false,
  momentum: 0.9,
  weight_decay: 1e-4,
  nce_k: 16384,
  nce_t: 0.07,
  nce_m: 0.5,
  feat_dim: 128,
  softmax: false,
  negatives: 'memory',
  crop_low: 0.2,
  view: 'Lab',
  views: ['L', 'ab'],
  objective: 'core',
  core_view: '',
  resume: '',
  dataset: 'auto',
  image_size: 224,
  backend: 'auto',
  seed: 0,
  knn_freq: 0,
  knn_k: 200,
  knn_source: 'recompute',
  workers: 2,
  print_freq: 10,
  save_freq: 10,
  name: '',
};

/** Upstream's run name (HobbitLong/CMC `train_CMC.py` opt.model_name): memory_{nce|softmax}_{K}_{model}_lr_{lr}_decay_{rate}_bsz_{B}_view_{view}. */
export function runName(c: TrainConfig): string {
  if (c.name) return c.name;
  // More than upstream's two views: the view list and objective join the name (two-view names unchanged).
  const views = isDefaultViews(c.views)
    ? ''
    : `_views_${c.views.join('-')}_${c.objective}${c.objective === 'core' && c.core_view ? `-${c.core_view}` : ''}`;
  if (c.negatives === 'batch')
    return `batch_softmax_${c.model}_lr_${c.learning_rate}_decay_${c.weight_decay}_bsz_${c.batch_size}_view_${c.view}${views}`;
  return `memory_${c.softmax ? 'softmax' : 'nce'}_${c.nce_k}_${c.model}_lr_${c.learning_rate}_decay_${c.weight_decay}_bsz_${c.batch_size}_view_${c.view}${views}`;
}

/** Fill the view fields of configs saved before they existed (old checkpoints: upstream's L, ab). */
export function withViewDefaults<T extends Partial<TrainConfig>>(
  c: T,
): T & Pick<TrainConfig, 'views' | 'objective' | 'core_view'> {
  return {
    ...c,
    views: c.views ?? [...TRAIN_DEFAULTS.views],
    objective: c.objective ?? TRAIN_DEFAULTS.objective,
    core_view: c.core_view ?? TRAIN_DEFAULTS.core_view,
  };
}

/** Checks that catch mistakes before any data is read. */
export function validateConfig(c: TrainConfig): void {
  const bad: string[] = [];
  if (!c.data_folder) bad.push('--data_folder is required');
  const folders = [c.data_folder, ...(c.extra_folder ?? [])].filter((f) => f).map((f) => path.resolve(f));
  if (c.extra_folder?.some((f) => !f)) bad.push('--extra_folder must name a folder (got an empty name)');
  const twice = folders.filter((f, i) => folders.indexOf(f) !== i);
  if (twice.length)
    bad.push(
      `${[...new Set(twice)].join(', ')} given twice (--data_folder / --extra_folder): its images would count twice`,
    );
  const posInt = ['batch_size', 'epochs', 'feat_dim', 'image_size', 'print_freq', 'save_freq', 'knn_k'] as const;
  for (const k of posInt)
    if (!(Number.isInteger(c[k]) && c[k] > 0)) bad.push(`--${k} must be a positive integer (got ${c[k]})`);
  if (!(Number.isInteger(c.nce_k) && c.nce_k >= 1)) bad.push(`--nce_k must be a positive integer (got ${c.nce_k})`);
  if (!(c.learning_rate > 0)) bad.push('--learning_rate must be > 0');
  if (!(c.nce_t > 0)) bad.push('--nce_t must be > 0');
  if (c.negatives !== 'memory' && c.negatives !== 'batch')
    bad.push(`--negatives must be memory or batch (got ${String(c.negatives)})`);
  if (c.negatives === 'batch' && c.batch_size < 2) bad.push('--negatives batch needs --batch_size >= 2');
  if (!(c.nce_m >= 0 && c.nce_m < 1)) bad.push('--nce_m must be in [0, 1)');
  if (!(c.crop_low > 0 && c.crop_low <= 1)) bad.push('--crop_low must be in (0, 1]');
  if (!(c.momentum >= 0) || !(c.weight_decay >= 0)) bad.push('--momentum and --weight_decay must be >= 0');
  if (!(Number.isInteger(c.workers) && c.workers >= 0)) bad.push('--workers must be an integer >= 0');
  // The run folder is <model_path>/<name>: a name with a path in it would write elsewhere (--name ../x).
  if (c.name && (/[/\\\0]/.test(c.name) || c.name === '.' || c.name === '..'))
    bad.push(`--name must be a plain folder name inside --model_path, without / or \\ (got ${JSON.stringify(c.name)})`);
  if (!(Number.isInteger(c.knn_freq) && c.knn_freq >= 0)) bad.push('--knn_freq must be an integer >= 0');
  if (c.knn_source !== 'recompute' && c.knn_source !== 'memory') bad.push('--knn_source must be recompute or memory');
  try {
    parseViews(c.views);
    if (c.view === 'YCbCr' && !isDefaultViews(c.views))
      bad.push(
        '--view YCbCr only applies to the default views L,ab (name the views instead, e.g. --views Y,CbCr,grad)',
      );
  } catch (e) {
    bad.push(`--views: ${(e as Error).message}`);
  }
  if (!OBJECTIVES.includes(c.objective))
    bad.push(`--objective must be ${OBJECTIVES.join(' or ')} (got ${c.objective})`);
  if (c.core_view && !c.views?.includes(c.core_view))
    bad.push(`--core_view ${c.core_view} is not one of --views ${c.views?.join(',')}`);
  if (bad.length) throw new Error(bad.join('; '));
}
