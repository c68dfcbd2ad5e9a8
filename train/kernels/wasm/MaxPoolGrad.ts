/**
 * MaxPoolGrad for the wasm backend. The stock kernel starts each window's running maximum at the
 * smallest *positive* float, so a window whose values are all negative routes no gradient at all
 * (test/kernels/training_kernels.test.ts shows it against the cpu backend). This one matches the cpu
 * reference and PyTorch: the first maximum in each window (row-major scan) receives dy.
 *
 * Plain JS over views of the wasm heap: pooling gradients are memory-bound, a few ms per batch.
 */
import {
  backend_util,
  MaxPoolGrad,
  type KernelConfig,
  type KernelFunc,
  type MaxPoolGradAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

const maxPoolGrad: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as MaxPoolGradAttrs;
  const info = backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const b = backend as unknown as WasmBackendLike;
  const dx = b.makeOutput(input.shape, 'float32');
  // Views are taken after makeOutput: allocating can grow (and detach) the wasm heap.
  const x = b.typedArrayFromHeap(input);
  const g = b.typedArrayFromHeap(dy);
  const out = b.typedArrayFromHeap(dx);
  out.fill(0);
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const { top, left } = info.padInfo;
  // Channels innermost: the window is scanned pixel by pixel over contiguous channel vectors (the map is
  // NHWC), keeping each channel's running maximum and its position.
  const best = new Float32Array(c);
  const at = new Int32Array(c);
  for (let bi = 0; bi < n; bi++) {
    const xb = bi * h * w * c;
    for (let oy = 0; oy < oh; oy++) {
      const y0 = oy * sh - top;
      const ya = Math.max(0, y0);
      const yb = Math.min(h, y0 + fh);
      for (let ox = 0; ox < ow; ox++) {
        const x0 = ox * sw - left;
        const xa = Math.max(0, x0);
        const xe = Math.min(w, x0 + fw);
        const gBase = ((bi * oh + oy) * ow + ox) * c;
        if (ya >= yb || xa >= xe) continue; // a window entirely in the padding routes nothing
        at.fill(-1);
        for (let yy = ya; yy < yb; yy++) {
          for (let xx = xa; xx < xe; xx++) {
            const p = xb + (yy * w + xx) * c;
            for (let ch = 0; ch < c; ch++) {
              const v = x[p + ch];
              if (v > best[ch] || at[ch] < 0) {
                best[ch] = v;
                at[ch] = p + ch;
              }
            }
          }
        }
        for (let ch = 0; ch < c; ch++) out[at[ch]] += g[gBase + ch];
      }
    }
  }
  return dx;
};

export const maxPoolGradConfig: KernelConfig = {
  kernelName: MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGrad,
};
