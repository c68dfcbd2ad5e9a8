/**
 * GatherV2 for the wasm backend. The stock kernel checks every index through util.assert with a message
 * closure and then walks the output with four-dimensional index arithmetic per value: gathering the
 * B·(K+1) sampled scores out of the flattened B×N score matrix (train/loss/memory_bank.ts, 131k values)
 * took ~30 ms. Here the indices are checked in one plain loop and each gathered slice is copied as a run
 * (value by value when short, one `set` when long). Strings keep the stock kernel.
 */
import {
  backend_util,
  GatherV2,
  util,
  type GatherV2Attrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** Slices at least this long are copied with `set(subarray)`; shorter ones value by value. */
const LONG_RUN = 64;

export function makeGatherV2Config(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    if (!stock) throw new Error('wasm GatherV2: the stock kernel is missing');
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as GatherV2Attrs;
    if (x.dtype === 'string' || indices.dtype !== 'int32') return stock(args) as TensorInfo;
    const parsedAxis = util.parseAxisParam(axis, x.shape)[0];
    const info = backend_util.segment_util.collectGatherOpShapeInfo(
      x as never,
      indices as never,
      parsedAxis,
      batchDims,
    );
    const { batchSize, outerSize, dimSize, sliceSize } = info;
    const backend = args.backend as unknown as WasmBackendLike;
    const idx = backend.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < idx.length; i++) {
      const v = idx[i];
      if (!(v >= 0 && v < dimSize)) throw new Error(`GatherV2: the index value ${v} is not in [0, ${dimSize - 1}]`);
    }
    const out = backend.makeOutput(info.outputShape, x.dtype);
    if (util.sizeFromShape(x.shape) === 0 || idx.length === 0) return out;
    // Views after makeOutput: allocating can grow (and detach) the wasm heap.
    const xs = backend.typedArrayFromHeap(x);
    const os = backend.typedArrayFromHeap(out);
    const is = backend.typedArrayFromHeap(indices) as Int32Array;
    const perBatch = is.length / batchSize;
    if (batchSize === 1 && outerSize === 1 && sliceSize === 1) {
      // The bank's picked scores: one value per index.
      for (let k = 0; k < is.length; k++) os[k] = xs[is[k]];
      return out;
    }
    let dst = 0;
    for (let bi = 0; bi < batchSize; bi++) {
      for (let o = 0; o < outerSize; o++) {
        const base = (bi * outerSize + o) * dimSize * sliceSize;
        for (let k = 0, ik = bi * perBatch; k < perBatch; k++, ik++) {
          const src = base + is[ik] * sliceSize;
          if (sliceSize >= LONG_RUN) os.set(xs.subarray(src, src + sliceSize), dst);
          else for (let j = 0; j < sliceSize; j++) os[dst + j] = xs[src + j];
          dst += sliceSize;
        }
      }
    }
    return out;
  };
  return { kernelName: GatherV2, backendName: 'wasm', kernelFunc };
}
