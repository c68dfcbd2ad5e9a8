/**
 * The PyTorch DDP trainer (torch_ddp/): a 2-process gloo run on CPU with global batches of 8, 8 and 7 (the
 * last split 4 + 3 over the ranks) takes the same 3 steps as a one-process run — losses within 1e-5, the same
 * memory bank (and weights) — and every rank holds the same bank; a description the interpreter cannot
 * build is refused with the layer named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTinySpec, tinySpec } from '../helpers/tiny_spec.ts';
import { NO_TORCH, pythonWithTorch, runPython } from '../helpers/python_torch.ts';

const root = fileURLToPath(new URL('../../torch_ddp', import.meta.url));

test('2-process DDP (gloo, CPU) matches one process on the same global batches for 3 steps', (t) => {
  const py = pythonWithTorch();
  if (!py) return t.skip(NO_TORCH);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-ddp-'));
  try {
    const spec = writeTinySpec(path.join(dir, 'tiny.json'));
    const r = JSON.parse(
      runPython(py, [
        path.join(root, 'checks/ddp_equivalence.py'),
        '--spec',
        spec,
        '--world',
        '2',
        '--batches',
        '8,8,7',
      ]),
    );
    assert.equal(r.losses_ddp.length, 3);
    r.losses_one_process.forEach((l: number, i: number) => {
      assert.ok(Number.isFinite(l), `step ${i + 1}: loss ${l}`);
      assert.ok(
        Math.abs(r.losses_ddp[i] - l) <= 1e-5 * Math.max(1, Math.abs(l)),
        `step ${i + 1}: DDP loss ${r.losses_ddp[i]} vs one process ${l}`,
      );
    });
    assert.ok(r.bank_max_diff <= 1e-5, `memory bank differs from the one-process run by ${r.bank_max_diff}`);
    assert.ok(r.weights_max_diff <= 1e-5, `weights differ from the one-process run by ${r.weights_max_diff}`);
    assert.equal(r.bank_max_diff_between_ranks, 0, 'every rank holds the same bank');
    assert.equal(r.weights_max_diff_between_ranks, 0, 'every rank holds the same weights');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a description with a layer the PyTorch interpreter does not support is refused with the layer named', (t) => {
  const py = pythonWithTorch();
  if (!py) return t.skip(NO_TORCH);
  const spec = tinySpec();
  (spec.views[1].encoder.blocks[1].layers as unknown[]).splice(1, 0, { kind: 'dropout', name: 'fc.drop', p: 0.5 });
  const code = `import json, sys; sys.path.insert(0, ${JSON.stringify(root)})\nfrom cmc_ddp.spec import CMC\nCMC(json.loads(sys.argv[1]))`;
  assert.throws(
    () => runPython(py, ['-c', code, JSON.stringify(spec)]),
    /view ab block 2 \(fc\): the PyTorch interpreter does not support layer kind 'dropout' \(layer 'fc\.drop'\)/,
  );
});
