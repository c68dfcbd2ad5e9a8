/**
 * Conv2DBackpropFilter for the wasm backend, which ships without it.
 *
 * The filter gradient is itself a convolution, so we let XNNPACK's convolution do the heavy lifting
 * instead of writing a slow JS loop:
 *
 *   dW[kh, kw, ci, co] = sum_{n, oh, ow} x[n, oh*s + kh - p, ow*s + kw - p, ci] * dy[n, oh, ow, co]
 *
 * Treat the input channels as the batch and the batch as the channels: xT = x^T [CI, H, W, N], and the
 * output gradient as a filter dyT = [OH, OW, N, CO]. A stride-1 convolution of xT with dyT, dilated by
 * the forward stride and padded like the forward pass, yields [CI, KH', KW', CO] with KH' >= KH
 * (equality unless the forward conv dropped rows at the bottom/right), cropped and transposed to
 * [KH, KW, CI, CO].
 */
import {
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type Conv2DBackpropFilterInputs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { wasmKernel, type WasmBackendLike } from './kernel_utils.ts';

const kernel = (name: string) => wasmKernel(name, 'Conv2DBackpropFilter');

const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as unknown as Required<{ [K in keyof Conv2DBackpropFilterInputs]: TensorInfo }>;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new Error(`wasm Conv2DBackpropFilter supports NHWC only, got ${dataFormat}`);
  }
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const b = backend as WasmBackendLike;
  const transpose = kernel('Transpose');
  const conv = kernel('Conv2D');
  const slice = kernel('Slice');

  const xT = transpose({ inputs: { x }, backend, attrs: { perm: [3, 1, 2, 0] } }); // [CI, H, W, N]
  const dyT = transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } }); // [OH, OW, N, CO]
  const { top, bottom, left, right } = info.padInfo;
  const full = conv({
    inputs: { x: xT, filter: dyT },
    backend,
    attrs: {
      strides: [1, 1],
      pad: [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dilations: [info.strideHeight, info.strideWidth],
    },
  }); // [CI, KH', KW', CO]
  b.disposeData(xT.dataId);
  b.disposeData(dyT.dataId);

  const [ci, kh2, kw2, co] = full.shape;
  let cropped = full;
  if (kh2 !== info.filterHeight || kw2 !== info.filterWidth) {
    cropped = slice({
      inputs: { x: full },
      backend,
      attrs: { begin: [0, 0, 0, 0], size: [ci, info.filterHeight, info.filterWidth, co] },
    });
    b.disposeData(full.dataId);
  }
  const dw = transpose({ inputs: { x: cropped }, backend, attrs: { perm: [1, 2, 0, 3] } }); // [KH, KW, CI, CO]
  b.disposeData(cropped.dataId);
  return dw;
};

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter,
};
