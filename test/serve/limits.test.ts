/**
 * Bounded resources and slow clients: admission before any decode, the per-request pixel budget, the
 * shared decode and body budgets, JSON shape limits, the connection cap and the header / request timeouts.
 * (How much memory and latency these bounds buy is measured by `cmc bench serve --overload`, not here.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { Budget } from '../../serve/budget.ts';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { multipart, request, testImage, writeTinyRepository } from './fixture.ts';

let models: string;
let s: RunningServer;

before(async () => {
  models = writeTinyRepository();
  s = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    web_dist: '',
  });
});

after(async () => {
  await s.close();
  fs.rmSync(path.dirname(models), { recursive: true, force: true });
});

const preprocessed = async (url: string) => {
  const text = (await request(`${url}/metrics`)).text;
  return Number(/^cmc_preprocess_duration_seconds_count(?:\{\})? (\d+)/m.exec(text)?.[1] ?? 0);
};

test('Budget: FIFO waits, capacity never exceeded, timeouts give up their place', async () => {
  const b = new Budget(10, 'test units');
  assert.ok(b.tryTake(6));
  const order: string[] = [];
  const big = b.take(8, 0).then(() => order.push('big'));
  const small = b.take(2, 0).then(() => order.push('small')); // fits now, but waits behind the big one (FIFO)
  assert.equal(b.tryTake(1), false, 'nobody jumps the queue');
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(order, []);
  b.give(6);
  await Promise.all([big, small]);
  assert.deepEqual(order, ['big', 'small']);
  assert.equal(b.inUse, 10);
  await assert.rejects(b.take(1, 20), (e: Error) => e.name === 'QueueTimeoutError');
  b.give(10);
  assert.equal(b.inUse, 0);
  await assert.rejects(b.take(11, 0), RangeError);
});

test('admission happens before decoding: requests refused for a full queue (429) decode nothing', async () => {
  const t = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    web_dist: '',
    max_queue: 2,
    admission_wait_ms: 0,
    refuse_after_ms: 0,
  });
  try {
    const jpeg = await testImage('jpeg', 300, 200, 4);
    const before = await preprocessed(t.url);
    // A burst of two-image requests into a queue of two: the first holds both places while it decodes.
    const mp = multipart([{ data: jpeg }, { data: jpeg }]);
    const burst = await Promise.all(
      Array.from({ length: 12 }, () =>
        request(`${t.url}/v1/embed`, { method: 'POST', body: mp.body, headers: { 'content-type': mp.type } }),
      ),
    );
    const ok = burst.filter((r) => r.status === 200).length;
    const refused = burst.filter((r) => r.status === 429);
    assert.equal(ok + refused.length, burst.length, burst.map((r) => r.status).join(','));
    assert.ok(refused.length > 0, 'a burst into a full queue is refused');
    for (const r of refused) assert.equal(r.json.error.code, 'overloaded');
    assert.equal(await preprocessed(t.url), before + 2 * ok, 'only the admitted requests decoded their images');
    // A request larger than the whole queue is admitted alone once the queue is empty.
    const three = multipart([{ data: jpeg }, { data: jpeg }, { data: jpeg }]);
    const big = await request(`${t.url}/v1/embed`, {
      method: 'POST',
      body: three.body,
      headers: { 'content-type': three.type },
    });
    assert.equal(big.status, 200, big.text);
    assert.equal(await preprocessed(t.url), before + 2 * ok + 3);
  } finally {
    await t.close();
  }
});

test('--max_request_pixels: a request whose images sum past the budget is refused from the headers (413), before decoding', async () => {
  // The red-team request, scaled down: 6000x6000 PNGs (36 MP each, each within --max_pixels), 4 of them.
  const huge = await sharp({ create: { width: 6000, height: 6000, channels: 3, background: { r: 10, g: 200, b: 30 } } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  const before = await preprocessed(s.url);
  const mp = multipart([huge, huge, huge, huge].map((data) => ({ data })));
  const t0 = performance.now();
  const r = await request(`${s.url}/v1/embed`, { method: 'POST', body: mp.body, headers: { 'content-type': mp.type } });
  assert.equal(r.status, 413, r.text.slice(0, 300));
  assert.equal(r.json.error.code, 'request_too_large');
  assert.match(r.json.error.message, /144000000 pixels, more than the per-request limit of 100000000/);
  assert.equal(await preprocessed(s.url), before);
  // A small budget counts every image: three 80x80 images (19200 px) over 10000.
  const t = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    web_dist: '',
    max_request_pixels: 10_000,
  });
  try {
    const img = await testImage('png', 80, 80, 5);
    const one = await request(`${t.url}/v1/embed`, {
      method: 'POST',
      body: img,
      headers: { 'content-type': 'image/png' },
    });
    assert.equal(one.status, 200, one.text);
    const three = multipart([{ data: img }, { data: img }, { data: img }]);
    const r3 = await request(`${t.url}/v1/classify`, {
      method: 'POST',
      body: three.body,
      headers: { 'content-type': three.type },
    });
    assert.equal(r3.status, 413, r3.text);
    assert.equal(r3.json.error.code, 'request_too_large');
  } finally {
    await t.close();
  }
  assert.ok(performance.now() - t0 < 60_000);
});

test('JSON bodies: --max_json_mb and shape limits (keys, values, arrays) refuse costly bodies before JSON.parse', async () => {
  const t = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    web_dist: '',
    max_json_mb: 0.5,
  });
  try {
    const post = (p: string, body: string) =>
      request(`${t.url}${p}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const big = await post('/v1/embed', JSON.stringify({ images: ['A'.repeat(600_000)] }));
    assert.equal(big.status, 413, big.text);
    const keys = `{${Array.from({ length: 2000 }, (_, i) => `"k${i}":1`).join(',')},"images":[]}`;
    const rk = await post('/v1/embed', keys);
    assert.equal(rk.status, 413, rk.text);
    assert.equal(rk.json.error.code, 'json_too_complex');
    const arrays = `{"images":[${Array.from({ length: 100_001 }, () => '[]').join(',')}]}`;
    const ra = await post('/v2/models/tiny/infer', arrays);
    assert.equal(ra.status, 413, ra.text);
    assert.match(ra.json.error, /more than 100000 arrays and objects/); // the OIP error shape: { error: "<message>" }
    const values = `{"inputs":[{"data":[${new Array(500_100).fill(0).join(',')}]}]}`;
    const rv = await request(`${s.url}/v2/models/tiny/infer`, {
      method: 'POST',
      body: values,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(rv.status, 413, rv.text);
    assert.match(rv.json.error, /values/); // the OIP error shape
    // Strings may hold brackets, colons, commas and escaped quotes without counting.
    const tricky = await post('/v1/embed', JSON.stringify({ images: ['x'], model: `[{:,\\"${'[:,'.repeat(5000)}` }));
    assert.equal(tricky.status, 422, tricky.text);
  } finally {
    await t.close();
  }
});

/** Open a raw connection and send `head` (and an optional body part); resolves with everything it reads until close. */
function rawConnection(url: string, head: string, body?: Buffer): { done: Promise<string>; socket: net.Socket } {
  const u = new URL(url);
  const socket = net.connect(Number(u.port), u.hostname);
  const done = new Promise<string>((resolve) => {
    let got = '';
    socket.on('data', (c) => (got += c.toString()));
    socket.on('close', () => resolve(got));
    socket.on('error', () => {});
  });
  socket.on('connect', () => {
    socket.write(head);
    if (body) socket.write(body);
  });
  return { done, socket };
}

