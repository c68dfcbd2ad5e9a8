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

// One loop per case, each kept monomorphic (a loop with optional buffers and branches ran ~3x slower).

/** With momentum, after the first step: d = g + wd·p; buf = μ·old + d; p − lr·buf. */
function momentumStep(
  p: Float32Array,
  g: Float32Array,
  old: Float32Array,
  buf: Float32Array,
  out: Float32Array,
  lr: number,
  mu: number,
  wd: number,
): void {
  for (let j = 0; j < p.length; j++) {
    const pj = p[j];
    const d = f(f(old[j] * mu) + f(g[j] + f(pj * wd)));
    buf[j] = d;
    out[j] = f(pj - f(d * lr));
  }
}

/** With momentum, first step (PyTorch: the buffer is the gradient itself, no μ·0 term). */
function firstMomentumStep(
  p: Float32Array,
  g: Float32Array,
  buf: Float32Array,
  out: Float32Array,
  lr: number,
  wd: number,
): void {
  for (let j = 0; j < p.length; j++) {
    const pj = p[j];
    const d = f(g[j] + f(pj * wd));
    buf[j] = d;
    out[j] = f(pj - f(d * lr));
  }
}

/** Without momentum. */
function plainStep(p: Float32Array, g: Float32Array, out: Float32Array, lr: number, wd: number): void {
  for (let j = 0; j < p.length; j++) {
    const pj = p[j];
    out[j] = f(pj - f(f(g[j] + f(pj * wd)) * lr));
  }
}

const sgdStep: KernelFunc = ({ inputs, backend, attrs }) => {
  const { n, lr, momentum, weightDecay, hasBuffer } = attrs as unknown as SgdStepAttrs;
  const ins = inputs as Record<string, TensorInfo>;
  const be = backend as unknown as WasmBackendLike;
  // Scalars as the composed ops see them (float32 tensors). With wd = 0, g + p·0 = g for finite p.
  const lr32 = f(lr),
    mu = f(momentum),
    wd = f(weightDecay);
  const params: TensorInfo[] = [];
  const buffers: TensorInfo[] = [];
  for (let i = 0; i < n; i++) {
    const p = ins[`p${i}`];
    params.push(be.makeOutput(p.shape, 'float32'));
    if (mu !== 0) buffers.push(be.makeOutput(p.shape, 'float32'));
  }
  // Views after every allocation: makeOutput can grow (and detach) the wasm heap.
  const view = (t: TensorInfo) => be.typedArrayFromHeap(t);
  for (let i = 0; i < n; i++) {
    const p = view(ins[`p${i}`]),
      g = view(ins[`g${i}`]),
      out = view(params[i]);
    if (mu === 0) plainStep(p, g, out, lr32, wd);
    else if (hasBuffer[i]) momentumStep(p, g, view(ins[`b${i}`]), view(buffers[i]), out, lr32, mu, wd);
    else firstMomentumStep(p, g, view(buffers[i]), out, lr32, wd);
  }
  return [...params, ...buffers];
};

export const sgdStepConfig: KernelConfig = { kernelName: SgdStep, backendName: 'wasm', kernelFunc: sgdStep };
