/**
 * The scale-out round trip: the PyTorch trainer (2 processes, gloo, its own launcher) trains the tiny network
 * one epoch on a small image folder; `cmc import-torch` converts its checkpoint; `cmc knn` and `cmc probe` run
 * on it; `cmc export`'s encoder.onnx gives, on the same uint8 images, the PyTorch encoder's eval-mode
 * embeddings within 1e-4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { buildProgram } from '../../bin/cli.ts';
import { ortRun, maxAbsDiff } from '../helpers/ort.ts';
import { writeTinySpec } from '../helpers/tiny_spec.ts';
import { NO_TORCH, pythonHas, pythonWithTorch, runPython } from '../helpers/python_torch.ts';
import { Rng } from '../../core/util/rng.ts';

const root = fileURLToPath(new URL('../../torch_ddp', import.meta.url));

async function imageFolder(dir: string, rng: Rng): Promise<void> {
  for (const [split, per] of [
    ['train', 8],
    ['test', 3],
  ] as const) {
    for (const cls of ['a', 'b']) {
      fs.mkdirSync(path.join(dir, split, cls), { recursive: true });
      for (let i = 0; i < per; i++) {
        const px = Buffer.from(Array.from({ length: 20 * 24 * 3 }, () => rng.int(256)));
        await sharp(px, { raw: { width: 24, height: 20, channels: 3 } })
          .png()
          .toFile(path.join(dir, split, cls, `${i}.png`));
      }
    }
  }
}

/** Run a cmc command in this process; returns what it printed on stdout. */
async function cmc(args: string[]): Promise<string> {
  const out: string[] = [];
  const log = console.log;
  const err = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = () => {};
  try {
    await buildProgram().parseAsync(['node', 'cmc', ...args]);
  } finally {
    console.log = log;
    console.error = err;
  }
  return out.join('\n');
}

test('PyTorch DDP checkpoint -> cmc import-torch -> knn, probe, export; ONNX matches PyTorch eval within 1e-4', async (t) => {
  const py = pythonWithTorch();
  if (!py) return t.skip(NO_TORCH);
  if (!pythonHas(py, ['torchvision', 'PIL']))
    return t.skip('the PyTorch trainer needs torchvision and PIL (apt-get install python3-torchvision python3-pil)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-roundtrip-'));
  try {
    const rng = new Rng(5);
    const data = path.join(dir, 'data');
    await imageFolder(data, rng);
    const spec = writeTinySpec(path.join(dir, 'tiny.json'));
    runPython(
      py,
      [
        '-m',
        'cmc_ddp.train',
        '--nproc_per_node',
        '2',
        '--spec',
        spec,
        '--data_folder',
        data,
        '--epochs',
        '1',
        '--batch_size',
        '8',
        '--nce_k',
        '4',
        '--workers',
        '0',
        '--model_path',
        path.join(dir, 'runs'),
        '--name',
        'tiny_ddp',
      ],
      { cwd: root },
    );
    const torchCkpt = path.join(dir, 'runs', 'tiny_ddp', 'current.safetensors');
    const imported = JSON.parse(await cmc(['import-torch', '--checkpoint', torchCkpt, '--model', 'tiny', '--json']));
    assert.equal(imported.epoch, 1);
    const ckpt = imported.out as string;

    const knn = JSON.parse(
      await cmc([
        'knn',
        '--checkpoint',
        ckpt,
        '--data_folder',
        data,
        '--k',
        '3',
        '--workers',
        '0',
        '--backend',
        'cpu',
        '--json',
      ]),
    );
    assert.equal(knn.n, 6);
    assert.ok(knn.top1 >= 0 && knn.top1 <= 1);
    const probe = JSON.parse(
      await cmc([
        'probe',
        '--checkpoint',
        ckpt,
        '--data_folder',
        data,
        '--layer',
        '1',
        '--epochs',
        '1',
        '--mode',
        'cached',
        '--batch_size',
        '8',
        '--workers',
        '0',
        '--backend',
        'cpu',
        '--out',
        path.join(dir, 'head.json'),
        '--json',
      ]),
    );
    assert.ok(fs.existsSync(probe.head));

    await cmc(['export', '--checkpoint', ckpt, '--out', path.join(dir, 'models'), '--name', 'tiny', '--layer', '2']);
    const onnx = fs.readFileSync(path.join(dir, 'models', 'tiny', 'encoder.onnx'));
    const n = 4;
    const images = Uint8Array.from({ length: n * 16 * 16 * 3 }, () => rng.int(256));
    const u8 = path.join(dir, 'images.u8');
    fs.writeFileSync(u8, images);
    const got = await ortRun(onnx, { images: new ort.Tensor('uint8', images, [n, 16, 16, 3]) });
    const want = JSON.parse(
      runPython(py, ['-m', 'cmc_ddp.encode', '--checkpoint', torchCkpt, '--images', u8, '--count', String(n)], {
        cwd: root,
      }),
    ).embedding as number[][];
    const diff = maxAbsDiff(got.embedding, want.flat());
    assert.ok(diff <= 1e-4, `ONNX vs PyTorch eval-mode embedding: max |diff| ${diff}`);
    t.diagnostic(`ONNX vs PyTorch embedding max |diff| ${diff.toExponential(2)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
