/**
 * The three oneDNN convolutions behind the native backend's Conv2D, Conv2DBackpropInput and
 * Conv2DBackpropFilter kernels. Each reads its inputs from, and writes its output into, the wasm heap
 * that the native backend shares with the wasm backend (see register.ts), so no tensor is copied.
 */
import { backend_util, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from './addon.ts';

/** The part of tfjs-backend-wasm's BackendWasm (backend_wasm.ts) these kernels use. */
export interface HeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  /** A view on the heap at the tensor's offset; taken after every allocation, since the heap can grow. */
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
}

export const CONV_FORWARD = 0;
export const CONV_BACKWARD_DATA = 1;
export const CONV_BACKWARD_WEIGHTS = 2;
export type ConvKind = typeof CONV_FORWARD | typeof CONV_BACKWARD_DATA | typeof CONV_BACKWARD_WEIGHTS;

/** True when oneDNN can take this call (NHWC, float32, non-empty); otherwise the kernel defers to wasm's. */
export function nativeConvApplies(dataFormat: string | undefined, tensors: TensorInfo[]): boolean {
  return (
    (dataFormat === undefined || dataFormat === 'NHWC') &&
    tensors.every((t) => t.dtype === 'float32' && t.shape.every((d) => d > 0))
  );
}

/**
 * Run one convolution of `kind` with the geometry `info`: inputs (in0, in1) and the output tensor
 * `out` are as addon.ts documents per kind (forward: x, w -> y; data: dy, w -> dx; weights: x, dy -> dw).
 */
export function runConv(
  addon: NativeAddon,
  backend: HeapBackend,
  kind: ConvKind,
  in0: TensorInfo,
  in1: TensorInfo,
  out: TensorInfo,
  info: backend_util.Conv2DInfo,
): void {
  const { padInfo: p } = info;
  const dims = [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.outChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    p.top,
    p.left,
    p.bottom,
    p.right,
  ];
  const view = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
  addon.conv2d(kind, view(in0), view(in1), view(out), dims);
}
