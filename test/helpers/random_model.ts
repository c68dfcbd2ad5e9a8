/**
 * A CmcModel with random weights AND random batch-norm statistics (gamma, beta, running mean and
 * variance), wrapped as a training checkpoint: export tests need non-trivial BN so folding is exercised.
 */
import { CmcModel } from '../../train/model/cmc.ts';
import { getCmcSpec } from '../../train/spec/registry.ts';
import { paramShapes } from '../../train/spec/shapes.ts';
import type { Checkpoint, TensorEntry } from '../../train/trainer/checkpoint.ts';
import { Rng } from '../../train/util/rng.ts';

export function randomModelCheckpoint(
  arch: string,
  imageSize: number,
  seed: number,
  o: { view?: 'Lab' | 'YCbCr'; name?: string; metrics?: unknown[] } = {},
): { model: CmcModel; checkpoint: Checkpoint } {
  const view = o.view ?? 'Lab';
  const spec = getCmcSpec(arch, { imageSize, featDim: 128, view });
  const model = new CmcModel(spec, seed);
  const rng = new Rng(seed + 1000);
  const arrays = model.toNamedArrays();
  for (const v of spec.views) {
    for (const p of paramShapes(v.encoder)) {
      const a = arrays[`${v.name}.${p.name}`];
      if (p.layer.kind !== 'batchnorm') continue;
      for (let i = 0; i < a.data.length; i++) {
        if (p.role === 'gamma') a.data[i] = rng.range(0.5, 1.5);
        else if (p.role === 'beta') a.data[i] = rng.range(-0.2, 0.2);
        else if (p.role === 'running_mean') a.data[i] = rng.range(-0.2, 0.2);
        else if (p.role === 'running_var') a.data[i] = rng.range(0.5, 2);
      }
    }
  }
  model.loadNamedArrays(arrays);
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
