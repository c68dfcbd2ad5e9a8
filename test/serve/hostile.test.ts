/**
 * Malformed and hostile requests: each must get the right 4xx with a JSON error body in its protocol's shape
 * (`{ error: { code, message } }`, OpenAI's on /v1/embeddings, the OIP spec's on /v2; no stack trace), and
 * the server must stay up with bounded memory afterwards.
 *
 * One file over 500 lines on purpose: every case shares one server started once (a start loads the model and
 * the workers), and node --test runs files apart, so splitting would start it once per file.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import sharp from 'sharp';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { Rng } from '../../core/util/rng.ts';
import { status as grpcStatus } from '@grpc/grpc-js';
import { grpcClient, grpcCode } from './grpc_client.ts';
import { oipErrors } from './oip_schema.ts';
import { multipart, pngHeaderBomb, request, testImage, TINY_SIZE, writeTinyRepository, type Reply } from './fixture.ts';

const MAX_BODY = 1024 * 1024;
const MAX_IMAGES = 8;
const MAX_PIXELS = 4_000_000;

let models: string;
let s: RunningServer;
let rssBefore = 0;
let total = 0;

before(async () => {
  models = writeTinyRepository();
  s = await startServer({
    models,
    port: 0,
    grpc_port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    max_body_mb: MAX_BODY / (1024 * 1024),
    max_images: MAX_IMAGES,
    max_pixels: MAX_PIXELS,
  });
  await request(`${s.url}/v1/embed`, {
    method: 'POST',
    body: await testImage('jpeg'),
    headers: { 'content-type': 'image/jpeg' },
  });
  rssBefore = process.memoryUsage.rss();
});

after(async () => {
  await s.close();
  fs.rmSync(path.dirname(models), { recursive: true, force: true });
});

interface Case {
  name: string;
  method?: string;
  path: string;
  type?: string | null;
  body?: Buffer | string;
  headers?: Record<string, string>;
  /** Accepted statuses. */
  expect: number | number[];
  code?: string;
}

/** The error body each protocol speaks: OpenAI's on /v1/embeddings, the OIP spec's on /v2, ours elsewhere. */
function bodyError(c: Case, r: Reply): string | null {
  const p = new URL(c.path, 'http://x').pathname; // as the client sends it ('..' segments resolved)
  if (p === '/v2' || p.startsWith('/v2/')) {
    const e = oipErrors('inference_error_response', r.json);
    if (e || Object.keys(r.json ?? {}).join() !== 'error' || !r.json.error)
      return `${c.name}: not an OIP error body (${e}): ${r.text.slice(0, 200)}`;
    return null; // the OIP error body has no machine code: c.code is not checked there
  }
  const e = r.json?.error;
  if (p === '/v1/embeddings') {
    if (
      !e ||
      typeof e.message !== 'string' ||
      typeof e.type !== 'string' ||
      !('param' in e) ||
      typeof e.code !== 'string' ||
      Object.keys(r.json).length !== 1
    ) {
      return `${c.name}: not an OpenAI error body: ${r.text.slice(0, 200)}`;
    }
  } else if (!e || typeof e.code !== 'string' || typeof e.message !== 'string' || Object.keys(r.json).length !== 1)
    return `${c.name}: bad error body ${r.text.slice(0, 200)}`;
  if (c.code && e.code !== c.code) return `${c.name}: error code ${e.code}, want ${c.code} (${e.message})`;
  return null;
}

function checkError(c: Case, r: Reply): string | null {
  const want = Array.isArray(c.expect) ? c.expect : [c.expect];
  if (!want.includes(r.status))
    return `${c.name}: status ${r.status}, want ${want.join('|')} (${r.text.slice(0, 200)})`;
  if (r.status < 400) return null;
  if (!/application\/json/.test(r.headers.get('content-type') ?? ''))
    return `${c.name}: content-type ${r.headers.get('content-type')}`;
  const bad = bodyError(c, r);
  if (bad) return bad;
  if (/\n\s+at |node_modules|\.ts:\d+/.test(r.text))
    return `${c.name}: stack trace or source path leaked: ${r.text.slice(0, 300)}`;
  return null;
}

async function runCases(cases: Case[], parallel = 6): Promise<void> {
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++];
      const headers: Record<string, string> = { ...(c.headers ?? {}) };
      if (c.type) headers['content-type'] = c.type;
      try {
        const r = await request(`${s.url}${c.path}`, { method: c.method ?? 'POST', headers, body: c.body });
        const f = checkError(c, r);
        if (f) failures.push(f);
      } catch (e) {
        failures.push(`${c.name}: request failed: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  total += cases.length;
  assert.deepEqual(failures, [], failures.join('\n'));
}

const routes = ['/v1/embed', '/v1/classify'];

test('random bytes as raw images, JSON base64 and multipart → 422', async () => {
  const rng = new Rng(7);
  const cases: Case[] = [];
  for (let i = 0; i < 45; i++) {
    const n = [0, 1, 2, 3, 8, 64, 1000, 20000][i % 8] + rng.int(5);
    const bytes = Buffer.from(Array.from({ length: n }, () => rng.int(256)));
    // A few random buffers start with real magic numbers to reach the decoders.
    if (i % 5 === 1 && n > 4) Buffer.from([0xff, 0xd8, 0xff]).copy(bytes);
    if (i % 5 === 2 && n > 8) Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(bytes);
    if (i % 5 === 3 && n > 12) Buffer.from('RIFF\0\0\0\0WEBP').copy(bytes);
    const type = ['image/jpeg', 'image/png', 'image/webp'][i % 3];
    const route = routes[i % 2];
    if (i % 3 === 0) cases.push({ name: `random raw ${n} B #${i}`, path: route, type, body: bytes, expect: 422 });
    else if (i % 3 === 1)
      cases.push({
        name: `random b64 ${n} B #${i}`,
        path: route,
        type: 'application/json',
        body: JSON.stringify({ images: [bytes.toString('base64')] }),
        expect: 422,
      });
    else {
      const mp = multipart([{ data: bytes, type }]);
      cases.push({ name: `random multipart ${n} B #${i}`, path: route, type: mp.type, body: mp.body, expect: 422 });
    }
  }
  await runCases(cases);
});

