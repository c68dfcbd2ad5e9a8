/**
 * The CMC memory bank: upstream's NCEAverage state and forward (HobbitLong/CMC `NCE/NCEAverage.py`). Owns one N×D memory per
 * view (tf.Variable, non-trainable, on the active backend), the normalisation constants Z and the
 * negative sampling. The losses themselves are pure functions in ./nce.ts.
 *
 *   const bank = new MemoryBank({ nData: N, featDim: 128, K: 4096, T: 0.07, momentum: 0.5, softmax: false, rng });
 *   const { value, grads } = tf.variableGrads(() => {
 *     const { outL, outAb } = bank.forward(featL, featAb, y);      // B×(K+1) each, column 0 = positive
 *     return sumLosses(nceLoss(outL, N), nceLoss(outAb, N));
 *   });
 *   bank.update(featL, featAb, y);                                  // after the step, outside the gradient
 *
 * (nceLoss / softmaxLoss / sumLosses come from ./nce.ts.)
 *
 * Conventions (upstream's, easy to swap by mistake): out_l scores the L embedding against memory_ab and
 * out_ab scores the ab embedding against memory_l; memory_l is updated with the L embedding, memory_ab
 * with the ab embedding. Memory rows are constants: no gradient reaches the bank.
 *
 * More than two views (`views: V`): the bank holds V memories and scores the ordered pairs returned by
 * `pairs` (all (anchor, memory) with anchor ≠ memory, the "full graph"); each pair has its own Z. With
 * V = 2 the pairs are [(0,1), (1,0)], i.e. exactly (out_l, out_ab) and (Z_l, Z_ab).
 *
 * Gradients are hand-written (tf.customGrad), so forward() is differentiable w.r.t. the anchors even
 * when tfjs-core's standard gradient configs are not registered.
 *
 * Over 500 lines on purpose: one class whose sampling, scoring (gathered rows or the B×N product),
 * hand-written gradients, Z estimate and update share the memories and their layout; split, each part would
 * have to expose them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { unaryCustomGrad } from '../engine/custom_grad.ts';
import type { Rng } from '../../core/util/rng.ts';

export interface MemoryBankOptions {
  /** N: number of training images (rows of each memory). */
  nData: number;
  /** D: embedding size (128 upstream). */
  featDim: number;
  /** Negatives per positive. Clamped to nData − 1 (with a warning) when K >= nData. */
  K: number;
  /** Temperature (0.07); stored float32-rounded like upstream's params tensor. */
  T?: number;
  /** Memory momentum m (0.5): row ← normalise(m·row + (1−m)·feature). */
  momentum?: number;
  /** Softmax mode: out = s/T logits (for softmaxLoss); otherwise NCE mode out = exp(s/T)/Z. */
  softmax?: boolean;
  /** Seeded RNG for the memory initialisation and the negative sampling. */
  rng: Rng;
  /** Number of views (memories); 2 for CMC (L, ab). */
  views?: number;
  /**
   * Ordered (anchor view, memory view) pairs to score (default: every ordered pair, anchor-major). The
   * trainer passes its objective's pairs (train/trainer/objective.ts); with two views both give
   * [[0,1],[1,0]].
   */
  pairs?: ReadonlyArray<readonly [number, number]>;
  /**
   * Scoring strategy. 'auto' (default): 'bank' when N <= B·(K+1) (one B×N matmul against the whole
   * memory, then pick the sampled columns), else 'gather' (gather the B·(K+1) sampled rows, batched dot).
   * Both give the same numbers up to float32 summation order.
   */
  scoring?: 'auto' | 'bank' | 'gather';
  /** Where the K-clamp warning goes (default console.warn). */
  log?: (msg: string) => void;
  /** Called once per pair when its Z is estimated (upstream prints "normalization constant Z_l is set to"). */
  onZ?: (pair: readonly [number, number], z: number) => void;
}

/** Checkpointable state (upstream's memory_l, memory_ab and params). */
export interface MemoryBankState {
  nData: number;
  featDim: number;
  views: number;
  K: number;
  T: number;
  momentum: number;
  softmax: boolean;
  /** One N×D row-major Float32Array per view (index 0 = L, 1 = ab). */
  memories: Float32Array[];
  /** One Z per scored pair (see MemoryBank.pairs); −1 = not yet estimated. With 2 views: [Z_l, Z_ab]. */
  z: number[];
}

