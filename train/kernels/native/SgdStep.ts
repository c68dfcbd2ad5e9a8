/**
 * The fused SGD step over every parameter (../fused.ts SgdStep; inputs, outputs and the float32 rounding
 * as ../wasm/SgdStep.ts documents them) with each parameter's update in the addon: bit for bit the wasm
 * kernel's and the composed ops' result. 7 ms against 30 ms for the JS loops over alexnet_mini's 857k
 * parameters of one view (one thread, busy machine). Non-float32 inputs go to the wasm kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { SgdStep } from '../fused.ts';
import type { SgdStepAttrs } from '../wasm/SgdStep.ts';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

export function makeSgdStepConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { n, lr, momentum, weightDecay, hasBuffer } = args.attrs as unknown as SgdStepAttrs;
    const ins = args.inputs as Record<string, TensorInfo>;
    if (Object.values(ins).some((t) => t.dtype !== 'float32')) return stock!(args) as TensorInfo[];
    const backend = args.backend as HeapBackend;
    // The scalars as the composed ops see them (float32 tensors).
    const hyper = [Math.fround(lr), Math.fround(momentum), Math.fround(weightDecay)];
    const withMomentum = hyper[1] !== 0;
    const params: TensorInfo[] = [];
    const buffers: TensorInfo[] = [];
    for (let i = 0; i < n; i++) {
      const shape = [...ins[`p${i}`].shape];
      params.push(backend.makeOutput(shape, 'float32'));
      if (withMomentum) buffers.push(backend.makeOutput(shape, 'float32'));
    }
    // Views after every allocation: makeOutput can grow (and detach) the wasm heap.
    const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    const addon = requireNativeAddon();
    for (let i = 0; i < n; i++) {
      const old = withMomentum && hasBuffer[i] ? v(ins[`b${i}`]) : null;
      const buf = withMomentum ? v(buffers[i]) : null;
      addon.sgdUpdate(v(ins[`p${i}`]), v(ins[`g${i}`]), old, buf, v(params[i]), hyper);
    }
    return [...params, ...buffers];
  };
  return { kernelName: SgdStep, backendName: 'native', kernelFunc };
}
