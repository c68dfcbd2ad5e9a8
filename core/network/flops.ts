/**
 * Multiply-accumulate count of one forward pass, from the spec (conv and linear layers; the rest is
 * memory-bound and left out, as is usual for GFLOPS figures). Portable.
 */
import type { CmcSpec, EncoderSpec } from './layers.ts';
import { layerOutputShape, type Shape } from './shapes.ts';

export function encoderForwardMacs(encoder: EncoderSpec, imageSize = encoder.imageSize): number {
  let macs = 0;
  const visit = (layer: Parameters<NonNullable<Parameters<typeof layerOutputShape>[2]>>[0], input: Shape) => {
    if (layer.kind === 'conv2d') {
      const out = layerOutputShape(layer, input);
      macs += out[0] * out[1] * out[2] * layer.kernel * layer.kernel * input[2];
    } else if (layer.kind === 'linear') {
      macs += input[0] * layer.units;
    }
  };
  let shape: Shape = [imageSize, imageSize, encoder.inChannels];
  for (const block of encoder.blocks) for (const layer of block.layers) shape = layerOutputShape(layer, shape, visit);
  return macs;
}

/**
 * FLOPs of one CMC training step per image: forward (2 per MAC) plus backward (~2x forward: input and
 * weight gradients), for every view. The convention used by "effective GFLOPS" in the benchmarks.
 */
export function trainStepFlopsPerImage(spec: CmcSpec): number {
  return spec.views.reduce((a, v) => a + 3 * 2 * encoderForwardMacs(v.encoder, spec.imageSize), 0);
}