test('truncated and corrupted JPEG / PNG / WebP → 422 (or 200 where the corruption is harmless)', async () => {
  const cases: Case[] = [];
  for (const fmt of ['jpeg', 'png', 'webp'] as const) {
    const full = await testImage(fmt, 120, 90, 5);
    for (const frac of [0.02, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97]) {
      const cut = full.subarray(0, Math.max(1, Math.floor(full.length * frac)));
      cases.push({
        name: `${fmt} cut at ${frac}`,
        path: routes[cases.length % 2],
        type: `image/${fmt}`,
        body: Buffer.from(cut),
        expect: 422,
      });
    }
    for (const k of [1, 2, 3]) {
      const bad = Buffer.from(full);
      const rng = new Rng(k);
      // Garble a run in the middle: the entropy-coded / deflate data.
      const at = Math.floor(bad.length * (0.3 + 0.15 * k));
      for (let i = 0; i < 64 && at + i < bad.length; i++) bad[at + i] = rng.int(256);
      cases.push({
        name: `${fmt} garbled #${k}`,
        path: '/v1/embed',
        type: `image/${fmt}`,
        body: bad,
        expect: [200, 422],
      });
    }
  }
  // The header replaced: the decoder sees a different (corrupt) file.
  const png = await testImage('png', 40, 40, 6);
  const badCrc = Buffer.from(png);
  badCrc[29] ^= 0xff; // IHDR CRC
  cases.push({ name: 'png with a bad IHDR crc', path: '/v1/embed', type: 'image/png', body: badCrc, expect: 422 });
  const zeroDims = Buffer.from(png);
  zeroDims.writeUInt32BE(0, 16);
  cases.push({ name: 'png declaring width 0', path: '/v1/embed', type: 'image/png', body: zeroDims, expect: 422 });
  await runCases(cases);
});

test('decompression bombs: huge declared dimensions are refused from the header (413), extreme aspect ratios too', async () => {
  const cases: Case[] = [];
  for (const [w, h] of [
    [100000, 100000],
    [65535, 65535],
    [50000, 50000],
    [10000, 10000],
    [2001, 2000],
    [4_000_001, 1],
    [1, 5_000_000],
    [30000, 200],
  ]) {
    const bomb = pngHeaderBomb(w, h);
    cases.push({
      name: `png ${w}x${h} raw`,
      path: '/v1/embed',
      type: 'image/png',
      body: bomb,
      expect: 413,
      code: 'image_too_large',
    });
    cases.push({
      name: `png ${w}x${h} json`,
      path: '/v1/classify',
      type: 'application/json',
      body: JSON.stringify({ images: [bomb.toString('base64')] }),
      expect: 413,
      code: 'image_too_large',
    });
  }
  // A real JPEG whose SOF0 header is patched to 60000 x 60000.
  const jpeg = await testImage('jpeg', 64, 48, 8);
  const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
  assert.ok(sof > 0);
  const big = Buffer.from(jpeg);
  big.writeUInt16BE(60000, sof + 5);
  big.writeUInt16BE(60000, sof + 7);
  cases.push({
    name: 'jpeg SOF 60000x60000',
    path: '/v1/embed',
    type: 'image/jpeg',
    body: big,
    expect: 413,
    code: 'image_too_large',
  });
  const mp = multipart([{ data: big }]);
  cases.push({
    name: 'jpeg SOF 60000x60000 multipart',
    path: '/v1/embed',
    type: mp.type,
    body: mp.body,
    expect: 413,
    code: 'image_too_large',
  });
  // Within max_pixels but the shorter-side resize would blow up: 1 x 100000.
  const thin = await sharp({ create: { width: 100000, height: 1, channels: 3, background: { r: 9, g: 99, b: 199 } } })
    .png()
    .toBuffer();
  cases.push({
    name: 'png 100000x1 (resize would exceed max_pixels)',
    path: '/v1/embed',
    type: 'image/png',
    body: thin,
    expect: 413,
    code: 'image_too_large',
  });
  await runCases(cases);
});

