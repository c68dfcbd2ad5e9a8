/** Helpers for kernels composed of other wasm kernels (the way tfjs's own composite kernels work). */
import { getKernel, type TensorInfo } from '@tensorflow/tfjs-core';

export type AnyKernel = (args: {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs: Record<string, unknown>;
}) => TensorInfo;

/** The registered wasm kernel `name`; `user` names the caller in the error. */
export function wasmKernel(name: string, user: string): AnyKernel {
  const k = getKernel(name, 'wasm');
  if (!k) throw new Error(`wasm backend lacks the ${name} kernel needed by ${user}`);
  return k.kernelFunc as unknown as AnyKernel;
}

/** The part of the wasm backend the composite kernels use: releasing intermediate outputs. */
export interface WasmBackendLike {
  disposeData(dataId: object): boolean;
}
