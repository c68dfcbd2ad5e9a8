/**
 * No silent exits: `cmc train` with the worker-thread loader (the default) ends a fatal error with one
 * `cmc: ...` line and exit code 1 — a loss that becomes NaN, a dataset where nothing decodes — where it used to
 * end with node's exit code 13 and no word — and Ctrl+C names the last checkpoint and the exact command that
 * resumes from it. Run as the user runs it: the bin script in a child process.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { writeTinySpec } from '../helpers/tiny_spec.ts';
import { writeSyntheticDataset } from '../../train/data/synthetic.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-cli-errors-'));
const spec = path.join(tmp, 'tiny.json');

before(async () => {
  writeTinySpec(spec);
  writeSyntheticDataset(path.join(tmp, 'data'), { size: 32, train: 48, test: 16, seed: 3 });
  // PNGs whose headers read but whose pixels do not (cut short): they pass the scan, then fail to decode.
  for (const c of ['a', 'b']) {
    fs.mkdirSync(path.join(tmp, 'undecodable', c), { recursive: true });
    for (let i = 0; i < 4; i++) {
      const png = await sharp(Buffer.alloc(32 * 32 * 3, 40 * i + 7), { raw: { width: 32, height: 32, channels: 3 } })
        .png()
        .toBuffer();
      fs.writeFileSync(path.join(tmp, 'undecodable', c, `${i}.png`), png.subarray(0, Math.floor(png.length * 0.6)));
    }
  }
});

function cmcTrain(args: string[]) {
  const r = spawnSync(
    process.execPath,
    [
      path.join(root, 'bin/cmc.js'),
      'train',
      '--model',
      spec,
      '--image_size',
      '16',
      '--feat_dim',
      '16',
      '--nce_k',
      '5',
      '--epochs',
      '2',
      '--backend',
      'cpu',
      '--workers',
      '1',
      '--model_path',
      path.join(tmp, 'runs'),
      '--tb_path',
      path.join(tmp, 'tb'),
      ...args,
    ],
    { cwd: tmp, encoding: 'utf8', timeout: 120_000 },
  );
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('cmc: '));
  return { status: r.status, lines, stderr: r.stderr };
}

test('a NaN loss with the worker loader prints one clear line and exits 1', () => {
  // Batch 8 of 48 images: batches are still in flight in the worker when the step fails.
  const r = cmcTrain([
    '--data_folder',
    path.join(tmp, 'data'),
    '--batch_size',
    '8',
    '--learning_rate',
    '1e30',
    '--name',
    'nan',
  ]);
  assert.equal(r.status, 1, r.stderr.slice(-2000));
  assert.equal(r.lines.length, 1, r.stderr.slice(-2000));
  assert.match(
    r.lines[0],
    /^cmc: loss became NaN at epoch 1, step \d+; stopping\. The last good checkpoint is \(none yet\); try a lower --learning_rate\.$/,
  );
});

test('a dataset where nothing decodes, read by the worker loader, prints one clear line and exits 1', () => {
  const r = cmcTrain(['--data_folder', path.join(tmp, 'undecodable'), '--batch_size', '4', '--name', 'undecodable']);
  assert.equal(r.status, 1, r.stderr.slice(-2000));
  assert.deepEqual(
    r.lines,
    [`cmc: imagefolder: no image under ${path.join(tmp, 'undecodable')} could be decoded`],
    r.stderr.slice(-2000),
  );
});

test('Ctrl+C names the last checkpoint and the exact --resume command, which finishes the run', async () => {
  const args = [
    'train',
    '--data_folder',
    path.join(tmp, 'data'),
    '--model',
    spec,
    '--image_size',
    '16',
    '--feat_dim',
    '16',
    '--nce_k',
    '5',
    '--batch_size',
    '16',
    '--epochs',
    '3',
    '--lr_decay_epochs',
    '',
    '--backend',
    'cpu',
    '--workers',
    '0',
    '--print_freq',
    '1',
    '--model_path',
    path.join(tmp, 'runs'),
    '--tb_path',
    path.join(tmp, 'tb'),
    '--name',
    'ctrl c',
  ];
  const child = spawn(process.execPath, [path.join(root, 'bin/cmc.js'), ...args], {
    cwd: tmp,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let sent = false;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr += s;
    // Epoch 2 under way: epoch 1's checkpoint is on disk. One Ctrl+C.
    if (!sent && /epoch 2\/3 \d+\/48/.test(stderr)) sent = child.kill('SIGINT');
  });
  const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  assert.equal(code, 130, stderr.slice(-2000));
  const ckpt = path.join(tmp, 'runs', 'ctrl c', 'current.ckpt');
  const said = stderr.trim().split('\n').pop()!;
  assert.equal(
    said,
    `cmc: interrupted (SIGINT); the last checkpoint is ${ckpt} (epoch 1 done). Resume with: cmc train --resume '${ckpt}' --backend cpu --workers 0`,
  );
  // The printed command, as a shell would split it.
  const resume = ['train', '--resume', ckpt, '--backend', 'cpu', '--workers', '0'];
  const r = spawnSync(process.execPath, [path.join(root, 'bin/cmc.js'), ...resume], {
    cwd: tmp,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  assert.match(r.stdout, /^checkpoint: .*ctrl c\/current\.ckpt\nepoch 3: loss/);
});
