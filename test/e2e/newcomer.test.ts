/**
 * docs/NEWCOMER.md's path, end to end, through the real `cmc` command on generated images: make an ImageFolder
 * (docs/make_shapes.mjs), pre-train the smallest model, stop it with Ctrl+C and resume it with the command it
 * prints, evaluate with kNN and a linear probe, export with the probe head, serve the export and classify one
 * image over HTTP, plot the curves; and a data set without val/, which knn and probe refuse until
 * --test_split holds out part of train/. Every command runs in a temporary folder, which at the end holds only
 * what the commands were told to write. About a minute on 2 cores.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CMC = path.join(ROOT, 'bin', 'cmc.js');
const CLASSES = ['circle', 'square', 'triangle'];

let tmp = '';
let shapes = '';
let run = '';
let ckpt = '';

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node <args>` in the temporary folder. `onStderr` sees the stderr so far after each chunk (to send a
 * signal at the right moment).
 */
function node(args: string[], onStderr?: (so_far: string, child: ReturnType<typeof spawn>) => void): Promise<Done> {
  const child = spawn(process.execPath, args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    onStderr?.(stderr, child);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((res) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    }),
  );
}

const cmc = (args: string[], onStderr?: Parameters<typeof node>[1]) => node([CMC, ...args], onStderr);

/** A failed command's exit code and the end of what it said. */
function said(r: Done): string {
  return `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout.slice(-2000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
}

/** The words of a command line printed by cmc (plain words, or single-quoted as a POSIX shell reads them). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g))
    words.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]);
  return words;
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-newcomer-'));
  shapes = path.join(tmp, 'shapes');
  run = path.join(tmp, 'runs', 'shapes');
  ckpt = path.join(run, 'current.ckpt');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('1. make an ImageFolder data set', async () => {
  const r = await node([path.join(ROOT, 'docs', 'make_shapes.mjs'), shapes]);
  assert.equal(r.code, 0, said(r));
  assert.equal(r.stdout.trim(), `wrote 180 images to ${shapes}/train and 45 to ${shapes}/val`);
  for (const c of CLASSES) {
    assert.equal(fs.readdirSync(path.join(shapes, 'train', c)).length, 60);
    assert.equal(fs.readdirSync(path.join(shapes, 'val', c)).length, 15);
  }
});

test('2. pre-train; Ctrl+C names the last checkpoint and the --resume command, which finishes the run', async () => {
  const args = [
    'train',
    '--data_folder',
    shapes,
    '--model',
    'alexnet_mini',
    '--image_size',
    '32',
    '--batch_size',
    '16',
    '--epochs',
    '2',
    '--nce_k',
    '64',
    '--workers',
    '1',
    '--knn_freq',
    '1',
    '--print_freq',
    '1',
    '--model_path',
    path.join(tmp, 'runs'),
    '--tb_path',
    path.join(tmp, 'runs', 'tb'),
    '--name',
    'shapes',
  ];
  let sent = false;
  const r = await cmc(args, (stderr, child) => {
    // Epoch 2 under way: epoch 1's checkpoint is on disk. One Ctrl+C.
    if (!sent && /^epoch 2\/2 \d+\/180/m.test(stderr)) sent = child.kill('SIGINT');
  });
  assert.ok(sent, `never reached epoch 2:\n${said(r)}`);
  assert.equal(r.code, 130, said(r));
  // What the newcomer reads before the interruption: the model and data, the random-init kNN, epoch 1.
  assert.match(r.stderr, /alexnet_mini \([\d,]+ params\) on .*180 images at 32 px, batch 16/);
  assert.match(r.stderr, /^\[knn\] epoch 0 \(random init, recomputed features\): top-1 [\d.]+%/m);
  assert.match(r.stderr, /^epoch 1\/2 180\/180 .* p_l .* p_ab .* lr 0\.03$/m);
  assert.match(r.stderr, /^\[knn\] epoch 1: top-1 [\d.]+%/m);
  const last = r.stderr.trim().split('\n').pop()!;
  const m =
    /^cmc: interrupted \(SIGINT\); the last checkpoint is (.+) \(epoch 1 done\)\. Resume with: (cmc train --resume .+)$/.exec(
      last,
    );
  assert.ok(m, `last line: ${last}`);
  assert.equal(m[1], ckpt);

  // The printed command, as a shell would split it.
  const resume = shellWords(m[2]);
  assert.deepEqual(resume.slice(0, 3), ['cmc', 'train', '--resume']);
  assert.equal(resume[3], ckpt);
  const r2 = await cmc(resume.slice(1));
  assert.equal(r2.code, 0, said(r2));
  assert.match(r2.stderr, /resumed from .*current\.ckpt: epoch 1 done/);
  assert.ok(!/^epoch 1\/2/m.test(r2.stderr), 'the resumed run trained epoch 1 again');
  assert.match(r2.stderr, /^\[knn\] epoch 2: top-1 [\d.]+%/m);
  assert.equal(r2.stdout.split('\n')[0], `checkpoint: ${ckpt}`);
  assert.match(r2.stdout, /^epoch 2: loss [\d.]+, kNN top-1 [\d.]+%$/m);
  for (const f of ['current.ckpt', 'ckpt_epoch_2.ckpt', 'metrics.jsonl'])
    assert.ok(fs.existsSync(path.join(run, f)), f);
  const epochs = fs
    .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { epoch: number }).epoch);
  assert.deepEqual(epochs, [0, 1, 2]);
});

test('3. evaluate: kNN and a linear probe that writes its head', async () => {
  const k = await cmc(['knn', '--checkpoint', ckpt, '--data_folder', shapes]);
  assert.equal(k.code, 0, said(k));
  assert.match(k.stdout, /^kNN \(k 200, T 0\.07, layer 8\): top-1 [\d.]+% {2}top-5 [\d.]+% {2}\(45 test images\)$/m);

  const p = await cmc([
    'probe',
    '--checkpoint',
    ckpt,
    '--data_folder',
    shapes,
    '--layer',
    '5',
    '--mode',
    'cached',
    '--epochs',
    '10',
    '--val_split',
    '0.2',
  ]);
  assert.equal(p.code, 0, said(p));
  // Which epoch the probe reports, and on what it chose it, is not asserted here (test/eval covers it).
  assert.match(p.stdout, /test top-1 [\d.]+%/);
  const head = path.join(run, 'linear_layer5.json');
  assert.ok(p.stdout.includes(head), p.stdout);
  assert.ok(fs.existsSync(head), 'no head file');
  JSON.parse(fs.readFileSync(head, 'utf8'));
});

test('4. export with the probe head: each file listed once, with its size', async () => {
  const models = path.join(tmp, 'models');
  const r = await cmc([
    'export',
    '--checkpoint',
    ckpt,
    '--head',
    path.join(run, 'linear_layer5.json'),
    '--out',
    models,
    '--name',
    'shapes',
  ]);
  assert.equal(r.code, 0, said(r));
  const dir = path.join(models, 'shapes');
  const lines = r.stdout.trim().split('\n');
  const files = ['encoder.onnx', 'head.onnx', 'classifier.onnx', 'manifest.json'];
  assert.deepEqual(
    lines.map((l) => l.split('  ')[0]),
    files.map((f) => path.join(dir, f)),
  );
  assert.match(lines[0], /encoder\.onnx {2}[\d.]+ MB, \d+ nodes$/);
  assert.match(lines[1], /head\.onnx {2}[\d.]+ kB, 1 node$/);
  assert.match(lines[3], /manifest\.json {2}[\d.]+ kB$/);
  const all = r.stdout + r.stderr;
  for (const f of files)
    assert.equal(all.split(path.join(dir, f)).length - 1, 1, `${f} listed more than once:\n${all}`);
});

test('5. serve the export and classify one image over HTTP', async (t) => {
  const server = spawn(process.execPath, [CMC, 'serve', '--models', path.join(tmp, 'models'), '--port', '0'], {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((res) => server.on('close', (c) => res(c)));
  t.after(() => server.kill('SIGKILL'));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no 'listening on' line in 90 s:\n${out}`)), 90_000);
    const look = (s: string) => {
      out += s;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    };
    server.stdout.setEncoding('utf8').on('data', look);
    server.stderr.setEncoding('utf8').on('data', look);
    void exited.then((c) => rej(new Error(`cmc serve exited (${c}):\n${out}`)));
  });
  assert.match(out, /models: shapes:1/);
  const res = await fetch(`${url}/v1/classify?top_k=2`, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg' },
    body: fs.readFileSync(path.join(shapes, 'val', 'triangle', '000.jpg')),
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as {
    model: string;
    version: string;
    predictions: { label: string; index: number; probability: number }[][];
  };
  assert.equal(body.model, 'shapes');
  assert.equal(body.version, '1');
  assert.equal(body.predictions.length, 1);
  assert.equal(body.predictions[0].length, 2);
  for (const p of body.predictions[0]) {
    assert.equal(p.label, CLASSES[p.index]);
    assert.ok(p.probability >= 0 && p.probability <= 1);
  }
  server.kill('SIGINT');
  assert.equal(await exited, 0, out);
});

