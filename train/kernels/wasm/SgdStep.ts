/**
 * One SGD step (momentum, coupled weight decay, PyTorch semantics; see train/optim/sgd.ts) over every
 * parameter in one kernel for the wasm backend. The composed update takes six kernels per parameter
 * (~280 calls a step for two AlexNet encoders), most on tensors of a few hundred values, where the call
 * costs more than the arithmetic.
 *
 * Inputs p0..p{n-1} (parameters), g0.. (gradients) and b{i} (momentum buffers, where hasBuffer[i]);
 * outputs the n new parameters then, with momentum, the n new buffers. Each operation is rounded to
 * float32 as the composed ops round it (a product or sum of two float32 values is exact in float64, so
 * fround gives the float32 result), so the step is bit for bit the composed one.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { SgdStep } from '../fused.ts';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

export interface SgdStepAttrs {
  n: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  hasBuffer: boolean[];
}

const f = Math.fround;

const sgdStep: KernelFunc = ({ inputs, backend, attrs }) => {
  const { n, lr, momentum, weightDecay, hasBuffer } = attrs as unknown as SgdStepAttrs;
  const ins = inputs as Record<string, TensorInfo>;
  const be = backend as unknown as WasmBackendLike;
  const lr32 = f(lr), mu = f(momentum), wd = f(weightDecay);
  const params: TensorInfo[] = [];
  const buffers: TensorInfo[] = [];
  for (let i = 0; i < n; i++) {
    const p = ins[`p${i}`];
    params.push(be.makeOutput(p.shape, 'float32'));
    if (mu !== 0) buffers.push(be.makeOutput(p.shape, 'float32'));
  }
  // Views after every allocation: makeOutput can grow (and detach) the wasm heap.
  for (let i = 0; i < n; i++) {
    const p = be.typedArrayFromHeap(ins[`p${i}`]);
    const g = be.typedArrayFromHeap(ins[`g${i}`]);
    const out = be.typedArrayFromHeap(params[i]);
    const old = mu !== 0 && hasBuffer[i] ? be.typedArrayFromHeap(ins[`b${i}`]) : null;
    const buf = mu !== 0 ? be.typedArrayFromHeap(buffers[i]) : null;
    for (let j = 0; j < p.length; j++) {
      const pj = p[j];
      let d = wd !== 0 ? f(g[j] + f(pj * wd)) : g[j];
      if (buf) {
        // PyTorch: the first step's buffer is the gradient itself (no μ·0 term)
        if (old) d = f(f(old[j] * mu) + d);
        buf[j] = d;
      }
      out[j] = f(pj - f(d * lr32));
    }
  }
  return [...params, ...buffers];
};

export const sgdStepConfig: KernelConfig = { kernelName: SgdStep, backendName: 'wasm', kernelFunc: sgdStep };