export class MemoryBank {
  readonly nData: number;
  readonly featDim: number;
  readonly views: number;
  readonly K: number;
  /** float32-rounded temperature (0.07 → 0.07000000029802322). */
  readonly T: number;
  /** float32-rounded momentum. */
  readonly momentum: number;
  readonly softmax: boolean;
  /** Ordered (anchor view, memory view) pairs scored by forwardViews; [[0,1],[1,0]] for two views. */
  readonly pairs: ReadonlyArray<readonly [number, number]>;
  readonly scoring: 'auto' | 'bank' | 'gather';
  private readonly rng: Rng;
  private readonly memories: tf.Variable<tf.Rank.R2>[];
  private readonly z: number[];
  private readonly log: (msg: string) => void;
  private readonly onZ?: (pair: readonly [number, number], z: number) => void;
  /** Bumped whenever a memory is written; the backward checks it. */
  private version = 0;
  private readonly pendingZ = new Map<number, tf.Scalar>();
  private disposed = false;

  constructor(opts: MemoryBankOptions) {
    const { nData, featDim, rng } = opts;
    const views = opts.views ?? 2;
    if (!Number.isInteger(nData) || nData < 1)
      throw new RangeError(`MemoryBank: nData must be a positive integer, got ${nData}`);
    if (!Number.isInteger(featDim) || featDim < 1)
      throw new RangeError(`MemoryBank: featDim must be a positive integer, got ${featDim}`);
    if (!Number.isInteger(views) || views < 2)
      throw new RangeError(`MemoryBank: views must be an integer >= 2, got ${views}`);
    if (!Number.isInteger(opts.K) || opts.K < 0)
      throw new RangeError(`MemoryBank: K must be a non-negative integer, got ${opts.K}`);
    this.log = opts.log ?? ((m: string) => console.warn(m));
    this.onZ = opts.onZ;
    let K = opts.K;
    if (K >= nData) {
      K = nData - 1;
      this.log(`[cmc] memory bank: K=${opts.K} negatives >= n_data=${nData}; clamped to K=${K}`);
    }
    const T = opts.T ?? 0.07;
    if (!(T > 0)) throw new RangeError(`MemoryBank: T must be > 0, got ${T}`);
    const momentum = opts.momentum ?? 0.5;
    if (!(momentum >= 0 && momentum <= 1))
      throw new RangeError(`MemoryBank: momentum must be in [0, 1], got ${momentum}`);
    this.nData = nData;
    this.featDim = featDim;
    this.views = views;
    this.K = K;
    this.T = Math.fround(T);
    this.momentum = Math.fround(momentum);
    this.softmax = opts.softmax ?? false;
    this.scoring = opts.scoring ?? 'auto';
    this.rng = rng;
    const pairs: [number, number][] = [];
    if (opts.pairs) {
      for (const [a, m] of opts.pairs) {
        const ok = [a, m].every((v) => Number.isInteger(v) && v >= 0 && v < views) && a !== m;
        if (!ok) throw new RangeError(`MemoryBank: bad pair (${a}, ${m}) for ${views} views`);
        if (pairs.some(([a2, m2]) => a2 === a && m2 === m))
          throw new RangeError(`MemoryBank: pair (${a}, ${m}) listed twice`);
        pairs.push([a, m]);
      }
      if (pairs.length === 0) throw new RangeError('MemoryBank: no pairs to score');
    } else {
      for (let a = 0; a < views; a++) for (let m = 0; m < views; m++) if (a !== m) pairs.push([a, m]);
    }
    this.pairs = pairs;
    this.z = pairs.map(() => -1);

    // Uniform on [-s, s], s = 1/sqrt(D/3), drawn view after view (memory_l first), row-major.
    const stdv = 1 / Math.sqrt(featDim / 3);
    this.memories = [];
    for (let v = 0; v < views; v++) {
      const data = new Float32Array(nData * featDim);
      for (let i = 0; i < data.length; i++) data[i] = rng.uniform() * 2 * stdv - stdv;
      this.memories.push(
        tf.tidy(() => tf.variable(tf.tensor2d(data, [nData, featDim]), false)) as tf.Variable<tf.Rank.R2>,
      );
    }
  }

  /** Z_l (for out_l) with two views; −1 until estimated. */
  get zL(): number {
    return this.z[this.pairIndex(0, 1)];
  }

