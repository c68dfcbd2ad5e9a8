/**
 * The PyTorch reference of `cmc bench train-step --torch` (bench/torch_train_step.py) takes the same
 * memory-bank scoring path as MemoryBank.scoringPath, so the ratio compares engines, not algorithms; and
 * `--scoring` forces either path on its side. Skipped when no python with torch is found
 * (CMC_TORCH_PYTHON, else /usr/bin/python3).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../../train/engine/backend.ts';
import { MemoryBank } from '../../train/loss/memory_bank.ts';
import { Rng } from '../../core/util/rng.ts';

const python = process.env.CMC_TORCH_PYTHON ?? '/usr/bin/python3';
const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bench/torch_train_step.py');
const hasTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

function torchPath(o: { n: number; b: number; k: number; scoring: string }): string {
  const r = spawnSync(
    python,
    [
      script,
      '--memory_bank_only',
      '--n_data',
      String(o.n),
      '--batch_size',
      String(o.b),
      '--nce_k',
      String(o.k),
      '--feat_dim',
      '8',
      '--warmup',
      '0',
      '--steps',
      '1',
      '--scoring',
      o.scoring,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { scoring: string }).scoring;
}

test(
  'the PyTorch reference scores the memory bank by the same path as ours',
  { skip: hasTorch ? false : `no torch in ${python}` },
  async () => {
    await initBackend('cpu', { quiet: true });
    // N = B·(K+1) is the last N of the bank path (one python start per case: keep them few)
    for (const [n, b, k] of [
      [40, 4, 9],
      [41, 4, 9],
    ]) {
      const ours = new MemoryBank({ nData: n, featDim: 8, K: k, rng: new Rng(1), log: () => {} });
      try {
        assert.equal(torchPath({ n, b, k, scoring: 'auto' }), ours.scoringPath(b), `N=${n} B=${b} K=${k}`);
      } finally {
        ours.dispose();
      }
    }
    assert.equal(torchPath({ n: 40, b: 4, k: 9, scoring: 'gather' }), 'gather');
    assert.equal(torchPath({ n: 41, b: 4, k: 9, scoring: 'bank' }), 'bank');
  },
);
