/**
 * The pure losses: golden values from the golden outputs, a naive float64 reference, a closed form
 * (uniform softmax scores → log(K+1)), stability, and the hand-written gradients against finite differences.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { NCE_EPS, nceLoss, softmaxLoss, sumLosses } from '../../train/loss/nce.ts';
import { Rng } from '../../core/util/rng.ts';
import { assertClose, flat, loadGolden } from '../helpers/golden.ts';
import { GOLDEN_BACKENDS, unavailableReason } from '../helpers/backends.ts';

const G = loadGolden();
const N = G.config.n_data as number;

/** NCECriterion in float64, a plain loop over upstream's formula. */
function nceRef(P: number[][], n: number): number {
  const K = P[0].length - 1;
  const c = K / n;
  let s = 0;
  for (const row of P) {
    s += Math.log(row[0] / (row[0] + c + NCE_EPS));
    for (let j = 1; j <= K; j++) s += Math.log(c / (row[j] + c + NCE_EPS));
  }
  return -s / P.length;
}

/** Cross-entropy with target 0 in float64. */
function softmaxRef(z: number[][]): number {
  let s = 0;
  for (const row of z) {
    const m = Math.max(...row);
    s += m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[0];
  }
  return s / z.length;
}

function rows(a: ArrayLike<number>, C: number): number[][] {
  const r: number[][] = [];
  for (let i = 0; i < a.length; i += C) r.push(Array.from(a).slice(i, i + C));
  return r;
}

