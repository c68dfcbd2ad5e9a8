/**
 * BatchMatMul for the wasm backend with transposed operands. The stock kernel is fast only for
 * A·B (XNNPACK-backed, ~16 GFLOP/s); with transposeA or transposeB it falls to a strided loop that is
 * 10-50x slower (128x2048 · 2048x2048: 66 ms plain, 2.6 s with transposeA). Backprop through every dense
 * layer asks for exactly those (dW = xᵀ·dy, dx = dy·Wᵀ), so we transpose explicitly and call the stock
 * kernel on a plain product, choosing the cheaper of two identities by the number of elements copied:
 *   op(A)·op(B)  with op(A), op(B) materialised          (copies the transposed operands), or
 *   (op(B)ᵀ·op(A)ᵀ)ᵀ                                     (copies the other operands and the output).
 * For dx = dy·Wᵀ with a big W and a small batch the second avoids copying W (124 ms -> 7 ms at B=16).
 */
import {
  BatchMatMul,
  getKernel,
  type BatchMatMulAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  disposeData(dataId: object): boolean;
}

export function makeBatchMatMulConfig(stock: KernelFunc | undefined): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    if (!stock) throw new Error('wasm BatchMatMul: the stock kernel is missing');
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
    if (!transposeA && !transposeB) return stock(args) as TensorInfo;
    const backend = args.backend as WasmBackendLike;
    const transposeK = getKernel('Transpose', 'wasm')!.kernelFunc;
    const swapLast = (t: TensorInfo): TensorInfo => {
      const r = t.shape.length;
      const perm = [...Array(r).keys()];
      [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
      return transposeK({ inputs: { x: t }, backend: args.backend, attrs: { perm } }) as TensorInfo;
    };
    const size = (t: TensorInfo) => t.shape.reduce((x, y) => x * y, 1);
    const r = a.shape.length;
    const m = transposeA ? a.shape[r - 1] : a.shape[r - 2];
    const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
    const batch = Math.max(
      size(a) / (a.shape[r - 1] * a.shape[r - 2]),
      size(b) / (b.shape[b.shape.length - 1] * b.shape[b.shape.length - 2]),
    );
    const direct = (transposeA ? size(a) : 0) + (transposeB ? size(b) : 0);
    const swapped = (transposeA ? 0 : size(a)) + (transposeB ? 0 : size(b)) + batch * m * n;
    const plain = (x: TensorInfo, y: TensorInfo) =>
      stock({
        ...args,
        inputs: { a: x, b: y },
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      }) as TensorInfo;
    const temps: TensorInfo[] = [];
    const keep = (t: TensorInfo) => (temps.push(t), t);
    let out: TensorInfo;
    if (direct <= swapped) {
      out = plain(transposeA ? keep(swapLast(a)) : a, transposeB ? keep(swapLast(b)) : b);
    } else {
      // op(B)ᵀ = B when transposeB, op(A)ᵀ = A when transposeA.
      const t = keep(plain(transposeB ? b : keep(swapLast(b)), transposeA ? a : keep(swapLast(a))));
      out = swapLast(t);
    }
    for (const t of temps) backend.disposeData(t.dataId);
    return out;
  };
  return { kernelName: BatchMatMul, backendName: 'wasm', kernelFunc };
}
