/**
 * Model names accepted by the CLI (`--model`) and checkpoints, and the one place that turns a name into a
 * CmcSpec. Portable: no tfjs and no node imports.
 *
 *   getCmcSpec('resnet50v1', { imageSize: 224, featDim: 128 }).views[1].encoder.inChannels; // 2
 */
import type { CmcSpec } from './layers.ts';
import { cmcSpec, RESNET_DEPTHS, RESNET_WIDTHS, type CmcSpecOptions } from './networks.ts';

/**
 * 'alexnet' (seed, 224 px), 'alexnet_small' (32/64/96 px), 'alexnet_mini' (alexnet_small at half width, 512-wide fc), 'resnet{18,50,101}v{1,2,3}' (seed, width 0.5/1/2)
 * and the same ResNets with '_small' (3x3 stride-1 stem, no maxpool, for 32-96 px images).
 */
export const ARCHS: readonly string[] = Object.freeze([
  'alexnet',
  'alexnet_small',
  'alexnet_mini',
  ...RESNET_DEPTHS.flatMap((d) => RESNET_WIDTHS.map((w) => `resnet${d}${w}`)),
  ...RESNET_DEPTHS.flatMap((d) => RESNET_WIDTHS.map((w) => `resnet${d}${w}_small`)),
]);

/** The CmcSpec for a model name; throws "Unknown model 'x'; expected one of: ..." for other names. */
export function getCmcSpec(name: string, opts: CmcSpecOptions): CmcSpec {
  if (!ARCHS.includes(name)) throw new Error(`Unknown model '${name}'; expected one of: ${ARCHS.join(', ')}`);
  return cmcSpec(name, opts);
}
