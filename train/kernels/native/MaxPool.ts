/**
 * MaxPool and MaxPoolGrad on oneDNN's max pooling, NHWC. For the gradient oneDNN routes each window's dy
 * through the workspace its forward pass writes, so the addon runs the forward again (training mode, into
 * scratch buffers) before the backward. As in the JS kernel (../wasm/MaxPoolGrad.ts), the cpu backend and
 * PyTorch, the first maximum of a window (row-major) receives dy and padding never wins. Dilated pools,
 * non-float32 inputs and geometries oneDNN would read differently go to wasm.
 *
 * Measured on a [32,32,32,24] map, 3x3 stride 2 (busy 2-core machine, medians): the gradient 3-7 ms
 * against 44 ms for the JS kernel (one thread); the forward as fast as XNNPACK's on one thread, and
 * 0.6 ms against 4-9 ms for XNNPACK's two threads, which stall there (see the addon's one-thread rule).
 */
import {
  backend_util,
  MaxPool,
  MaxPoolGrad,
  type KernelConfig,
  type KernelFunc,
  type MaxPoolAttrs,
  type MaxPoolGradAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

/** The addon's pooling dims (N IH IW C OH OW KH KW SH SW PT PL PB PR), or null where oneDNN does not apply. */
function poolDims(x: TensorInfo, attrs: MaxPoolAttrs | MaxPoolGradAttrs): number[] | null {
  const { filterSize, strides, pad, dimRoundingMode } = attrs;
  if (x.dtype !== 'float32' || x.shape.length !== 4 || x.shape.some((d) => d <= 0)) return null;
  const info = backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const { top, left, bottom, right } = info.padInfo;
  // oneDNN derives the output size as (in − k + pads)/stride + 1; take only calls where that is tfjs's.
  const fits = (i: number, k: number, s: number, a: number, b: number, o: number) =>
    o > 0 && a >= 0 && b >= 0 && a < k && b < k && Math.floor((i - k + a + b) / s) + 1 === o;
  if (
    !fits(info.inHeight, info.filterHeight, info.strideHeight, top, bottom, info.outHeight) ||
    !fits(info.inWidth, info.filterWidth, info.strideWidth, left, right, info.outWidth)
  )
    return null;
  return [
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
  ];
}

export function makeMaxPoolConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const dims = poolDims(x, args.attrs as unknown as MaxPoolAttrs);
    if (!dims) return stock!(args) as TensorInfo;
    const backend = args.backend as HeapBackend;
    const y = backend.makeOutput([dims[0], dims[4], dims[5], dims[3]], 'float32');
    const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    requireNativeAddon().maxPool(v(x), v(y), dims);
    return y;
  };
  return { kernelName: MaxPool, backendName: 'native', kernelFunc };
}

export function makeMaxPoolGradConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
    const dims = poolDims(input, args.attrs as unknown as MaxPoolGradAttrs);
    if (!dims || dy.dtype !== 'float32') return stock!(args) as TensorInfo;
    const backend = args.backend as HeapBackend;
    const dx = backend.makeOutput([...input.shape], 'float32');
    const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    requireNativeAddon().maxPoolBackward(v(input), v(dy), v(dx), dims);
    return dx;
  };
  return { kernelName: MaxPoolGrad, backendName: 'native', kernelFunc };
}