  /** Z_ab (for out_ab) with two views; −1 until estimated. */
  get zAb(): number {
    return this.z[this.pairIndex(1, 0)];
  }

  /** Z of every pair (copy). */
  get zValues(): number[] {
    return this.z.slice();
  }

  /** The memory of a view (0 = L, 1 = ab). A live variable: do not dispose; it changes on update(). */
  memory(view: number): tf.Variable<tf.Rank.R2> {
    this.check();
    const m = this.memories[view];
    if (!m) throw new RangeError(`MemoryBank: no view ${view} (views=${this.views})`);
    return m;
  }

  /**
   * B×(K+1) row-major indices: B·(K+1) uniform draws in [0, N) with replacement (rng driven), then column 0
   * overwritten with y (upstream's order). Negatives are not filtered: they may repeat or equal y.
   */
  sampleIdx(y: Int32Array): Int32Array {
    const cols = this.K + 1;
    const idx = new Int32Array(y.length * cols);
    for (let i = 0; i < idx.length; i++) idx[i] = this.rng.int(this.nData);
    for (let i = 0; i < y.length; i++) idx[i * cols] = y[i];
    return idx;
  }

  /**
   * Upstream's forward for two views: outL scores l against memory_ab, outAb scores ab against memory_l,
   * each B×(K+1) (NCE: exp(s/T)/Z, Z estimated on the first call; softmax: s/T). `idx` (B×(K+1) row-major,
   * column 0 = y) is sampled when not given. Differentiable w.r.t. l and ab. Does not update the memory.
   */
  forward(l: tf.Tensor2D, ab: tf.Tensor2D, y: Int32Array, idx?: Int32Array): { outL: tf.Tensor2D; outAb: tf.Tensor2D } {
    if (this.views !== 2) throw new Error('MemoryBank.forward is the two-view API; use forwardViews');
    const [outL, outAb] = this.forwardViews([l, ab], y, idx);
    return { outL, outAb };
  }

  /** All pairs of `pairs`, in that order, sharing one index matrix. */
  forwardViews(feats: tf.Tensor2D[], y: Int32Array, idx?: Int32Array): tf.Tensor2D[] {
    this.check();
    if (feats.length !== this.views)
      throw new RangeError(`MemoryBank: expected ${this.views} views, got ${feats.length}`);
    const B = y.length;
    for (const f of feats) this.checkFeat(f, B);
    const index = idx ?? this.sampleIdx(y);
    this.checkIdx(index, y);
    return this.pairs.map(([a, m], p) => this.scorePair(p, feats[a], m, index));
  }

  /**
   * Raw cross-view scores s[i,j] = ⟨memory[view][idx[i,j]], anchor[i]⟩ (B×(K+1)), differentiable w.r.t.
   * the anchor. E.g. upstream's scores_l = rawScores(l, 1, idx).
   */
  rawScores(anchor: tf.Tensor2D, memoryView: number, idx: Int32Array): tf.Tensor2D {
    this.check();
    const B = anchor.shape[0];
    this.checkFeat(anchor, B);
    if (idx.length !== B * (this.K + 1))
      throw new RangeError(`MemoryBank: idx must have B*(K+1) = ${B * (this.K + 1)} entries, got ${idx.length}`);
    return this.scoreOp(anchor, this.memory(memoryView), idx, 'raw', 1);
  }

  /** Which scoring path a batch of size B takes. */
  scoringPath(B: number): 'bank' | 'gather' {
    if (this.scoring !== 'auto') return this.scoring;
    // (The bank path indexes the flattened B×N score matrix with int32.)
    return this.nData <= B * (this.K + 1) && B * this.nData < 2 ** 31 ? 'bank' : 'gather';
  }

  /**
   * Momentum update of rows y of every memory with its own view's features, then L2 renormalisation:
   * memory_v[y_i] ← r/‖r‖, r = m·memory_v[y_i] + (1−m)·feat_v[i]. Run after forward (the scores use the
   * pre-update memory) and outside any gradient. Duplicate y within a batch are ill-defined (as upstream).
   */
  update(l: tf.Tensor2D, ab: tf.Tensor2D, y: Int32Array): void {
    if (this.views !== 2) throw new Error('MemoryBank.update is the two-view API; use updateViews');
    this.updateViews([l, ab], y);
  }

