/**
 * The product pipeline glued together: train -> probe (head JSON) -> export (encoder, head, classifier)
 * -> onnxruntime, on generated images. The classifier graph must reproduce the probe's own predictions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeSyntheticDataset } from '../../train/data/synthetic.ts';
import { TRAIN_DEFAULTS } from '../../train/trainer/config.ts';
import { train } from '../../train/trainer/train.ts';
import { probe } from '../../train/eval/linear_probe.ts';
import { exportModel } from '../../train/export/export.ts';
import { RawU8Source } from '../../train/data/sources.ts';
import { resizeCenterCrop } from '../../core/preprocess/resize.ts';

test('train -> probe --layer 5 -> export with the head -> classifier.onnx agrees with the probe', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-pipeline-'));
  const data = writeSyntheticDataset(path.join(tmp, 'data'), { size: 32, train: 64, test: 32, seed: 5 });
  const quiet = () => {};
  const tr = await train(
    {
      ...TRAIN_DEFAULTS,
      data_folder: data,
      model: 'alexnet_small',
      image_size: 32,
      batch_size: 32,
      epochs: 1,
      nce_k: 16,
      workers: 0,
      backend: 'wasm',
      model_path: path.join(tmp, 'runs'),
      tb_path: path.join(tmp, 'tb'),
      name: 'p',
    },
    { log: quiet },
  );
  const headFile = path.join(tmp, 'head.json');
  const pr = await probe({
    checkpoint: tr.checkpoint,
    dataFolder: data,
    layer: 5,
    mode: 'cached',
    epochs: 3,
    batchSize: 32,
    backend: 'wasm',
    workers: 0,
    out: headFile,
    log: quiet,
  });
  assert.ok(fs.existsSync(headFile));
  const out = await exportModel({
    checkpoint: tr.checkpoint,
    head: headFile,
    outDir: path.join(tmp, 'models', 'tiny'),
  });
  const session = await ort.InferenceSession.create(path.join(out.outDir, 'classifier.onnx'));
  const test = new RawU8Source(data, 'test');
  const n = test.length;
  const pixels = new Uint8Array(n * 32 * 32 * 3);
  for (let i = 0; i < n; i++) {
    const s = await test.get(i);
    pixels.set(resizeCenterCrop({ rgb: s.rgb, width: s.width, height: s.height }, 32), i * 32 * 32 * 3);
  }
  const res = await session.run({ images: new ort.Tensor('uint8', pixels, [n, 32, 32, 3]) });
  const probs = res.probabilities.data as Float32Array;
  const c = probs.length / n;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = probs.subarray(i * c, (i + 1) * c);
    if (row.indexOf(Math.max(...row)) === test.labels()![i]) correct++;
  }
  // The probe reports the best epoch's test top-1 and saves that epoch's head: ONNX must match it exactly.
  assert.equal(correct / n, pr.best.top1);
  test.close();
});
