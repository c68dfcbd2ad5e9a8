/**
 * GatherV2 of float32 values with int32 indices and batchDims 0 as one addon call (a copy, so bit for bit
 * the wasm kernel's, ../wasm/GatherV2.ts). The memory bank's picked scores (131k values out of the
 * flattened B×N score matrix, train/loss/memory_bank.ts) took ~3.5 ms a call in that kernel's JS loop.
 * Other dtypes and batched gathers go to the wasm kernel.
 */
import {
  backend_util,
  GatherV2,
  util,
  type GatherV2Attrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

export function makeGatherV2Config(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as GatherV2Attrs;
    if (x.dtype !== 'float32' || indices.dtype !== 'int32' || (batchDims ?? 0) !== 0) return stock!(args) as TensorInfo;
    const parsedAxis = util.parseAxisParam(axis, x.shape)[0];
    const info = backend_util.segment_util.collectGatherOpShapeInfo(x as never, indices as never, parsedAxis, 0);
    const backend = args.backend as HeapBackend;
    const out = backend.makeOutput(info.outputShape, 'float32');
    if (util.sizeFromShape(info.outputShape) === 0) return out;
    // Views after makeOutput: allocating can grow (and detach) the wasm heap.
    requireNativeAddon().gather(
      backend.typedArrayFromHeap(x) as Float32Array,
      backend.typedArrayFromHeap(indices) as Int32Array,
      backend.typedArrayFromHeap(out) as Float32Array,
      [info.outerSize, info.dimSize, info.sliceSize],
    );
    return out;
  };
  return { kernelName: GatherV2, backendName: 'native', kernelFunc };
}
