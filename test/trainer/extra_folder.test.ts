/**
 * `cmc train --extra_folder` end to end on generated folders: one memory bank over the labelled folder and
 * the extra ones (N = the total, counts per folder in the header line), the kNN monitor on the labelled
 * folder alone, the folders recorded in the checkpoint, and a resume that keeps them or refuses others.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../train/engine/backend.ts';
import { writeSyntheticDataset } from '../../train/data/synthetic.ts';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../train/trainer/config.ts';
import { train } from '../../train/trainer/train.ts';
import { readCheckpoint } from '../../core/formats/checkpoint.ts';
import { writeTinySpec } from '../helpers/tiny_spec.ts';
import { Command } from 'commander';
import { addTrainCommand } from '../../bin/commands/train.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-extra-folder-'));
const labelled = path.join(tmp, 'labelled');
const extra = path.join(tmp, 'extra');
const tinySpecFile = path.join(tmp, 'tiny.json');

before(async () => {
  writeSyntheticDataset(labelled, { size: 16, train: 24, test: 8, seed: 3 });
  writeSyntheticDataset(extra, { size: 16, train: 13, test: 0, seed: 4 });
  writeTinySpec(tinySpecFile);
  await initBackend('cpu', { quiet: true });
});

function config(over: Partial<TrainConfig>): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data_folder: labelled,
    extra_folder: [extra],
    model: tinySpecFile,
    image_size: 16,
    feat_dim: 16,
    batch_size: 8,
    epochs: 1,
    nce_k: 10,
    lr_decay_epochs: [],
    workers: 0,
    backend: 'cpu',
    model_path: path.join(tmp, 'runs'),
    tb_path: path.join(tmp, 'tb'),
    ...over,
  };
}

test('one epoch over two folders: one memory bank over both, kNN on the labelled folder, the folders recorded', async () => {
  const lines: string[] = [];
  const r = await train(config({ name: 'two', knn_freq: 1, knn_k: 5, knn_source: 'memory' }), {
    log: (l) => lines.push(l),
  });
  assert.ok(
    lines.some((l) => l.includes('37 images (24 images of labelled + 13 images of extra)')),
    `header line names both folders: ${lines.join('\n')}`,
  );
  const ckpt = readCheckpoint<{ nData: number; config: TrainConfig }>(r.checkpoint);
  assert.equal(ckpt.header.nData, 37, 'one memory-bank row per image of both folders');
  assert.deepEqual(ckpt.tensors['memory/0'].shape, [37, 16]);
  assert.deepEqual(ckpt.header.config.extra_folder, [extra]);
  const knn = r.metrics[0].knn_top1;
  assert.ok(
    knn !== undefined && knn >= 0 && knn <= 1,
    'the kNN monitor ran on the memory bank rows of the labelled folder',
  );
});

test('resume: a bare --resume keeps the extra folders; other ones are refused before training', async () => {
  const first = await train(config({ name: 'resumed', epochs: 2 }), { log: () => {}, stopAfterEpoch: 1 });
  const done = await train({ ...TRAIN_DEFAULTS, resume: first.checkpoint }, { log: () => {}, explicit: ['resume'] });
  const h = readCheckpoint<{ epoch: number; config: TrainConfig }>(done.checkpoint).header;
  assert.equal(h.epoch, 2);
  assert.deepEqual(h.config.extra_folder, [extra]);

  const other = path.join(tmp, 'other');
  writeSyntheticDataset(other, { size: 16, train: 13, test: 0, seed: 5 });
  await assert.rejects(
    train(config({ resume: first.checkpoint, extra_folder: [other] }), { log: () => {}, explicit: ['extra_folder'] }),
    /does not match the checkpoint's extra folders/,
  );
  await assert.rejects(
    train(config({ resume: first.checkpoint, extra_folder: [] }), { log: () => {}, explicit: ['extra_folder'] }),
    /does not match the checkpoint's extra folders/,
  );
  // The same folder name with other contents (fewer images): the memory bank's rows say no.
  const moved = path.join(tmp, 'moved', 'extra');
  writeSyntheticDataset(moved, { size: 16, train: 12, test: 0, seed: 4 });
  await assert.rejects(
    train(config({ resume: first.checkpoint, extra_folder: [moved] }), { log: () => {}, explicit: ['extra_folder'] }),
    /memory bank has 37 rows but 24 images of labelled \+ 12 images of extra hold 36 images/,
  );
});

test('an extra folder of another image size is refused, naming both folders', async () => {
  const big = path.join(tmp, 'big');
  writeSyntheticDataset(big, { size: 32, train: 4, test: 0 });
  await assert.rejects(train(config({ name: 'sizes', extra_folder: [big] }), { log: () => {} }), (e: Error) =>
    e.message.includes(`${big} holds 32x32 images but ${labelled} holds 16x16`),
  );
});

test('cmc train --extra_folder is repeatable and takes comma lists; absent, the list is empty', async () => {
  const parse = async (...args: string[]) => {
    const program = new Command().exitOverride();
    addTrainCommand(program);
    const cmd = program.commands.find((c) => c.name() === 'train')!;
    let got: unknown;
    cmd.action((o: Record<string, unknown>) => {
      got = o.extra_folder;
    });
    await program.parseAsync(['node', 'cmc', 'train', '--data_folder', 'd', ...args]);
    return got;
  };
  assert.deepEqual(await parse('--extra_folder', 'a', '--extra_folder', 'b,c'), ['a', 'b', 'c']);
  assert.deepEqual(await parse(), []);
  assert.deepEqual(TRAIN_DEFAULTS.extra_folder, [], 'parsing leaves the default list alone');
});
