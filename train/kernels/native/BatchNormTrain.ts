/**
 * The fused training-mode batch norm (../fused.ts BatchNormTrain, BatchNormTrainGrad; semantics in
 * ../wasm/BatchNormTrain.ts) on oneDNN's batch normalization, forward and backward, over the NHWC map as
 * [N, C, H, W] (an [N, C] input as H = W = 1). oneDNN's backward has no inputs for gradients reaching the
 * batch mean and variance outputs, so a call where those are not all zero (nothing in training uses the
 * statistics but the running averages) goes to the wasm kernel, as do non-float32 inputs and other ranks.
 * Measured on one thread (busy 2-core machine, medians): [32,32,32,24] forward 0.8 ms and gradient 1.2 ms,
 * against 18 and 23 ms for the wasm backend's JS loops.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { BatchNormTrain, BatchNormTrainGrad } from '../fused.ts';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

/** [N, C, H, W] of a rank-4 NHWC or rank-2 [N, C] float32 tensor; null for anything else. */
function nchwDims(ts: TensorInfo[], x: TensorInfo): number[] | null {
  if (!ts.every((t) => t.dtype === 'float32')) return null;
  const s = x.shape;
  if (s.some((d) => d <= 0)) return null;
  if (s.length === 4) return [s[0], s[3], s[1], s[2]];
  if (s.length === 2) return [s[0], s[1], 1, 1];
  return null;
}

export function makeBatchNormTrainConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x, scale, offset } = args.inputs as { x: TensorInfo; scale: TensorInfo; offset: TensorInfo };
    const { varianceEpsilon } = args.attrs as { varianceEpsilon: number };
    const dims = nchwDims([x, scale, offset], x);
    if (!dims) return stock!(args) as TensorInfo[];
    const c = dims[1];
    const backend = args.backend as HeapBackend;
    const y = backend.makeOutput(x.shape, 'float32');
    const mean = backend.makeOutput([c], 'float32');
    const variance = backend.makeOutput([c], 'float32');
    const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    requireNativeAddon().batchNormForward(v(x), v(scale), v(offset), v(y), v(mean), v(variance), dims, varianceEpsilon);
    return [y, mean, variance];
  };
  return { kernelName: BatchNormTrain, backendName: 'native', kernelFunc };
}

export function makeBatchNormTrainGradConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { dy, x, mean, variance, scale, dmean, dvariance } = args.inputs as Record<string, TensorInfo>;
    const { varianceEpsilon } = args.attrs as { varianceEpsilon: number };
    const dims = nchwDims([dy, x, mean, variance, scale, dmean, dvariance], x);
    const backend = args.backend as HeapBackend;
    const allZero = (t: TensorInfo) => (backend.typedArrayFromHeap(t) as Float32Array).every((z) => z === 0);
    if (!dims || !allZero(dmean) || !allZero(dvariance)) return stock!(args) as TensorInfo[];
    const c = dims[1];
    const dx = backend.makeOutput(x.shape, 'float32');
    const dScale = backend.makeOutput([c], 'float32');
    const dOffset = backend.makeOutput([c], 'float32');
    const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    requireNativeAddon().batchNormBackward(
      v(dy),
      v(x),
      v(mean),
      v(variance),
      v(scale),
      v(dx),
      v(dScale),
      v(dOffset),
      dims,
      varianceEpsilon,
    );
    return [dx, dScale, dOffset];
  };
  return { kernelName: BatchNormTrainGrad, backendName: 'native', kernelFunc };
}
