/**
 * `cmc bench train-step`: time one full CMC training step (both encoders forward and backward, memory
 * bank scoring and update, SGD) after warm-up, on random inputs; optionally run the PyTorch reference
 * (bench/torch_train_step.py, reading the same network spec JSON) side by side with the same threads.
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, type BackendName } from '../train/engine/backend.ts';
import { getCmcSpec } from '../core/network/registry.ts';
import { trainStepFlopsPerImage } from '../core/network/flops.ts';
import { CmcModel } from '../train/model/cmc.ts';
import { MemoryBank } from '../train/loss/memory_bank.ts';
import { SGD } from '../train/optim/sgd.ts';
import { CmcStep } from '../train/trainer/step.ts';
import { Rng } from '../core/util/rng.ts';
import { countReadbacks } from '../train/engine/readbacks.ts';
import { setFusedKernels } from '../train/kernels/fused.ts';

export interface TrainStepBenchOptions {
  model: string;
  imageSize: number;
  batchSize: number;
  backend: BackendName;
  nceK: number;
  nData: number;
  featDim: number;
  softmax: boolean;
  /** Memory-bank scoring path (MemoryBankOptions.scoring); the PyTorch reference takes the same. */
  scoring?: 'auto' | 'bank' | 'gather';
  warmup: number;
  steps: number;
  /**
   * Also time each step with the fused kernels off (train/kernels/fused.ts), alternating step by step in
   * this process, so a busy machine slows both alike.
   */
  compareUnfused?: boolean;
  /** Run the PyTorch reference too (needs python3 with torch). */
  torch: boolean;
  /** Threads for PyTorch; default = the threads our backend uses. */
  torchThreads?: number;
  python: string;
}

export interface TrainStepBenchResult {
  framework: 'cmc-ts';
  backend: string;
  device: string;
  threads: number;
  arch: string;
  image_size: number;
  batch_size: number;
  nce_k: number;
  /** The memory-bank scoring path the step took ('bank' or 'gather'). */
  scoring: 'bank' | 'gather';
  ms_per_step: number;
  ms_per_step_all: number[];
  /** Reads of tensor data back from the backend per timed step (train/engine/readbacks.ts). */
  readbacks_per_step: number;
  /** With compareUnfused: the median step with fusion off, measured alternately with ms_per_step. */
  unfused_ms_per_step?: number;
  unfused_ms_per_step_all?: number[];
  /** Median over timed steps of (unfused / fused) time of the same step: robust to load that drifts. */
  unfused_ratio?: number;
  images_per_s: number;
  effective_gflops: number;
  peak_rss_mb: number;
  peak_tensor_mb: number;
  param_count: number;
  loss_first: number;
  loss_last: number;
  torch?: Record<string, unknown> & { ms_per_step?: number };
  ratio_vs_torch?: number;
}

