/** Conv2DBackpropInput (dX) on oneDNN's backward-data convolution. */
import {
  backend_util,
  Conv2DBackpropInput,
  type Conv2DBackpropInputAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import { CONV_BACKWARD_DATA, nativeConvApplies, runConv, type HeapBackend } from './conv.ts';

export function makeConv2DBackpropInputConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as unknown as Conv2DBackpropInputAttrs;
    if (!nativeConvApplies(dataFormat, [dy, filter]) || inputShape.some((d) => d <= 0))
      return stock!(args) as TensorInfo;
    const info = backend_util.computeConv2DInfo(
      inputShape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const backend = args.backend as HeapBackend;
    const dx = backend.makeOutput([...inputShape], 'float32');
    runConv(requireNativeAddon(), backend, CONV_BACKWARD_DATA, dy, filter, dx, info);
    return dx;
  };
  return { kernelName: Conv2DBackpropInput, backendName: 'native', kernelFunc };
}