test('wrong JSON shapes and malformed JSON → 400, bad base64 and data URIs → 422 / 415', async () => {
  const good = (await testImage('png', 20, 20, 9)).toString('base64');
  const shapes: [string, unknown, number, string?][] = [
    ['empty object', {}, 400, 'invalid_request'],
    ['array', [good], 400, 'invalid_request'],
    ['string', 'images', 400],
    ['number', 42, 400],
    ['null', null, 400],
    ['true', true, 400],
    ['images string', { images: good }, 400],
    ['images object', { images: { 0: good } }, 400],
    ['images number', { images: 3 }, 400],
    ['images null', { images: null }, 400],
    ['images empty', { images: [] }, 400, 'no_images'],
    ['image number', { images: [1] }, 400],
    ['image null', { images: [null] }, 400],
    ['image object', { images: [{ data: good }] }, 400],
    ['image array', { images: [[good]] }, 400],
    ['image bool', { images: [false] }, 400],
    ['second image wrong', { images: [good, 7] }, 400],
    ['model object', { images: [good], model: {} }, 400, 'invalid_parameter'],
    ['model array', { images: [good], model: ['tiny'] }, 400],
    ['model bool', { images: [good], model: true }, 400],
    ['version object', { images: [good], version: { v: 1 } }, 400],
    ['model too long', { images: [good], model: 'x'.repeat(300) }, 400],
    ['too many images', { images: Array(MAX_IMAGES + 1).fill(good) }, 413, 'too_many_images'],
    ['too many tiny images', { images: Array(1000).fill('AAAA') }, 413, 'too_many_images'],
  ];
  const cases: Case[] = [];
  for (const [name, body, expect, code] of shapes)
    for (const route of routes)
      cases.push({
        name: `${name} ${route}`,
        path: route,
        type: 'application/json',
        body: JSON.stringify(body),
        expect,
        code,
      });
  for (const [name, topK] of [
    ['top_k 0', 0],
    ['top_k -1', -1],
    ['top_k 1.5', 1.5],
    ['top_k string', 'abc'],
    ['top_k object', {}],
    ['top_k huge', 1e12],
  ] as const) {
    cases.push({
      name,
      path: '/v1/classify',
      type: 'application/json',
      body: JSON.stringify({ images: [good], top_k: topK }),
      expect: 400,
      code: 'invalid_parameter',
    });
  }
  for (const q of ['top_k=0', 'top_k=x', 'top_k=-3', 'top_k=2.5', 'top_k=1&top_k=2', 'model=tiny&model=multi']) {
    cases.push({
      name: `query ${q}`,
      path: `/v1/classify?${q}`,
      type: 'application/json',
      body: JSON.stringify({ images: [good] }),
      expect: 400,
    });
  }
  for (const [name, text] of [
    ['truncated', '{"images": ["'],
    ['open brace', '{'],
    ['bare word', 'nul'],
    ['empty', ''],
    ['trailing comma', `{"images": ["${good}",]}`],
    ['single quotes', "{'images': []}"],
    ['garbage after', '{"images": []} xx'],
    ['binary', '\u0000\u0001\u0002'],
    ['nested deep', '['.repeat(5000)],
    ['unterminated string', '{"images": ["abc'],
  ] as const) {
    cases.push({
      name: `bad json ${name}`,
      path: routes[cases.length % 2],
      type: 'application/json',
      body: text,
      expect: 400,
      code: 'bad_json',
    });
  }
  const b64: [string, string, number, string?][] = [
    ['bangs', '!!!!', 422, 'invalid_base64'],
    ['spaces only', '   ', 422, 'invalid_base64'],
    ['empty', '', 422, 'invalid_base64'],
    ['one char', 'A', 422, 'invalid_base64'],
    ['five chars', 'AAAAA', 422, 'invalid_base64'],
    ['unicode', 'ÿÿÿÿ', 422, 'invalid_base64'],
    ['inner padding', 'AA==AA==', 422, 'invalid_base64'],
    ['triple pad', 'AAAAA===', 422, 'invalid_base64'],
    ['percent-encoded', encodeURIComponent(good.slice(0, 40) + '+/='), 422],
    ['valid b64 of text', Buffer.from('hello world, not an image').toString('base64'), 422, 'invalid_image'],
    ['data uri text/plain', 'data:text/plain;base64,aGVsbG8=', 415, 'unsupported_media_type'],
    ['data uri gif', `data:image/gif;base64,${good}`, 415],
    ['data uri svg', 'data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=', 415],
    ['data uri not base64', 'data:image/png,notbase64', 422, 'invalid_base64'],
    ['data uri empty', 'data:image/png;base64,', 422, 'invalid_base64'],
    ['data uri bad chars', 'data:image/png;base64,@@@@', 422, 'invalid_base64'],
    ['data uri html', 'data:text/html;base64,PGgxPmhpPC9oMT4=', 415],
    ['truncated png b64', good.slice(0, 30), 422],
    ['b64 with NUL', `${good.slice(0, 8)}\u0000${good.slice(8)}`, 422, 'invalid_base64'],
    ['javascript url', 'javascript:alert(1)', 422, 'invalid_base64'],
  ];
  for (const [name, str, expect, code] of b64)
    cases.push({
      name: `base64 ${name}`,
      path: routes[cases.length % 2],
      type: 'application/json',
      body: JSON.stringify({ images: [str] }),
      expect,
      code,
    });
  await runCases(cases);
});

