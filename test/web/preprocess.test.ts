/**
 * web/preprocess.ts (the browser's transform) against the server's (serve/preprocess.ts), in node:
 * canvas-style RGBA ImageData → the same uint8 model input byte for byte; and the read-only
 * /models/{name}/{file} route the demo downloads its ONNX file from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { topK } from '../../core/util/top_k.ts';
import { cosine, preprocessImageData, rgbaToRgb } from '../../web/preprocess.ts';
import { decodeToInput } from '../../serve/preprocess.ts';
import { startServer } from '../../serve/main.ts';
import { request, testImage, writeTinyRepository } from '../serve/fixture.ts';

test('web preprocessing of RGBA ImageData equals the server transform byte for byte', async () => {
  for (const [w, h, size] of [
    [200, 150, 64],
    [97, 131, 32],
    [64, 64, 64],
    [300, 41, 32],
  ] as const) {
    const png = await testImage('png', w, h, w + h);
    const { data, info } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 4);
    const browser = preprocessImageData(
      { data: new Uint8ClampedArray(data), width: info.width, height: info.height },
      size,
    );
    const server = await decodeToInput(png, size, { maxPixels: 1e8 });
    assert.equal(browser.length, size * size * 3);
    assert.deepEqual(Buffer.from(browser), Buffer.from(server), `${w}x${h} → ${size}`);
  }
});

test('rgbaToRgb drops alpha without blending; cosine; topK order', () => {
  assert.deepEqual(
    [...rgbaToRgb({ data: new Uint8Array([1, 2, 3, 0, 4, 5, 6, 128]), width: 2, height: 1 })],
    [1, 2, 3, 4, 5, 6],
  );
  assert.throws(() => rgbaToRgb({ data: new Uint8Array(7), width: 2, height: 1 }), RangeError);
  assert.equal(cosine([1, 0], [0, 1]), 0);
  assert.ok(Math.abs(cosine([1, 2, 3], [2, 4, 6]) - 1) < 1e-12);
  assert.equal(cosine([0, 0], [1, 1]), 0);
  assert.deepEqual(
    topK([0.1, 0.5, 0.5, 0.2], 3).map((x) => x.index),
    [1, 2, 3],
  );
});

test('GET /models/{name}/{file}: manifest.json and listed .onnx files only, auth like the API', async (t) => {
  const models = writeTinyRepository();
  const s = await startServer({ models, port: 0, provider: 'cpu', quiet: true, web_dist: '' });
  t.after(() => s.close());
  const man = await request(`${s.url}/models/tiny/manifest.json`);
  assert.equal(man.status, 200);
  assert.equal(man.json.name, 'tiny');
  const onnx = await fetch(`${s.url}/models/tiny/classifier.onnx`);
  assert.equal(onnx.status, 200);
  assert.equal(onnx.headers.get('content-type'), 'application/octet-stream');
  assert.deepEqual(
    Buffer.from(await onnx.arrayBuffer()),
    fs.readFileSync(path.join(models, 'tiny', 'classifier.onnx')),
  );
  // Browser caching: the ETag is the file's sha256 from the manifest; revalidation answers 304 without a body.
  assert.equal(onnx.headers.get('etag'), `"${man.json.files['classifier.onnx'].sha256}"`);
  const again = await fetch(`${s.url}/models/tiny/classifier.onnx`, {
    headers: { 'if-none-match': onnx.headers.get('etag')! },
  });
  assert.equal(again.status, 304);
  assert.equal((await again.arrayBuffer()).byteLength, 0);
  // Versions: default the latest, ?version= picks one.
  const v1 = Buffer.from(await (await fetch(`${s.url}/models/multi/encoder.onnx?version=1`)).arrayBuffer());
  const v2 = Buffer.from(await (await fetch(`${s.url}/models/multi/encoder.onnx`)).arrayBuffer());
  assert.deepEqual(v1, fs.readFileSync(path.join(models, 'multi', '1', 'encoder.onnx')));
  assert.deepEqual(v2, fs.readFileSync(path.join(models, 'multi', '2', 'encoder.onnx')));
  assert.equal((await request(`${s.url}/models/multi/encoder.onnx?version=9`)).status, 404);
  // Not listed, not a model file, traversal, unknown or invalid model, a model that failed to load.
  fs.writeFileSync(path.join(models, 'tiny', 'extra.onnx'), 'x');
  for (const p of [
    '/models/tiny/extra.onnx',
    '/models/tiny/classifier.onnx.bak',
    '/models/tiny/..%2Fmulti%2F1%2Fencoder.onnx',
    '/models/tiny/%2e%2e',
    '/models/nope/manifest.json',
    '/models/broken/manifest.json',
    '/models/tiny/.hidden.onnx',
  ]) {
    const r = await request(`${s.url}${p}`);
    assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
    assert.ok(r.json?.error?.code, `${p}: JSON error`);
  }
  assert.equal((await request(`${s.url}/models/..%2F..%2Fetc/passwd`)).status, 400);

  const a = await startServer({ models, port: 0, provider: 'cpu', quiet: true, web_dist: '', auth_token: 'tok' });
  t.after(() => a.close());
  assert.equal((await request(`${a.url}/models/tiny/manifest.json`)).status, 401);
  assert.equal(
    (await request(`${a.url}/models/tiny/manifest.json`, { headers: { authorization: 'Bearer tok' } })).status,
    200,
  );
});
