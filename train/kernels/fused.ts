/**
 * Fused training kernels: one kernel where tfjs composes several (each a pass over memory and, on wasm, a
 * JS-to-wasm call and an output allocation). Each is registered for the backends listed in
 * ./register_all.ts; callers use it when the active backend has it and fusion is on, else the composed
 * ops, which stay the reference (test/kernels/fused_kernels.test.ts holds them together).
 *
 * Only where it pays: these are JS loops over the wasm heap, which beat several kernel calls on small and
 * mid-sized tensors but not one SIMD pass. (A one-pass ReLU gradient in JS was ~1.5-3x slower than the
 * stock Step + Multiply at every map size of our networks, so there is none.)
 *
 * CMC_FUSED_KERNELS=0 turns fusion off (to compare with the composed path, or to rule it out);
 * setFusedKernels() does the same from code.
 */
import { getBackend, getKernel } from '@tensorflow/tfjs-core';

/** SGD with momentum and weight decay over many parameters at once (train/optim/sgd.ts). */
export const SgdStep = 'CmcSgdStep';
/** Batch norm in training mode: y, batch mean and biased variance in one kernel (core: moments + batchNorm). */
export const BatchNormTrain = 'CmcBatchNormTrain';
/** Its gradient w.r.t. x, gamma and beta in two passes over the map. */
export const BatchNormTrainGrad = 'CmcBatchNormTrainGrad';

/** ReLU's gradient dy·[x > 0] in one pass (tfjs composes Step, Cast and Multiply). */
export const ReluGrad = 'CmcReluGrad';

let enabled = process.env.CMC_FUSED_KERNELS !== '0';

export function setFusedKernels(on: boolean): void {
  enabled = on;
}

export function fusedKernelsEnabled(): boolean {
  return enabled;
}

/** Whether fused kernel `name` should run now: fusion on and the active backend has it. */
export function useFused(name: string): boolean {
  return enabled && getKernel(name, getBackend()) !== undefined;
}
