/**
 * Conv2DBackpropInput for the wasm backend. tfjs-backend-wasm has one, but it is a plain loop that runs
 * at ~2 GFLOP/s against ~20-30 for XNNPACK's forward convolution, so we express the input gradient as a
 * forward convolution too:
 *
 *   dx = conv2d( zero-insert(dy, stride), rot180(W)^T [KH, KW, CO, CI], stride 1, pad KH-1-p )
 *
 * Zero insertion (only for stride > 1) places dy[oh] at row oh*s of a (OH-1)*s+1 tall map. Shapes the
 * identity cannot express (padding wider than the kernel), and strided ones with few input channels,
 * fall back to the stock kernel.
 */
import {
  backend_util,
  Conv2DBackpropInput,
  type Conv2DBackpropInputAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { wasmKernel, type WasmBackendLike } from './kernel_utils.ts';

const kernel = (name: string) => wasmKernel(name, 'Conv2DBackpropInput');

/** Builds the kernel; `stock` is tfjs's own implementation, used for shapes the identity does not cover. */
export function makeConv2DBackpropInputConfig(stock: KernelFunc | undefined): KernelConfig {
  const conv2DBackpropInput: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as Conv2DBackpropInputAttrs;
    const info = backend_util.computeConv2DInfo(
      inputShape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    const [n, h, w, ci] = inputShape as [number, number, number, number];
    const {
      filterHeight: kh,
      filterWidth: kw,
      strideHeight: sh,
      strideWidth: sw,
      outHeight: oh,
      outWidth: ow,
      outChannels: co,
    } = info;
    const { top, left } = info.padInfo;
    const hd = (oh - 1) * sh + 1;
    const wd = (ow - 1) * sw + 1;
    const padT = kh - 1 - top;
    const padL = kw - 1 - left;
    const padB = h - hd - padT + kh - 1;
    const padR = w - wd - padL + kw - 1;
    const nchw = dataFormat !== undefined && dataFormat !== 'NHWC';
    // Zero insertion multiplies the work by sh*sw; it still beats the stock loop unless the result has so
    // few channels that XNNPACK's GEMM degenerates (a first conv layer, whose input gradient training never needs).
    const strided = sh > 1 || sw > 1;
    if (nchw || padT < 0 || padL < 0 || padB < 0 || padR < 0 || (strided && ci < 16)) {
      if (!stock) throw new Error('Conv2DBackpropInput: unsupported configuration and no stock kernel');
      return stock(args) as TensorInfo;
    }
    const b = backend as WasmBackendLike;
    const transpose = kernel('Transpose');
    const reverse = kernel('Reverse');
    const conv = kernel('Conv2D');
    const reshape = kernel('Reshape');
    const padK = kernel('PadV2');
    const slice = kernel('Slice');

    // rot180 over (kh, kw), then swap in/out channels: [KH, KW, CI, CO] -> [KH, KW, CO, CI].
    const rev = reverse({ inputs: { x: filter }, backend, attrs: { dims: [0, 1] } });
    const wT = transpose({ inputs: { x: rev }, backend, attrs: { perm: [0, 1, 3, 2] } });
    b.disposeData(rev.dataId);

    let src = dy;
    const owned: TensorInfo[] = [];
    if (sh > 1 || sw > 1) {
      // [N, OH, OW, CO] -> [N, OH, 1, OW, 1, CO] -> pad to [N, OH, sh, OW, sw, CO] -> [N, OH*sh, OW*sw, CO] -> crop.
      const r6 = reshape({ inputs: { x: dy }, backend, attrs: { shape: [n, oh, 1, ow, 1, co] } });
      const p6 = padK({
        inputs: { x: r6 },
        backend,
        attrs: {
          paddings: [
            [0, 0],
            [0, 0],
            [0, sh - 1],
            [0, 0],
            [0, sw - 1],
            [0, 0],
          ],
          constantValue: 0,
        },
      });
      const r4 = reshape({ inputs: { x: p6 }, backend, attrs: { shape: [n, oh * sh, ow * sw, co] } });
      src = slice({ inputs: { x: r4 }, backend, attrs: { begin: [0, 0, 0, 0], size: [n, hd, wd, co] } });
      // wasm's Reshape shares the buffer and bumps its refcount, so each view is released too.
      for (const t of [r6, p6, r4]) b.disposeData(t.dataId);
      owned.push(src);
    }
    const dx = conv({
      inputs: { x: src, filter: wT },
      backend,
      attrs: {
        strides: [1, 1],
        pad: [
          [0, 0],
          [padT, padB],
          [padL, padR],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [1, 1],
      },
    });
    b.disposeData(wT.dataId);
    for (const t of owned) b.disposeData(t.dataId);
    if (dx.shape[3] !== ci) throw new Error('Conv2DBackpropInput: channel mismatch');
    return dx;
  };
  return { kernelName: Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2DBackpropInput };
}