for (const backend of GOLDEN_BACKENDS) {
  // A backend that cannot start here is skipped with the reason.
  const skip = (await unavailableReason(backend, { readsSync: true })) ?? false;
  describe(`nce losses [${backend}]`, { skip }, () => {
    before(async () => {
      await initBackend(backend, { quiet: true });
    });

    it('reproduces the golden NCE and softmax-CE losses from the golden outputs', () => {
      for (const s of ['step1', 'step2'] as const) {
        for (const v of ['l', 'ab'] as const) {
          const nce = tf.tensor2d(G.nce[s][`out_${v}`]);
          assertClose(nceLoss(nce, N).dataSync()[0], G.nce[s][`loss_${v}`], 'rel', `nce ${s} loss_${v}`);
          const sm = tf.tensor2d(G.softmax[s][`out_${v}`]);
          assertClose(softmaxLoss(sm).dataSync()[0], G.softmax[s][`loss_${v}`], 'rel', `softmax ${s} loss_${v}`);
          assert.equal(nceRef(G.nce[s][`out_${v}`], N).toFixed(10), (G.nce[s][`loss_${v}`] as number).toFixed(10));
          tf.dispose([nce, sm]);
        }
      }
    });

    it('matches a naive float64 reference on random inputs', () => {
      const rng = new Rng(123);
      for (const [B, C, n] of [
        [3, 5, 40],
        [7, 17, 1000],
        [1, 2, 3],
      ] as const) {
        const P = Float32Array.from({ length: B * C }, () => Math.exp(rng.range(-20, 0)));
        const z = Float32Array.from({ length: B * C }, () => rng.range(-15, 15));
        const tp = tf.tensor2d(P, [B, C]);
        const tz = tf.tensor2d(z, [B, C]);
        assertClose(nceLoss(tp, n).dataSync()[0], nceRef(rows(P, C), n), 'rel', `nce B=${B} C=${C}`);
        assertClose(softmaxLoss(tz).dataSync()[0], softmaxRef(rows(z, C)), 'unit', `softmax B=${B} C=${C}`);
        tf.dispose([tp, tz]);
      }
    });

    it('softmax loss of uniform scores is log(K+1) (closed form)', () => {
      for (const [B, K, v] of [
        [4, 5, 0],
        [3, 4095, 2.5],
        [2, 16384, -7],
      ] as const) {
        const z = tf.fill([B, K + 1], v) as tf.Tensor2D;
        assertClose(softmaxLoss(z).dataSync()[0], Math.log(K + 1), 'rel', `K=${K}`);
        z.dispose();
      }
    });

    it('softmax loss is stable for large logits', () => {
      const z = tf.tensor2d([
        [1000, 0, -1000],
        [-1000, 1000, 0],
      ]);
      const v = softmaxLoss(z).dataSync()[0];
      assertClose(v, 1000, 'rel', 'large logits'); // row 0 → 0, row 1 → 2000, mean 1000
      const g = tf
        .grad((t: tf.Tensor) => softmaxLoss(t as tf.Tensor2D))(z)
        .dataSync();
      assert.ok(Array.from(g).every(Number.isFinite));
      tf.dispose([z]);
    });

    it('hand-written gradients match central finite differences of the float64 reference', () => {
      const rng = new Rng(9);
      const B = 3,
        C = 6,
        n = 50;
      const P = Array.from({ length: B * C }, () => Math.exp(rng.range(-6, -1)));
      const z = Array.from({ length: B * C }, () => rng.range(-3, 3));
      const gN = tf
        .grad((t: tf.Tensor) => nceLoss(t as tf.Tensor2D, n))(tf.tensor2d(P, [B, C]))
        .dataSync();
      const gS = tf
        .grad((t: tf.Tensor) => softmaxLoss(t as tf.Tensor2D))(tf.tensor2d(z, [B, C]))
        .dataSync();
      for (let k = 0; k < B * C; k++) {
        const h = 1e-6 * P[k];
        const pp = P.slice(),
          pm = P.slice();
        pp[k] += h;
        pm[k] -= h;
        const fd = (nceRef(rows(pp, C), n) - nceRef(rows(pm, C), n)) / (2 * h);
        assert.ok(Math.abs(gN[k] - fd) <= 1e-4 * Math.max(Math.abs(fd), 1), `nce grad ${k}: ${gN[k]} vs ${fd}`);
        const zp = z.slice(),
          zm = z.slice();
        zp[k] += 1e-5;
        zm[k] -= 1e-5;
        const fdS = (softmaxRef(rows(zp, C)) - softmaxRef(rows(zm, C))) / 2e-5;
        assert.ok(Math.abs(gS[k] - fdS) <= 1e-5, `softmax grad ${k}: ${gS[k]} vs ${fdS}`);
      }
    });

    it('sumLosses is a differentiable sum and scales an upstream gradient', () => {
      const a = tf.tensor2d([[0.3, 0.1, 0.2]]);
      const b = tf.tensor2d([[1, 2, 3]]);
      const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) =>
        sumLosses(nceLoss(x as tf.Tensor2D, 10), softmaxLoss(y as tf.Tensor2D)),
      )([a, b]);
      const ga1 = tf.grad((x: tf.Tensor) => nceLoss(x as tf.Tensor2D, 10))(a);
      const gb1 = tf.grad((y: tf.Tensor) => softmaxLoss(y as tf.Tensor2D))(b);
      assert.deepEqual(Array.from(ga.dataSync()), Array.from(ga1.dataSync()));
      assert.deepEqual(Array.from(gb.dataSync()), Array.from(gb1.dataSync()));
      const v = sumLosses(tf.scalar(1), tf.scalar(2), tf.scalar(3.5));
      assert.equal(v.dataSync()[0], 6.5);
      tf.dispose([a, b, ga, gb, ga1, gb1, v]);
    });

    it('leaks no tensors', () => {
      const z = tf.tensor2d(flat(G.softmax.step1.out_l), [4, 6]);
      const p = tf.tensor2d(flat(G.nce.step1.out_l), [4, 6]);
      const n0 = tf.memory().numTensors;
      const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
        sumLosses(softmaxLoss(a as tf.Tensor2D), nceLoss(b as tf.Tensor2D, N)),
      )([z, p]);
      tf.dispose([value, ...grads]);
      tf.dispose([softmaxLoss(z), nceLoss(p, N)]);
      assert.equal(tf.memory().numTensors, n0);
      tf.dispose([z, p]);
    });
  });
}
