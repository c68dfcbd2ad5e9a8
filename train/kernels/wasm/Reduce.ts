/**
 * Sum and Mean over leading axes for the wasm backend. Batch norm reduces NHWC maps over (N, H, W),
 * i.e. every axis but the channels; the stock kernels first transpose the whole map so the reduced axes
 * are innermost (~190 ms for a 128x32x32x48 map). Reducing leading axes needs no transpose: one
 * row-major pass over x viewed as [P, Q] adds each row into Q accumulators (float64, so long sums over
 * the batch lose nothing). (A ones[1,P]·x GEMM was tried: tfjs repacks the [P,Q] operand on every call.)
 * Other axis patterns and non-float inputs use the stock kernels.
 */
import { Mean, Sum, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

function makeReduce(kernelName: typeof Sum | typeof Mean, stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    if (!stock) throw new Error(`wasm ${kernelName}: the stock kernel is missing`);
    const x = (args.inputs as { x: TensorInfo }).x;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const axes = util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
    const leading = axes.length > 0 && axes.length < x.shape.length && axes.every((a, i) => a === i);
    if (!leading || x.dtype !== 'float32') return stock(args) as TensorInfo;
    const p = x.shape.slice(0, axes.length).reduce((a, b) => a * b, 1);
    const rest = x.shape.slice(axes.length);
    const q = rest.reduce((a, b) => a * b, 1);
    const backend = args.backend as WasmBackendLike;
    const outShape = keepDims ? [...axes.map(() => 1), ...rest] : rest;
    const out = backend.makeOutput(outShape, 'float32');
    const xs = backend.typedArrayFromHeap(x); // after makeOutput: allocation may move the heap
    const acc = new Float64Array(q);
    for (let i = 0, off = 0; i < p; i++, off += q) {
      for (let j = 0; j < q; j++) acc[j] += xs[off + j];
    }
    const scale = kernelName === Mean ? 1 / p : 1;
    const o = backend.typedArrayFromHeap(out);
    for (let j = 0; j < q; j++) o[j] = acc[j] * scale;
    return out;
  };
  return { kernelName, backendName: 'wasm', kernelFunc };
}

export const makeSumConfig = (stock: KernelFunc | undefined) => makeReduce(Sum, stock);
export const makeMeanConfig = (stock: KernelFunc | undefined) => makeReduce(Mean, stock);
