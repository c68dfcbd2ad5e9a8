/**
 * The `native` tfjs backend: the wasm backend's own instance, with all of its kernels (tfjs's and this
 * project's, train/kernels/register_all.ts) registered again under the name `native`, and the heavy ones
 * replaced by oneDNN through the addon (addon.ts). Sharing the instance means the two backends share one
 * heap and one tensor registry, so nothing is copied between them and switching is free; kernels the
 * addon does not cover run exactly as they do on wasm.
 *
 * Call registerNativeBackend() after the wasm backend is initialised (backend.ts does).
 */
import * as tf from '@tensorflow/tfjs-core';
import { requireNativeAddon, type NativeAddon } from './addon.ts';
import { overrideKernels } from '../register_all.ts';
import { makeConv2DConfig } from './Conv2D.ts';
import { makeConv2DBackpropInputConfig } from './Conv2DBackpropInput.ts';
import { makeConv2DBackpropFilterConfig } from './Conv2DBackpropFilter.ts';
import { makeBatchMatMulConfig } from './BatchMatMul.ts';
import { makeBatchNormTrainConfig, makeBatchNormTrainGradConfig } from './BatchNormTrain.ts';
import { makeMaxPoolConfig, makeMaxPoolGradConfig } from './MaxPool.ts';
import { makeSgdStepConfig } from './SgdStep.ts';
import { makeGatherV2Config } from './GatherV2.ts';
import { makeScatterNdConfig } from './ScatterNd.ts';
import { makeSliceConfig } from './Slice.ts';
import { makeAddConfig, makeMultiplyConfig, makeRealDivConfig, makeSquareConfig, makeSubConfig } from './Binary.ts';
import { makeReluConfig, makeReluGradConfig } from './Relu.ts';

/**
 * The kernels oneDNN (or a plain loop in the addon) runs; each falls back to the wasm kernel it replaces for calls it does not cover
 * (ReluGrad has no wasm kernel: it takes only what its gradient rule gives it, float32 tensors).
 */
const NATIVE_KERNELS = [
  makeConv2DConfig,
  makeConv2DBackpropInputConfig,
  makeConv2DBackpropFilterConfig,
  makeBatchMatMulConfig,
  makeBatchNormTrainConfig,
  makeBatchNormTrainGradConfig,
  makeMaxPoolConfig,
  makeMaxPoolGradConfig,
  makeReluConfig,
  makeReluGradConfig,
  makeSgdStepConfig,
  makeGatherV2Config,
  makeAddConfig,
  makeSubConfig,
  makeMultiplyConfig,
  makeRealDivConfig,
  makeSquareConfig,
  makeScatterNdConfig,
  makeSliceConfig,
];

let registered = false;

/** Register the `native` backend over the initialised wasm backend; `threads` is oneDNN's thread count. */
export function registerNativeBackend(threads: number): NativeAddon {
  const addon = requireNativeAddon();
  addon.setThreads(threads);
  if (registered) return addon;
  const wasm = tf.findBackend('wasm');
  if (!wasm) throw new Error('native backend: the wasm backend must be initialised first');
  tf.copyRegisteredKernels('wasm', 'native');
  overrideKernels('native', NATIVE_KERNELS);
  tf.registerBackend('native', () => wasm, 0);
  registered = true;
  return addon;
}
