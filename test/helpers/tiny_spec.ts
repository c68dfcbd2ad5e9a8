/**
 * A tiny CmcSpec (conv, BN, ReLU, maxpool, flatten, linear, l2norm at 16 px) written as JSON for
 * `--model spec.json`: the cpu reference backend's convolution gradients are too slow for alexnet_small.
 * Two views (L, ab on the colour input) by default; `views` declares more (an input layout, views.ts).
 */
import fs from 'node:fs';
import { layoutViews } from '../../core/preprocess/views.ts';

export function tinySpec(o: { convStride?: number; views?: string[] } = {}) {
  const encoder = (inChannels: number) => ({
    arch: 'tiny',
    inChannels,
    imageSize: 16,
    blocks: [
      {
        name: 'c1',
        layers: [
          {
            kind: 'conv2d',
            name: 'c1.0',
            filters: 8,
            kernel: 3,
            stride: o.convStride ?? 2,
            pad: 1,
            bias: false,
            init: 'kaiming_uniform',
          },
          { kind: 'batchnorm', name: 'c1.1', eps: 1e-5, momentum: 0.1 },
          { kind: 'relu' },
          { kind: 'maxpool', size: 3, stride: 2, pad: 0 },
        ],
      },
      {
        name: 'fc',
        layers: [
          { kind: 'flatten' },
          { kind: 'linear', name: 'fc.0', units: 16, bias: true, init: 'pytorch' },
          { kind: 'l2norm' },
        ],
      },
    ],
  });
  if (o.views) {
    const views = layoutViews(o.views).map(({ def, channels }) => ({
      name: def.name,
      channels,
      encoder: encoder(channels.length),
    }));
    return { arch: 'tiny', imageSize: 16, featDim: 16, input: o.views, views };
  }
  return {
    arch: 'tiny',
    imageSize: 16,
    featDim: 16,
    views: [
      { name: 'L', channels: [0], encoder: encoder(1) },
      { name: 'ab', channels: [1, 2], encoder: encoder(2) },
    ],
  };
}

export function writeTinySpec(file: string, o: { convStride?: number; views?: string[] } = {}): string {
  fs.writeFileSync(file, JSON.stringify(tinySpec(o)));
  return file;
}