  updateViews(feats: tf.Tensor2D[], y: Int32Array): void {
    this.check();
    if (feats.length !== this.views)
      throw new RangeError(`MemoryBank: expected ${this.views} views, got ${feats.length}`);
    const B = y.length;
    for (const f of feats) this.checkFeat(f, B);
    this.checkY(y);
    const m = this.momentum;
    const oneMinus = Math.fround(1 - m);
    this.version++;
    tf.tidy(() => {
      const yT = tf.tensor1d(y, 'int32');
      const yIdx = tf.reshape(yT, [B, 1]);
      // Read every memory's rows before writing any (each memory only depends on itself anyway).
      const newRows = feats.map((f, v) => {
        const old = tf.gather(this.memories[v], yT);
        const r = tf.add(tf.mul(old, tf.scalar(m)), tf.mul(f, tf.scalar(oneMinus)));
        const norm = tf.sqrt(tf.sum(tf.square(r), 1, true));
        return tf.div(r, norm);
      });
      // O(B·D) arithmetic; tensorScatterUpdate copies the N×D buffer once.
      newRows.forEach((rows, v) => this.memories[v].assign(tf.tensorScatterUpdate(this.memories[v], yIdx, rows)));
    });
  }

  /** Snapshot for a checkpoint (copies the memories to the CPU). */
  state(): MemoryBankState {
    this.check();
    return {
      nData: this.nData,
      featDim: this.featDim,
      views: this.views,
      K: this.K,
      T: this.T,
      momentum: this.momentum,
      softmax: this.softmax,
      memories: this.memories.map((m) => Float32Array.from(m.dataSync() as Float32Array)),
      z: this.z.slice(),
    };
  }

  /**
   * Restore memories and Z from a checkpoint. The bank's shape (N, D, views) must match; K, T, momentum and
   * softmax are configuration and must match too (a mismatch throws, as resuming with different
   * hyper-parameters would silently change the loss).
   */
  loadState(s: MemoryBankState): void {
    this.check();
    const mismatch: string[] = [];
    if (s.nData !== this.nData) mismatch.push(`nData ${s.nData} vs ${this.nData}`);
    if (s.featDim !== this.featDim) mismatch.push(`featDim ${s.featDim} vs ${this.featDim}`);
    if (s.views !== this.views) mismatch.push(`views ${s.views} vs ${this.views}`);
    if (s.K !== this.K) mismatch.push(`K ${s.K} vs ${this.K}`);
    if (Math.fround(s.T) !== this.T) mismatch.push(`T ${s.T} vs ${this.T}`);
    if (Math.fround(s.momentum) !== this.momentum) mismatch.push(`momentum ${s.momentum} vs ${this.momentum}`);
    if (s.softmax !== this.softmax) mismatch.push(`softmax ${s.softmax} vs ${this.softmax}`);
    if (s.memories.length !== this.views || s.z.length !== this.pairs.length)
      mismatch.push('number of memories / Z values');
    if (mismatch.length)
      throw new Error(`MemoryBank.loadState: checkpoint does not match this bank: ${mismatch.join('; ')}`);
    s.memories.forEach((data, v) => this.setMemory(v, data));
    s.z.forEach((z, p) => (this.z[p] = z < 0 ? -1 : Math.fround(z)));
  }

  /** Overwrite one view's memory (N×D row-major). */
  setMemory(view: number, data: Float32Array | Float64Array | ArrayLike<number>): void {
    const mem = this.memory(view);
    if (data.length !== this.nData * this.featDim) {
      throw new RangeError(`MemoryBank.setMemory: expected ${this.nData * this.featDim} values, got ${data.length}`);
    }
    this.version++;
    tf.tidy(() => mem.assign(tf.tensor2d(Float32Array.from(data), [this.nData, this.featDim])));
  }

  /** Set (or reset with −1) the Z of every pair; float32-rounded like upstream's params. */
  setZ(z: number[]): void {
    if (z.length !== this.pairs.length) throw new RangeError(`MemoryBank.setZ: expected ${this.pairs.length} values`);
    z.forEach((v, p) => (this.z[p] = v < 0 ? -1 : Math.fround(v)));
  }

  dispose(): void {
    if (this.disposed) return;
    for (const m of this.memories) m.dispose();
    this.disposed = true;
  }

  // ---------------------------------------------------------------------------------------------------

