/**
 * The server's happy paths on 127.0.0.1 (ephemeral port) with the tiny fixture models: every input kind
 * on both routes, batch == per-image, the validation transform, KServe v2, metrics, OpenAPI, auth, CORS,
 * back-pressure (429/503) and graceful shutdown.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { resizeCenterCrop } from '../../core/preprocess/resize.ts';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { multipart, request, testImage, TINY_CLASSES, TINY_EMBED, TINY_SIZE, writeTinyRepository } from './fixture.ts';

let models: string;
let s: RunningServer;
let jpeg: Buffer, png: Buffer, webp: Buffer;

before(async () => {
  models = writeTinyRepository();
  s = await startServer({
    models,
    port: 0,
    host: '127.0.0.1',
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    max_delay_ms: 2,
    threads: 1,
  });
  [jpeg, png, webp] = await Promise.all([
    testImage('jpeg', 60, 45, 1),
    testImage('png', 41, 70, 2),
    testImage('webp', 33, 33, 3),
  ]);
});

after(async () => {
  await s.close();
  fs.rmSync(path.dirname(models), { recursive: true, force: true });
});

const post = (p: string, body: Buffer | string, type: string, headers: Record<string, string> = {}) =>
  request(`${s.url}${p}`, { method: 'POST', body, headers: { 'content-type': type, ...headers } });

const close = (a: number[], b: number[], tol = 1e-5) =>
  a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= tol);

test('health, readiness, server and model metadata', async () => {
  assert.deepEqual((await request(`${s.url}/v2/health/live`)).json, { live: true });
  assert.deepEqual((await request(`${s.url}/v2/health/ready`)).json, { ready: true });
  const v2 = await request(`${s.url}/v2`);
  assert.equal(v2.json.name, 'cmc-serve');
  const meta = await request(`${s.url}/v2/models/tiny`);
  assert.equal(meta.status, 200);
  assert.deepEqual(meta.json.inputs, [{ name: 'images', datatype: 'UINT8', shape: [-1, TINY_SIZE, TINY_SIZE, 3] }]);
  assert.deepEqual(meta.json.outputs.map((o: { name: string }) => o.name).sort(), [
    'embedding',
    'features',
    'logits',
    'probabilities',
  ]);
  assert.deepEqual(
    meta.json.outputs.find((o: { name: string }) => o.name === 'embedding'),
    { name: 'embedding', datatype: 'FP32', shape: [-1, TINY_EMBED] },
  );
  const multi = await request(`${s.url}/v2/models/multi/versions/1`);
  assert.deepEqual(multi.json.versions, ['1', '2']);
  assert.equal((await request(`${s.url}/v2/models/multi/versions/2/ready`)).json.ready, true);
  const list = await request(`${s.url}/v1/models`);
  assert.equal(list.json.default, 'tiny');
  assert.deepEqual(
    list.json.models.map((m: { name: string; version: string }) => `${m.name}:${m.version}`),
    ['multi:1', 'multi:2', 'tiny:1'],
  );
  assert.equal(list.json.provider, 'cpu');
  assert.ok(
    s.repo.failures.some((f) => f.dir.endsWith('broken')),
    'the corrupt model is skipped, not fatal',
  );
});

test('embed: raw JPEG, PNG and WebP bodies, base64 JSON, data URIs and multipart give the same embeddings', async () => {
  const raw = await post('/v1/embed', jpeg, 'image/jpeg');
  assert.equal(raw.status, 200, raw.text);
  assert.equal(raw.json.model, 'tiny');
  assert.equal(raw.json.version, '1');
  assert.equal(raw.json.dim, TINY_EMBED);
  assert.equal(raw.json.embeddings.length, 1);
  const e = raw.json.embeddings[0] as number[];
  assert.ok(Math.abs(Math.hypot(...e) - 1) < 1e-4, 'the tiny encoder L2-normalises');
  for (const [buf, type] of [
    [png, 'image/png'],
    [webp, 'image/webp'],
  ] as const) {
    const r = await post('/v1/embed', buf, type);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.embeddings[0].length, TINY_EMBED);
  }
  const b64 = await post('/v1/embed', JSON.stringify({ images: [jpeg.toString('base64')] }), 'application/json');
  assert.ok(close(b64.json.embeddings[0], e, 0));
  const uri = await post(
    '/v1/embed',
    JSON.stringify({ images: [`data:image/jpeg;base64,${jpeg.toString('base64')}`] }),
    'application/json',
  );
  assert.ok(close(uri.json.embeddings[0], e, 0));
  const url = await post(
    '/v1/embed',
    JSON.stringify({ images: [jpeg.toString('base64url').replace(/=+$/, '')] }),
    'application/json',
  );
  assert.ok(close(url.json.embeddings[0], e, 0), 'URL-safe unpadded base64');
  const mp = multipart([{ data: jpeg, type: 'image/jpeg' }]);
  const m = await post('/v1/embed', mp.body, mp.type);
  assert.equal(m.status, 200, m.text);
  assert.ok(close(m.json.embeddings[0], e, 0));
});

test('embed: the server applies the validation transform (sharp decode + resizeCenterCrop) before the encoder', async () => {
  const { data, info } = await sharp(png)
    .rotate()
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const x = resizeCenterCrop({ rgb: new Uint8Array(data), width: info.width, height: info.height }, TINY_SIZE);
  const sess = await ort.InferenceSession.create(path.join(models, 'tiny', 'encoder.onnx'));
  const out = await sess.run({ images: new ort.Tensor('uint8', x, [1, TINY_SIZE, TINY_SIZE, 3]) });
  await sess.release();
  const want = Array.from(out.embedding.data as Float32Array);
  const r = await post('/v1/embed', png, 'image/png');
  assert.ok(close(r.json.embeddings[0], want, 1e-6), `${r.json.embeddings[0]} vs ${want}`);
});

test('embed and classify: a batch of images equals the images one by one (multipart, JSON, concurrent)', async () => {
  const imgs = await Promise.all(
    [0, 1, 2, 3, 4].map((i) => testImage((['jpeg', 'png', 'webp'] as const)[i % 3], 30 + 7 * i, 50 - 3 * i, 10 + i)),
  );
  const single = await Promise.all(imgs.map((b) => post('/v1/embed', b, 'image/png')));
  const one = single.map((r) => r.json.embeddings[0] as number[]);
  const mp = multipart(imgs.map((data, i) => ({ data, name: `file${i}` })));
  const batch = await post('/v1/embed', mp.body, mp.type);
  assert.equal(batch.status, 200, batch.text);
  assert.equal(batch.json.embeddings.length, 5);
  batch.json.embeddings.forEach((e: number[], i: number) => assert.ok(close(e, one[i]), `image ${i}`));
  const js = await post(
    '/v1/embed',
    JSON.stringify({ images: imgs.map((b) => b.toString('base64')) }),
    'application/json',
  );
  js.json.embeddings.forEach((e: number[], i: number) => assert.ok(close(e, one[i]), `json image ${i}`));
  const cls1 = await Promise.all(imgs.map((b) => post('/v1/classify?top_k=4', b, 'image/jpeg')));
  const clsB = await post(
    '/v1/classify',
    JSON.stringify({ images: imgs.map((b) => b.toString('base64')), top_k: 4 }),
    'application/json',
  );
  assert.equal(clsB.status, 200, clsB.text);
  clsB.json.predictions.forEach((p: { index: number; probability: number }[], i: number) => {
    const q = cls1[i].json.predictions[0] as { index: number; probability: number }[];
    assert.deepEqual(
      p.map((x) => x.index),
      q.map((x) => x.index),
    );
    assert.ok(
      close(
        p.map((x) => x.probability),
        q.map((x) => x.probability),
      ),
    );
  });
});

test('classify: top-k labels sorted by probability, default k=5 clamps to the classes, model/version params', async () => {
  const r = await post('/v1/classify?top_k=2', jpeg, 'image/jpeg');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.model, 'tiny');
  const p = r.json.predictions[0] as { label: string; index: number; probability: number }[];
  assert.equal(p.length, 2);
  assert.ok(p[0].probability >= p[1].probability);
  assert.equal(p[0].label, TINY_CLASSES[p[0].index]);
  const all = await post('/v1/classify', jpeg, 'image/jpeg');
  const q = all.json.predictions[0] as { probability: number }[];
  assert.equal(q.length, TINY_CLASSES.length);
  assert.ok(Math.abs(q.reduce((a, x) => a + x.probability, 0) - 1) < 1e-5);
  const mp = multipart([{ data: png }], { model: 'tiny', version: '1', top_k: '1' });
  const m = await post('/v1/classify', mp.body, mp.type);
  assert.equal(m.status, 200, m.text);
  assert.equal(m.json.predictions[0].length, 1);
  // Versions of one model give different embeddings; no version means the latest.
  const v1 = await post('/v1/embed?model=multi&version=1', jpeg, 'image/jpeg');
  const v2 = await post('/v1/embed?model=multi&version=2', jpeg, 'image/jpeg');
  const latest = await post('/v1/embed?model=multi', jpeg, 'image/jpeg');
  assert.equal(latest.json.version, '2');
  assert.ok(!close(v1.json.embeddings[0], v2.json.embeddings[0]));
  assert.ok(close(latest.json.embeddings[0], v2.json.embeddings[0], 0));
});

test('KServe v2 infer: UINT8 tensor in, FP32 tensors out, equal to /v1/embed on the same pixels', async () => {
  const { data, info } = await sharp(jpeg)
    .rotate()
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const x = resizeCenterCrop({ rgb: new Uint8Array(data), width: info.width, height: info.height }, TINY_SIZE);
  const two = [...x, ...x.map((v) => 255 - v)];
  const body = {
    id: 'req-1',
    inputs: [{ name: 'images', shape: [2, TINY_SIZE, TINY_SIZE, 3], datatype: 'UINT8', data: two }],
  };
  const r = await post('/v2/models/tiny/infer', JSON.stringify(body), 'application/json');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.model_name, 'tiny');
  assert.equal(r.json.model_version, '1');
  assert.equal(r.json.id, 'req-1');
  assert.deepEqual(
    r.json.outputs.map((o: { name: string }) => o.name),
    ['embedding', 'probabilities'],
  );
  const emb = r.json.outputs[0];
  assert.deepEqual(emb.shape, [2, TINY_EMBED]);
  assert.equal(emb.datatype, 'FP32');
  const viaV1 = await post('/v1/embed', jpeg, 'image/jpeg');
  assert.ok(close(emb.data.slice(0, TINY_EMBED), viaV1.json.embeddings[0]));
  // Explicit outputs (features only exists in the encoder graph: both graphs run), nested data, versioned route.
  const nested = {
    inputs: [{ name: 'images', shape: [1, TINY_SIZE, TINY_SIZE, 3], datatype: 'UINT8', data: [[...x]] }],
    outputs: [{ name: 'features' }, { name: 'logits' }],
  };
  const f = await post('/v2/models/tiny/versions/1/infer', JSON.stringify(nested), 'application/json');
  assert.equal(f.status, 200, f.text);
  assert.deepEqual(
    f.json.outputs.map((o: { name: string; shape: number[] }) => [o.name, o.shape]),
    [
      ['features', [1, 48]],
      ['logits', [1, TINY_CLASSES.length]],
    ],
  );
});

test('metrics: Prometheus text that parses, with requests, errors, latency and batch-size histograms, queue depth, provider, per-model inference outcomes, queue/compute time, process metrics', async () => {
  await post('/v1/embed', jpeg, 'image/jpeg');
  await post('/v1/embed', Buffer.from('nope'), 'text/plain');
  const r = await request(`${s.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of r.text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      assert.match(line, /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/);
      if (line.startsWith('# TYPE')) typed.add(line.split(' ')[2]);
      continue;
    }
    const m =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(
        line,
      );
    assert.ok(m, `unparsable sample line: ${line}`);
    // Labels in name order, whatever order the exposition wrote them in.
    const labels = m[2]
      ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
          .map((x) => `${x[1]}="${x[2]}"`)
          .sort((a, b) => (a.startsWith('le=') ? 1 : b.startsWith('le=') ? -1 : a < b ? -1 : 1))
      : [];
    samples.set(m[1] + (labels.length ? `{${labels.join(',')}}` : ''), Number(m[3]));
    const base = m[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(typed.has(m[1]) || typed.has(base), `sample ${m[1]} without # TYPE`);
  }
  const find = (prefix: string) => [...samples.entries()].filter(([k]) => k.startsWith(prefix));
  assert.ok(find('cmc_http_requests_total{code="200",method="POST",route="/v1/embed"}')[0][1] >= 1);
  assert.ok(find('cmc_http_errors_total{code="415",error="unsupported_media_type",route="/v1/embed"}')[0][1] >= 1);
  assert.ok(find('cmc_http_request_duration_seconds_bucket{route="/v1/embed",le="+Inf"}').length === 1);
  assert.ok(find('cmc_batch_size_count{graph="encoder",model="tiny:1"}')[0][1] >= 1);
  assert.ok(find('cmc_queue_depth{graph="encoder",model="tiny:1"}').length === 1);
  assert.equal(find('cmc_execution_provider{provider="cpu",requested="cpu"}')[0][1], 1);
  // Per model and route, by outcome; queue and compute time; process metrics (prom-client defaults).
  assert.ok(find('cmc_inference_requests_total{model="tiny:1",outcome="success",route="/v1/embed"}')[0][1] >= 1);
  assert.ok(find('cmc_inference_requests_total{model="unresolved",outcome="failure",route="/v1/embed"}')[0][1] >= 1);
  assert.ok(find('cmc_inference_request_duration_seconds_count{model="tiny:1",route="/v1/embed"}')[0][1] >= 1);
  assert.ok(find('cmc_queue_duration_seconds_count{graph="encoder",model="tiny:1"}')[0][1] >= 1);
  assert.ok(find('cmc_inference_duration_seconds_count{graph="encoder",model="tiny:1"}')[0][1] >= 1);
  assert.ok(find('process_resident_memory_bytes')[0][1] > 0);
  assert.ok(find('process_cpu_seconds_total').length === 1);
  assert.ok(find('nodejs_eventloop_lag_seconds').length >= 1);
});

test('openapi.json describes every route; / answers with the demo or a not-built page', async () => {
  const r = await request(`${s.url}/openapi.json`);
  assert.equal(r.json.openapi, '3.1.0');
  const paths = Object.keys(r.json.paths);
  for (const p of [
    '/v1/embed',
    '/v1/classify',
    '/v1/embeddings',
    '/v1/models',
    '/v2',
    '/v2/health/live',
    '/v2/health/ready',
    '/v2/models/{name}',
    '/v2/models/{name}/versions/{version}',
    '/v2/models/{name}/ready',
    '/v2/models/{name}/versions/{version}/ready',
    '/v2/models/{name}/infer',
    '/v2/models/{name}/versions/{version}/infer',
    '/metrics',
    '/openapi.json',
    '/',
  ]) {
    assert.ok(paths.includes(p), `openapi lacks ${p}`);
  }
  // Each protocol's error shape is documented on its routes.
  assert.deepEqual(r.json.paths['/v2/models/{name}/infer'].post.responses['400'], {
    $ref: '#/components/responses/OipError',
  });
  assert.deepEqual(r.json.paths['/v1/embeddings'].post.responses['400'], {
    $ref: '#/components/responses/OpenAIError',
  });
  assert.ok(
    r.json.paths['/v2/models/{name}/infer'].post.requestBody.content['application/octet-stream'],
    'binary tensor data documented',
  );
  const home = await request(`${s.url}/`);
  assert.equal(home.status, 200);
  assert.match(home.headers.get('content-type') ?? '', /html/);
});

test('auth token, CORS, back-pressure (429 + Retry-After, 503 on queue timeout) and graceful shutdown', async () => {
  const t = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    auth_token: 's3cret',
    cors_origin: 'https://demo.example',
    max_queue: 1,
    admission_wait_ms: 0,
    refuse_after_ms: 0,
    web_dist: '',
  });
  try {
    const noAuth = await request(`${t.url}/v1/embed`, {
      method: 'POST',
      body: jpeg,
      headers: { 'content-type': 'image/jpeg' },
    });
    assert.equal(noAuth.status, 401);
    assert.equal(noAuth.json.error.code, 'unauthorized');
    assert.equal(noAuth.headers.get('www-authenticate'), 'Bearer');
    const bad = await request(`${t.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(bad.status, 401);
    assert.equal((await request(`${t.url}/v2/health/live`)).status, 200, 'health stays open');
    const ok = await request(`${t.url}/v1/embed`, {
      method: 'POST',
      body: jpeg,
      headers: { 'content-type': 'image/jpeg', authorization: 'Bearer s3cret' },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://demo.example');
    const pre = await request(`${t.url}/v1/embed`, {
      method: 'OPTIONS',
      headers: { origin: 'https://demo.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /Authorization/);
    // A burst into a queue of one (no wait, refused at once): 429 with Retry-After.
    const burst = await Promise.all(
      Array.from({ length: 12 }, () =>
        request(`${t.url}/v1/embed`, {
          method: 'POST',
          body: jpeg,
          headers: { 'content-type': 'image/jpeg', authorization: 'Bearer s3cret' },
        }),
      ),
    );
    const over = burst.find((r) => r.status !== 200);
    assert.ok(over, 'some request of the burst is refused');
    assert.equal(over.status, 429, over.text);
    assert.equal(over.json.error.code, 'overloaded');
    assert.equal(over.headers.get('retry-after'), '1');
  } finally {
    await t.close();
  }
  const slow = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    max_delay_ms: 300,
    timeout_ms: 20,
  });
  // A second request still sending its body is on its way, so the batcher waits for it (max_delay_ms)
  // and the first request's 20 ms in the queue run out.
  const onItsWay = http.request(`${slow.url}/v1/embed`, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg', 'content-length': String(jpeg.length) },
  });
  onItsWay.on('error', () => {});
  try {
    onItsWay.write(jpeg.subarray(0, 10));
    await new Promise((res) => setTimeout(res, 50));
    const r = await request(`${slow.url}/v1/embed`, {
      method: 'POST',
      body: jpeg,
      headers: { 'content-type': 'image/jpeg' },
    });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, 'timeout');
  } finally {
    onItsWay.destroy();
    await slow.close();
  }
  // Graceful shutdown: a request in flight when close() starts still completes; new ones are refused.
  const g = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    max_delay_ms: 150,
  });
  try {
    const inflight = request(`${g.url}/v1/classify`, {
      method: 'POST',
      body: jpeg,
      headers: { 'content-type': 'image/jpeg' },
    });
    await new Promise((res) => setTimeout(res, 40));
    const stop = g.close();
    const late = await fetch(`${g.url}/v2/health/live`).then(
      (x) => x.status,
      () => 'refused',
    );
    assert.ok(late === 'refused' || late === 503, `late request got ${late}`);
    const done = await inflight;
    assert.equal(done.status, 200, done.text);
    await stop;
  } finally {
    await g.close();
  }
});

test('--preprocess_workers: the resize in worker threads gives the same embeddings as in the event loop', async () => {
  const w = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    preprocess_workers: 2,
  });
  try {
    const imgs = [jpeg, png, webp, await testImage('jpeg', 300, 200, 21)];
    const mp = multipart(imgs.map((data) => ({ data })));
    const [a, b] = await Promise.all(
      [w.url, s.url].map((u) =>
        request(`${u}/v1/embed`, { method: 'POST', body: mp.body, headers: { 'content-type': mp.type } }),
      ),
    );
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.json.embeddings, b.json.embeddings);
    const bad = await request(`${w.url}/v1/embed`, {
      method: 'POST',
      body: Buffer.from('xx'),
      headers: { 'content-type': 'image/png' },
    });
    assert.equal(bad.status, 422);
  } finally {
    await w.close();
  }
});

test('a lone request does not wait for --max_delay_ms (nothing else is on its way); its queue time shows in /metrics', async () => {
  const lone = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    max_delay_ms: 5000,
  });
  try {
    const r = await request(`${lone.url}/v1/embed`, {
      method: 'POST',
      body: jpeg,
      headers: { 'content-type': 'image/jpeg' },
    });
    assert.equal(r.status, 200, r.text);
    const m = await (await fetch(`${lone.url}/metrics`)).text();
    const sum = Number(/cmc_queue_duration_seconds_sum\{model="tiny:1",graph="encoder"\} (\S+)/.exec(m)?.[1]);
    assert.ok(sum >= 0 && sum < 2.5, `queued ${sum} s; before serve/flow.ts it waited the whole 5 s delay`);
  } finally {
    await lone.close();
  }
});
