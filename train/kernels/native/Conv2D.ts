/** Conv2D on oneDNN (forward convolution, NHWC input, HWIO filter). */
import {
  backend_util,
  Conv2D,
  type Conv2DAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import { CONV_FORWARD, nativeConvApplies, runConv, type HeapBackend } from './conv.ts';

export function makeConv2DConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
    const { strides, pad, dataFormat, dilations, dimRoundingMode } = args.attrs as unknown as Conv2DAttrs;
    if (!nativeConvApplies(dataFormat, [x, filter])) return stock!(args) as TensorInfo;
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      strides,
      dilations,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const backend = args.backend as HeapBackend;
    const y = backend.makeOutput(info.outShape, 'float32');
    runConv(requireNativeAddon(), backend, CONV_FORWARD, x, filter, y, info);
    return y;
  };
  return { kernelName: Conv2D, backendName: 'native', kernelFunc };
}
