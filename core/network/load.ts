/**
 * `--model`: a registry architecture name, or a CmcSpec JSON file (a custom network in the description
 * language of layers.ts). Node-only (reads the file); the registry itself stays portable.
 */
import fs from 'node:fs';
import type { CmcSpec } from './layers.ts';
import { getCmcSpec } from './registry.ts';
import { checkSpecInput } from './input.ts';

export function loadCmcSpec(
  model: string,
  o: { imageSize: number; featDim: number; view?: 'Lab' | 'YCbCr'; views?: number; viewNames?: readonly string[] },
): CmcSpec {
  if (!model.endsWith('.json'))
    return getCmcSpec(model, { imageSize: o.imageSize, featDim: o.featDim, view: o.view, views: o.viewNames });
  let spec: CmcSpec;
  try {
    spec = JSON.parse(fs.readFileSync(model, 'utf8')) as CmcSpec;
  } catch (e) {
    throw new Error(`--model ${model}: cannot read the network spec (${(e as Error).message})`, { cause: e });
  }
  if (!Array.isArray(spec.views) || spec.views.length < 1 || (o.views !== undefined && spec.views.length !== o.views)) {
    throw new Error(`--model ${model}: a CmcSpec with ${o.views ?? 'one or more'} views is expected`);
  }
  checkSpecInput(spec, model);
  if (spec.imageSize !== o.imageSize)
    throw new Error(`--model ${model} is for ${spec.imageSize} px images but --image_size is ${o.imageSize}`);
  return spec;
}
