/**
 * Identity for the wasm backend without a copy. The stock kernel allocates and copies the whole tensor;
 * training runs it hundreds of times a step (tf.clone, casts to the same dtype, gradient bookkeeping),
 * ~140 ms of copies per alexnet_small step. tfjs tensors are immutable (Variable.assign swaps the data
 * id, kernels only write their outputs), so, like the wasm Reshape kernel and the cpu backend's Identity,
 * the output shares the input's buffer and bumps its reference count. Strings keep the stock kernel.
 */
import { Cast, Identity, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  incRef(dataId: object): void;
}

export function makeIdentityConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === 'string') {
      if (!stock) throw new Error('wasm Identity: the stock kernel is missing');
      return stock(args) as TensorInfo;
    }
    (args.backend as unknown as WasmBackendLike).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
  return { kernelName: Identity, backendName: 'wasm', kernelFunc };
}

/** Cast to the same dtype (tf.moments and core gradients do it on every full map) shares the buffer too. */
export function makeCastConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { dtype } = args.attrs as { dtype: string };
    if (!stock) throw new Error('wasm Cast: the stock kernel is missing');
    if (dtype !== x.dtype || x.dtype === 'string') return stock(args) as TensorInfo;
    (args.backend as unknown as WasmBackendLike).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
  return { kernelName: Cast, backendName: 'wasm', kernelFunc };
}
