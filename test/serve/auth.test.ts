/**
 * --auth_token is deny by default: every route the app registers (walked from the Express router and the
 * OpenAPI document, not a hand-picked list) answers 401 without the token in every spelling a client may
 * send (case, trailing slash, double slashes, percent-encodings, dot segments), except the open allow-list
 * (health, the OpenAPI document, the demo page). Requests are sent raw with node:http so the path reaches
 * the server exactly as written (fetch would normalise some spellings).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type express from 'express';
import { OPEN_ROUTES } from '../../serve/app.ts';
import { openApiDocument } from '../../serve/openapi.ts';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { testImage, TINY_SIZE, writeTinyRepository } from './fixture.ts';

const TOKEN = 's3cret-token';
let models: string;
let dist: string;
let s: RunningServer;
let jpeg: Buffer;

before(async () => {
  models = writeTinyRepository();
  dist = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-auth-dist-'));
  fs.writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>demo</title>');
  fs.writeFileSync(path.join(dist, 'main.js'), 'console.log("demo")');
  s = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    auth_token: TOKEN,
    web_dist: dist,
  });
  jpeg = await testImage('jpeg', 40, 40, 1);
});

after(async () => {
  await s.close();
  fs.rmSync(path.dirname(models), { recursive: true, force: true });
  fs.rmSync(dist, { recursive: true, force: true });
});

interface Raw {
  status: number;
  body: string;
}

/** One request with the path sent byte for byte as given. */
function raw(method: string, p: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Raw> {
  const u = new URL(s.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method, path: p, headers: { ...headers, connection: 'close' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Every route registered on the app's router, as { path pattern, methods }. */
function registeredRoutes(app: express.Express): { path: string; methods: string[] }[] {
  const stack = (app.router as unknown as { stack: { route?: { path: string; methods: Record<string, boolean> } }[] })
    .stack;
  return stack
    .filter((l) => l.route)
    .map((l) => ({ path: l.route!.path, methods: Object.keys(l.route!.methods).map((m) => m.toUpperCase()) }));
}

const concrete = (pattern: string) =>
  pattern
    .replace(/[:{]name}?/, 'tiny')
    .replace(/[:{]version}?/, '1')
    .replace(/[:{]role}?/, 'encoder')
    .replace(/[:{]file}?/, pattern.includes('tfjs') ? 'model.json' : 'encoder.onnx');
/** The tiny repository has no tfjs export: that route answers 404 behind the gate (test/export/tfjs.test.ts serves one). */
const NO_FILE_IN_FIXTURE = new Set(['/models/:name/tfjs/:role/:file']);

/** `p` with its last slash (not the leading one) spelled `enc`. */
const lastSlash = (p: string, enc: string) => {
  const i = p.lastIndexOf('/');
  return i > 0 ? `${p.slice(0, i)}${enc}${p.slice(i + 1)}` : `/${enc}${p.slice(1)}`;
};

/** Spellings of one concrete path that a lenient router, proxy or client might treat as the same route. */
function spellings(p: string): string[] {
  if (p === '/') return ['/', '//', '/%2F', '/./'];
  const segs = p.split('/').slice(1);
  const out = new Set<string>([
    p,
    p.toUpperCase(),
    `/${segs[0].toUpperCase()}/${segs.slice(1).join('/')}`.replace(/\/$/, ''),
    p.replace(/[a-z]/, (c) => c.toUpperCase()),
    segs
      .map((x, i) => (i === segs.length - 1 ? x.toUpperCase() : x))
      .join('/')
      .replace(/^/, '/'),
    `${p}/`,
    `${p.toUpperCase()}/`,
    `/${p}`,
    p.replace(/\//g, '//'),
    `${p}?x=1`,
    `${p}/?x=1`,
    `/./${p.slice(1)}`,
    `/zz/..${p}`,
    p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`),
    p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    p.slice(0, -1) + `%${p.charCodeAt(p.length - 1).toString(16)}`,
    lastSlash(p, '%2F'),
    lastSlash(p, '%2f'),
    `/%2F${p.slice(1)}`,
    `/${segs.map((x) => encodeURIComponent(x).replace(/[a-z]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)).join('/')}`,
    `${p};x=1`,
  ]);
  return [...out];
}

function requestBody(pattern: string, method: string): { headers: Record<string, string>; body?: Buffer | string } {
  if (method !== 'POST') return { headers: {} };
  if (pattern.endsWith('/infer')) {
    const data = new Array(TINY_SIZE * TINY_SIZE * 3).fill(7);
    return {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [{ name: 'images', datatype: 'UINT8', shape: [1, TINY_SIZE, TINY_SIZE, 3], data }],
      }),
    };
  }
  if (pattern === '/v1/embeddings') {
    return {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: jpeg.toString('base64') }),
    };
  }
  return { headers: { 'content-type': 'image/jpeg' }, body: jpeg };
}

test('--auth_token: every registered route in every spelling answers 401 without the token, unless it is on the open allow-list', async () => {
  const app = s.app;
  const routes = registeredRoutes(app);
  // The walk covers every documented route: each OpenAPI path is registered (except '/' when the demo is
  // served as static files).
  const registered = new Set(routes.map((r) => r.path.replace(/:(\w+)/g, '{$1}')));
  for (const p of Object.keys(openApiDocument().paths as object))
    if (p !== '/') assert.ok(registered.has(p), `openapi path ${p} is not a registered route`);
  // The demo's files (web/dist) are public too: the browser loads them before it could send a token.
  const demo = ['/', '/index.html', '/main.js'].map((p) => ({ path: p, methods: ['GET'], demo: true }));
  const all: { path: string; methods: string[]; demo?: boolean }[] = [...routes, ...demo];
  assert.ok(routes.length >= 14, `only ${routes.length} routes found on the router`);

  const leaks: string[] = [];
  const tokenRejected: string[] = [];
  let probes = 0;
  for (const r of all) {
    const open = r.demo === true || OPEN_ROUTES.includes(r.path);
    for (const method of [...r.methods, ...(r.methods.includes('GET') ? ['HEAD'] : [])]) {
      const { headers, body } = requestBody(r.path, method);
      const canonical = concrete(r.path);
      for (const sp of spellings(canonical)) {
        probes++;
        const without = await raw(method, sp, headers, body);
        if (!open && without.status !== 401)
          leaks.push(`${method} ${sp}: ${without.status} ${without.body.slice(0, 80)}`);
        if (!open && method !== 'HEAD' && without.status === 401) {
          // Each protocol's error shape: OIP's { error: "<message>" } under /v2, else { error: { code, ... } }.
          const err = JSON.parse(without.body).error;
          if (typeof err === 'string') assert.match(err, /missing or invalid bearer token/, sp);
          else assert.equal(err.code, 'unauthorized', sp);
        }
        const withToken = await raw(method, sp, { ...headers, authorization: `Bearer ${TOKEN}` }, body);
        if (withToken.status === 401) tokenRejected.push(`${method} ${sp}`);
        if (sp === canonical && NO_FILE_IN_FIXTURE.has(r.path))
          assert.equal(withToken.status, 404, `${method} ${sp} with the token`);
        else if (sp === canonical)
          assert.ok(
            withToken.status < 400,
            `${method} ${sp} with the token: ${withToken.status} ${withToken.body.slice(0, 200)}`,
          );
        if (open && sp === canonical) assert.ok(without.status < 400, `open route ${method} ${sp}: ${without.status}`);
      }
    }
  }
  assert.deepEqual(leaks, [], `${leaks.length} of ${probes} probes answered without the token`);
  assert.deepEqual(tokenRejected, [], 'a valid token was refused');
  // A wrong token and a malformed header are refused too.
  assert.equal((await raw('GET', '/metrics', { authorization: 'Bearer nope' })).status, 401);
  assert.equal((await raw('GET', '/metrics', { authorization: TOKEN })).status, 401);
});
