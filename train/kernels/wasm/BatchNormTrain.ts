/**
 * Batch norm in training mode for the wasm backend, forward and gradient, each one kernel over the NHWC
 * map viewed as [P, C] (P = N·H·W, or N for [N, C] inputs). Composed, the forward is tf.moments (Mean,
 * Sub, Square, Mean) plus FusedBatchNorm, and its gradient through the moments ~15 more kernels, each a
 * pass over the map; here the forward reads the map three times (mean, variance, output) and the gradient
 * twice (two per-channel sums, then dx).
 *
 * Forward: inputs x, scale (γ), offset (β); attrs varianceEpsilon. Outputs y, the batch mean and the biased
 * batch variance (what tf.moments gives; the caller updates the running statistics from them).
 * Gradient: inputs dy, x, mean, variance, scale and the gradients of the mean and variance outputs (zeros
 * when nothing but y reaches the loss); outputs dx, dγ, dβ:
 *   x̂ = (x − μ)·r, r = 1/√(σ² + ε);  dβ = Σdy;  dγ = r·Σdy·(x − μ)
 *   dx = γr·(dy − Σdy/P − (x − μ)·r²·Σdy·(x − μ)/P) + dμ/P + 2dσ²·(x − μ)/P
 * Sums are float64 (P is up to ~10⁶ here); the result differs from the composed kernels by float32
 * rounding order only (test/kernels/fused_kernels.test.ts).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { BatchNormTrain, BatchNormTrainGrad } from '../fused.ts';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

/** [P, C] of a channels-last map. */
function rowsChannels(x: TensorInfo): [number, number] {
  const c = x.shape[x.shape.length - 1];
  const size = x.shape.reduce((a, b) => a * b, 1);
  return [size / c, c];
}

function checkFloat(kernel: string, ts: TensorInfo[]): void {
  for (const t of ts) if (t.dtype !== 'float32') throw new Error(`wasm ${kernel}: float32 inputs only, got ${t.dtype}`);
}

const batchNormTrain: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, scale, offset } = inputs as { x: TensorInfo; scale: TensorInfo; offset: TensorInfo };
  const { varianceEpsilon } = attrs as { varianceEpsilon: number };
  checkFloat(BatchNormTrain, [x, scale, offset]);
  const [p, c] = rowsChannels(x);
  const be = backend as unknown as WasmBackendLike;
  const yT = be.makeOutput(x.shape, 'float32');
  const meanT = be.makeOutput([c], 'float32');
  const varT = be.makeOutput([c], 'float32');
  // Views after every allocation: makeOutput can grow (and detach) the wasm heap.
  const xs = be.typedArrayFromHeap(x);
  const ys = be.typedArrayFromHeap(yT);
  const mean = be.typedArrayFromHeap(meanT);
  const variance = be.typedArrayFromHeap(varT);
  const g = be.typedArrayFromHeap(scale);
  const b = be.typedArrayFromHeap(offset);
  const acc = new Float64Array(c);
  for (let i = 0, o = 0; i < p; i++, o += c) for (let j = 0; j < c; j++) acc[j] += xs[o + j];
  for (let j = 0; j < c; j++) mean[j] = acc[j] / p;
  acc.fill(0);
  // Two passes (not E[x²] − μ²): no cancellation when |μ| ≫ σ.
  for (let i = 0, o = 0; i < p; i++, o += c) {
    for (let j = 0; j < c; j++) {
      const d = xs[o + j] - mean[j];
      acc[j] += d * d;
    }
  }
  const a = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    variance[j] = acc[j] / p;
    a[j] = g[j] / Math.sqrt(variance[j] + varianceEpsilon);
  }
  for (let i = 0, o = 0; i < p; i++, o += c)
    for (let j = 0; j < c; j++) ys[o + j] = (xs[o + j] - mean[j]) * a[j] + b[j];
  return [yT, meanT, varT];
};

const batchNormTrainGrad: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, x, mean, variance, scale, dmean, dvariance } = inputs as Record<string, TensorInfo>;
  const { varianceEpsilon } = attrs as { varianceEpsilon: number };
  checkFloat(BatchNormTrainGrad, [dy, x, mean, variance, scale, dmean, dvariance]);
  const [p, c] = rowsChannels(x);
  const be = backend as unknown as WasmBackendLike;
  const dxT = be.makeOutput(x.shape, 'float32');
  const dScaleT = be.makeOutput([c], 'float32');
  const dOffsetT = be.makeOutput([c], 'float32');
  const [g, xs, mu, v, gamma, dmu, dv] = [dy, x, mean, variance, scale, dmean, dvariance].map((t) =>
    be.typedArrayFromHeap(t),
  );
  const dx = be.typedArrayFromHeap(dxT);
  const dScale = be.typedArrayFromHeap(dScaleT);
  const dOffset = be.typedArrayFromHeap(dOffsetT);
  const sumG = new Float64Array(c);
  const sumGx = new Float64Array(c);
  for (let i = 0, o = 0; i < p; i++, o += c) {
    for (let j = 0; j < c; j++) {
      const gj = g[o + j];
      sumG[j] += gj;
      sumGx[j] += gj * (xs[o + j] - mu[j]);
    }
  }
  // dx = A·dy + B·(x − μ) + D per channel
  const A = new Float64Array(c);
  const B = new Float64Array(c);
  const D = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    const r = 1 / Math.sqrt(v[j] + varianceEpsilon);
    dOffset[j] = sumG[j];
    dScale[j] = sumGx[j] * r;
    A[j] = gamma[j] * r;
    B[j] = (-gamma[j] * r * r * r * sumGx[j] + 2 * dv[j]) / p;
    D[j] = (-gamma[j] * r * sumG[j] + dmu[j]) / p;
  }
  for (let i = 0, o = 0; i < p; i++, o += c)
    for (let j = 0; j < c; j++) dx[o + j] = A[j] * g[o + j] + B[j] * (xs[o + j] - mu[j]) + D[j];
  return [dxT, dScaleT, dOffsetT];
};

export const batchNormTrainConfig: KernelConfig = {
  kernelName: BatchNormTrain,
  backendName: 'wasm',
  kernelFunc: batchNormTrain,
};
export const batchNormTrainGradConfig: KernelConfig = {
  kernelName: BatchNormTrainGrad,
  backendName: 'wasm',
  kernelFunc: batchNormTrainGrad,
};
