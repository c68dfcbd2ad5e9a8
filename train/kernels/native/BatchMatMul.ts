/**
 * BatchMatMul on oneDNN's matmul: transposed operands are read in place through strides (no copies),
 * and a batch of 1 on either side broadcasts. Other batch broadcasts, and non-float32 or empty
 * operands, go to the wasm kernel.
 */
import {
  BatchMatMul,
  broadcast_util,
  type BatchMatMulAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

const prod = (s: number[]) => s.reduce((x, y) => x * y, 1);

export function makeBatchMatMulConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
    const ra = a.shape.length;
    const rb = b.shape.length;
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    const batchA = prod(a.shape.slice(0, -2));
    const batchB = prod(b.shape.slice(0, -2));
    const plain =
      ra >= 2 &&
      rb >= 2 &&
      a.dtype === 'float32' &&
      b.dtype === 'float32' &&
      k === kb &&
      (batchA === batchB || batchA === 1 || batchB === 1) &&
      prod(a.shape) > 0 &&
      prod(b.shape) > 0;
    if (!plain) return stock!(args) as TensorInfo;
    const outShape = [...broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)), m, n];
    const backend = args.backend as HeapBackend;
    const c = backend.makeOutput(outShape, 'float32');
    const view = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    requireNativeAddon().matMul(view(a), view(b), view(c), [
      batchA,
      batchB,
      m,
      k,
      n,
      transposeA ? 1 : 0,
      transposeB ? 1 : 0,
    ]);
    return c;
  };
  return { kernelName: BatchMatMul, backendName: 'native', kernelFunc };
}
