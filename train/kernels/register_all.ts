/**
 * One explicit list of the kernels this project adds to tfjs backends, registered by one loop
 * (the tfjs register_all_kernels pattern). Each kernel lives in its own file.
 */
import { registerKernel, getKernel, type KernelConfig } from '@tensorflow/tfjs-core';

const KERNELS: Record<string, KernelConfig[]> = {
  wasm: [],
};

const done = new Set<string>();

/** Register our training kernels for a backend (idempotent). */
export function registerTrainingKernels(backend: string): void {
  if (done.has(backend)) return;
  for (const k of KERNELS[backend] ?? []) {
    if (!getKernel(k.kernelName, backend)) registerKernel(k);
  }
  done.add(backend);
}
