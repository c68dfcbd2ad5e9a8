/**
 * MaxPoolGrad on oneDNN's max pooling backward. oneDNN routes each window's dy through the workspace its
 * forward pass writes, so the addon runs the forward again (training mode, into scratch buffers) before
 * the backward; together still a fraction of the JS kernel (../wasm/MaxPoolGrad.ts). Like it, and like
 * the cpu backend and PyTorch, the first maximum of a window (row-major) receives dy and padding never
 * wins. Dilated pools, non-float32 inputs and geometries oneDNN would read differently go to wasm.
 */
import {
  backend_util,
  MaxPoolGrad,
  type KernelConfig,
  type KernelFunc,
  type MaxPoolGradAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

export function makeMaxPoolGradConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as MaxPoolGradAttrs;
    if (input.dtype !== 'float32' || dy.dtype !== 'float32' || input.shape.some((d) => d <= 0))
      return stock!(args) as TensorInfo;
    const info = backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      filterSize,
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    const { top, left, bottom, right } = info.padInfo;
    // oneDNN derives the output size as (in − k + pads)/stride + 1; take only calls where that is tfjs's.
    const fits = (i: number, k: number, s: number, a: number, b: number, o: number) =>
      a >= 0 && b >= 0 && a < k && b < k && Math.floor((i - k + a + b) / s) + 1 === o;
    if (
      dy.shape.some((d) => d <= 0) ||
      !fits(info.inHeight, info.filterHeight, info.strideHeight, top, bottom, info.outHeight) ||
      !fits(info.inWidth, info.filterWidth, info.strideWidth, left, right, info.outWidth)
    )
      return stock!(args) as TensorInfo;
    const backend = args.backend as HeapBackend;
    const dx = backend.makeOutput([...input.shape], 'float32');
    const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    requireNativeAddon().maxPoolBackward(v(input), v(dy), v(dx), [
      info.batchSize,
      info.inHeight,
      info.inWidth,
      info.inChannels,
      info.outHeight,
      info.outWidth,
      info.filterHeight,
      info.filterWidth,
      info.strideHeight,
      info.strideWidth,
      top,
      left,
      bottom,
      right,
    ]);
    return dx;
  };
  return { kernelName: MaxPoolGrad, backendName: 'native', kernelFunc };
}
