/**
 * `cmc bench profile`: where the time of a training step goes, per kernel (tf.profile), so speed work
 * follows measurements. Prints kernels sorted by total time with call counts and input shapes.
 *
 * tf.customGrad ops (the memory bank's scoring, the losses) are profiled as one pseudo-kernel named after
 * the scope they run in (tf.variableGrads's 'forward') whose time includes the kernels they run, which
 * are listed too. They appear as `customGrad:<scope>`, outside the kernel total and the shares.
 */
import * as tf from '@tensorflow/tfjs-core';
import { getKernel } from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../train/engine/backend.ts';
import { getCmcSpec } from '../core/network/registry.ts';
import { CmcModel } from '../train/model/cmc.ts';
import { MemoryBank } from '../train/loss/memory_bank.ts';
import { SGD } from '../train/optim/sgd.ts';
import { CmcStep } from '../train/trainer/step.ts';
import { Rng } from '../core/util/rng.ts';

export interface KernelProfileRow {
  kernel: string;
  calls: number;
  total_ms: number;
  share: number;
  /** The slowest call's input shapes. */
  worst_shapes: string;
  /** A customGrad op: its time includes kernels listed in other rows (not in kernel_ms, share 0). */
  nested?: boolean;
  worst_ms: number;
}

export async function runProfile(o: {
  model: string;
  imageSize: number;
  batchSize: number;
  backend: BackendName;
  nceK: number;
  nData: number;
  steps: number;
}): Promise<{ step_ms: number; kernel_ms: number; rows: KernelProfileRow[] }> {
  await initBackend(o.backend);
  const spec = getCmcSpec(o.model, { imageSize: o.imageSize, featDim: 128 });
  const model = new CmcModel(spec, 1);
  const rng = new Rng(3);
  const bank = new MemoryBank({ nData: o.nData, featDim: 128, K: o.nceK, rng });
  const step = new CmcStep(
    model,
    bank,
    new SGD(model.trainableVariables(), { lr: 0.03, momentum: 0.9, weightDecay: 1e-4 }),
  );
  const B = o.batchSize;
  const x = tf.tidy(() =>
    tf.mul(tf.randomNormal([B, o.imageSize, o.imageSize, 3], 0, 1, 'float32', 5), 0.5),
  ) as tf.Tensor4D;
  const y = Int32Array.from({ length: B }, (_, i) => i % o.nData);
  await step.run(x, y); // warm-up: operator creation, weight packing
  const agg = new Map<string, KernelProfileRow>();
  let stepMs = 0;
  for (let s = 0; s < o.steps; s++) {
    const t0 = performance.now();
    const info = await tf.profile(async () => {
      await step.run(x, y);
    });
    stepMs += performance.now() - t0;
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      const nested = getKernel(k.name, tf.getBackend()) === undefined;
      const name = nested ? `customGrad:${k.name}` : k.name;
      const r = agg.get(name) ?? { kernel: name, calls: 0, total_ms: 0, share: 0, worst_shapes: '', worst_ms: 0 };
      if (nested) r.nested = true;
      r.calls += 1;
      r.total_ms += ms;
      if (ms > r.worst_ms) {
        r.worst_ms = ms;
        // A fused kernel over every parameter (CmcSgdStep) has hundreds of inputs: show the first few.
        const shapes = k.inputShapes.map((sh) => `[${sh}]`);
        r.worst_shapes =
          shapes.length > 6 ? `${shapes.slice(0, 4).join(' ')} … (${shapes.length} inputs)` : shapes.join(' ');
      }
      agg.set(name, r);
    }
  }
  const rows = [...agg.values()].map((r) => ({
    ...r,
    calls: r.calls / o.steps,
    total_ms: r.total_ms / o.steps,
    worst_ms: r.worst_ms,
  }));
  const kernelMs = rows.reduce((a, r) => a + (r.nested ? 0 : r.total_ms), 0);
  for (const r of rows) r.share = r.nested ? 0 : r.total_ms / kernelMs;
  rows.sort((a, b) => b.total_ms - a.total_ms);
  x.dispose();
  return { step_ms: stepMs / o.steps, kernel_ms: kernelMs, rows };
}
