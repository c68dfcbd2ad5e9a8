/**
 * The model that ships in git (models/imagenette64): it fits the 25 MB budget, its manifest's checksums hold
 * (the server verifies them on load), a fresh server classifies with it, and — when ../shared/data (or
 * CMC_DATA_DIR) is there — its classifier reproduces, on the 2,000 imagenette64-sub test images, the probe
 * accuracy its manifest records.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { resizeCenterCrop } from '../../core/preprocess/resize.ts';
import { openSource } from '../../train/data/sources.ts';
import { request, testImage } from './fixture.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(ROOT, 'models', 'imagenette64');
const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'manifest.json'), 'utf8'));
let s: RunningServer;

before(async () => {
  s = await startServer({ models: path.join(ROOT, 'models'), port: 0, provider: 'cpu', quiet: true, web_dist: '' });
});
after(async () => {
  await s?.close();
});

test('models/ holds at most 25 MB, and the default model has its card', () => {
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else bytes += fs.statSync(path.join(d, e.name)).size;
    }
  };
  walk(path.join(ROOT, 'models'));
  assert.ok(bytes <= 25 * 1024 * 1024, `models/ is ${(bytes / 2 ** 20).toFixed(1)} MiB`);
  const card = fs.readFileSync(path.join(DIR, 'MODEL_CARD.md'), 'utf8');
  assert.match(card, /npx cmc train /);
  assert.match(card, /npx cmc export /);
});

test('a fresh server serves imagenette64 by default: 10 classes, probabilities summing to 1, two unit-norm 128-d halves', async () => {
  const models = await request(`${s.url}/v1/models`);
  assert.equal(models.status, 200, models.text);
  const img = await testImage('jpeg', 120, 90, 4);
  const cls = await request(`${s.url}/v1/classify?top_k=10`, {
    method: 'POST',
    body: img,
    headers: { 'content-type': 'image/jpeg' },
  });
  assert.equal(cls.status, 200, cls.text);
  assert.equal(cls.json.model, 'imagenette64');
  const preds = cls.json.predictions[0] as { label: string; probability: number }[];
  assert.deepEqual(preds.map((p) => p.label).sort(), [...manifest.classNames].sort());
  assert.ok(Math.abs(preds.reduce((a, p) => a + p.probability, 0) - 1) < 1e-4);
  const emb = await request(`${s.url}/v1/embed`, {
    method: 'POST',
    body: img,
    headers: { 'content-type': 'image/jpeg' },
  });
  const e = emb.json.embeddings[0] as number[];
  assert.equal(e.length, 256);
  for (const half of [e.slice(0, 128), e.slice(128)]) assert.ok(Math.abs(Math.hypot(...half) - 1) < 1e-4);
});

test('real data: the shipped classifier reproduces the recorded probe accuracy on imagenette64-sub test', async (t) => {
  const root = process.env.CMC_DATA_DIR ?? path.resolve(ROOT, '../shared/data');
  const dir = path.join(root, 'imagenette64-sub');
  if (!fs.existsSync(path.join(dir, 'meta.json'))) {
    t.skip(`real data not found at ${dir} (optional; the other default-model checks ran)`);
    return;
  }
  // The head holds the last epoch of the probe refitted on all training images (weight decay chosen on
  // held-out ones, train/results/eval_protocol.sh); last.top1 is its test accuracy.
  assert.equal(manifest.metrics?.probe?.selectedOn, 'last');
  const recorded = manifest.metrics.probe.last.top1 as number;
  assert.ok(recorded > 0, 'manifest.metrics.probe.last.top1 is recorded');
  const src = await openSource('auto', dir, 'test');
  const sess = await ort.InferenceSession.create(path.join(DIR, 'classifier.onnx'));
  const size = manifest.input.size as number;
  let hits = 0;
  for (let i = 0; i < src.length; i += 100) {
    const n = Math.min(100, src.length - i);
    const x = new Uint8Array(n * size * size * 3);
    const labels: number[] = [];
    for (let k = 0; k < n; k++) {
      const smp = await src.get(i + k);
      x.set(resizeCenterCrop(smp, size), k * size * size * 3);
      labels.push(smp.label);
    }
    const p = (await sess.run({ images: new ort.Tensor('uint8', x, [n, size, size, 3]) })).probabilities
      .data as Float32Array;
    const C = p.length / n;
    for (let k = 0; k < n; k++) {
      let best = 0;
      for (let c = 1; c < C; c++) if (p[k * C + c] > p[k * C + best]) best = c;
      if (best === labels[k]) hits++;
    }
  }
  await sess.release();
  src.close();
  const acc = hits / src.length;
  // Same pixels, same head; only float32 summation order differs from the tfjs probe.
  assert.ok(Math.abs(acc - recorded) <= 0.003, `classifier top-1 ${acc} vs recorded probe top-1 ${recorded}`);
});