test('content types: unsupported → 415, image formats other than jpeg/png/webp → 415, malformed multipart → 400', async () => {
  const jpeg = await testImage('jpeg', 30, 30, 11);
  const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } })
    .gif()
    .toBuffer();
  const tiff = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#0f0' } })
    .tiff()
    .toBuffer();
  const svg = Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
  );
  const cases: Case[] = [];
  for (const route of routes) {
    for (const type of [
      'text/plain',
      'application/xml',
      'image/gif',
      'image/svg+xml',
      'image/tiff',
      'application/octet-stream',
      'application/x-www-form-urlencoded',
      'multipart/mixed; boundary=x',
      'video/mp4',
      'image/jpeg2000',
      'application/jsonx',
      'foo',
    ]) {
      cases.push({
        name: `type ${type} ${route}`,
        path: route,
        type,
        body: jpeg,
        expect: 415,
        code: 'unsupported_media_type',
      });
    }
    cases.push({ name: `no content type ${route}`, path: route, type: null, body: jpeg, expect: 415 });
  }
  for (const [name, data] of [
    ['gif', gif],
    ['tiff', tiff],
    ['svg', svg],
  ] as const) {
    cases.push({
      name: `${name} bytes as image/png`,
      path: '/v1/embed',
      type: 'image/png',
      body: data,
      expect: [415, 422],
    });
    cases.push({
      name: `${name} bytes in JSON`,
      path: '/v1/classify',
      type: 'application/json',
      body: JSON.stringify({ images: [data.toString('base64')] }),
      expect: [415, 422],
    });
  }
  cases.push({
    name: 'gif bytes → unsupported_image_format',
    path: '/v1/embed',
    type: 'image/jpeg',
    body: gif,
    expect: 415,
    code: 'unsupported_image_format',
  });
  const mp = multipart([{ data: jpeg }]);
  const boundary = mp.type.split('boundary=')[1];
  cases.push({
    name: 'multipart without boundary',
    path: '/v1/embed',
    type: 'multipart/form-data',
    body: mp.body,
    expect: 400,
    code: 'bad_multipart',
  });
  cases.push({
    name: 'multipart wrong boundary',
    path: '/v1/embed',
    type: 'multipart/form-data; boundary=nomatch',
    body: mp.body,
    expect: 400,
  });
  cases.push({
    name: 'multipart truncated',
    path: '/v1/embed',
    type: mp.type,
    body: mp.body.subarray(0, mp.body.length - 30),
    expect: 400,
  });
  cases.push({
    name: 'multipart garbage',
    path: '/v1/embed',
    type: mp.type,
    body: Buffer.from('this is not multipart at all'),
    expect: 400,
  });
  cases.push({ name: 'multipart empty', path: '/v1/embed', type: mp.type, body: Buffer.alloc(0), expect: 400 });
  cases.push({
    name: 'multipart fields only',
    path: '/v1/classify',
    ...(() => {
      const m = multipart([], { model: 'tiny' });
      return { type: m.type, body: m.body };
    })(),
    expect: 400,
    code: 'no_images',
  });
  cases.push({
    name: 'multipart bad header',
    path: '/v1/embed',
    type: mp.type,
    body: Buffer.from(`--${boundary}\r\nnot a header\r\n\r\nxx\r\n--${boundary}--\r\n`),
    expect: 400,
  });
  const bad = multipart([{ data: jpeg }, { data: Buffer.from('not an image') }]);
  cases.push({
    name: 'multipart second image bad',
    path: '/v1/embed',
    type: bad.type,
    body: bad.body,
    expect: 422,
    code: 'invalid_image',
  });
  const nine = multipart(Array.from({ length: MAX_IMAGES + 1 }, () => ({ data: jpeg })));
  cases.push({
    name: 'multipart too many images',
    path: '/v1/embed',
    type: nine.type,
    body: nine.body,
    expect: 413,
    code: 'too_many_images',
  });
  const longField = multipart([{ data: jpeg }], { model: 'm'.repeat(5000) });
  cases.push({
    name: 'multipart huge field',
    path: '/v1/embed',
    type: longField.type,
    body: longField.body,
    expect: 413,
  });
  const unknown = multipart([{ data: jpeg }], { model: 'nosuch' });
  cases.push({
    name: 'multipart unknown model',
    path: '/v1/embed',
    type: unknown.type,
    body: unknown.body,
    expect: 404,
    code: 'model_not_found',
  });
  await runCases(cases);
});

