/**
 * The server on a model written by the real exporter (train/export: random-weight alexnet_small, 32 px,
 * Lab conversion inside the graph, a random 3-class probe head → classifier.onnx).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { resizeCenterCrop } from '../../core/preprocess/resize.ts';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { exportRandomModel, multipart, request, testImage } from './fixture.ts';

const SIZE = 32;
const CLASSES = ['cat', 'dog', 'ship'];
let tmp: string;
let s: RunningServer;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-serve-export-'));
  await exportRandomModel(path.join(tmp, 'models', 'small'), { arch: 'alexnet_small', size: SIZE, classes: CLASSES });
  s = await startServer({ models: path.join(tmp, 'models'), port: 0, provider: 'cpu', quiet: true, max_delay_ms: 2 });
});

after(async () => {
  await s?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('exported model: metadata, embed (matches in-process onnxruntime on the validation transform), classify, batch == single', async () => {
  const meta = await request(`${s.url}/v2/models/small`);
  assert.equal(meta.status, 200, meta.text);
  assert.deepEqual(meta.json.inputs[0], { name: 'images', datatype: 'UINT8', shape: [-1, SIZE, SIZE, 3] });
  const embDim = meta.json.outputs.find((o: { name: string }) => o.name === 'embedding').shape[1];
  assert.equal(embDim, 256);

  const imgs = await Promise.all([
    testImage('jpeg', 80, 60, 1),
    testImage('png', 50, 90, 2),
    testImage('webp', 40, 40, 3),
  ]);
  const single = await Promise.all(
    imgs.map((b) =>
      request(`${s.url}/v1/embed`, { method: 'POST', body: b, headers: { 'content-type': 'image/jpeg' } }),
    ),
  );
  for (const r of single) assert.equal(r.status, 200, r.text);

  const { data, info } = await sharp(imgs[0])
    .rotate()
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const x = resizeCenterCrop({ rgb: new Uint8Array(data), width: info.width, height: info.height }, SIZE);
  const sess = await ort.InferenceSession.create(path.join(tmp, 'models', 'small', 'encoder.onnx'));
  const want = Array.from(
    (await sess.run({ images: new ort.Tensor('uint8', x, [1, SIZE, SIZE, 3]) })).embedding.data as Float32Array,
  );
  await sess.release();
  const got = single[0].json.embeddings[0] as number[];
  assert.equal(got.length, 256);
  assert.ok(
    got.every((v, i) => Math.abs(v - want[i]) < 1e-5),
    'server embedding == onnxruntime on resizeCenterCrop',
  );

  const mp = multipart(imgs.map((data) => ({ data })));
  const batch = await request(`${s.url}/v1/embed`, {
    method: 'POST',
    body: mp.body,
    headers: { 'content-type': mp.type },
  });
  assert.equal(batch.status, 200, batch.text);
  batch.json.embeddings.forEach((e: number[], i: number) => {
    const one = single[i].json.embeddings[0] as number[];
    assert.ok(
      e.every((v, k) => Math.abs(v - one[k]) < 1e-4),
      `batch image ${i} differs from its single run`,
    );
  });

  const cls = await request(`${s.url}/v1/classify?top_k=2`, {
    method: 'POST',
    body: imgs[1],
    headers: { 'content-type': 'image/png' },
  });
  assert.equal(cls.status, 200, cls.text);
  assert.equal(cls.json.predictions[0].length, 2);
  assert.ok(CLASSES.includes(cls.json.predictions[0][0].label));
});
