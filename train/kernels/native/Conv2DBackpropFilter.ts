/** Conv2DBackpropFilter (dW) on oneDNN's backward-weights convolution. */
import {
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import { CONV_BACKWARD_WEIGHTS, nativeConvApplies, runConv, type HeapBackend } from './conv.ts';

export function makeConv2DBackpropFilterConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
      args.attrs as unknown as Conv2DBackpropFilterAttrs;
    if (!nativeConvApplies(dataFormat, [x, dy])) return stock!(args) as TensorInfo;
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filterShape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const backend = args.backend as HeapBackend;
    const dw = backend.makeOutput([...filterShape], 'float32');
    runConv(requireNativeAddon(), backend, CONV_BACKWARD_WEIGHTS, x, dy, dw, info);
    return dw;
  };
  return { kernelName: Conv2DBackpropFilter, backendName: 'native', kernelFunc };
}
