/**
 * MemoryBank (upstream's NCEAverage) against every number of golden.json's nce and softmax sections, on
 * the cpu and wasm backends and through both scoring paths; plus path equivalence, K clamping, sampling,
 * checkpoint state and tensor leaks.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { MemoryBank } from '../../train/loss/memory_bank.ts';
import { nceLoss, softmaxLoss, sumLosses } from '../../train/loss/nce.ts';
import { Rng } from '../../core/util/rng.ts';
import { assertClose, flat, loadGolden } from '../helpers/golden.ts';
import { GOLDEN_BACKENDS, unavailableReason } from '../helpers/backends.ts';

const G = loadGolden();
const cfg = G.config;

function goldenBank(mode: 'nce' | 'softmax', scoring: 'bank' | 'gather'): MemoryBank {
  const bank = new MemoryBank({
    nData: cfg.n_data,
    featDim: cfg.feat_dim,
    K: cfg.K,
    T: cfg.T,
    momentum: cfg.momentum,
    softmax: mode === 'softmax',
    rng: new Rng(1),
    scoring,
  });
  bank.setMemory(0, flat(G.inputs.memory_l));
  bank.setMemory(1, flat(G.inputs.memory_ab));
  return bank;
}

interface StepResult {
  scoresL: Float32Array;
  scoresAb: Float32Array;
  outL: Float32Array;
  outAb: Float32Array;
  lossL: number;
  lossAb: number;
  total: number;
  probPosL: number;
  probPosAb: number;
  softmaxProbL: Float32Array;
  softmaxProbAb: Float32Array;
  gradL: Float32Array;
  gradAb: Float32Array;
}

/** One training step of upstream's loop on given inputs: forward, both losses, gradients, then update. */
function step(bank: MemoryBank, inp: { y: number[]; idx: number[][]; l: number[][]; ab: number[][] }): StepResult {
  const B = inp.y.length;
  const D = cfg.feat_dim;
  const y = Int32Array.from(inp.y);
  const idx = Int32Array.from(flat(inp.idx));
  const l = tf.tensor2d(flat(inp.l), [B, D]);
  const ab = tf.tensor2d(flat(inp.ab), [B, D]);
  const scoresL = tf.tidy(() => bank.rawScores(l, 1, idx));
  const scoresAb = tf.tidy(() => bank.rawScores(ab, 0, idx));
  let kept: tf.Tensor[] = [];
  const { value, grads } = tf.tidy(() =>
    tf.valueAndGrads((lt: tf.Tensor, abt: tf.Tensor) => {
      const { outL, outAb } = bank.forward(lt as tf.Tensor2D, abt as tf.Tensor2D, y, idx);
      const lossL = bank.softmax ? softmaxLoss(outL) : nceLoss(outL, cfg.n_data);
      const lossAb = bank.softmax ? softmaxLoss(outAb) : nceLoss(outAb, cfg.n_data);
      kept = [outL, outAb, lossL, lossAb].map((t) => tf.keep(t));
      return sumLosses(lossL as tf.Scalar, lossAb as tf.Scalar);
    })([l, ab]),
  );
  const [outL, outAb, lossL, lossAb] = kept;
  const colMean = (o: tf.Tensor) => tf.tidy(() => tf.mean(tf.slice(o, [0, 0], [B, 1])).dataSync()[0]);
  const r: StepResult = {
    scoresL: scoresL.dataSync() as Float32Array,
    scoresAb: scoresAb.dataSync() as Float32Array,
    outL: outL.dataSync() as Float32Array,
    outAb: outAb.dataSync() as Float32Array,
    lossL: lossL.dataSync()[0],
    lossAb: lossAb.dataSync()[0],
    total: value.dataSync()[0],
    probPosL: colMean(outL),
    probPosAb: colMean(outAb),
    softmaxProbL: tf.tidy(() => tf.softmax(outL).dataSync() as Float32Array),
    softmaxProbAb: tf.tidy(() => tf.softmax(outAb).dataSync() as Float32Array),
    gradL: grads[0].dataSync() as Float32Array,
    gradAb: grads[1].dataSync() as Float32Array,
  };
  tf.dispose([scoresL, scoresAb, value, ...grads, ...kept]);
  bank.update(l, ab, y);
  tf.dispose([l, ab]);
  return r;
}

