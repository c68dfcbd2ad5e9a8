/**
 * Evaluation never scores training images as test images: a dataset without a labelled test split (an
 * ImageFolder with only train/, plain <class>/ folders, a raw dataset without 'test') is refused by kNN and the
 * probe with a message that says how to split; an explicit --test_split holds a stratified fraction of the
 * training images out (never neighbours, never trained on) and says so in the result and the JSON.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Command } from 'commander';
import { writeSyntheticDataset } from '../../train/data/synthetic.ts';
import { RawU8Source } from '../../train/data/sources.ts';
import { knnEvaluate } from '../../train/eval/knn_eval.ts';
import { probe } from '../../train/eval/linear_probe.ts';
import { addEvalCommands } from '../../bin/commands/eval.ts';
import { writeTinySpec } from '../helpers/tiny_spec.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-test-split-'));
const spec = path.join(tmp, 'tiny.json');
const onlyTrain = path.join(tmp, 'only_train');
const plain = path.join(tmp, 'plain');
const withVal = path.join(tmp, 'with_val');
const rawNoTest = path.join(tmp, 'raw_no_test');
const quiet = () => {};
const enc = { checkpoint: null, arch: spec, imageSize: 16, seed: 1, backend: 'cpu' as const, workers: 0, log: quiet };

/** `dir/<class>/<i>.png` from the generated raw split (4 classes). */
async function writeImageFolder(dir: string, raw: string, split: 'train' | 'test'): Promise<void> {
  const src = new RawU8Source(raw, split);
  for (let i = 0; i < src.length; i++) {
    const s = await src.get(i);
    const cls = path.join(dir, src.classNames[s.label]);
    fs.mkdirSync(cls, { recursive: true });
    await sharp(Buffer.from(s.rgb), { raw: { width: s.width, height: s.height, channels: 3 } })
      .png()
      .toFile(path.join(cls, `${i}.png`));
  }
  src.close();
}

before(async () => {
  writeTinySpec(spec);
  const raw = writeSyntheticDataset(path.join(tmp, 'raw'), { size: 16, train: 32, test: 8, seed: 4 });
  await writeImageFolder(path.join(onlyTrain, 'train'), raw, 'train');
  await writeImageFolder(plain, raw, 'train');
  await writeImageFolder(path.join(withVal, 'train'), raw, 'train');
  await writeImageFolder(path.join(withVal, 'val'), raw, 'test');
  fs.mkdirSync(rawNoTest);
  for (const f of ['train_x.u8', 'train_y.u8']) fs.copyFileSync(path.join(raw, f), path.join(rawNoTest, f));
  const meta = JSON.parse(fs.readFileSync(path.join(raw, 'meta.json'), 'utf8'));
  delete meta.splits.test;
  fs.writeFileSync(path.join(rawNoTest, 'meta.json'), JSON.stringify(meta));
});

test('kNN and the probe refuse a dataset without a labelled test split, saying how to split it', async () => {
  const how =
    /has no labelled test split.*evaluating on the training folder would score the training images themselves\. Give it a test split \(for an ImageFolder, a val\/<class>\/ folder of other images\), or pass --test_split 0\.2/;
  for (const dataFolder of [onlyTrain, plain, rawNoTest]) {
    await assert.rejects(knnEvaluate({ ...enc, dataFolder, k: 5 }), how, dataFolder);
  }
  await assert.rejects(probe({ ...enc, dataFolder: onlyTrain, layer: 1, epochs: 1, mode: 'cached' }), how);
});

test('--test_split holds out a stratified fraction of the training images as the test split and says so', async () => {
  const lines: string[] = [];
  const r = await knnEvaluate({ ...enc, dataFolder: onlyTrain, k: 5, testSplit: 0.25, log: (l) => lines.push(l) });
  assert.deepEqual(r.testSplit, { source: 'held_out', fraction: 0.25, seed: 1, n: 8 });
  assert.equal(r.n, 8, 'two of the eight images of each class are scored');
  assert.equal(r.nTrain, 24, 'and are not among the neighbours');
  assert.ok(
    lines.some((l) =>
      l.includes('test split: 8 training images held out as the test split (--test_split 0.25, seed 1)'),
    ),
  );
  const p = await probe({
    ...enc,
    dataFolder: plain,
    layer: 1,
    epochs: 1,
    mode: 'cached',
    testSplit: 0.25,
    valSplit: 0.2,
  });
  assert.equal(p.testSplit.source, 'held_out');
  assert.equal(p.nTest, 8);
  assert.equal(p.nTrain + p.nHeldOut, 24, 'the probe neither trains nor chooses its epoch on the held-out test images');
  // A dataset with its own test split evaluates on it, and refuses --test_split (two test splits would be ambiguous).
  const own = await knnEvaluate({ ...enc, dataFolder: withVal, k: 5 });
  assert.deepEqual(own.testSplit, { source: 'dataset' });
  assert.equal(own.n, 8);
  await assert.rejects(
    knnEvaluate({ ...enc, dataFolder: withVal, k: 5, testSplit: 0.2 }),
    /--test_split is for datasets without a test split/,
  );
});

test('cmc knn --test_split --json reports where the test images came from', async () => {
  const program = new Command().exitOverride();
  addEvalCommands(program);
  const out: string[] = [];
  const log = console.log,
    err = console.error;
  console.log = (s: string) => out.push(s);
  console.error = () => {};
  try {
    await program.parseAsync(
      [
        'knn',
        '--random',
        '--model',
        spec,
        '--image_size',
        '16',
        '--data_folder',
        onlyTrain,
        '--test_split',
        '0.25',
        '--k',
        '5',
        '--backend',
        'cpu',
        '--workers',
        '0',
        '--json',
      ],
      { from: 'user' },
    );
  } finally {
    console.log = log;
    console.error = err;
  }
  const j = JSON.parse(out[0]) as { test_split: unknown; n: number };
  assert.deepEqual(j.test_split, { source: 'held_out', fraction: 0.25, seed: 0, n: 8 });
  assert.equal(j.n, 8);
});