test('oversized bodies → 413 (declared or streamed), server keeps answering', async () => {
  const big = Buffer.alloc(MAX_BODY + 1024, 0xab);
  const cases: Case[] = [];
  for (const route of routes) {
    cases.push({
      name: `raw jpeg ${route}`,
      path: route,
      type: 'image/jpeg',
      body: big,
      expect: 413,
      code: 'payload_too_large',
    });
    cases.push({
      name: `json ${route}`,
      path: route,
      type: 'application/json',
      body: JSON.stringify({ images: [big.toString('base64')] }),
      expect: 413,
    });
    const mp = multipart([{ data: big }]);
    cases.push({ name: `multipart ${route}`, path: route, type: mp.type, body: mp.body, expect: 413 });
    const many = multipart(Array.from({ length: 4 }, () => ({ data: big.subarray(0, MAX_BODY / 3) })));
    cases.push({ name: `multipart sum of parts ${route}`, path: route, type: many.type, body: many.body, expect: 413 });
  }
  cases.push({
    name: 'kserve json',
    path: '/v2/models/tiny/infer',
    type: 'application/json',
    body: JSON.stringify({
      inputs: [{ name: 'images', datatype: 'UINT8', shape: [1, 32, 32, 3], data: Array(700000).fill(1) }],
    }),
    expect: 413,
  });
  await runCases(cases, 3);
  // Chunked bodies (no Content-Length) are cut off while streaming.
  for (const type of ['image/png', 'application/json', multipart([]).type]) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        `${s.url}/v1/embed`,
        { method: 'POST', headers: { 'content-type': type, 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      let sent = 0;
      const pump = () => {
        while (sent < 3 * MAX_BODY) {
          sent += 64 * 1024;
          if (!req.write(Buffer.alloc(64 * 1024, 0x41))) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    }).catch(() => 413); // the server may close the socket before the client finished writing
    assert.equal(status, 413, `chunked ${type}`);
    total++;
  }
});

test('model names: path traversal and malformed names → 400, unknown models / versions / routes → 404', async () => {
  const jpeg = await testImage('jpeg', 30, 30, 12);
  const px = Array(TINY_SIZE * TINY_SIZE * 3).fill(7);
  const infer = JSON.stringify({
    inputs: [{ name: 'images', datatype: 'UINT8', shape: [1, TINY_SIZE, TINY_SIZE, 3], data: px }],
  });
  const cases: Case[] = [];
  const traversal = [
    '../../etc/passwd',
    '..',
    '../tiny',
    'tiny/../tiny',
    '/etc/passwd',
    'tiny/',
    '.hidden',
    'C:\\windows',
    'tiny%00',
    'tiny\u0000',
    '..%2F..%2Fetc',
    ' tiny',
    'ti ny',
    '%2e%2e',
    'a'.repeat(200),
  ];
  for (const name of traversal) {
    cases.push({
      name: `query model ${JSON.stringify(name)}`,
      path: `/v1/embed?model=${encodeURIComponent(name)}`,
      type: 'image/jpeg',
      body: jpeg,
      expect: 400,
      code: 'invalid_model_name',
    });
    cases.push({
      name: `json model ${JSON.stringify(name)}`,
      path: '/v1/classify',
      type: 'application/json',
      body: JSON.stringify({ images: [jpeg.toString('base64')], model: name }),
      expect: 400,
    });
  }
  // (a bare %2e%2e segment is normalised to '..' by the client's URL parser, so it never reaches us as a name)
  for (const p of ['..%2F..%2Fetc%2Fpasswd', '%2e%2e%2F', '..%5C..%5Cwindows', 'tiny%2F..%2Fmulti', '.env', 'a%00b']) {
    cases.push({
      name: `kserve meta ${p}`,
      method: 'GET',
      path: `/v2/models/${p}`,
      expect: 400,
      code: 'invalid_model_name',
    });
    cases.push({
      name: `kserve infer ${p}`,
      path: `/v2/models/${p}/infer`,
      type: 'application/json',
      body: infer,
      expect: 400,
    });
  }
  for (const p of [
    '/v2/models/../../etc/passwd',
    '/v2/models/%2e%2e/%2e%2e/etc/passwd',
    '/../../etc/passwd',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/v1/../../etc/passwd',
    '/index.html/../../package.json',
    '/%c0%ae%c0%ae/etc/passwd',
    '/%',
  ]) {
    cases.push({ name: `raw path ${p}`, method: 'GET', path: p, expect: [400, 404] });
  }
  for (const name of ['nosuch', 'TINY', 'tiny2', 'broken']) {
    cases.push({
      name: `unknown model ${name}`,
      path: `/v1/embed?model=${name}`,
      type: 'image/jpeg',
      body: jpeg,
      expect: 404,
      code: 'model_not_found',
    });
    cases.push({
      name: `kserve unknown ${name}`,
      method: 'GET',
      path: `/v2/models/${name}`,
      expect: 404,
      code: 'model_not_found',
    });
  }
  for (const v of ['3', '0', '1.0', 'v1']) {
    cases.push({
      name: `unknown version ${v}`,
      path: `/v1/embed?model=multi&version=${v}`,
      type: 'image/jpeg',
      body: jpeg,
      expect: 404,
      code: 'version_not_found',
    });
    cases.push({
      name: `kserve unknown version ${v}`,
      path: `/v2/models/multi/versions/${v}/infer`,
      type: 'application/json',
      body: infer,
      expect: 404,
    });
  }
  cases.push({
    name: 'bad version ../1',
    path: '/v1/embed?model=multi&version=..%2F1',
    type: 'image/jpeg',
    body: jpeg,
    expect: 400,
    code: 'invalid_version',
  });
  cases.push({
    name: 'classify without classifier',
    path: '/v1/classify?model=multi',
    type: 'image/jpeg',
    body: jpeg,
    expect: 404,
    code: 'classifier_not_found',
  });
  for (const [m, p] of [
    ['GET', '/v1/embed'],
    ['PUT', '/v1/classify'],
    ['DELETE', '/v2/models/tiny'],
    ['POST', '/v1/nothing'],
    ['GET', '/v3'],
    ['POST', '/metrics'],
    ['GET', '/v2/models/tiny/infer'],
    ['PATCH', '/'],
  ] as const) {
    cases.push({ name: `route ${m} ${p}`, method: m, path: p, expect: 404, code: 'route_not_found' });
  }
  await runCases(cases);
});

test('KServe v2 infer: malformed tensors → 400 / 413 / 415', async () => {
  const n = TINY_SIZE * TINY_SIZE * 3;
  const ok = (over: Record<string, unknown> = {}, top: Record<string, unknown> = {}) =>
    JSON.stringify({
      inputs: [
        { name: 'images', datatype: 'UINT8', shape: [1, TINY_SIZE, TINY_SIZE, 3], data: Array(n).fill(3), ...over },
      ],
      ...top,
    });
  const bodies: [string, string, number][] = [
    ['no inputs', JSON.stringify({}), 400],
    ['inputs not array', JSON.stringify({ inputs: {} }), 400],
    ['inputs empty', JSON.stringify({ inputs: [] }), 400],
    ['two inputs', JSON.stringify({ inputs: [JSON.parse(ok()).inputs[0], JSON.parse(ok()).inputs[0]] }), 400],
    ['input null', JSON.stringify({ inputs: [null] }), 400],
    ['body array', JSON.stringify([1]), 400],
    ['wrong name', ok({ name: 'pixels' }), 400],
    ['FP32 datatype', ok({ datatype: 'FP32' }), 400],
    ['BYTES datatype', ok({ datatype: 'BYTES' }), 400],
    ['lowercase datatype', ok({ datatype: 'uint8' }), 400],
    ['shape 3d', ok({ shape: [TINY_SIZE, TINY_SIZE, 3] }), 400],
    ['shape wrong size', ok({ shape: [1, 64, 64, 3] }), 400],
    ['shape NCHW', ok({ shape: [1, 3, TINY_SIZE, TINY_SIZE] }), 400],
    ['shape negative', ok({ shape: [-1, TINY_SIZE, TINY_SIZE, 3] }), 400],
    ['shape zero batch', ok({ shape: [0, TINY_SIZE, TINY_SIZE, 3], data: [] }), 400],
    ['shape strings', ok({ shape: ['1', '32', '32', '3'] }), 400],
    ['shape fractional', ok({ shape: [1.5, TINY_SIZE, TINY_SIZE, 3] }), 400],
    ['data short', ok({ data: Array(n - 1).fill(1) }), 400],
    ['data long', ok({ data: Array(n + 1).fill(1) }), 400],
    ['data 256', ok({ data: [...Array(n - 1).fill(1), 256] }), 400],
    ['data negative', ok({ data: [-1, ...Array(n - 1).fill(1)] }), 400],
    ['data float', ok({ data: [0.5, ...Array(n - 1).fill(1)] }), 400],
    ['data strings', ok({ data: Array(n).fill('1') }), 400],
    ['data null', ok({ data: null }), 400],
    ['data base64 string', ok({ data: Buffer.alloc(n).toString('base64') }), 400],
    ['data too deep', ok({ data: [[[[[[1]]]]]] }), 400],
    ['batch over limit', ok({ shape: [MAX_IMAGES + 1, TINY_SIZE, TINY_SIZE, 3], data: [] }), 413],
    ['unknown output', ok({}, { outputs: [{ name: 'secrets' }] }), 400],
    ['outputs empty', ok({}, { outputs: [] }), 400],
    ['outputs not objects', ok({}, { outputs: ['embedding'] }), 400],
    ['id number', ok({}, { id: 5 }), 400],
    ['bad json', '{"inputs": [', 400],
  ];
  const cases: Case[] = bodies.map(([name, body, expect]) => ({
    name: `kserve ${name}`,
    path: '/v2/models/tiny/infer',
    type: 'application/json',
    body,
    expect,
  }));
  cases.push({ name: 'kserve text/plain', path: '/v2/models/tiny/infer', type: 'text/plain', body: ok(), expect: 415 });
  cases.push({
    name: 'kserve image/png',
    path: '/v2/models/tiny/infer',
    type: 'image/png',
    body: await testImage('png'),
    expect: 415,
  });
  await runCases(cases);
});

test('KServe v2 binary tensor data: bad header lengths, truncated or extra bytes, wrong sizes → 400 / 413 / 415', async () => {
  const n = TINY_SIZE * TINY_SIZE * 3;
  const head = (size: unknown = n, extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) =>
    Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'images',
            datatype: 'UINT8',
            shape: [1, TINY_SIZE, TINY_SIZE, 3],
            parameters: { binary_data_size: size },
            ...extra,
          },
        ],
        ...top,
      }),
    );
  const px = Buffer.alloc(n, 9);
  const bin = (h: Buffer, tail: Buffer, len: string = String(h.length), type = 'application/octet-stream') => ({
    type,
    body: Buffer.concat([h, tail]),
    headers: { 'inference-header-content-length': len },
  });
  const h = head();
  const rows: [string, ReturnType<typeof bin>, number][] = [
    ['header length not a number', bin(h, px, 'abc'), 400],
    ['header length negative', bin(h, px, '-5'), 400],
    ['header length fractional', bin(h, px, '10.5'), 400],
    ['header length zero', bin(h, px, '0'), 400],
    ['header length past the body', bin(h, px, String(h.length + n + 1)), 400],
    ['header length huge', bin(h, px, '99999999999999999999'), 400],
    ['header length short (cuts the JSON)', bin(h, px, String(h.length - 3)), 400],
    ['header length long (JSON + bytes)', bin(h, px, String(h.length + 4)), 400],
    ['binary truncated', bin(h, px.subarray(0, n - 1)), 400],
    ['binary truncated to nothing', bin(h, Buffer.alloc(0)), 400],
    ['binary extra bytes', bin(h, Buffer.concat([px, Buffer.alloc(3)])), 400],
    ['binary_data_size wrong', bin(head(n - 3), px.subarray(0, n - 3)), 400],
    ['binary_data_size string', bin(head(String(n)), px), 400],
    ['binary_data_size negative', bin(head(-1), px), 400],
    ['binary_data_size and data', bin(head(n, { data: [1] }), px), 400],
    [
      'bytes but no binary_data_size',
      bin(
        Buffer.from(
          JSON.stringify({
            inputs: [
              { name: 'images', datatype: 'UINT8', shape: [1, TINY_SIZE, TINY_SIZE, 3], data: Array(n).fill(1) },
            ],
          }),
        ),
        px,
      ),
      400,
    ],
    ['input parameters not an object', bin(head(n, { parameters: 5 }), px), 400],
    ['binary_data_output not a boolean', bin(head(n, {}, { parameters: { binary_data_output: 'yes' } }), px), 400],
    [
      'binary_data not a boolean',
      bin(head(n, {}, { outputs: [{ name: 'embedding', parameters: { binary_data: 1 } }] }), px),
      400,
    ],
    ['header not JSON', bin(Buffer.from('{"inputs": ['), px), 400],
    [
      'batch over limit',
      bin(
        Buffer.from(
          JSON.stringify({
            inputs: [
              {
                name: 'images',
                datatype: 'UINT8',
                shape: [MAX_IMAGES + 1, TINY_SIZE, TINY_SIZE, 3],
                parameters: { binary_data_size: (MAX_IMAGES + 1) * n },
              },
            ],
          }),
        ),
        Buffer.alloc(0),
      ),
      413,
    ],
    ['body over the limit', bin(head(MAX_BODY + n), Buffer.alloc(MAX_BODY + n)), 413],
  ];
  const cases: Case[] = rows.map(([name, b, expect]) => ({
    name: `binary ${name}`,
    path: '/v2/models/tiny/infer',
    type: b.type,
    body: b.body,
    headers: b.headers,
    expect,
  }));
  cases.push({
    name: 'binary without the header length',
    path: '/v2/models/tiny/infer',
    type: 'application/octet-stream',
    body: Buffer.concat([h, px]),
    expect: 415,
  });
  cases.push({ name: 'binary to an unknown model', path: '/v2/models/nosuch/infer', ...bin(h, px), expect: 404 });
  await runCases(cases);
});