for (const backend of GOLDEN_BACKENDS) {
  // A backend that cannot start here is skipped with the reason.
  const skip = (await unavailableReason(backend, { readsSync: true })) ?? false;
  describe(`MemoryBank golden [${backend}]`, { skip }, () => {
    before(async () => {
      await initBackend(backend, { quiet: true });
    });

    for (const mode of ['nce', 'softmax'] as const) {
      for (const scoring of ['bank', 'gather'] as const) {
        it(`${mode} mode, two consecutive steps, ${scoring} scoring`, () => {
          const bank = goldenBank(mode, scoring);
          assert.equal(bank.scoringPath(cfg.batch), scoring);
          assert.equal(bank.T, Math.fround(0.07));
          assert.equal(bank.zL, -1);
          assert.equal(bank.zAb, -1);
          const before0 = tf.memory().numTensors;
          for (const s of ['step1', 'step2'] as const) {
            const want = G[mode][s];
            const got = step(bank, G.inputs[s]);
            const tag = `${backend}/${mode}/${scoring}/${s}`;
            assertClose(got.scoresL, want.scores_l, 'unit', `${tag} scores_l`);
            assertClose(got.scoresAb, want.scores_ab, 'unit', `${tag} scores_ab`);
            if (mode === 'nce') {
              assertClose(bank.zL, want.Z_l, 'rel', `${tag} Z_l`);
              assertClose(bank.zAb, want.Z_ab, 'rel', `${tag} Z_ab`);
              assert.equal(bank.zL, Math.fround(bank.zL), 'Z is float32-rounded');
              assertClose(got.outL, want.out_l, 'rel', `${tag} out_l`);
              assertClose(got.outAb, want.out_ab, 'rel', `${tag} out_ab`);
              assertClose(got.probPosL, want.prob_pos_l_mean, 'rel', `${tag} prob_pos_l_mean`);
              assertClose(got.probPosAb, want.prob_pos_ab_mean, 'rel', `${tag} prob_pos_ab_mean`);
            } else {
              assert.equal(bank.zL, -1, 'softmax mode never estimates Z');
              assertClose(got.outL, want.out_l, 'unit', `${tag} out_l (logits)`);
              assertClose(got.outAb, want.out_ab, 'unit', `${tag} out_ab (logits)`);
              assertClose(got.softmaxProbL, want.softmax_prob_l, 'rel', `${tag} softmax_prob_l`);
              assertClose(got.softmaxProbAb, want.softmax_prob_ab, 'rel', `${tag} softmax_prob_ab`);
            }
            assertClose(got.lossL, want.loss_l, 'rel', `${tag} loss_l`);
            assertClose(got.lossAb, want.loss_ab, 'rel', `${tag} loss_ab`);
            assertClose(got.total, want.loss_total, 'rel', `${tag} loss_total`);
            assertClose(got.gradL, want.grad_l, 'unit', `${tag} grad_l`);
            assertClose(got.gradAb, want.grad_ab, 'unit', `${tag} grad_ab`);
            assertClose(bank.memory(0).dataSync(), want.memory_l_after, 'unit', `${tag} memory_l_after`);
            assertClose(bank.memory(1).dataSync(), want.memory_ab_after, 'unit', `${tag} memory_ab_after`);
          }
          // Z was estimated at step 1 and reused at step 2 (golden step2 Z == step1 Z).
          if (mode === 'nce') assert.equal(G.nce.step2.Z_l, G.nce.step1.Z_l);
          assert.equal(tf.memory().numTensors, before0, 'no tensors leaked over two steps');
          bank.dispose();
        });
      }
    }

    it('gradient w.r.t. model variables (variableGrads) never reaches the memories', () => {
      const bank = goldenBank('nce', 'gather');
      const inp = G.inputs.step1;
      const y = Int32Array.from(inp.y);
      const idx = Int32Array.from(flat(inp.idx));
      const l = tf.variable(tf.tensor2d(flat(inp.l), [4, 8]), true, 'mb_test_l');
      const ab = tf.variable(tf.tensor2d(flat(inp.ab), [4, 8]), true, 'mb_test_ab');
      const { value, grads } = tf.variableGrads(() => {
        const { outL, outAb } = bank.forward(l, ab, y, idx);
        return sumLosses(nceLoss(outL, cfg.n_data), nceLoss(outAb, cfg.n_data));
      });
      assert.deepEqual(Object.keys(grads).sort(), ['mb_test_ab', 'mb_test_l']);
      assertClose(grads.mb_test_l.dataSync(), G.nce.step1.grad_l, 'unit', 'variableGrads grad_l');
      assertClose(grads.mb_test_ab.dataSync(), G.nce.step1.grad_ab, 'unit', 'variableGrads grad_ab');
      tf.dispose([value, ...Object.values(grads), l, ab]);
      bank.dispose();
    });
  });

  describe(`MemoryBank behaviour [${backend}]`, { skip }, () => {
    before(async () => {
      await initBackend(backend, { quiet: true });
    });

    it('bank (B×N matmul) and gather (batched dot) paths agree on outputs and gradients', () => {
      const N = 50,
        D = 16,
        K = 9,
        B = 6;
      for (const softmax of [false, true]) {
        const a = new MemoryBank({ nData: N, featDim: D, K, softmax, rng: new Rng(7), scoring: 'bank' });
        const b = new MemoryBank({ nData: N, featDim: D, K, softmax, rng: new Rng(99), scoring: 'gather' });
        b.loadState(a.state());
        const auto = new MemoryBank({ nData: N, featDim: D, K, softmax, rng: new Rng(1) });
        assert.equal(auto.scoringPath(B), 'bank', 'N <= B(K+1) picks the bank path');
        assert.equal(auto.scoringPath(4), 'gather', 'N > B(K+1) picks the gather path');
        auto.dispose();
        const rng = new Rng(3);
        const y = Int32Array.from([0, 5, 11, 17, 23, 49]);
        const idx = a.sampleIdx(y);
        idx[1] = idx[2] = idx[3]; // repeated negatives accumulate in the backward
        idx[K + 2] = y[1]; // the positive drawn as a negative
        const feats = [0, 1].map(() => {
          const v = Float32Array.from({ length: B * D }, () => rng.normal());
          return tf.tidy(() => {
            const t = tf.tensor2d(v, [B, D]);
            return tf.div(t, tf.norm(t, 'euclidean', 1, true)) as tf.Tensor2D;
          });
        });
        const run = (bank: MemoryBank) => {
          const { value, grads } = tf.valueAndGrads((l: tf.Tensor, ab: tf.Tensor) => {
            const { outL, outAb } = bank.forward(l as tf.Tensor2D, ab as tf.Tensor2D, y, idx);
            return softmax
              ? sumLosses(softmaxLoss(outL), softmaxLoss(outAb))
              : sumLosses(nceLoss(outL, N), nceLoss(outAb, N));
          })(feats);
          const outs = tf.tidy(() => bank.forward(feats[0], feats[1], y, idx));
          const r = {
            loss: value.dataSync()[0],
            gl: Array.from(grads[0].dataSync()),
            gab: Array.from(grads[1].dataSync()),
            outL: Array.from(outs.outL.dataSync()),
            outAb: Array.from(outs.outAb.dataSync()),
            z: bank.zValues,
          };
          tf.dispose([value, ...grads, outs.outL, outs.outAb]);
          return r;
        };
        const ra = run(a);
        const rb = run(b);
        assertClose(ra.loss, rb.loss, 'rel', 'loss', 1e-6);
        assertClose(ra.outL, rb.outL, 'rel', 'outL', 1e-6);
        assertClose(ra.outAb, rb.outAb, 'rel', 'outAb', 1e-6);
        assertClose(ra.gl, rb.gl, 'unit', 'grad l', 1e-6);
        assertClose(ra.gab, rb.gab, 'unit', 'grad ab', 1e-6);
        if (!softmax) assertClose(ra.z, rb.z, 'rel', 'Z', 1e-6);
        tf.dispose(feats);
        a.dispose();
        b.dispose();
      }
    });

    it('clamps K to nData-1 with a warning', () => {
      const msgs: string[] = [];
      const bank = new MemoryBank({ nData: 6, featDim: 4, K: 10, rng: new Rng(0), log: (m) => msgs.push(m) });
      assert.equal(bank.K, 5);
      assert.equal(msgs.length, 1);
      assert.match(msgs[0], /K=10.*clamped to K=5/);
      const idx = bank.sampleIdx(Int32Array.from([2, 3]));
      assert.equal(idx.length, 2 * 6);
      bank.dispose();
      const ok: string[] = [];
      new MemoryBank({ nData: 6, featDim: 4, K: 5, rng: new Rng(0), log: (m) => ok.push(m) }).dispose();
      assert.equal(ok.length, 0, 'K = nData-1 is not clamped');
    });

    it('samples B×(K+1) uniform indices with column 0 = y, reproducibly', () => {
      const N = 10,
        K = 4;
      const bank = new MemoryBank({ nData: N, featDim: 4, K, rng: new Rng(5) });
      const y = Int32Array.from([9, 0, 4]);
      const idx = bank.sampleIdx(y);
      assert.equal(idx.length, 3 * (K + 1));
      for (let i = 0; i < 3; i++) assert.equal(idx[i * (K + 1)], y[i]);
      assert.ok(idx.every((v) => v >= 0 && v < N));
      // Same seed, same draws (memory init consumes the same amount of the rng first).
      const twin = new MemoryBank({ nData: N, featDim: 4, K, rng: new Rng(5) });
      assert.deepEqual(Array.from(twin.sampleIdx(y)), Array.from(idx));
      // Roughly uniform.
      const counts = new Array(N).fill(0);
      const big = bank.sampleIdx(new Int32Array(2000));
      for (let i = 0; i < big.length; i++) if (i % (K + 1) !== 0) counts[big[i]]++;
      for (const c of counts) assert.ok(Math.abs(c - 800) < 150, `count ${c} far from 800`);
      bank.dispose();
      twin.dispose();
    });

    it('initialises memories uniformly in ±1/sqrt(D/3), unnormalised, with expected squared row norm 1', () => {
      const N = 400,
        D = 12;
      const bank = new MemoryBank({ nData: N, featDim: D, K: 3, rng: new Rng(11) });
      const s = 1 / Math.sqrt(D / 3);
      for (const v of [0, 1]) {
        const m = bank.memory(v).dataSync();
        let sq = 0,
          min = Infinity,
          max = -Infinity;
        for (const x of m) {
          sq += x * x;
          min = Math.min(min, x);
          max = Math.max(max, x);
        }
        assert.ok(min >= -s && max <= s, 'inside [-s, s]');
        assert.ok(min < -0.95 * s && max > 0.95 * s, 'covers the range');
        assert.ok(Math.abs(sq / N - 1) < 0.05, `mean squared row norm ${sq / N}`);
      }
      assert.notDeepEqual(
        Array.from(bank.memory(0).dataSync().slice(0, 8)),
        Array.from(bank.memory(1).dataSync().slice(0, 8)),
      );
      bank.dispose();
    });

    it('state()/loadState() round-trips memories and Z', () => {
      const bank = goldenBank('nce', 'gather');
      step(bank, G.inputs.step1);
      const st = bank.state();
      assert.equal(st.K, 5);
      assert.equal(st.T, Math.fround(0.07));
      assert.equal(st.momentum, 0.5);
      assert.deepEqual(st.z, [bank.zL, bank.zAb]);
      const other = new MemoryBank({
        nData: 20,
        featDim: 8,
        K: 5,
        T: 0.07,
        momentum: 0.5,
        rng: new Rng(42),
        scoring: 'gather',
      });
      other.loadState(JSON.parse(JSON.stringify({ ...st, memories: st.memories.map((m) => Array.from(m)) })));
      assert.deepEqual(other.zValues, bank.zValues);
      const got = step(other, G.inputs.step2);
      assertClose(got.lossL, G.nce.step2.loss_l, 'rel', 'resumed loss_l');
      assertClose(other.memory(1).dataSync(), G.nce.step2.memory_ab_after, 'unit', 'resumed memory_ab');
      const wrongK = new MemoryBank({ nData: 20, featDim: 8, K: 4, rng: new Rng(1) });
      assert.throws(() => wrongK.loadState(st), /K 5 vs 4/);
      wrongK.dispose();
      other.dispose();
      bank.dispose();
    });

    it('dispose() frees every tensor the bank owns', () => {
      const n0 = tf.memory().numTensors;
      const bank = new MemoryBank({ nData: 30, featDim: 8, K: 7, rng: new Rng(2) });
      assert.equal(tf.memory().numTensors, n0 + 2, 'one variable per view');
      bank.dispose();
      assert.equal(tf.memory().numTensors, n0);
      assert.throws(() => bank.memory(0), /after dispose/);
    });

    it('leaks no tensors across forward + update, with and without a gradient tape', () => {
      for (const softmax of [false, true]) {
        for (const scoring of ['bank', 'gather'] as const) {
          const bank = new MemoryBank({ nData: 30, featDim: 8, K: 7, softmax, rng: new Rng(2), scoring });
          const l = tf.tidy(() => tf.div(tf.ones([4, 8]), tf.scalar(Math.sqrt(8)))) as tf.Tensor2D;
          const ab = tf.tidy(() => tf.neg(l)) as tf.Tensor2D;
          const y = Int32Array.from([1, 2, 3, 4]);
          const n0 = tf.memory().numTensors;
          for (let it = 0; it < 3; it++) {
            const { outL, outAb } = bank.forward(l, ab, y);
            tf.dispose([outL, outAb]);
            const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => {
              const { outL: oL, outAb: oAb } = bank.forward(a as tf.Tensor2D, b as tf.Tensor2D, y);
              return softmax
                ? sumLosses(softmaxLoss(oL), softmaxLoss(oAb))
                : sumLosses(nceLoss(oL, 30), nceLoss(oAb, 30));
            })([l, ab]);
            tf.dispose([value, ...grads]);
            bank.update(l, ab, y);
            assert.equal(tf.memory().numTensors, n0, `leak (softmax=${softmax}, ${scoring}, iteration ${it})`);
          }
          tf.dispose([l, ab]);
          bank.dispose();
        }
      }
    });

    it('update() renormalises only rows y and uses its own view', () => {
      const bank = new MemoryBank({ nData: 8, featDim: 4, K: 2, momentum: 0.5, rng: new Rng(4) });
      const before0 = bank.state().memories;
      const l = tf.tensor2d([1, 0, 0, 0, 0, 1, 0, 0], [2, 4]);
      const ab = tf.tensor2d([0, 0, 1, 0, 0, 0, 0, 1], [2, 4]);
      bank.update(l, ab, Int32Array.from([6, 1]));
      const after = bank.state().memories;
      for (const [v, feat] of [
        [
          0,
          [
            [1, 0, 0, 0],
            [0, 1, 0, 0],
          ],
        ],
        [
          1,
          [
            [0, 0, 1, 0],
            [0, 0, 0, 1],
          ],
        ],
      ] as const) {
        for (let n = 0; n < 8; n++) {
          const row = Array.from(after[v].slice(n * 4, n * 4 + 4));
          const old = Array.from(before0[v].slice(n * 4, n * 4 + 4));
          const k = n === 6 ? 0 : n === 1 ? 1 : -1;
          if (k === -1) {
            assert.deepEqual(row, old, `row ${n} of view ${v} untouched`);
          } else {
            const fk: readonly number[] = feat[k as 0 | 1];
            const r = old.map((x, i) => 0.5 * x + 0.5 * fk[i]);
            const nrm = Math.hypot(...r);
            assertClose(
              row,
              r.map((x) => x / nrm),
              'unit',
              `row ${n} of view ${v}`,
              1e-6,
            );
          }
        }
      }
      tf.dispose([l, ab]);
      bank.dispose();
    });

    it('rejects an idx whose column 0 is not y, and out-of-range indices', () => {
      const bank = new MemoryBank({ nData: 8, featDim: 4, K: 2, rng: new Rng(4) });
      const l = tf.zeros([1, 4]) as tf.Tensor2D;
      assert.throws(() => bank.forward(l, l, Int32Array.from([3]), Int32Array.from([2, 3, 4])), /must equal y/);
      assert.throws(() => bank.forward(l, l, Int32Array.from([3]), Int32Array.from([3, 9, 4])), /outside/);
      assert.throws(() => bank.forward(l, l, Int32Array.from([3]), Int32Array.from([3, 1])), /B\*\(K\+1\)/);
      l.dispose();
      bank.dispose();
    });
  });
}
