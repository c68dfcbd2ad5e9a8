// Quick probe: correctness and speed of conv kernels on wasm vs cpu (not part of the suite).
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../train/engine/backend.ts';
const cases = [
  { name: 'alex224 conv1', x: [32, 224, 224, 1], f: [11, 11, 1, 48], s: 4, p: 2 },
  { name: 'alex224 conv2', x: [32, 27, 27, 48], f: [5, 5, 48, 128], s: 1, p: 2 },
  { name: 'alex224 conv3', x: [32, 13, 13, 128], f: [3, 3, 128, 192], s: 1, p: 1 },
  { name: 'small64 conv1', x: [128, 64, 64, 2], f: [5, 5, 2, 48], s: 2, p: 2 },
  { name: 'small64 conv2', x: [128, 15, 15, 48], f: [5, 5, 48, 128], s: 1, p: 2 },
  { name: 'small64 conv4', x: [128, 7, 7, 192], f: [3, 3, 192, 192], s: 1, p: 1 },
];
await initBackend('wasm');
for (const c of cases) {
  const x = tf.randomNormal(c.x as [number, number, number, number]);
  const w = tf.randomNormal(c.f as [number, number, number, number]);
  const pad = [[0, 0], [c.p, c.p], [c.p, c.p], [0, 0]] as [[number, number], [number, number], [number, number], [number, number]];
  const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.s, pad);
  const dy = tf.randomNormal(y.shape);
  const time = (f: () => tf.Tensor) => { f().dataSync(); const t = performance.now(); const n = 3; for (let i = 0; i < n; i++) { const r = f(); r.dataSync(); r.dispose(); } return (performance.now() - t) / n; };
  const flops = 2 * y.size * c.f[0] * c.f[1] * c.f[2];
  const tf_ = time(() => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.s, pad));
  const dwK = () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: c.s, pad, dataFormat: 'NHWC', filterShape: c.f } as any) as tf.Tensor;
  const dxK = () => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { strides: c.s, pad, dataFormat: 'NHWC', inputShape: c.x } as any) as tf.Tensor;
  const tdw = time(dwK);
  const tdx = time(dxK);
  console.log(`${c.name}: fwd ${tf_.toFixed(1)} ms (${(flops / tf_ / 1e6).toFixed(1)} GF/s) dW ${tdw.toFixed(1)} ms (${(flops / tdw / 1e6).toFixed(1)}) dX ${tdx.toFixed(1)} ms (${(flops / tdx / 1e6).toFixed(1)})`);
}
