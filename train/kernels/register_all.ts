/**
 * One explicit list of the kernels this project adds to tfjs backends, registered by one loop
 * (the tfjs register_all_kernels pattern). Each kernel lives in its own file.
 */
import {
  registerGradient,
  registerKernel,
  unregisterKernel,
  getKernel,
  type GradConfig,
  type KernelConfig,
  type KernelFunc,
} from '@tensorflow/tfjs-core';
import { conv2DBackpropFilterConfig } from './wasm/Conv2DBackpropFilter.ts';
import { makeConv2DBackpropInputConfig } from './wasm/Conv2DBackpropInput.ts';
import { maxPoolGradConfig } from './wasm/MaxPoolGrad.ts';
import { makeBatchMatMulConfig } from './wasm/BatchMatMul.ts';
import { makeMeanConfig, makeSumConfig } from './wasm/Reduce.ts';
import { makeCastConfig, makeIdentityConfig } from './wasm/Identity.ts';
import { makeSliceConfig } from './wasm/Slice.ts';
import { makeGatherV2Config } from './wasm/GatherV2.ts';
import { sgdStepConfig } from './wasm/SgdStep.ts';
import { batchNormTrainConfig, batchNormTrainGradConfig } from './wasm/BatchNormTrain.ts';
import { batchNormTrainGradientConfig } from './grads/BatchNormTrain_grad.ts';
import { fusedBatchNormGradConfig } from './grads/FusedBatchNorm_grad.ts';
import { meanGradConfig } from './grads/Mean_grad.ts';
import { reluGradConfig } from './grads/Relu_grad.ts';

/** Each entry either fills a missing kernel or replaces a slow stock one (which it may call back). */
const KERNELS: Record<string, ((stock: KernelFunc | undefined) => KernelConfig)[]> = {
  wasm: [
    () => conv2DBackpropFilterConfig,
    makeConv2DBackpropInputConfig,
    () => maxPoolGradConfig,
    makeBatchMatMulConfig,
    makeSumConfig,
    makeMeanConfig,
    makeIdentityConfig,
    makeCastConfig,
    makeSliceConfig,
    makeGatherV2Config,
    () => sgdStepConfig,
    () => batchNormTrainConfig,
    () => batchNormTrainGradConfig,
  ],
};

const done = new Set<string>();

/** Register our training kernels for a backend (idempotent). Call after the backend package is imported. */
export function registerTrainingKernels(backend: string): void {
  if (done.has(backend)) return;
  overrideKernels(backend, KERNELS[backend] ?? []);
  done.add(backend);
}

/** Register each kernel over the backend's current one, which it receives as `stock` (the native backend's list uses this too). */
export function overrideKernels(backend: string, makers: ((stock: KernelFunc | undefined) => KernelConfig)[]): void {
  for (const make of makers) {
    const probe = make(undefined);
    const stock = getKernel(probe.kernelName, backend);
    if (stock) unregisterKernel(probe.kernelName, backend);
    // A replaced stock kernel keeps its setupFunc: its wasm export binding is made at backend init.
    registerKernel({ setupFunc: stock?.setupFunc, ...make(stock?.kernelFunc) });
  }
}

/** Gradient rules we replace in tfjs-core (backend-agnostic). */
const GRADIENTS: GradConfig[] = [
  fusedBatchNormGradConfig,
  meanGradConfig,
  batchNormTrainGradientConfig,
  reluGradConfig,
];

/** Register our gradient rules over core's; call after core's gradients are registered. */
export function registerTrainingGradients(): void {
  for (const g of GRADIENTS) registerGradient(g);
}
