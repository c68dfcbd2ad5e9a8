/**
 * A CmcModel with random weights AND random batch-norm statistics (gamma, beta, running mean and
 * variance), wrapped as a training checkpoint: export tests need non-trivial BN so folding is exercised.
 */
import { CmcModel } from '../../train/model/cmc.ts';
import { getCmcSpec } from '../../core/network/registry.ts';
import { paramShapes } from '../../core/network/shapes.ts';
import type { Checkpoint, TensorEntry } from '../../core/formats/checkpoint.ts';
import { Rng } from '../../core/util/rng.ts';

/**
 * Draw every batch-norm parameter and statistic of `model` (gamma in [0.5, 1.5], beta and running mean in
 * [-spread, spread], running variance in [varLow, 2]), element by element in parameter order, load them,
 * and return all named arrays.
 */
export function randomizeBatchNorm(
  model: CmcModel,
  rng: Rng,
  o: { spread?: number; varLow?: number } = {},
): Record<string, TensorEntry> {
  const spread = o.spread ?? 0.2,
    varLow = o.varLow ?? 0.5;
  const arrays = model.toNamedArrays();
  for (const v of model.spec.views) {
    for (const p of paramShapes(v.encoder)) {
      if (p.layer.kind !== 'batchnorm') continue;
      const a = arrays[`${v.name}.${p.name}`];
      for (let i = 0; i < a.data.length; i++) {
        if (p.role === 'gamma') a.data[i] = rng.range(0.5, 1.5);
        else if (p.role === 'beta' || p.role === 'running_mean') a.data[i] = rng.range(-spread, spread);
        else if (p.role === 'running_var') a.data[i] = rng.range(varLow, 2);
      }
    }
  }
  model.loadNamedArrays(arrays);
  return arrays;
}

export function randomModelCheckpoint(
  arch: string,
  imageSize: number,
  seed: number,
  o: { view?: 'Lab' | 'YCbCr'; name?: string; metrics?: unknown[] } = {},
): { model: CmcModel; checkpoint: Checkpoint } {
  const view = o.view ?? 'Lab';
  const spec = getCmcSpec(arch, { imageSize, featDim: 128, view });
  const model = new CmcModel(spec, seed);
  const arrays = randomizeBatchNorm(model, new Rng(seed + 1000));
  const tensors: Record<string, TensorEntry> = {};
  for (const [k, t] of Object.entries(arrays)) tensors[`model/${k}`] = t;
  const header = {
    format: 'cmc-train-checkpoint',
    config: { model: arch, image_size: imageSize, feat_dim: 128, view, name: o.name ?? `test_${arch}` },
    spec,
    classNames: ['a', 'b', 'c'],
    metrics: o.metrics ?? [],
  };
  return { model, checkpoint: { header, tensors } };
}
