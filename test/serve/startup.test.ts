/**
 * Start-up: `cmc serve` refuses to start (exit code 1) when --models holds no loadable model, naming the
 * folder and the layout it expected, or saying to pass the parent of a single model's folder;
 * --allow_empty starts anyway. The provider line is one short line; its reasons are in GET /v2.
 * The flags, CMC_SERVE_* variables and defaults come from one table (serve/config.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configFromEnv, SERVE_DEFAULTS, SERVE_FLAG_NAMES } from '../../serve/config.ts';
import { startServer } from '../../serve/main.ts';
import { chooseProvider, providerLine } from '../../serve/providers.ts';
import { request, writeTinyModel } from './fixture.ts';

const CMC = fileURLToPath(new URL('../../bin/cmc.js', import.meta.url));

const tmpdir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-startup-'));

const quick = { port: 0, provider: 'cpu', quiet: true, web_dist: '', preprocess_workers: 0 } as const;

test('cmc serve with an empty model folder exits 1 naming the folder and the repository layout', (t) => {
  const root = tmpdir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const models = path.join(root, 'empty');
  fs.mkdirSync(models);
  const r = spawnSync(
    process.execPath,
    [CMC, 'serve', '--models', models, '--port', '0', '--provider', 'cpu', '--web_dist', '', '--quiet'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 1, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.ok(r.stderr.includes(`no model loaded from ${models}`), r.stderr);
  assert.ok(r.stderr.includes(path.join(models, '<name>', 'manifest.json')), r.stderr);
  assert.match(r.stderr, /ONNX files/);
  assert.match(r.stderr, /--allow_empty/);
  assert.doesNotMatch(r.stdout, /listening/);
});

test('a missing folder, a single model passed as the repository, and folders that fail to load are refused', async (t) => {
  const root = tmpdir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const missing = path.join(root, 'nowhere');
  await assert.rejects(startServer({ ...quick, models: missing }), (e: Error) => {
    assert.ok(e.message.includes(`${missing} does not exist`), e.message);
    assert.ok(e.message.includes(path.join(missing, '<name>', 'manifest.json')), e.message);
    return true;
  });

  const one = path.join(root, 'models', 'tiny');
  writeTinyModel(one, { name: 'tiny', version: '1', classifier: false, seed: 1 });
  await assert.rejects(startServer({ ...quick, models: one }), (e: Error) => {
    assert.ok(e.message.includes(`${one} is one model (it holds manifest.json)`), e.message);
    assert.ok(e.message.includes(`pass its parent, --models ${path.join(root, 'models')}`), e.message);
    return true;
  });

  const broken = path.join(root, 'broken');
  fs.mkdirSync(path.join(broken, 'bad'), { recursive: true });
  fs.writeFileSync(path.join(broken, 'bad', 'manifest.json'), '{ not json');
  await assert.rejects(startServer({ ...quick, models: broken }), (e: Error) => {
    assert.ok(e.message.includes(`no model loaded from ${broken}`), e.message);
    assert.match(e.message, /1 model folder failed to load, e\.g\. .*bad: manifest\.json unreadable/);
    return true;
  });
});

test('--allow_empty starts with no model: live, not ready, 503 on inference; /v2 lists the provider notes', async (t) => {
  const root = tmpdir();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const s = await startServer({ ...quick, models: root, allow_empty: true });
  try {
    assert.equal(s.repo.ready, false);
    assert.equal((await request(`${s.url}/v2/health/live`)).status, 200);
    assert.equal((await request(`${s.url}/v2/health/ready`)).status, 503);
    const embed = await request(`${s.url}/v1/embed`, {
      method: 'POST',
      body: JSON.stringify({ images: ['AAAA'] }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(embed.status, 503, embed.text);
    const meta = (await request(`${s.url}/v2`)).json;
    assert.equal(meta.provider, 'cpu');
    assert.deepEqual(meta.provider_notes, ['cpu: ok']);
  } finally {
    await s.close();
  }
});

test('the provider line is one short line naming the provider; the long reasons stay in the notes', async () => {
  const hint = 'x'.repeat(400);
  const line = providerLine('auto', 'cpu', [`cuda: skipped (${hint})`, `webgpu: failed (${hint})`, 'cpu: ok']);
  assert.equal(line, '[serve] execution provider: cpu (auto: cuda skipped, webgpu failed, cpu ok; reasons: GET /v2)');
  assert.equal(providerLine('cpu', 'cpu', ['cpu: ok']), '[serve] execution provider: cpu');
  const lines: string[] = [];
  const choice = await chooseProvider('auto', (l) => lines.push(l));
  const chosen = lines.find((l) => l.startsWith('[serve] execution provider:'));
  assert.ok(chosen, lines.join('\n'));
  assert.ok(chosen.length <= 120, `${chosen.length} characters: ${chosen}`);
  assert.ok(chosen.includes(`execution provider: ${choice.provider}`), chosen);
  assert.ok(!chosen.includes('\n'));
});

test('CMC_SERVE_* variables come from the flag table: numbers, booleans and strings', () => {
  assert.deepEqual(
    configFromEnv({
      CMC_SERVE_PORT: '9000',
      CMC_SERVE_QUIET: '1',
      CMC_SERVE_ALLOW_EMPTY: 'true',
      CMC_SERVE_HOST: '::1',
    }),
    { port: 9000, quiet: true, allow_empty: true, host: '::1' },
  );
  assert.deepEqual(configFromEnv({ CMC_SERVE_ORT_SPINNING: '0', CMC_SERVE_MAX_BODY_MB: '1.5' }), {
    ort_spinning: false,
    max_body_mb: 1.5,
  });
  assert.deepEqual(configFromEnv({}), {});
  assert.deepEqual(Object.keys(SERVE_DEFAULTS), SERVE_FLAG_NAMES);
  assert.equal(SERVE_DEFAULTS.port, 8080);
  assert.equal(SERVE_DEFAULTS.allow_empty, false);
});
