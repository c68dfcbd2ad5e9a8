/**
 * Add, Sub, Multiply and RealDiv of float32 tensors (rank <= 4, broadcasting) as one addon loop on the
 * calling thread: one IEEE operation per value, so bit for bit the wasm kernels' result. The stock
 * kernels' broadcasting paths (a bias over a [32,512] map, an L2 norm dividing [32,128] by [32,1], the
 * softmax loss's max shift of [32,4097]) took 0.5-1.3 ms a call at these sizes; a step makes ~170 such calls.
 * Square is x·x through the same loop (4 calls of [32,128] in the L2 norms took ~0.9 ms each on XNNPACK's
 * threads). Other dtypes, empty tensors and higher ranks go to the wasm kernels.
 */
import {
  Add,
  backend_util,
  Multiply,
  RealDiv,
  Square,
  Sub,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { requireNativeAddon } from './addon.ts';
import type { HeapBackend } from './conv.ts';

const OPS = { [Add]: 0, [Sub]: 1, [Multiply]: 2, [RealDiv]: 3 } as const;

/** Element strides of `shape` over the rank-4 output `out` (right-aligned; 0 on broadcast axes). */
function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const strides = [0, 0, 0, 0];
  let stride = 1;
  for (let k = 3, s = shape.length - 1; s >= 0; k--, s--) {
    strides[k] = shape[s] === 1 && out[k] !== 1 ? 0 : stride;
    stride *= shape[s];
  }
  return strides;
}

function makeBinaryConfig(kernelName: keyof typeof OPS) {
  return (stock: KernelFunc | undefined): KernelConfig => {
    const kernelFunc: KernelFunc = (args) => {
      const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
      const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      if (a.dtype !== 'float32' || b.dtype !== 'float32' || shape.length > 4 || shape.some((d) => d === 0))
        return stock!(args) as TensorInfo;
      const backend = args.backend as HeapBackend;
      const out = backend.makeOutput(shape, 'float32');
      const out4 = [...Array<number>(4 - shape.length).fill(1), ...shape];
      const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
      requireNativeAddon().binary(OPS[kernelName], v(a), v(b), v(out), [
        ...out4,
        ...broadcastStrides(a.shape, out4),
        ...broadcastStrides(b.shape, out4),
      ]);
      return out;
    };
    return { kernelName, backendName: 'native', kernelFunc };
  };
}

export const makeAddConfig = makeBinaryConfig(Add);
export const makeSubConfig = makeBinaryConfig(Sub);
export const makeMultiplyConfig = makeBinaryConfig(Multiply);
export const makeRealDivConfig = makeBinaryConfig(RealDiv);

export function makeSquareConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype !== 'float32' || x.shape.some((d) => d === 0)) return stock!(args) as TensorInfo;
    const backend = args.backend as HeapBackend;
    const out = backend.makeOutput([...x.shape], 'float32');
    const n = out.shape.reduce((a, d) => a * d, 1);
    const v = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    requireNativeAddon().binary(OPS[Multiply], v(x), v(x), v(out), [1, 1, 1, n, 0, 0, 0, 1, 0, 0, 0, 1]);
    return out;
  };
  return { kernelName: Square, backendName: 'native', kernelFunc };
}
