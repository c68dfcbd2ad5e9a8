/**
 * ReLU's gradient for the wasm backend in one pass: dx = dy · [x > 0]. tfjs-core's gradient is
 * dy · cast(step(x)): two kernels and a full-size temporary. Same values bit for bit (including the sign
 * of zero and NaN where x is NaN, as step gives NaN there).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { ReluGrad } from '../fused.ts';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

const reluGrad: KernelFunc = ({ inputs, backend }) => {
  const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
  if (dy.dtype !== 'float32' || x.dtype !== 'float32') throw new Error(`wasm ${ReluGrad}: float32 inputs only`);
  const be = backend as unknown as WasmBackendLike;
  const out = be.makeOutput(x.shape, 'float32');
  // Views after the allocation: makeOutput can grow (and detach) the wasm heap.
  const g = be.typedArrayFromHeap(dy);
  const xs = be.typedArrayFromHeap(x);
  const dx = be.typedArrayFromHeap(out);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    dx[i] = g[i] * (v > 0 ? 1 : v === v ? 0 : NaN);
  }
  return out;
};

export const reluGradConfig: KernelConfig = { kernelName: ReluGrad, backendName: 'wasm', kernelFunc: reluGrad };
