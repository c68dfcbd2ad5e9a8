/**
 * Slice of float32 tensors (rank <= 6, non-contiguous blocks) as one addon copy, bit for bit the wasm
 * kernel's (../wasm/Slice.ts): one channel of the [32,64,64,3] input batch (train/model/cmc.ts), 131k runs
 * of one value, took ~1.7 ms a call in its JS loop within a step. Contiguous slices (one `set` there),
 * other dtypes and higher ranks go to the wasm kernel.
 */
import { Slice, slice_util, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

const RANK = 6;

export function makeSliceConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
    const [b, s] = slice_util.parseSliceParams(x as never, begin, size);
    if (
      x.dtype !== 'float32' ||
      x.shape.length > RANK ||
      slice_util.isSliceContinous(x.shape, b, s) ||
      util.sizeFromShape(s) === 0
    )
      return stock!(args) as TensorInfo;
    const backend = args.backend as HeapBackend;
    const out = backend.makeOutput(s, 'float32');
    const pad = (v: readonly number[], fill: number) => [...Array<number>(RANK - v.length).fill(fill), ...v];
    requireNativeAddon().slice(
      backend.typedArrayFromHeap(x) as Float32Array,
      backend.typedArrayFromHeap(out) as Float32Array,
      [...pad(x.shape, 1), ...pad(b, 0), ...pad(s, 1)],
    );
    return out;
  };
  return { kernelName: Slice, backendName: 'native', kernelFunc };
}
