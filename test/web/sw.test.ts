/**
 * The app shell's service worker without a browser: which requests it takes (app_shell.ts), which caches it
 * deletes, and the build's file list and version (build.ts): a changed file is a new version and a new
 * sw.js (the browser's update), an unchanged build keeps both. app.test.ts runs the worker in Chromium.
 *
 *   node --import tsx --test test/web/sw.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { appCacheName, shellFileFor, staleCaches } from '../../web/app_shell.ts';
import { buildWeb, shellVersion, writeServiceWorker } from '../../web/build.ts';

const FILES = [
  'index.html',
  'main.js',
  'worker.js',
  'ort/ort-wasm-simd-threaded.jsep.wasm',
  'tfjs/tfjs-backend-wasm.wasm',
];

test('shellFileFor: shell files and navigations to the app only; models, the API and other origins pass', () => {
  const scope = 'http://127.0.0.1:8080/';
  const take = (p: string, nav = false) => shellFileFor(`http://127.0.0.1:8080${p}`, scope, FILES, nav);
  assert.equal(take('/', true), 'index.html');
  assert.equal(take('/?model=demo&runtime=tfjs', true), 'index.html');
  assert.equal(take('/index.html', true), 'index.html');
  assert.equal(take('/main.js'), 'main.js');
  assert.equal(take('/main.js?v=2'), 'main.js');
  assert.equal(take('/ort/ort-wasm-simd-threaded.jsep.wasm'), 'ort/ort-wasm-simd-threaded.jsep.wasm');
  for (const p of [
    '/models/demo/manifest.json',
    '/models/demo/classifier.onnx',
    '/v1/models',
    '/v2/models',
    '/metrics',
  ])
    assert.equal(take(p), null, p);
  for (const p of ['/metrics', '/openapi.json', '/main.js']) assert.equal(take(p, true), null, `navigation ${p}`);
  assert.equal(take('/main.js.map'), null);
  assert.equal(take('/sw.js'), null, 'the service worker script itself is the browser update check');
  assert.equal(shellFileFor('http://example.com/main.js', scope, FILES, false), null);
  // A demo under a sub-path: its scope is that folder.
  const sub = 'https://host/demo/';
  assert.equal(shellFileFor('https://host/demo/main.js', sub, FILES, false), 'main.js');
  assert.equal(shellFileFor('https://host/main.js', sub, FILES, false), null);
  assert.equal(shellFileFor('https://host/demo/', sub, FILES, true), 'index.html');
});

test('staleCaches: older builds of the app shell only, never the model cache', () => {
  const current = appCacheName('bbbb');
  assert.deepEqual(staleCaches(['cmc-app-aaaa', current, 'cmc-models-v1', 'other'], current), ['cmc-app-aaaa']);
  assert.deepEqual(staleCaches([current, 'cmc-models-v1'], current), []);
});

test('build: sw.js precaches exactly the built files; a changed file is a new version and a new sw.js', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-web-sw-'));
  try {
    const r = await buildWeb({ outdir: tmp });
    const onDisk = (fs.readdirSync(tmp, { recursive: true }) as string[])
      .map((f) => f.split(path.sep).join('/'))
      .filter((f) => fs.statSync(path.join(tmp, f)).isFile() && !f.endsWith('.map') && f !== 'sw.js')
      .sort();
    assert.deepEqual(r.shell.files, onDisk, 'every file the page may load, nothing else');
    for (const f of ['index.html', 'main.js', 'worker.js']) assert.ok(r.shell.files.includes(f), f);
    assert.ok(
      r.shell.files.some((f) => /^ort\/.*\.wasm$/.test(f)) && r.shell.files.some((f) => /^tfjs\/.*\.wasm$/.test(f)),
    );
    assert.match(r.shell.version, /^[0-9a-f]{16}$/);
    const sw1 = fs.readFileSync(path.join(tmp, 'sw.js'), 'utf8');
    assert.ok(sw1.includes(r.shell.version), 'sw.js carries the version');
    assert.equal(shellVersion(tmp, r.shell.files), r.shell.version, 'the same files, the same version');

    fs.appendFileSync(path.join(tmp, 'index.html'), '<!-- build 2 -->\n');
    const s2 = await writeServiceWorker(tmp, r.shell.files);
    assert.notEqual(s2.version, r.shell.version);
    assert.deepEqual(s2.files, r.shell.files);
    const sw2 = fs.readFileSync(path.join(tmp, 'sw.js'), 'utf8');
    assert.notEqual(sw2, sw1, 'a new sw.js, which the browser installs as an update');
    assert.ok(sw2.includes(s2.version) && !sw2.includes(r.shell.version));
    assert.deepEqual(staleCaches([appCacheName(r.shell.version), 'cmc-models-v1'], appCacheName(s2.version)), [
      appCacheName(r.shell.version),
    ]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
