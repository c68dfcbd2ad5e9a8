/**
 * The server fails safe: a model producing NaN/Inf answers an error that says so (never 200 with nulls);
 * the model repository takes only regular files inside it (no FIFO, device or escaping symlink hangs
 * start-up, eats memory or gets served); `npx cmc serve` stops (drains, exits) when npx gets SIGTERM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../serve/main.ts';
import { request, testImage, TINY_SIZE, writeTinyModel } from './fixture.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const tmpdir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-failsafe-'));

test('a model that produces NaN answers 500 non_finite_output on every inference route, never null data', async () => {
  const root = tmpdir();
  const models = path.join(root, 'models');
  writeTinyModel(path.join(models, 'nan'), { name: 'nan', version: '1', classifier: true, seed: 5, nanWeight: true });
  const s = await startServer({ models, port: 0, provider: 'cpu', quiet: true, threads: 1, web_dist: '' });
  try {
    const jpeg = await testImage('jpeg', 40, 40, 2);
    const tensor = {
      inputs: [
        {
          name: 'images',
          datatype: 'UINT8',
          shape: [1, TINY_SIZE, TINY_SIZE, 3],
          data: new Array(TINY_SIZE * TINY_SIZE * 3).fill(9),
        },
      ],
    };
    const replies = [
      await request(`${s.url}/v1/embed`, { method: 'POST', body: jpeg, headers: { 'content-type': 'image/jpeg' } }),
      await request(`${s.url}/v1/classify`, { method: 'POST', body: jpeg, headers: { 'content-type': 'image/jpeg' } }),
      await request(`${s.url}/v2/models/nan/infer`, {
        method: 'POST',
        body: JSON.stringify(tensor),
        headers: { 'content-type': 'application/json' },
      }),
      await request(`${s.url}/v2/models/nan/infer`, {
        method: 'POST',
        body: JSON.stringify({ ...tensor, outputs: [{ name: 'logits' }] }),
        headers: { 'content-type': 'application/json' },
      }),
    ];
    for (const [i, r] of replies.entries()) {
      assert.equal(r.status, 500, r.text.slice(0, 300));
      // /v1 answers this server's { error: { code, message } }, /v2 the OIP's { error: "<message>" }.
      if (i < 2) assert.equal(r.json.error.code, 'non_finite_output');
      assert.match(i < 2 ? r.json.error.message : r.json.error, /produced NaN in output/);
      assert.doesNotMatch(r.text, /null/);
    }
  } finally {
    await s.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test(
  'the model repository refuses FIFOs, devices, escaping symlinks and oversized manifests, and serves only files inside it',
  { timeout: 120_000 },
  async (t) => {
    const root = tmpdir();
    const models = path.join(root, 'models');
    const outside = path.join(root, 'outside');
    writeTinyModel(path.join(models, 'tiny'), { name: 'tiny', version: '1', classifier: false, seed: 1 });
    // Symlinks that stay inside the repository are fine: linked/encoder.onnx → ../store/encoder.onnx.
    writeTinyModel(path.join(models, 'store'), { name: 'store', version: '1', classifier: false, seed: 2 });
    writeTinyModel(path.join(models, 'linked'), { name: 'linked', version: '1', classifier: false, seed: 2 });
    fs.rmSync(path.join(models, 'linked', 'encoder.onnx'));
    fs.symlinkSync(path.join('..', 'store', 'encoder.onnx'), path.join(models, 'linked', 'encoder.onnx'));
    // A complete model outside the repository, reached through symlinks.
    writeTinyModel(outside, { name: 'escape', version: '1', classifier: false, seed: 3 });
    fs.mkdirSync(path.join(models, 'escape'));
    fs.symlinkSync(path.join(outside, 'manifest.json'), path.join(models, 'escape', 'manifest.json'));
    fs.symlinkSync(path.join(outside, 'encoder.onnx'), path.join(models, 'escape', 'encoder.onnx'));
    writeTinyModel(path.join(models, 'escenc'), { name: 'escenc', version: '1', classifier: false, seed: 3 });
    fs.rmSync(path.join(models, 'escenc', 'encoder.onnx'));
    fs.symlinkSync(path.join(outside, 'encoder.onnx'), path.join(models, 'escenc', 'encoder.onnx'));
    // manifest.json as /dev/zero (read forever), a FIFO (open blocks), and a sparse 64 MiB file.
    fs.mkdirSync(path.join(models, 'zero'));
    fs.symlinkSync('/dev/zero', path.join(models, 'zero', 'manifest.json'));
    fs.mkdirSync(path.join(models, 'fifo'));
    const fifo = path.join(models, 'fifo', 'manifest.json');
    execFileSync('mkfifo', [fifo]);
    fs.mkdirSync(path.join(models, 'huge'));
    fs.writeFileSync(path.join(models, 'huge', 'manifest.json'), '{');
    fs.truncateSync(path.join(models, 'huge', 'manifest.json'), 64 * 1024 * 1024);
    // Were the FIFO opened blocking, start-up would hang: a writer that opens it after 20 s turns that hang
    // into a failure instead (it is killed at the end).
    const writer = spawn('sh', ['-c', `sleep 20; printf x > '${fifo}'`], { stdio: 'ignore', detached: true });
    t.after(() => {
      try {
        process.kill(-writer.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      fs.rmSync(root, { recursive: true, force: true });
    });
    const rss0 = process.memoryUsage.rss();
    const t0 = performance.now();
    const s = await startServer({ models, port: 0, provider: 'cpu', quiet: true, threads: 1, web_dist: '' });
    try {
      assert.ok(performance.now() - t0 < 15_000, `start-up took ${Math.round(performance.now() - t0)} ms`);
      assert.ok(process.memoryUsage.rss() - rss0 < 512 * 1024 * 1024, 'start-up ate memory');
      assert.deepEqual(s.repo.names(), ['linked', 'store', 'tiny']);
      const why = (name: string) => s.repo.failures.find((f) => path.basename(f.dir) === name)?.error ?? '(loaded)';
      assert.match(why('fifo'), /not a regular file \(a FIFO\)/);
      assert.match(why('zero'), /outside the model repository/);
      assert.match(why('escape'), /outside the model repository/);
      assert.match(why('escenc'), /encoder\.onnx resolves to .* outside the model repository/);
      assert.match(why('huge'), /67108864 bytes, more than the limit/);

      const linked = await request(`${s.url}/models/linked/encoder.onnx`);
      assert.equal(linked.status, 200);
      // A symlink swapped in after start-up is not followed out of the repository by /models/{name}/{file}.
      fs.rmSync(path.join(models, 'tiny', 'encoder.onnx'));
      fs.symlinkSync(path.join(outside, 'encoder.onnx'), path.join(models, 'tiny', 'encoder.onnx'));
      assert.equal((await request(`${s.url}/models/tiny/encoder.onnx`)).status, 404);
      fs.rmSync(path.join(models, 'tiny', 'manifest.json'));
      fs.symlinkSync('/etc/passwd', path.join(models, 'tiny', 'manifest.json'));
      const passwd = await request(`${s.url}/models/tiny/manifest.json`);
      assert.equal(passwd.status, 404);
      assert.doesNotMatch(passwd.text, /root:/);
    } finally {
      await s.close();
    }
  },
);

test(
  'npx cmc serve: SIGTERM to npx drains and stops the server (no orphan left serving)',
  { timeout: 120_000 },
  async (t) => {
    const root = tmpdir();
    const models = path.join(root, 'models');
    writeTinyModel(path.join(models, 'tiny'), { name: 'tiny', version: '1', classifier: false, seed: 1 });
    // Its own process group, so that whatever is left can be killed at the end.
    const npx = spawn(
      'npx',
      ['cmc', 'serve', '--models', models, '--port', '0', '--provider', 'cpu', '--web_dist', '', '--quiet'],
      {
        cwd: REPO_ROOT,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    t.after(() => {
      try {
        process.kill(-npx.pid!, 'SIGKILL');
      } catch {
        // all gone
      }
      fs.rmSync(root, { recursive: true, force: true });
    });
    let out = '';
    let err = '';
    npx.stdout.on('data', (c: Buffer) => (out += c.toString()));
    npx.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const until = async (cond: () => boolean | Promise<boolean>, ms: number, what: string) => {
      const end = Date.now() + ms;
      while (!(await cond())) {
        if (Date.now() > end)
          throw new Error(`${what} within ${ms} ms; stdout: ${out.slice(-400)} stderr: ${err.slice(-600)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await until(() => /listening on (http:\/\/\S+)/.test(out), 60_000, 'the server did not start');
    const url = /listening on (http:\/\/\S+)/.exec(out)![1];
    assert.equal((await request(`${url}/v2/health/live`)).status, 200);
    const npxExit = new Promise<void>((r) => npx.once('exit', () => r()));
    process.kill(npx.pid!, 'SIGTERM');
    await npxExit;
    const down = async () =>
      fetch(`${url}/v2/health/live`).then(
        () => false,
        () => true,
      );
    await until(down, 10_000, 'the server still answers after SIGTERM to npx');
    await until(() => /\[serve\] stopped/.test(err), 5_000, 'the server did not drain and stop');
  },
);
