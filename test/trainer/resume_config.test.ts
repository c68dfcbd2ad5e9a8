// Which flags a resumed run takes from the checkpoint and which from the command line
// (train/trainer/resume_config.ts): one row per rule.
import test from 'node:test';
import assert from 'node:assert/strict';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../train/trainer/config.ts';
import {
  FROM_COMMAND_LINE,
  FROM_COMMAND_LINE_IF_GIVEN,
  flagsDifferingFromDefaults,
  resumeConfig,
} from '../../train/trainer/resume_config.ts';

/** The checkpoint's config: a run that differs from the defaults in every flag the rules name. */
const saved: TrainConfig = {
  ...TRAIN_DEFAULTS,
  data_folder: '/data/saved',
  extra_folder: ['/data/photos', '/data/more'],
  model_path: 'saved_runs',
  tb_path: 'saved_runs/tb',
  model: 'alexnet_small',
  batch_size: 16,
  epochs: 4,
  learning_rate: 0.1,
  lr_decay_epochs: [2],
  lr_decay_rate: 0.5,
  nce_k: 64,
  image_size: 32,
  backend: 'wasm',
  seed: 7,
  knn_freq: 2,
  knn_k: 20,
  knn_source: 'memory',
  workers: 0,
  print_freq: 3,
  save_freq: 2,
  name: 'saved',
  resume: '',
  views: ['L', 'ab', 'DbDr'],
  objective: 'full',
  negatives: 'batch',
};

/** The command line of `cmc train --resume ...`: other values for the same flags. */
const cmdLine: TrainConfig = {
  ...TRAIN_DEFAULTS,
  data_folder: '/data/new',
  extra_folder: ['/mnt/moved/photos', '/mnt/moved/more'],
  model_path: 'new_runs',
  tb_path: 'new_runs/tb',
  model: 'resnet18v1',
  batch_size: 64,
  epochs: 10,
  learning_rate: 0.01,
  lr_decay_epochs: [5, 8],
  lr_decay_rate: 0.2,
  cosine: true,
  nce_k: 128,
  image_size: 64,
  backend: 'cpu',
  seed: 3,
  knn_freq: 5,
  knn_k: 50,
  knn_source: 'recompute',
  workers: 4,
  print_freq: 1,
  save_freq: 5,
  name: 'fork',
  resume: 'saved_runs/saved/current.ckpt',
  views: ['L', 'ab'],
  objective: 'core',
  negatives: 'memory',
};

type Row = [rule: string, key: keyof TrainConfig, given: (keyof TrainConfig)[] | 'all', from: 'cmd' | 'saved'];
const rows: Row[] = [
  ...FROM_COMMAND_LINE.filter((k) => k !== 'data_folder').map((k): Row => [
    `${k}: how to run, always the command line's`,
    k,
    [],
    'cmd',
  ]),
  ["data_folder: the command line's when given", 'data_folder', [], 'cmd'],
  [
    "extra_folder: the command line's when given (the same folders by name, moved)",
    'extra_folder',
    ['extra_folder'],
    'cmd',
  ],
  ["extra_folder: the checkpoint's when not given", 'extra_folder', [], 'saved'],
  ...FROM_COMMAND_LINE_IF_GIVEN.map((k): Row => [`${k}: the command line's when given explicitly`, k, [k], 'cmd']),
  ...FROM_COMMAND_LINE_IF_GIVEN.map((k): Row => [`${k}: the checkpoint's when not given`, k, [], 'saved']),
  ...(['model', 'batch_size', 'nce_k', 'image_size', 'seed', 'views', 'objective', 'negatives'] as const).map(
    (k): Row => [`${k}: a hyper-parameter of the run, the checkpoint's even when given`, k, 'all', 'saved'],
  ),
];

for (const [rule, key, given, from] of rows) {
  test(`resume: ${rule}`, () => {
    const all = Object.keys(cmdLine) as (keyof TrainConfig)[];
    const cfg = resumeConfig(saved, cmdLine, given === 'all' ? all : given);
    assert.deepEqual(cfg[key], from === 'cmd' ? cmdLine[key] : saved[key]);
  });
}

test("resume: a bare --resume (no --data_folder) keeps the checkpoint's data folder", () => {
  assert.equal(resumeConfig(saved, { ...cmdLine, data_folder: '' }, []).data_folder, '/data/saved');
});

test("resume: --extra_folder other than the checkpoint's is refused (its images are memory-bank rows)", () => {
  const refuse = (extra: string[], from: Partial<TrainConfig> = saved) =>
    assert.throws(
      () => resumeConfig(from, { ...cmdLine, extra_folder: extra }, ['extra_folder']),
      /does not match the checkpoint's extra folders/,
    );
  refuse(['/data/photos']); // one fewer
  refuse(['/data/more', '/data/photos']); // another order: other rows
  refuse(['/data/photos', '/data/other']); // another folder
  refuse(['/data/photos'], { ...saved, extra_folder: [] }); // the run had none
});

test('resume: fields added after the checkpoint was written reproduce its run', () => {
  const old: Partial<TrainConfig> = { ...saved };
  for (const k of ['knn_source', 'negatives', 'views', 'objective', 'core_view', 'extra_folder', 'cosine'] as const)
    delete old[k];
  const cfg = resumeConfig(old, cmdLine, []);
  assert.deepEqual(cfg.extra_folder, []);
  assert.equal(cfg.knn_source, 'recompute');
  assert.equal(cfg.negatives, 'memory');
  assert.deepEqual(cfg.views, ['L', 'ab']);
  assert.equal(cfg.objective, 'core');
  assert.equal(cfg.core_view, '');
  assert.equal(cfg.cosine, false);
});

test('resume: without an explicit list, the flags that differ from the defaults count as given', () => {
  const line = { ...TRAIN_DEFAULTS, resume: 'x.ckpt', epochs: 9, learning_rate: TRAIN_DEFAULTS.learning_rate };
  assert.deepEqual(flagsDifferingFromDefaults(line), ['epochs', 'resume']);
  const cfg = resumeConfig(saved, line);
  assert.equal(cfg.epochs, 9, 'given (differs from the default)');
  assert.equal(cfg.learning_rate, saved.learning_rate, 'at its default: the checkpoint keeps its own');
});
