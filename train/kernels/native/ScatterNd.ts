/**
 * ScatterNd of float32 updates as one addon loop, adding in the wasm kernel's order (bit for bit its result):
 * the memory bank's gradient scatters 131k picked-score gradients into the B×N matrix
 * (train/loss/memory_bank.ts), ~1 ms a call on wasm within a step. Other dtypes go to the wasm kernel.
 */
import {
  scatter_util,
  ScatterNd,
  util,
  type KernelConfig,
  type KernelFunc,
  type ScatterNdAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

export function makeScatterNdConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { indices, updates } = args.inputs as { indices: TensorInfo; updates: TensorInfo };
    const { shape } = args.attrs as unknown as ScatterNdAttrs;
    if (
      updates.dtype !== 'float32' ||
      updates.shape.length === 0 ||
      indices.dtype !== 'int32' ||
      util.sizeFromShape(shape) === 0
    )
      return stock!(args) as TensorInfo;
    const { sliceRank, numUpdates, sliceSize, strides } = scatter_util.calculateShapes(
      updates as never,
      indices as never,
      shape,
    );
    if (sliceRank < 1 || sliceRank > 8) return stock!(args) as TensorInfo;
    const backend = args.backend as HeapBackend;
    const out = backend.makeOutput([...shape], 'float32');
    requireNativeAddon().scatterNd(
      backend.typedArrayFromHeap(indices) as Int32Array,
      backend.typedArrayFromHeap(updates) as Float32Array,
      backend.typedArrayFromHeap(out) as Float32Array,
      [numUpdates, sliceRank, sliceSize, ...strides],
    );
    return out;
  };
  return { kernelName: ScatterNd, backendName: 'native', kernelFunc };
}
