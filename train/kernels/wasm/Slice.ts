/**
 * Slice for the wasm backend. The stock kernel copies a non-contiguous slice one innermost run at a time
 * with `set(subarray(...))`, which allocates a view per run: slicing one channel out of an NHWC batch
 * (cmc.ts sliceChannels, runs of 1 value) took ~30 ms for a [32,64,64,3] input, ~80 ns a value. Here runs
 * shorter than LONG_RUN are copied value by value and longer ones with one `set`.
 * Contiguous slices and strings keep the stock kernel (it copies those with one `set`).
 */
import { Slice, slice_util, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** Runs at least this long are copied with `set(subarray)`; shorter ones element by element. */
const LONG_RUN = 64;

export function makeSliceConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    if (!stock) throw new Error('wasm Slice: the stock kernel is missing');
    const { x } = args.inputs as { x: TensorInfo };
    const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
    const [b, s] = slice_util.parseSliceParams(x as never, begin, size);
    if (x.dtype === 'string' || slice_util.isSliceContinous(x.shape, b, s) || util.sizeFromShape(s) === 0)
      return stock(args) as TensorInfo;
    const backend = args.backend as unknown as WasmBackendLike;
    const out = backend.makeOutput(s, x.dtype);
    // Views after makeOutput: allocating can grow (and detach) the wasm heap.
    const xs = backend.typedArrayFromHeap(x);
    const os = backend.typedArrayFromHeap(out);
    const rank = x.shape.length;
    const strides = util.computeStrides(x.shape);
    const run = s[rank - 1];
    const outer = util.sizeFromShape(s) / run;
    if (run === 1 && rank >= 2 && s[rank - 2] > 1) {
      // One channel of an NHWC map: a strided walk along the second-last axis, the odometer per row of it.
      const inner = s[rank - 2];
      const step = strides[rank - 2];
      const rows = outer / inner;
      const pos = new Array<number>(rank - 2).fill(0);
      let src = b.reduce((acc, bi, i) => acc + bi * (i < rank - 1 ? strides[i] : 1), 0);
      for (let r = 0, dst = 0; r < rows; r++) {
        for (let j = 0, o = src; j < inner; j++, o += step) os[dst++] = xs[o];
        for (let d = rank - 3; d >= 0; d--) {
          if (++pos[d] < s[d]) {
            src += strides[d];
            break;
          }
          pos[d] = 0;
          src -= (s[d] - 1) * strides[d];
        }
      }
      return out;
    }
    // Odometer over the outer dimensions of the output, tracking the input offset of each run.
    const pos = new Array<number>(rank - 1).fill(0);
    let src = b.reduce((acc, bi, i) => acc + bi * (i < rank - 1 ? strides[i] : 1), 0);
    for (let r = 0, dst = 0; r < outer; r++, dst += run) {
      if (run >= LONG_RUN) os.set(xs.subarray(src, src + run), dst);
      else for (let j = 0; j < run; j++) os[dst + j] = xs[src + j];
      for (let d = rank - 2; d >= 0; d--) {
        if (++pos[d] < s[d]) {
          src += strides[d];
          break;
        }
        pos[d] = 0;
        src -= (s[d] - 1) * strides[d];
      }
    }
    return out;
  };
  return { kernelName: Slice, backendName: 'wasm', kernelFunc };
}
