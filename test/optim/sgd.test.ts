/**
 * SGD with momentum and coupled weight decay (PyTorch semantics) against a hand computation.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { SGD } from '../../train/optim/sgd.ts';
import { seededTensor } from '../helpers/backends.ts';
import { setFusedKernels } from '../../train/kernels/fused.ts';

const GRADS = [
  [0.5, -1, 2],
  [0.25, 0.5, -1],
  [-2, 0, 1],
];
const P0 = [1, -2, 0.5];

/** PyTorch's loop by hand (float64): d = g + wd·p; buf = d (first) or mu·buf + d; p -= lr·buf. */
function reference(lrs: number[], mu: number, wd: number): number[][] {
  let p = P0.slice();
  let buf: number[] | null = null;
  const out: number[][] = [];
  GRADS.forEach((g, t) => {
    const d = g.map((gi, i) => gi + wd * p[i]);
    buf = mu === 0 ? d : buf === null ? d : buf.map((b, i) => mu * b + d[i]);
    p = p.map((pi, i) => pi - lrs[t] * buf![i]);
    out.push(p.slice());
  });
  return out;
}

function close(a: ArrayLike<number>, b: number[], what: string): void {
  for (let i = 0; i < b.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= 1e-6 * Math.max(1, Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`SGD [${backend}]`, () => {
    before(async () => {
      await initBackend(backend, { quiet: true });
    });

    it('three steps with momentum 0.9 and weight decay 1e-2 match the hand computation', () => {
      const p = tf.variable(tf.tensor1d(P0), true, `sgd_a_${backend}`);
      const opt = new SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 1e-2 });
      const want = reference([0.1, 0.1, 0.05], 0.9, 1e-2);
      // Spelled out: step 1 d = [0.51, -1.02, 2.005], p1 = [0.949, -1.898, 0.2995].
      close(want[0], [0.949, -1.898, 0.2995], 'hand step 1');
      const n0 = tf.memory().numTensors;
      GRADS.forEach((g, t) => {
        if (t === 2) opt.lr = 0.05; // lr is settable between steps
        const gt = tf.tensor1d(g);
        opt.step({ [p.name]: gt });
        gt.dispose();
        close(p.dataSync(), want[t], `step ${t + 1}`);
      });
      assert.equal(tf.memory().numTensors, n0 + 1, 'only the momentum buffer persists');
      opt.dispose();
      p.dispose();
    });

    it('momentum 0 is plain SGD; array gradients align with the parameter list', () => {
      const p = tf.variable(tf.tensor1d(P0), true, `sgd_b_${backend}`);
      const q = tf.variable(tf.tensor1d([3]), true, `sgd_c_${backend}`);
      const opt = new SGD([q, p], { lr: 0.2, weightDecay: 0.1 });
      const want = reference([0.2, 0.2, 0.2], 0, 0.1);
      GRADS.forEach((g, t) => {
        const gt = tf.tensor1d(g);
        opt.step([null, gt]);
        gt.dispose();
        close(p.dataSync(), want[t], `step ${t + 1}`);
      });
      assert.equal(q.dataSync()[0], 3, 'no gradient, no update (not even weight decay)');
      assert.deepEqual(Object.keys(opt.state().buffers), []);
      opt.dispose();
      tf.dispose([p, q]);
    });

    it('works with tf.variableGrads and resumes from state() exactly', () => {
      const mk = (tag: string) =>
        tf.variable(
          tf.tensor2d([
            [1, 2],
            [3, 4],
          ]),
          true,
          `sgd_w_${tag}_${backend}`,
        );
      // loss = Σ w²·c, grad = 2cw; a customGrad so the test needs no registered standard gradients.
      const sq = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
        const x = args[0] as tf.Tensor;
        return { value: tf.sum(tf.mul(x, x)), gradFunc: (dy: tf.Tensor) => tf.mul(dy, tf.mul(x, tf.scalar(2))) };
      });
      const run = (opt: SGD, w: tf.Variable) => {
        const { value, grads } = tf.variableGrads(() => sq(w) as tf.Scalar, [w]);
        opt.step(grads);
        tf.dispose([value, ...Object.values(grads)]);
      };
      const a = mk('a');
      const optA = new SGD([a], { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
      for (let i = 0; i < 3; i++) run(optA, a);
      const b = mk('b');
      // Re-run A's first two steps on b with a fresh optimiser, snapshot, then resume in a third optimiser.
      const optB = new SGD([b], { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
      for (let i = 0; i < 2; i++) run(optB, b);
      const st = optB.state();
      const key = Object.keys(st.buffers)[0];
      assert.equal(key, b.name);
      const optC = new SGD([b], { lr: 0.5, momentum: 0.9, weightDecay: 1e-4 });
      optC.loadState(
        JSON.parse(
          JSON.stringify({
            ...st,
            buffers: { [key]: { shape: st.buffers[key].shape, data: Array.from(st.buffers[key].data) } },
          }),
        ),
      );
      assert.equal(optC.lr, 0.01);
      run(optC, b);
      assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
      assert.throws(() => new SGD([b], { lr: 0.1, momentum: 0.5 }).loadState(st), /momentum/);
      [optA, optB, optC].forEach((o) => o.dispose());
      tf.dispose([a, b]);
    });
  });
}

describe('SGD fused over all parameters [wasm] (train/kernels/wasm/SgdStep.ts)', () => {
  before(async () => {
    await initBackend('wasm', { quiet: true });
  });

  /** Four steps on odd-sized parameters, one of them without a gradient in step 2; returns params and buffers. */
  async function run(fused: boolean, mu: number, wd: number): Promise<{ values: Float32Array[]; kernels: number[] }> {
    setFusedKernels(fused);
    try {
      const shapes = [[3, 3, 2, 5], [5], [17, 9], [1]];
      const params = shapes.map((s, i) => tf.variable(seededTensor(s, 10 + i), true, `v${i}_${fused}_${mu}`));
      const opt = new SGD(params, { lr: 0.05, momentum: mu, weightDecay: wd });
      const kernels: number[] = [];
      for (let t = 0; t < 4; t++) {
        const grads = shapes.map((s, i) => (t === 1 && i === 2 ? null : seededTensor(s, 100 * t + i + 1)));
        if (t === 2) opt.lr = 0.005;
        const info = await tf.profile(() => opt.step(grads));
        kernels.push(info.kernels.length);
        tf.dispose(grads.filter((g): g is tf.Tensor => g !== null));
      }
      const st = await opt.snapshot();
      const values = [
        ...params.map((p) => p.dataSync() as Float32Array),
        ...Object.values(st.buffers).map((b) => b.data),
      ];
      opt.dispose();
      tf.dispose(params);
      return { values, kernels };
    } finally {
      setFusedKernels(true);
    }
  }

  for (const [mu, wd] of [
    [0.9, 1e-4],
    [0, 1e-2],
    [0.9, 0],
  ]) {
    it(`one kernel per step, bit for bit the composed update (momentum ${mu}, weight decay ${wd})`, async () => {
      const fused = await run(true, mu, wd);
      const composed = await run(false, mu, wd);
      assert.deepEqual(fused.kernels, [1, 1, 1, 1], 'the fused step runs one kernel');
      assert.ok(composed.kernels[0] > 4);
      assert.equal(fused.values.length, composed.values.length);
      fused.values.forEach((v, i) => assert.deepEqual(v, composed.values[i], `tensor ${i}`));
    });
  }
});
