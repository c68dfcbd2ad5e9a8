/**
 * In-batch cross-view InfoNCE (--negatives batch): value and both gradients against a float64 loop over the
 * formula, on the cpu reference and the backends under test; plus the closed form for identical rows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../train/engine/backend.ts';
import { ensureGradients } from '../../train/engine/gradients.ts';
import { batchSoftmaxLoss } from '../../train/loss/batch_softmax.ts';
import { Rng } from '../../core/util/rng.ts';
import { GOLDEN_BACKENDS } from '../helpers/backends.ts';

function unitRows(rng: Rng, B: number, D: number): number[][] {
  return Array.from({ length: B }, () => {
    const r = Array.from({ length: D }, () => rng.normal());
    const n = Math.hypot(...r);
    return r.map((v) => v / n);
  });
}

/** Loss, dL/dA and dL/dO in float64: L = mean_i(lse_j(a_i·o_j/T) − a_i·o_i/T). */
function reference(A: number[][], O: number[][], T: number) {
  const B = A.length,
    D = A[0].length;
  const P = A.map((a) => O.map((o) => a.reduce((s, v, k) => s + v * o[k], 0) / T));
  let loss = 0;
  const G = P.map((row, i) => {
    const m = Math.max(...row);
    const e = row.map((z) => Math.exp(z - m));
    const s = e.reduce((x, y) => x + y, 0);
    loss += m + Math.log(s) - row[i];
    return e.map((v, j) => (v / s - (i === j ? 1 : 0)) / B); // dL/dlogits
  });
  loss /= B;
  const dA = A.map((_, i) => Array.from({ length: D }, (_, k) => G[i].reduce((s, g, j) => s + (g * O[j][k]) / T, 0)));
  const dO = O.map((_, j) =>
    Array.from({ length: D }, (_, k) => G.reduce((s, row, i) => s + (row[j] * A[i][k]) / T, 0)),
  );
  return { loss, dA: dA.flat(), dO: dO.flat() };
}

const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(got.length, want.length);
  for (let i = 0; i < got.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
};

/** Switch to `name`, or skip the test with the reason it cannot start here. */
async function useBackend(name: BackendName, t: { skip(msg: string): void }): Promise<boolean> {
  try {
    await initBackend(name, { quiet: true });
    return true;
  } catch (e) {
    t.skip(`${name} unavailable: ${(e as Error).message.split('\n')[0]}`);
    return false;
  }
}

for (const backend of GOLDEN_BACKENDS) {
  describe(`batchSoftmaxLoss on ${backend}`, () => {
    it('value and gradients match the float64 formula (B 7, D 5, T 0.1)', async (t) => {
      if (!(await useBackend(backend, t))) return;
      await ensureGradients();
      const rng = new Rng(11);
      const A = unitRows(rng, 7, 5),
        O = unitRows(rng, 7, 5);
      const ref = reference(A, O, 0.1);
      const a = tf.tensor2d(A),
        o = tf.tensor2d(O);
      const { value, grads } = tf.valueAndGrads(
        (x: tf.Tensor, y: tf.Tensor) => batchSoftmaxLoss(x as tf.Tensor2D, y as tf.Tensor2D, 0.1).loss,
      )([a, o]);
      close(await value.data(), [ref.loss], 1e-5, 'loss');
      close(await grads[0].data(), ref.dA, 1e-4, 'dA');
      close(await grads[1].data(), ref.dO, 1e-4, 'dO');
      tf.dispose([a, o, value, ...grads]);
    });

    it('identical embeddings in every row give log(B) and positive probability 1/B', async (t) => {
      if (!(await useBackend(backend, t))) return;
      const z = tf.tensor2d(Array.from({ length: 6 }, () => [0.6, 0.8]));
      const { loss, prob } = batchSoftmaxLoss(z, z, 0.07);
      close(await loss.data(), [Math.log(6)], 1e-6, 'loss');
      close(await prob.data(), [1 / 6], 1e-6, 'prob');
      tf.dispose([z, loss, prob]);
    });
  });
}