  private pairIndex(anchor: number, memory: number): number {
    const p = this.pairs.findIndex(([a, m]) => a === anchor && m === memory);
    if (p < 0) throw new RangeError(`MemoryBank: no pair (${anchor}, ${memory})`);
    return p;
  }

  /** Output of pair p: NCE exp(s/T)/Z (estimating Z on first use) or softmax s/T. */
  private scorePair(p: number, anchor: tf.Tensor2D, memoryView: number, idx: Int32Array): tf.Tensor2D {
    const mem = this.memory(memoryView);
    if (this.softmax) return this.scoreOp(anchor, mem, idx, 'logits', 1);
    if (this.z[p] < 0) {
      // Z = mean(exp(s/T)) over all B·(K+1) entries · N, float32 like upstream; a constant (no gradient).
      if (!hasSyncRead()) {
        // WebGPU cannot read synchronously: keep Z on the device for this batch (the hand-written backward
        // never differentiates through it) and read it in resolvePendingZ() after the step.
        const pending = this.pendingZ.get(p);
        const zT =
          pending ??
          tf.keep(
            tf.tidy(() => tf.mul(tf.mean(this.scoreOp(anchor, mem, idx, 'exp', 1)), tf.scalar(this.nData, 'float32'))),
          );
        this.pendingZ.set(p, zT as tf.Scalar);
        return this.scoreOp(anchor, mem, idx, 'nce', zT as tf.Scalar);
      }
      const mean = tf.tidy(() => tf.mean(this.scoreOp(anchor, mem, idx, 'exp', 1)).dataSync()[0]);
      this.z[p] = Math.fround(Math.fround(mean) * this.nData);
      this.onZ?.(this.pairs[p], this.z[p]);
    }
    return this.scoreOp(anchor, mem, idx, 'nce', this.z[p]);
  }

  /** Freeze the Z values estimated on the device in this step (see scorePair); a no-op when none are pending. */
  async resolvePendingZ(): Promise<void> {
    for (const [p, zT] of this.pendingZ) {
      this.z[p] = Math.fround((await zT.data())[0]);
      zT.dispose();
      this.onZ?.(this.pairs[p], this.z[p]);
    }
    this.pendingZ.clear();
  }

  /** state() with asynchronous reads, for backends without synchronous readback (WebGPU). */
  async snapshot(): Promise<MemoryBankState> {
    this.check();
    await this.resolvePendingZ();
    const memories = await Promise.all(
      this.memories.map(async (m) => Float32Array.from((await m.data()) as Float32Array)),
    );
    return {
      nData: this.nData,
      featDim: this.featDim,
      views: this.views,
      K: this.K,
      T: this.T,
      momentum: this.momentum,
      softmax: this.softmax,
      memories,
      z: this.z.slice(),
    };
  }