test('gRPC ModelInfer: wrong tensor sizes, shapes, types, names and models → INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED', async () => {
  const c = grpcClient(`127.0.0.1:${s.grpcPort}`);
  const n = TINY_SIZE * TINY_SIZE * 3;
  const px = Buffer.alloc(n, 5);
  const t = (over: Record<string, unknown> = {}) => ({
    name: 'images',
    datatype: 'UINT8',
    shape: [1, TINY_SIZE, TINY_SIZE, 3],
    ...over,
  });
  const { INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED } = grpcStatus;
  const rows: [string, Record<string, unknown>, number][] = [
    ['raw empty', { raw_input_contents: [Buffer.alloc(0)] }, INVALID_ARGUMENT],
    ['raw one byte short', { raw_input_contents: [px.subarray(1)] }, INVALID_ARGUMENT],
    ['raw doubled', { raw_input_contents: [Buffer.concat([px, px])] }, INVALID_ARGUMENT],
    ['shape huge', { inputs: [t({ shape: [1e12, TINY_SIZE, TINY_SIZE, 3] })] }, INVALID_ARGUMENT],
    ['shape negative', { inputs: [t({ shape: [-1, TINY_SIZE, TINY_SIZE, 3] })] }, INVALID_ARGUMENT],
    ['shape empty', { inputs: [t({ shape: [] })] }, INVALID_ARGUMENT],
    ['shape NCHW', { inputs: [t({ shape: [1, 3, TINY_SIZE, TINY_SIZE] })] }, INVALID_ARGUMENT],
    ['datatype BYTES', { inputs: [t({ datatype: 'BYTES' })] }, INVALID_ARGUMENT],
    ['datatype empty', { inputs: [t({ datatype: '' })] }, INVALID_ARGUMENT],
    ['input name', { inputs: [t({ name: 'pixels' })] }, INVALID_ARGUMENT],
    ['two inputs', { inputs: [t(), t()], raw_input_contents: [px, px] }, INVALID_ARGUMENT],
    ['contents and raw', { inputs: [t({ contents: { uint_contents: [1, 2] } })] }, INVALID_ARGUMENT],
    [
      'uint_contents short',
      { inputs: [t({ contents: { uint_contents: [1, 2, 3] } })], raw_input_contents: [] },
      INVALID_ARGUMENT,
    ],
    [
      'uint_contents over 255',
      { inputs: [t({ contents: { uint_contents: Array(n).fill(256) } })], raw_input_contents: [] },
      INVALID_ARGUMENT,
    ],
    ['no data at all', { raw_input_contents: [] }, INVALID_ARGUMENT],
    [
      'batch over limit',
      {
        inputs: [t({ shape: [MAX_IMAGES + 1, TINY_SIZE, TINY_SIZE, 3] })],
        raw_input_contents: [Buffer.alloc((MAX_IMAGES + 1) * n)],
      },
      RESOURCE_EXHAUSTED,
    ],
    ['message over the limit', { raw_input_contents: [Buffer.alloc(MAX_BODY + 1)] }, RESOURCE_EXHAUSTED],
    ['unknown model', { model_name: 'nosuch' }, NOT_FOUND],
    ['bad model name', { model_name: '../tiny' }, INVALID_ARGUMENT],
    ['unknown version', { model_name: 'multi', model_version: '7' }, NOT_FOUND],
    ['unknown output', { outputs: [{ name: 'secrets' }] }, INVALID_ARGUMENT],
  ];
  const failures: string[] = [];
  try {
    for (const [name, over, want] of rows) {
      const r = await grpcCode(
        c.call('ModelInfer', { model_name: 'tiny', inputs: [t()], raw_input_contents: [px], ...over }),
      );
      if (r.code !== want || !r.details || /\n\s+at |node_modules/.test(r.details))
        failures.push(`grpc ${name}: code ${r.code} (${r.details}), want ${want}`);
    }
    assert.deepEqual(await c.call('ServerLive', {}), { live: true });
  } finally {
    c.close();
  }
  total += rows.length;
  assert.deepEqual(failures, [], failures.join('\n'));
});

