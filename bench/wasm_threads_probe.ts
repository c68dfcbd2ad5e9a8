// A/B: XNNPACK with 1 vs 2 pthreadpool threads in one process (the pool is rebuilt between rounds).
import * as tf from '@tensorflow/tfjs-core';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import { prepareWasmThreads, finishWasmThreads } from '../train/kernels/wasm_threads.ts';
console.log('prepared', prepareWasmThreads(2, wasm));
try { await tf.setBackend('wasm'); await tf.ready(); } finally { finishWasmThreads(); }
const be = tf.backend() as any;
const x = tf.randomNormal([128, 15, 15, 48]) as tf.Tensor4D;
const w = tf.randomNormal([5, 5, 48, 128]) as tf.Tensor4D;
const a = tf.randomNormal([128, 2048]), b = tf.randomNormal([2048, 2048]);
const conv = () => tf.conv2d(x, w, 1, 'same');
const mm = () => tf.matMul(a, b);
const time = (f: () => tf.Tensor, n = 3) => {
  f().dataSync();
  const c0 = process.cpuUsage(); const t = performance.now();
  for (let i = 0; i < n; i++) { const r = f(); r.dataSync(); r.dispose(); }
  const wall = performance.now() - t; const c = process.cpuUsage(c0);
  (res['cpu/wall'] ??= []).push((c.user + c.system) / 1000 / wall);
  return wall / n;
};
const res: Record<string, number[]> = {};
for (let r = 0; r < 4; r++) for (const th of [1, 2]) {
  be.wasm.tfjs.initWithThreadsCount(th);
  const k = `t${be.wasm.tfjs.getThreadsCount()}`;
  (res[`${k} conv`] ??= []).push(time(conv)); (res[`${k} conv cpu/wall`] ??= []).push(res['cpu/wall'].pop()!);
  (res[`${k} matmul`] ??= []).push(time(mm));
}
for (const [k, v] of Object.entries(res)) console.log(k, v.map((t) => t.toFixed(t < 10 ? 2 : 0)).join(' '), 'median', v.sort((p, q) => p - q)[v.length >> 1].toFixed(2));
import fs from 'node:fs';
const ticks = () => Object.fromEntries(fs.readdirSync('/proc/self/task').map((t) => { const f = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8').split(') ')[1].split(' '); return [t, Number(f[11]) + Number(f[12])]; }));
be.wasm.tfjs.initWithThreadsCount(2);
const t0 = ticks(); time(conv, 5); const t1 = ticks();
console.log('per-thread CPU ticks during 2-thread convs:', Object.entries(t1).map(([k, v]) => v - (t0[k] ?? 0)).filter((d) => d > 0).join(' '));