  /**
   * One differentiable op anchor (B×D) → B×(K+1): s = ⟨mem[idx[i,j]], anchor[i]⟩ then
   * raw: s | logits: s/T | exp: exp(s/T) | nce: exp(s/T)/Z. Hand-written backward:
   * dS = dOut (raw), dOut/T (logits), dOut·out/T (exp, nce); dAnchor[i] = Σⱼ dS[i,j]·mem[idx[i,j]].
   * The backward reads the memory again instead of saving a copy (wasm's Identity would copy N×D or
   * B·(K+1)×D values); a version check makes sure no update() ran in between.
   */
  private scoreOp(
    anchor: tf.Tensor2D,
    mem: tf.Variable<tf.Rank.R2>,
    idx: Int32Array,
    mode: 'raw' | 'logits' | 'exp' | 'nce',
    Z: number | tf.Scalar,
  ): tf.Tensor2D {
    const B = anchor.shape[0];
    const C = this.K + 1;
    const N = this.nData;
    const D = this.featDim;
    const T = this.T;
    const path = this.scoringPath(B);
    const version = this.version;
    const f = unaryCustomGrad((x: tf.Tensor, save: tf.GradSaveFunc) => {
      const a = x as tf.Tensor2D;
      const value = tf.tidy(() => {
        let s: tf.Tensor2D;
        if (path === 'bank') {
          // One B×N GEMM against the whole memory, then pick column idx[i,j] of row i.
          const full = tf.matMul(a, mem, false, true);
          const flat = new Int32Array(B * C);
          for (let i = 0; i < B; i++) for (let j = 0; j < C; j++) flat[i * C + j] = i * N + idx[i * C + j];
          s = tf.reshape(tf.gather(tf.reshape(full, [B * N]), tf.tensor1d(flat, 'int32')), [B, C]);
        } else {
          // Gather the B·(K+1) sampled rows and take one batched dot per anchor (upstream's bmm).
          const rows = tf.reshape(tf.gather(mem, tf.tensor1d(idx, 'int32')), [B, C, D]);
          s = tf.reshape(tf.matMul(rows, tf.reshape(a, [B, D, 1])), [B, C]);
        }
        let out: tf.Tensor2D;
        switch (mode) {
          case 'raw':
            out = s;
            break;
          case 'logits':
            out = tf.div(s, tf.scalar(T)) as tf.Tensor2D;
            break;
          case 'exp':
            out = tf.exp(tf.div(s, tf.scalar(T))) as tf.Tensor2D;
            break;
          case 'nce':
            out = tf.div(tf.exp(tf.div(s, tf.scalar(T))), typeof Z === 'number' ? tf.scalar(Z) : Z) as tf.Tensor2D;
            break;
        }
        if (mode === 'exp' || mode === 'nce') save([out]); // B×(K+1), kept only while a tape records
        return out;
      });
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            if (this.version !== version || this.disposed) {
              throw new Error(
                'MemoryBank: the memory changed between forward and backward; call update() after the gradient step',
              );
            }
            let dS: tf.Tensor = dy;
            if (mode === 'logits') dS = tf.div(dy, tf.scalar(T));
            else if (mode === 'exp' || mode === 'nce') dS = tf.div(tf.mul(dy, saved[0]), tf.scalar(T));
            if (path === 'bank') {
              const coords = new Int32Array(B * C * 2);
              for (let i = 0; i < B; i++) {
                for (let j = 0; j < C; j++) {
                  coords[2 * (i * C + j)] = i;
                  coords[2 * (i * C + j) + 1] = idx[i * C + j];
                }
              }
              // B×N gradient of the full score matrix; repeated indices in a row accumulate (scatterND sums).
              const dFull = tf.scatterND(tf.tensor2d(coords, [B * C, 2], 'int32'), tf.reshape(dS, [B * C]), [B, N]);
              return tf.matMul(dFull, mem);
            }
            const rows = tf.reshape(tf.gather(mem, tf.tensor1d(idx, 'int32')), [B, C, D]);
            return tf.reshape(tf.matMul(tf.reshape(dS, [B, 1, C]), rows), [B, D]);
          }),
      };
    });
    return f(anchor) as tf.Tensor2D;
  }

  private checkFeat(f: tf.Tensor, B: number): void {
    if (f.rank !== 2 || f.shape[0] !== B || f.shape[1] !== this.featDim) {
      throw new RangeError(`MemoryBank: features must be ${B}×${this.featDim}, got [${f.shape}]`);
    }
  }

  private checkY(y: Int32Array): void {
    for (let i = 0; i < y.length; i++) {
      if (!(y[i] >= 0 && y[i] < this.nData))
        throw new RangeError(`MemoryBank: y[${i}]=${y[i]} outside [0, ${this.nData})`);
    }
  }

  private checkIdx(idx: Int32Array, y: Int32Array): void {
    const C = this.K + 1;
    if (idx.length !== y.length * C)
      throw new RangeError(`MemoryBank: idx must have B*(K+1) = ${y.length * C} entries, got ${idx.length}`);
    this.checkY(y);
    for (let i = 0; i < idx.length; i++) {
      if (!(idx[i] >= 0 && idx[i] < this.nData))
        throw new RangeError(`MemoryBank: idx[${i}]=${idx[i]} outside [0, ${this.nData})`);
    }
    for (let i = 0; i < y.length; i++) {
      if (idx[i * C] !== y[i])
        throw new RangeError(`MemoryBank: idx[${i}][0]=${idx[i * C]} must equal y[${i}]=${y[i]}`);
    }
  }

  private check(): void {
    if (this.disposed) throw new Error('MemoryBank: used after dispose()');
  }
}

/** Backends whose tensors can be read synchronously (all but WebGPU, whose readSync needs a DOM canvas). */
function hasSyncRead(): boolean {
  return tf.getBackend() !== 'webgpu';
}