test('/v1/embeddings: URLs, token ids, wrong shapes, bad base64, unknown models, oversize → OpenAI error bodies', async () => {
  const good = (await testImage('png', 20, 20, 13)).toString('base64');
  const e = (body: unknown) => JSON.stringify(body);
  const shapes: [string, string, number, string?][] = [
    ['https url', e({ model: 'tiny', input: 'https://example.com/a.jpg' }), 400, 'url_not_supported'],
    ['http url in list', e({ model: 'tiny', input: [good, 'http://127.0.0.1:1/x.png'] }), 400, 'url_not_supported'],
    ['file url', e({ model: 'tiny', input: ['file:///etc/passwd'] }), 400, 'url_not_supported'],
    ['ftp url', e({ model: 'tiny', input: [' ftp://host/x'] }), 400, 'url_not_supported'],
    ['token ids', e({ model: 'tiny', input: [101, 2023, 102] }), 400, 'invalid_request'],
    ['token id lists', e({ model: 'tiny', input: [[101, 102]] }), 400, 'invalid_request'],
    ['no input', e({ model: 'tiny' }), 400, 'invalid_request'],
    ['input empty', e({ model: 'tiny', input: [] }), 400, 'invalid_request'],
    ['input object', e({ model: 'tiny', input: { image: good } }), 400, 'invalid_request'],
    ['input null item', e({ model: 'tiny', input: [good, null] }), 400, 'invalid_request'],
    ['body array', e([good]), 400, 'invalid_request'],
    ['model number', e({ model: 5, input: good }), 400, 'invalid_request'],
    ['model empty', e({ model: '', input: good }), 400, 'invalid_request'],
    ['encoding_format', e({ model: 'tiny', input: good, encoding_format: 'int8' }), 400, 'invalid_request'],
    ['modality text', e({ model: 'tiny', input: good, modality: 'text' }), 400, 'invalid_request'],
    ['dimensions', e({ model: 'tiny', input: good, dimensions: 8 }), 400, 'invalid_dimensions'],
    ['dimensions string', e({ model: 'tiny', input: good, dimensions: '16' }), 400, 'invalid_request'],
    ['unknown model', e({ model: 'nosuch', input: good }), 404, 'model_not_found'],
    ['unknown version', e({ model: 'multi:7', input: good }), 404, 'model_not_found'],
    ['bad model name', e({ model: '../tiny', input: good }), 400, 'invalid_model_name'],
    ['too many', e({ model: 'tiny', input: Array(MAX_IMAGES + 1).fill(good) }), 413, 'too_many_images'],
    ['bad base64', e({ model: 'tiny', input: ['!!!!'] }), 422, 'invalid_base64'],
    ['text data uri', e({ model: 'tiny', input: ['data:text/plain;base64,aGVsbG8='] }), 415, 'unsupported_media_type'],
    [
      'not an image',
      e({ model: 'tiny', input: [Buffer.from('plain words').toString('base64')] }),
      422,
      'invalid_image',
    ],
    ['bomb', e({ model: 'tiny', input: [pngHeaderBomb(50000, 50000).toString('base64')] }), 413, 'image_too_large'],
    ['malformed json', '{"input": [', 400, 'bad_json'],
    [
      'oversize body',
      e({ model: 'tiny', input: [Buffer.alloc(MAX_BODY + 10).toString('base64')] }),
      413,
      'payload_too_large',
    ],
  ];
  const cases: Case[] = shapes.map(([name, body, expect, code]) => ({
    name: `embeddings ${name}`,
    path: '/v1/embeddings',
    type: 'application/json',
    body,
    expect,
    code,
  }));
  cases.push({
    name: 'embeddings as image/png',
    path: '/v1/embeddings',
    type: 'image/png',
    body: Buffer.from(good, 'base64'),
    expect: 415,
    code: 'unsupported_media_type',
  });
  cases.push({
    name: 'embeddings no content type',
    path: '/v1/embeddings',
    type: null,
    body: e({ input: good }),
    expect: 415,
  });
  await runCases(cases);
});

test(`the server is still up and its memory bounded after the hostile requests`, async () => {
  assert.ok(total >= 200, `only ${total} hostile requests`);
  const live = await request(`${s.url}/v2/health/live`);
  assert.equal(live.status, 200);
  const ok = await request(`${s.url}/v1/classify`, {
    method: 'POST',
    body: await testImage('webp'),
    headers: { 'content-type': 'image/webp' },
  });
  assert.equal(ok.status, 200, ok.text);
  const grown = (process.memoryUsage.rss() - rssBefore) / 2 ** 20;
  assert.ok(grown < 200, `RSS grew by ${grown.toFixed(0)} MB`);
  const m = await request(`${s.url}/metrics`);
  const line = m.text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('cmc_http_errors_total{') &&
        ['code="413"', 'error="image_too_large"', 'route="/v1/embed"'].every((x) => l.includes(x)),
    );
  assert.match(line ?? '', / \d+$/, 'the 413s are counted by error code');
  console.log(`# ${total} hostile requests, RSS +${grown.toFixed(0)} MB`);
});
