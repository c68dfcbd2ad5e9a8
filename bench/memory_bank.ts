/**
 * `cmc bench memory-bank`: the memory-bank part of a CMC step on its own — scores of both views against
 * the other view's memory (B×(K+1) sampled rows, or the whole bank when N ≤ B·(K+1)), the NCE or softmax
 * loss, its gradient w.r.t. the embeddings, and the momentum update — next to the same computation in
 * PyTorch (bench/torch_train_step.py --memory_bank_only) with the same threads.
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, type BackendName } from '../train/engine/backend.ts';
import { MemoryBank } from '../train/loss/memory_bank.ts';
import { nceLoss, softmaxLoss } from '../train/loss/nce.ts';
import { Rng } from '../core/util/rng.ts';

export interface MemoryBankBenchOptions {
  backend: BackendName;
  batchSize: number;
  nceK: number;
  featDim: number;
  nData: number;
  softmax: boolean;
  /** Scoring path (MemoryBankOptions.scoring); the PyTorch reference takes the same. */
  scoring?: 'auto' | 'bank' | 'gather';
  warmup: number;
  steps: number;
  torch: boolean;
  python: string;
  torchThreads?: number;
}

export async function runMemoryBankBench(o: MemoryBankBenchOptions, log: (s: string) => void = console.error) {
  const info = await initBackend(o.backend);
  const rng = new Rng(4);
  const bank = new MemoryBank({
    nData: o.nData,
    featDim: o.featDim,
    K: o.nceK,
    softmax: o.softmax,
    scoring: o.scoring,
    rng,
    log,
  });
  const unit = (seed: number) =>
    tf.tidy(() => {
      const x = tf.randomNormal([o.batchSize, o.featDim], 0, 1, 'float32', seed);
      return tf.div(x, tf.norm(x, 2, 1, true)) as tf.Tensor2D;
    });
  const times: number[] = [];
  for (let s = 0; s < o.warmup + o.steps; s++) {
    const l = unit(2 * s + 1);
    const ab = unit(2 * s + 2);
    const y = Int32Array.from({ length: o.batchSize }, (_, i) => (s * o.batchSize + i) % o.nData);
    const t0 = performance.now();
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => {
      const { outL, outAb } = bank.forward(a as tf.Tensor2D, b as tf.Tensor2D, y);
      const loss = (t: tf.Tensor2D) => (o.softmax ? softmaxLoss(t) : nceLoss(t, o.nData));
      return tf.add(loss(outL), loss(outAb));
    })([l, ab]);
    bank.update(l, ab, y);
    await bank.resolvePendingZ();
    await Promise.all(g.map((t) => t.data()));
    const dt = performance.now() - t0;
    tf.dispose([l, ab, ...g]);
    if (s >= o.warmup) times.push(dt);
  }
  bank.dispose();
  const sorted = times.slice().sort((a, b) => a - b);
  const ms = sorted[sorted.length >> 1];
  const threads = /(\d+) threads?/.exec(info.device)?.[1];
  const result: Record<string, unknown> = {
    framework: 'cmc-ts',
    backend: info.name,
    device: info.device,
    threads: threads ? Number(threads) : 1,
    batch_size: o.batchSize,
    nce_k: bank.K,
    feat_dim: o.featDim,
    n_data: o.nData,
    path: bank.scoringPath(o.batchSize),
    memory_bank_ms: ms,
    memory_bank_ms_all: times,
  };
  if (o.torch) {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_train_step.py');
    const args = [
      script,
      '--memory_bank_only',
      '--batch_size',
      String(o.batchSize),
      '--nce_k',
      String(o.nceK),
      '--feat_dim',
      String(o.featDim),
      '--n_data',
      String(o.nData),
      '--threads',
      String(o.torchThreads ?? result.threads),
      '--warmup',
      String(o.warmup),
      '--steps',
      String(o.steps),
      '--scoring',
      o.scoring ?? 'auto',
      ...(o.softmax ? ['--softmax'] : []),
    ];
    log(`[bench] PyTorch reference: ${o.python} ${args.join(' ')}`);
    const r = spawnSync(o.python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const line = r.stdout
      ?.trim()
      .split('\n')
      .filter((x) => x.startsWith('{'))
      .pop();
    result.torch = line ? JSON.parse(line) : { error: `PyTorch reference failed (exit ${r.status})` };
    const tm = (result.torch as { memory_bank_ms?: number }).memory_bank_ms;
    if (typeof tm === 'number') result.ratio_vs_torch = ms / tm;
  }
  return result;
}