const median = (a: number[]) => {
  const s = a.slice().sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export async function runTrainStepBench(
  o: TrainStepBenchOptions,
  log: (s: string) => void = console.error,
): Promise<TrainStepBenchResult> {
  const info = await initBackend(o.backend);
  const spec = getCmcSpec(o.model, { imageSize: o.imageSize, featDim: o.featDim });
  const model = new CmcModel(spec, 1);
  const rng = new Rng(2);
  const bank = new MemoryBank({
    nData: o.nData,
    featDim: o.featDim,
    K: o.nceK,
    softmax: o.softmax,
    scoring: o.scoring,
    rng,
    log,
  });
  const sgd = new SGD(model.trainableVariables(), { lr: 0.03, momentum: 0.9, weightDecay: 1e-4 });
  const step = new CmcStep(model, bank, sgd);
  const B = o.batchSize;
  const px = new Float32Array(B * o.imageSize * o.imageSize * 3);
  for (let i = 0; i < px.length; i++) px[i] = rng.normal() * 0.5;
  const x = tf.tensor4d(px, [B, o.imageSize, o.imageSize, 3]);
  let peakRss = 0;
  let peakTensor = 0;
  const times: number[] = [];
  const unfusedTimes: number[] = [];
  const losses: number[] = [];
  const total = o.warmup + o.steps;
  const readbacks = countReadbacks();
  let reads = 0; // in the timed steps (warm-up steps estimate Z, a read each)
  for (let s = 0; s < total; s++) {
    const y = new Int32Array(B);
    for (let i = 0; i < B; i++) y[i] = (s * B + i) % o.nData;
    const readsBefore = readbacks.count;
    const t0 = performance.now();
    const r = await step.run(x, y);
    const dt = performance.now() - t0;
    if (s >= o.warmup) reads += readbacks.count - readsBefore;
    losses.push(r.loss);
    if (!Number.isFinite(r.loss)) throw new Error(`non-finite loss ${r.loss} at bench step ${s}`);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    peakTensor = Math.max(peakTensor, tf.memory().numBytes);
    if (s >= o.warmup) times.push(dt);
    log(
      `[bench] step ${s + 1}/${total}${s < o.warmup ? ' (warm-up)' : ''}: ${dt.toFixed(0)} ms, loss ${r.loss.toFixed(4)}`,
    );
    if (o.compareUnfused) {
      setFusedKernels(false);
      try {
        const t1 = performance.now();
        await step.run(x, y);
        const du = performance.now() - t1;
        if (s >= o.warmup) unfusedTimes.push(du);
        log(`[bench]   same step with fusion off: ${du.toFixed(0)} ms`);
      } finally {
        setFusedKernels(true);
      }
    }
  }
  const readbacksPerStep = reads / o.steps;
  readbacks.stop();
  const ms = median(times);
  const flops = trainStepFlopsPerImage(spec) * B;
  const result: TrainStepBenchResult = {
    framework: 'cmc-ts',
    backend: info.name,
    device: info.device,
    threads:
      info.name === 'wasm' || info.name === 'native'
        ? (await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount()
        : info.name === 'cpu'
          ? 1
          : os.availableParallelism(),
    arch: o.model,
    image_size: o.imageSize,
    batch_size: B,
    nce_k: bank.K,
    scoring: bank.scoringPath(B),
    ms_per_step: ms,
    ms_per_step_all: times,
    readbacks_per_step: readbacksPerStep,
    ...(o.compareUnfused
      ? {
          unfused_ms_per_step: median(unfusedTimes),
          unfused_ms_per_step_all: unfusedTimes,
          unfused_ratio: median(unfusedTimes.map((u, i) => u / times[i])),
        }
      : {}),
    images_per_s: (B * 1000) / ms,
    effective_gflops: flops / (ms * 1e6),
    peak_rss_mb: peakRss / 2 ** 20,
    peak_tensor_mb: peakTensor / 2 ** 20,
    param_count: model.numParams(),
    loss_first: losses[0],
    loss_last: losses[losses.length - 1],
  };
  x.dispose();
  model.dispose();
  bank.dispose();
  sgd.dispose();
  if (o.torch) {
    const threads = o.torchThreads ?? result.threads;
    result.torch = runTorchReference(spec, o, threads, result.param_count, log);
    if (result.torch.scoring !== undefined && result.torch.scoring !== result.scoring) {
      result.torch = {
        error: `PyTorch reference took the ${String(result.torch.scoring)} scoring path, ours ${result.scoring}: not comparable`,
      };
    } else if (typeof result.torch.ms_per_step === 'number') result.ratio_vs_torch = ms / result.torch.ms_per_step;
  }
  return result;
}

/** The PyTorch script builds the same network from the spec JSON and refuses to run if its parameter count differs. */
function runTorchReference(
  spec: unknown,
  o: TrainStepBenchOptions,
  threads: number,
  params: number,
  log: (s: string) => void,
): Record<string, unknown> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const script = path.join(here, 'torch_train_step.py');
  const specFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-bench-')), 'spec.json');
  fs.writeFileSync(specFile, JSON.stringify(spec));
  const args = [
    script,
    '--spec',
    specFile,
    '--batch_size',
    String(o.batchSize),
    '--nce_k',
    String(o.nceK),
    '--n_data',
    String(o.nData),
    '--threads',
    String(threads),
    '--warmup',
    String(o.warmup),
    '--steps',
    String(o.steps),
    '--expect_params',
    String(params),
    '--scoring',
    o.scoring ?? 'auto',
    ...(o.softmax ? ['--softmax'] : []),
  ];
  log(`[bench] PyTorch reference: ${o.python} ${args.join(' ')}`);
  const r = spawnSync(o.python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.error || r.status !== 0) {
    return {
      error: `PyTorch reference failed (${r.error?.message ?? `exit ${r.status}`}); it needs ${o.python} with torch (Debian: apt-get install python3-torch)`,
    };
  }
  const line = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) return { error: 'PyTorch reference printed no JSON result' };
  return JSON.parse(line) as Record<string, unknown>;
}