test('--max_inflight_body_mb: bodies held by all requests together are bounded (429 beyond), and given back', async () => {
  const t = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    web_dist: '',
    max_body_mb: 1,
    max_inflight_body_mb: 1,
  });
  try {
    // A slow client holds 700 KB of a 1 MB body.
    const slow = rawConnection(
      t.url,
      'POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n',
      Buffer.alloc(700_000, 1),
    );
    await new Promise((r) => setTimeout(r, 300));
    const second = await request(`${t.url}/v1/embed`, {
      method: 'POST',
      body: Buffer.alloc(500_000, 2),
      headers: { 'content-type': 'image/jpeg' },
    });
    assert.equal(second.status, 429, second.text);
    assert.equal(second.json.error.code, 'overloaded');
    slow.socket.destroy();
    await slow.done;
    await new Promise((r) => setTimeout(r, 100));
    const third = await request(`${t.url}/v1/embed`, {
      method: 'POST',
      body: await testImage('jpeg'),
      headers: { 'content-type': 'image/jpeg' },
    });
    assert.equal(third.status, 200, third.text);
  } finally {
    await t.close();
  }
});

test('slow clients and connection floods: --headers_timeout_ms, --request_timeout_ms and --max_connections', async () => {
  const t = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    web_dist: '',
    headers_timeout_ms: 1000,
    request_timeout_ms: 1500,
    max_connections: 3,
    shutdown_timeout_ms: 100,
  });
  try {
    const t0 = performance.now();
    // Headers that never end, and a body that never completes: both answered 408 and closed in time.
    const headers = rawConnection(t.url, 'POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n');
    const body = rawConnection(
      t.url,
      'POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n',
      Buffer.alloc(100),
    );
    const [h, b] = await Promise.all([headers.done, body.done]);
    const waited = performance.now() - t0;
    assert.match(h, /^HTTP\/1\.1 408/);
    assert.match(b, /^HTTP\/1\.1 408/);
    assert.ok(waited < 6000, `slow clients held their connections for ${Math.round(waited)} ms`);
    // Three connections held open; a fourth is closed at once, and served again once they go.
    const held = [0, 1, 2].map(() => rawConnection(t.url, 'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n'));
    await new Promise((r) => setTimeout(r, 200));
    const fourth = await fetch(`${t.url}/v2/health/live`).then(
      (r) => r.status,
      () => 'refused',
    );
    assert.equal(fourth, 'refused');
    for (const c of held) c.socket.destroy();
    await Promise.all(held.map((c) => c.done));
    const again = await fetch(`${t.url}/v2/health/live`).then(
      (r) => r.status,
      () => 'refused',
    );
    assert.equal(again, 200);
  } finally {
    await t.close();
  }
});