test('6. plot the curves: by default into the run folder', async () => {
  const r = await cmc(['plot', run]);
  assert.equal(r.code, 0, said(r));
  assert.deepEqual(r.stdout.trim().split('\n'), [
    path.join(run, 'plots', 'loss.svg'),
    path.join(run, 'plots', 'knn.svg'),
  ]);
});

test('without val/: knn and probe refuse and say how to split; --test_split holds out part of train/', async () => {
  const noVal = path.join(tmp, 'no_val');
  fs.cpSync(path.join(shapes, 'train'), path.join(noVal, 'train'), { recursive: true });
  for (const cmd of ['knn', 'probe']) {
    const r = await cmc([
      cmd,
      '--checkpoint',
      ckpt,
      '--data_folder',
      noVal,
      ...(cmd === 'probe' ? ['--layer', '5'] : []),
    ]);
    assert.equal(r.code, 1, said(r));
    assert.match(r.stderr, /no test split|test split/i);
    assert.match(r.stderr, /val\/<class>\//);
    assert.match(r.stderr, /--test_split 0\.2/);
  }
  const r = await cmc(['knn', '--checkpoint', ckpt, '--data_folder', noVal, '--test_split', '0.2']);
  assert.equal(r.code, 0, said(r));
  assert.match(
    r.stdout,
    /^kNN .*: top-1 [\d.]+% .*\(36 training images held out as the test split \(--test_split 0\.2/m,
  );
});

test('the commands wrote only what they were told to, into the temporary folder', () => {
  assert.deepEqual(fs.readdirSync(tmp).sort(), ['models', 'no_val', 'runs', 'shapes']);
  assert.deepEqual(fs.readdirSync(path.join(tmp, 'runs')).sort(), ['shapes', 'tb']);
  assert.deepEqual(fs.readdirSync(path.join(tmp, 'models')), ['shapes']);
});
