/**
 * The training loop end to end on generated images: exact resume (two epochs in one run equal one epoch,
 * an interruption, and a resume), atomic checkpoints, NaN handling, clear errors for bad data, logs.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeTinySpec } from '../helpers/tiny_spec.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../train/engine/backend.ts';
import { unavailableReason } from '../helpers/backends.ts';
import { writeSyntheticDataset } from '../../train/data/synthetic.ts';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../train/trainer/config.ts';
import { train } from '../../train/trainer/train.ts';
import { NonFiniteLossError } from '../../train/trainer/epoch_loop.ts';
import { runFolder } from '../../train/trainer/run_folder.ts';
import { cosineLr } from '../../train/optim/schedule.ts';
import { readCheckpoint, writeCheckpoint } from '../../core/formats/checkpoint.ts';
import { readEvents } from '../../train/log/tensorboard.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-train-test-'));
const data = path.join(tmp, 'data');
const quiet = () => {};

// A tiny two-view network in the spec language (conv, BN, ReLU, maxpool, linear, l2norm): the cpu
// reference backend's convolution gradients are too slow for a full alexnet_small here.
const tinySpecFile = path.join(tmp, 'tiny.json');

before(async () => {
  writeSyntheticDataset(data, { size: 32, train: 48, test: 16, seed: 3 });
  writeTinySpec(tinySpecFile);
});

function config(over: Partial<TrainConfig>): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data_folder: data,
    model: 'alexnet_small',
    image_size: 32,
    batch_size: 16,
    epochs: 2,
    nce_k: 20,
    lr_decay_epochs: [1],
    workers: 0,
    backend: 'wasm',
    tb_path: path.join(tmp, 'tb'),
    ...over,
  };
}

for (const backend of ['cpu', 'wasm', 'native'] as const) {
  test(`resume on ${backend}: 2 epochs in one run == 1 epoch, stop, resume, 1 epoch (losses within 1e-6)`, async (t) => {
    const unavailable = backend === 'native' ? await unavailableReason(backend) : null;
    if (unavailable) return t.skip(unavailable);
    await initBackend(backend, { quiet: true });
    // cpu is slow on convolution gradients: it trains the tiny spec; wasm trains alexnet_small.
    const base: Partial<TrainConfig> =
      backend === 'cpu' ? { backend, model: tinySpecFile, image_size: 16, feat_dim: 16 } : { backend };
    const straight: number[] = [];
    const a = await train(config({ ...base, model_path: path.join(tmp, `a-${backend}`), name: 'run' }), {
      log: quiet,
      onStep: (_e, _s, l) => straight.push(l),
    });
    const resumed: number[] = [];
    const b1 = await train(config({ ...base, model_path: path.join(tmp, `b-${backend}`), name: 'run' }), {
      log: quiet,
      stopAfterEpoch: 1,
      onStep: (_e, _s, l) => resumed.push(l),
    });
    assert.equal(readCheckpoint<{ epoch: number }>(b1.checkpoint).header.epoch, 1);
    await train(config({ ...base, model_path: path.join(tmp, `b-${backend}`), resume: b1.checkpoint }), {
      log: quiet,
      onStep: (_e, _s, l) => resumed.push(l),
    });
    assert.equal(resumed.length, straight.length);
    for (let i = 0; i < straight.length; i++) {
      assert.ok(
        Math.abs(resumed[i] - straight[i]) <= 1e-6 * Math.max(1, Math.abs(straight[i])),
        `step ${i}: ${resumed[i]} vs ${straight[i]}`,
      );
    }
    assert.equal(a.metrics.length, 2);
    // The loss moves (the run is not a no-op) and the metrics log has one JSON line per epoch.
    assert.notEqual(straight[0], straight[straight.length - 1]);
    const lines = fs
      .readFileSync(path.join(a.runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((m) => m.epoch),
      [1, 2],
    );
    assert.equal(lines[1].lr, 0.03 * 0.1, 'step schedule: epoch 2 is after the decay at epoch 1');
  });
}

test('a bare --resume finishes the run as planned: epochs and save_freq come from the checkpoint, not the defaults', async () => {
  await initBackend('cpu', { quiet: true });
  const base: Partial<TrainConfig> = {
    backend: 'cpu',
    model: tinySpecFile,
    image_size: 16,
    feat_dim: 16,
    model_path: path.join(tmp, 'bare'),
    name: 'run',
  };
  const first = await train(config({ ...base, epochs: 3, save_freq: 1 }), { log: quiet, stopAfterEpoch: 1 });
  // As `cmc train --resume <ckpt>` builds it: every other flag at its default, only --resume set.
  const r = await train({ ...TRAIN_DEFAULTS, resume: first.checkpoint }, { log: quiet, explicit: ['resume'] });
  assert.equal(readCheckpoint<{ epoch: number }>(r.checkpoint).header.epoch, 3);
  assert.deepEqual(
    r.metrics.map((m) => m.epoch),
    [1, 2, 3],
  );
  assert.ok(
    fs.existsSync(path.join(r.runDir, 'ckpt_epoch_2.ckpt')),
    'the run keeps its --save_freq 1 (the default is 10)',
  );
});

test('--resume with a new --name forks the run: its own folder, the history up to the checkpoint, the source untouched', async () => {
  await initBackend('cpu', { quiet: true });
  const base: Partial<TrainConfig> = {
    backend: 'cpu',
    model: tinySpecFile,
    image_size: 16,
    feat_dim: 16,
    save_freq: 1,
    model_path: path.join(tmp, 'fork'),
  };
  const src = await train(config({ ...base, name: 'src' }), { log: quiet });
  const srcMetrics = fs.readFileSync(path.join(src.runDir, 'metrics.jsonl'), 'utf8');
  const srcCkpt = fs.readFileSync(src.checkpoint);
  // A second source whose log ends in a line torn by an interrupted write: the fork still starts.
  const torn = path.join(tmp, 'fork', 'torn');
  fs.cpSync(src.runDir, torn, { recursive: true });
  fs.appendFileSync(path.join(torn, 'metrics.jsonl'), '{"epoch":3,"st');
  const fromTorn = await train(
    config({ ...base, name: 'from_torn', epochs: 2, resume: path.join(torn, 'ckpt_epoch_1.ckpt') }),
    { log: quiet },
  );
  assert.deepEqual(
    fs
      .readFileSync(path.join(fromTorn.runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).epoch),
    [1, 2],
  );
  // Branch off epoch 1 with the decay moved from epoch 1 to epoch 2 and one more epoch.
  const fork = await train(
    config({
      ...base,
      name: 'longer',
      epochs: 3,
      lr_decay_epochs: [2],
      resume: path.join(src.runDir, 'ckpt_epoch_1.ckpt'),
    }),
    { log: quiet },
  );
  assert.equal(fork.runDir, path.join(tmp, 'fork', 'longer'));
  const lines = fs.readFileSync(path.join(fork.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
  const parsed = lines.map((l) => JSON.parse(l) as { epoch: number; lr: number });
  assert.deepEqual(
    parsed.map((m) => m.epoch),
    [1, 2, 3],
  );
  assert.equal(lines[0], srcMetrics.split('\n')[0], 'epoch 1 is inherited from the source run as it was written');
  assert.deepEqual(
    parsed.map((m) => m.lr),
    [0.03, 0.03, 0.03 * 0.1],
    'the new schedule applies after the fork',
  );
  assert.equal(readCheckpoint<{ epoch: number }>(fork.checkpoint).header.epoch, 3);
  assert.equal(
    fs.readFileSync(path.join(src.runDir, 'metrics.jsonl'), 'utf8'),
    srcMetrics,
    'the source run is untouched',
  );
  assert.ok(fs.readFileSync(src.checkpoint).equals(srcCkpt));
  // A cosine branch off the same epoch: its epochs 2 and 3 follow the cosine schedule over 3 epochs.
  const cos = await train(
    config({ ...base, name: 'cosine', epochs: 3, cosine: true, resume: path.join(src.runDir, 'ckpt_epoch_1.ckpt') }),
    { log: quiet },
  );
  assert.deepEqual(
    fs
      .readFileSync(path.join(cos.runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).lr),
    [0.03, cosineLr(0.03, 2, 3, 0.1), cosineLr(0.03, 3, 3, 0.1)],
  );
});

test('a resume in place after a kill keeps each epoch once in metrics.jsonl and removes stale temporary files', async () => {
  await initBackend('cpu', { quiet: true });
  const base: Partial<TrainConfig> = {
    backend: 'cpu',
    model: tinySpecFile,
    image_size: 16,
    feat_dim: 16,
    epochs: 3,
    model_path: path.join(tmp, 'dedupe'),
    name: 'run',
  };
  const first = await train(config(base), { log: quiet, stopAfterEpoch: 1 });
  const metricsFile = path.join(first.runDir, 'metrics.jsonl');
  const line1 = fs.readFileSync(metricsFile, 'utf8');
  // Killed after epoch 2's line was appended but before its checkpoint was written (twice, the second time
  // mid-line), and after a checkpoint write had started: a temporary file of a process that is gone.
  fs.appendFileSync(metricsFile, line1.replace('"epoch":1', '"epoch":2') + line1 + '{"epoch":2,"st');
  const pidMax = fs.existsSync('/proc/sys/kernel/pid_max')
    ? Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'))
    : 4194304;
  const stale = path.join(first.runDir, `current.ckpt.tmp-${pidMax + 1}`);
  fs.writeFileSync(stale, 'CMCCKPT2 half-written');
  const logged: string[] = [];
  await train(config({ ...base, resume: first.checkpoint }), { log: (l) => logged.push(l) });
  const epochs = fs
    .readFileSync(metricsFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).epoch);
  assert.deepEqual(epochs, [1, 2, 3]);
  assert.ok(!fs.existsSync(stale));
  assert.ok(
    logged.some((l) => l.includes(`removed ${stale}`)),
    'the cleanup is reported',
  );
});

test('checkpoints hold weights, optimiser state, memories, Z, rng and config; TensorBoard scalars are readable', async () => {
  const logs: string[] = [];
  const r = await train(config({ epochs: 1, model_path: path.join(tmp, 'c'), name: 'ckrun' }), {
    log: (l) => logs.push(l),
  });
  // Before the first step: architecture, image size, batch, epochs and steps per epoch; then the estimate.
  assert.ok(
    logs.some((l) =>
      /^\[cmc\] alexnet_small .*48 images at 32 px, batch 16 \(3 steps per epoch\), epochs 1-1,/.test(l),
    ),
    logs.join('\n'),
  );
  assert.ok(
    logs.some((l) =>
      /^\[cmc\] estimate from the first 3 steps: \d+ ms per step, ~\S+ per epoch, ~\S+ for 1 epoch$/.test(l),
    ),
    logs.join('\n'),
  );
  const ck = readCheckpoint<Record<string, unknown>>(r.checkpoint);
  const names = Object.keys(ck.tensors);
  assert.ok(names.includes('model/L.conv_block_1.0.weight') && names.includes('model/ab.fc8.0.bias'));
  assert.ok(names.includes('model/L.conv_block_1.1.running_var'), 'BN running statistics');
  assert.ok(
    names.some((n) => n.startsWith('sgd/')),
    'momentum buffers',
  );
  assert.deepEqual(ck.tensors['memory/0'].shape, [48, 128]);
  const h = ck.header as { bank: { z: number[] }; bankRng: number[]; config: TrainConfig; epoch: number; step: number };
  assert.ok(
    h.bank.z.every((z) => z > 0),
    'Z estimated and saved',
  );
  assert.equal(h.bankRng.length, 4);
  assert.equal(h.config.nce_k, 20);
  assert.equal(h.step, 3);
  const tbDir = path.join(tmp, 'tb', 'ckrun');
  const file = fs.readdirSync(tbDir).find((f) => f.startsWith('events.out.tfevents.'))!;
  const events = readEvents(path.join(tbDir, file));
  const losses = events.filter((e) => e.tag === 'train/loss');
  assert.equal(losses.length, 3);
});

test('an interrupted checkpoint write leaves the previous checkpoint intact; a truncated file is rejected clearly', () => {
  const file = path.join(tmp, 'atomic', 'current.ckpt');
  writeCheckpoint(file, { header: { epoch: 1 }, tensors: { w: { shape: [2], data: Float32Array.from([1, 2]) } } });
  // A crash mid-write leaves only a temporary file behind; the target is never partially written.
  fs.writeFileSync(`${file}.tmp-12345`, Buffer.from('CMCCKPT1 half-written'));
  assert.equal(readCheckpoint<{ epoch: number }>(file).header.epoch, 1);
  const buf = fs.readFileSync(file);
  fs.writeFileSync(path.join(tmp, 'atomic', 'trunc.ckpt'), buf.subarray(0, buf.length - 3));
  assert.throws(() => readCheckpoint(path.join(tmp, 'atomic', 'trunc.ckpt')), /truncated or corrupt/);
  fs.writeFileSync(path.join(tmp, 'atomic', 'junk.ckpt'), 'hello');
  assert.throws(() => readCheckpoint(path.join(tmp, 'atomic', 'junk.ckpt')), /not a cmc checkpoint/);
});

test('a non-finite loss stops the run with a message naming the last good checkpoint', async () => {
  const first = await train(config({ epochs: 1, model_path: path.join(tmp, 'nan'), name: 'run' }), { log: quiet });
  const before = fs.readFileSync(first.checkpoint);
  await assert.rejects(
    train(config({ epochs: 2, learning_rate: 1e30, model_path: path.join(tmp, 'nan'), resume: first.checkpoint }), {
      log: quiet,
    }),
    (e: Error) => e instanceof NonFiniteLossError && /last good checkpoint is .*current\.ckpt/.test(e.message),
  );
  assert.deepEqual(fs.readFileSync(first.checkpoint), before, 'the good checkpoint is untouched');
});

test('a missing or empty dataset stops before training with a clear message', async () => {
  await assert.rejects(
    train(config({ data_folder: path.join(tmp, 'nope') }), { log: quiet }),
    /does not exist|not found|no images/i,
  );
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty, { recursive: true });
  await assert.rejects(
    train(config({ data_folder: empty, dataset: 'imagefolder' }), { log: quiet }),
    /no images|empty/i,
  );
  await assert.rejects(
    train(config({ data_folder: data, batch_size: 0 }), { log: quiet }),
    /--batch_size must be a positive integer/,
  );
});

test('--knn_freq records the random-init kNN (epoch 0) and a kNN top-1 per epoch, for both feature sources', async () => {
  for (const knn_source of ['recompute', 'memory'] as const) {
    const r = await train(
      config({
        epochs: 1,
        knn_freq: 1,
        knn_k: 5,
        knn_source,
        model_path: path.join(tmp, `knn-${knn_source}`),
        name: 'run',
      }),
      { log: quiet },
    );
    assert.ok(r.knnAtInit && r.knnAtInit.top1 >= 0 && r.knnAtInit.top1 <= 1);
    const lines = fs
      .readFileSync(path.join(r.runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((m) => m.epoch),
      [0, 1],
    );
    assert.equal(lines[0].knn_source, 'recompute');
    assert.equal(lines[1].knn_source, knn_source);
    assert.ok(lines[1].knn_top1 >= 0 && lines[1].knn_top1 <= 1 && lines[1].knn_top5 >= lines[1].knn_top1);
  }
});

test('run names cannot leave --model_path (--name ../x is refused before anything is written)', async () => {
  const modelPath = path.join(tmp, 'names', 'runs');
  for (const name of ['../x', '..', 'a/../../x', '/etc/x', 'a\\..\\x']) {
    await assert.rejects(
      train(config({ name, model_path: modelPath }), { log: quiet }),
      /--name must be a plain folder name inside --model_path/,
      name,
    );
  }
  assert.ok(!fs.existsSync(path.join(tmp, 'names')), 'nothing written');
  // The folder check itself, for names derived from the hyper-parameters (a --model path in them).
  assert.throws(() => runFolder(modelPath, '../x'), /would not be inside --model_path/);
  assert.throws(() => runFolder(modelPath, '.'), /would not be inside --model_path/);
  assert.equal(
    runFolder(modelPath, 'memory_nce_16_specs/tiny.json_lr_0.03'),
    path.join(modelPath, 'memory_nce_16_specs/tiny.json_lr_0.03'),
  );
  assert.equal(
    runFolder(modelPath, '..run'),
    path.join(modelPath, '..run'),
    'a name that merely starts with two dots stays inside',
  );
});
