/**
 * Mini-batch loader: seeded shuffle per epoch, decode + augment ahead of the consumer on worker threads.
 *
 *   const loader = new Loader(source, { batchSize: 128, seed: 1, workers: 4,
 *                                       transform: { mode: 'train', size: 64, view: 'Lab', cropLow: 0.2 } });
 *   for await (const b of loader.epoch(e)) { b.x; b.index; b.label; b.size; }   // x: NHWC Float32Array
 *   await loader.close();
 *
 * Determinism: the epoch's order is a Fisher-Yates shuffle seeded from (seed, epoch); sample i's
 * augmentation uses its own Rng seeded from (seed, epoch, i). So batches are bit-identical for any
 * worker count or scheduling, and a run resumed at (epoch, batch) sees exactly what it would have
 * seen (`loader.epoch(e, { startBatch })`).
 *
 * Workers: `workers` threads each reopen the source from `source.spec()` and build whole batches; up to
 * `prefetch` batches are in flight (bounded queue), results are yielded in order. `workers: 0` builds
 * each batch in the calling thread when it is asked for. The worker entry is worker.ts, started through
 * a tiny bootstrap that registers tsx's loader in the worker thread (workers do not inherit the main
 * thread's loader hooks, whether the main thread used `node --import tsx`, `tsx` or the bin wrapper's
 * `register()`).
 */
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { spawnTsWorker } from '../../core/util/ts_worker.ts';
import { Rng } from '../../core/util/rng.ts';
import type { DataSource, SourceSpec, WarnFn } from './sources.ts';
import { trainTransform, transformChannels, valTransform, type TransformConfig } from './augment.ts';

export interface LoaderTransform extends TransformConfig {
  /** 'train': RandomResizedCrop + flip; 'val': resize + centre crop (no randomness). */
  mode: 'train' | 'val';
}

export interface LoaderOptions {
  batchSize: number;
  transform: LoaderTransform;
  /** Base seed (default 0). */
  seed?: number;
  /** Worker threads (default 0 = in the calling thread). */
  workers?: number;
  /** Batches in flight ahead of the consumer (default max(2, 2 * workers)). */
  prefetch?: number;
  /** Shuffle each epoch (default true; false = index order, e.g. for feature extraction). */
  shuffle?: boolean;
  /** Drop a last incomplete batch (default false, as upstream's DataLoader). */
  dropLast?: boolean;
  /** Non-fatal problems (bad images); default console.warn. */
  onWarn?: WarnFn;
}

export interface Batch {
  /** B*H*W*channels view inputs, NHWC. */
  x: Float32Array;
  /** Channels per pixel: 3, or the transform's input layout's. */
  channels: number;
  /** Memory-bank rows of the samples. */
  index: Int32Array;
  /** Class labels (-1 = none). */
  label: Int32Array;
  /** B (the last batch may be smaller). */
  size: number;
  height: number;
  width: number;
  epoch: number;
  /** Position of this batch in the epoch (0-based). */
  batch: number;
}

// ------------------------------------------------------------------------------------------------------
// Seeding

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mix(h: number, v: number): number {
  return fmix32((h ^ Math.imul(v >>> 0, 0xcc9e2d51) ^ 0x9e3779b9) + Math.imul(h, 5) + 0xe6546b64);
}

/** An Rng whose full 128-bit state is a hash of the given numbers (each an integer >= 0 < 2^53). */
export function rngFrom(...keys: number[]): Rng {
  let h = 0x6a09e667;
  for (const k of keys) {
    h = mix(h, k >>> 0);
    h = mix(h, Math.floor(k / 0x100000000) >>> 0);
  }
  const st: [number, number, number, number] = [0, 0, 0, 0];
  for (let l = 0; l < 4; l++) st[l] = mix(h, 0x51ed270b + l);
  if ((st[0] | st[1] | st[2] | st[3]) === 0) st[0] = 1;
  const r = new Rng(0);
  r.setState(st);
  return r;
}

const TAG_ORDER = 1,
  TAG_SAMPLE = 2;

/** The Rng driving sample `index`'s augmentation in `epoch`. */
export function sampleRng(seed: number, epoch: number, index: number): Rng {
  return rngFrom(TAG_SAMPLE, seed, epoch, index);
}

/** The sample order of an epoch. */
export function epochOrder(n: number, seed: number, epoch: number, shuffle = true): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (shuffle) rngFrom(TAG_ORDER, seed, epoch).shuffle(order);
  return order;
}

// ------------------------------------------------------------------------------------------------------
// Building one batch (shared by the in-thread path and worker.ts)

/**
 * Decode + transform `indices` into one batch. Samples are fetched with a small concurrency (sharp
 * decodes run off-thread) but every sample has its own Rng and slot, so the result is order-independent.
 */
export async function buildBatch(
  source: DataSource,
  indices: Int32Array,
  transform: LoaderTransform,
  seed: number,
  epoch: number,
): Promise<{ x: Float32Array; label: Int32Array }> {
  const s = transform.size;
  const per = s * s * transformChannels(transform);
  const x = new Float32Array(indices.length * per);
  const label = new Int32Array(indices.length);
  let next = 0;
  const run = async () => {
    for (;;) {
      const k = next++;
      if (k >= indices.length) return;
      const i = indices[k];
      const img = await source.get(i);
      const out = x.subarray(k * per, (k + 1) * per);
      if (transform.mode === 'train') trainTransform(img, transform, sampleRng(seed, epoch, i), out);
      else valTransform(img, transform, out);
      label[k] = img.label;
    }
  };
  const conc = source.kind === 'imagefolder' ? 4 : 1;
  await Promise.all(Array.from({ length: Math.min(conc, indices.length) }, run));
  return { x, label };
}

// ------------------------------------------------------------------------------------------------------
// Worker pool

export interface WorkerInit {
  spec: SourceSpec;
  transform: LoaderTransform;
  seed: number;
}
export type ToWorker = { type: 'batch'; id: number; epoch: number; indices: Int32Array };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'batch'; id: number; x: Float32Array; label: Int32Array }
  | { type: 'error'; id: number; message: string; stack?: string }
  | { type: 'warn'; message: string };

function spawnWorker(init: WorkerInit): Worker {
  return spawnTsWorker(new URL('./worker.ts', import.meta.url), { workerData: init });
}

interface Task {
  resolve: (r: { x: Float32Array; label: Int32Array }) => void;
  reject: (e: Error) => void;
}

class PoolWorker {
  readonly tasks = new Map<number, Task>();
  dead: Error | null = null;
  readonly ready: Promise<void>;

  constructor(
    readonly w: Worker,
    onWarn: WarnFn,
  ) {
    let readyRes!: () => void, readyRej!: (e: Error) => void;
    this.ready = new Promise((res, rej) => ((readyRes = res), (readyRej = rej)));
    this.ready.catch(() => {});
    w.on('message', (m: FromWorker) => {
      if (m.type === 'ready') readyRes();
      else if (m.type === 'warn') onWarn(m.message);
      else {
        const t = this.tasks.get(m.id);
        if (!t) return;
        this.tasks.delete(m.id);
        if (this.tasks.size === 0) w.unref();
        if (m.type === 'batch') t.resolve({ x: m.x, label: m.label });
        else {
          const e = new Error(m.message);
          if (m.stack) e.stack = m.stack;
          t.reject(e);
        }
      }
    });
    const fail = (e: Error) => {
      if (this.dead) return;
      this.dead = e;
      readyRej(e);
      for (const t of this.tasks.values()) t.reject(e);
      this.tasks.clear();
    };
    w.on('error', (e) => fail(new Error(`loader worker failed: ${e.message}`)));
    w.on('exit', (code) => fail(new Error(`loader worker exited (code ${code})`)));
  }

  /**
   * Stop the thread. Idle workers are unref'ed (so a finished run can exit) and the promise terminate() returns
   * does not keep the event loop alive, so the worker is ref'ed first and its pending tasks dropped: a batch
   * result still queued would otherwise unref it again, the loop would drain before 'exit', and an error path
   * awaiting close() would end with node's exit code 13 (unsettled top-level await) and no message.
   */
  terminate(): Promise<number> {
    const closed = new Error('loader closed');
    for (const t of this.tasks.values()) t.reject(closed);
    this.tasks.clear();
    this.w.ref();
    return this.w.terminate();
  }

  run(id: number, epoch: number, indices: Int32Array): Promise<{ x: Float32Array; label: Int32Array }> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.tasks.set(id, { resolve, reject });
      if (this.tasks.size === 1) this.w.ref();
      const msg: ToWorker = { type: 'batch', id, epoch, indices };
      this.w.postMessage(msg);
    });
  }
}

// ------------------------------------------------------------------------------------------------------

/**
 * Worker threads are capped at the CPU count (os.availableParallelism()): each holds its own copy of the
 * source's index, decode buffers and a tsx/V8 heap, so `--workers 1000` took 11.7 GB while decoding no
 * faster than one per core. A larger request is lowered, and said so once per process.
 */
export function maxWorkers(): number {
  return Math.max(1, os.availableParallelism());
}

let cappedSaid = false;

function capWorkers(n: number, onWarn: WarnFn): number {
  const cap = maxWorkers();
  if (n <= cap) return n;
  if (!cappedSaid) onWarn(`--workers ${n} is more than the ${cap} CPU cores here; using ${cap} worker threads`);
  cappedSaid = true;
  return cap;
}

export class Loader {
  readonly batchSize: number;
  readonly workers: number;
  readonly prefetch: number;
  readonly seed: number;
  private pool: PoolWorker[] | null = null;
  private starting: Promise<void> | null = null;
  private nextId = 0;
  private readonly onWarn: WarnFn;

  constructor(
    readonly source: DataSource,
    readonly opts: LoaderOptions,
  ) {
    if (!(Number.isInteger(opts.batchSize) && opts.batchSize > 0))
      throw new RangeError(`batchSize must be a positive integer, got ${opts.batchSize}`);
    this.batchSize = opts.batchSize;
    this.workers = capWorkers(Math.max(0, Math.floor(opts.workers ?? 0)), opts.onWarn ?? ((m) => console.warn(m)));
    this.prefetch = Math.max(1, Math.floor(opts.prefetch ?? Math.max(2, 2 * this.workers)));
    this.seed = opts.seed ?? 0;
    this.onWarn = opts.onWarn ?? ((m) => console.warn(m));
    if (source.length === 0) throw new Error('Loader: the dataset is empty');
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.source.length,
      b = this.batchSize;
    return this.opts.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  /** Spawn the workers and wait until each has opened the source (optional: epoch() does it). */
  start(): Promise<void> {
    if (this.workers === 0) return Promise.resolve();
    if (!this.starting) {
      const init: WorkerInit = { spec: this.source.spec(), transform: this.opts.transform, seed: this.seed };
      this.pool = Array.from({ length: this.workers }, () => new PoolWorker(spawnWorker(init), this.onWarn));
      this.starting = Promise.all(this.pool.map((p) => p.ready)).then(() => {
        for (const p of this.pool!) p.w.unref();
      });
      this.starting.catch(() => this.close());
    }
    return this.starting;
  }

  /** Sample order of an epoch (as the batches will use it). */
  order(epoch: number): Int32Array {
    return epochOrder(this.source.length, this.seed, epoch, this.opts.shuffle ?? true);
  }

  private dispatch(epoch: number, indices: Int32Array): Promise<{ x: Float32Array; label: Int32Array }> {
    const pool = this.pool!;
    let best = pool[0];
    for (const p of pool) if (!p.dead && (best.dead || p.tasks.size < best.tasks.size)) best = p;
    // Copy: postMessage clones, and the caller's `indices` stays valid.
    return best.run(this.nextId++, epoch, indices);
  }

  /** The batches of epoch `epoch`, in order; `startBatch` skips ahead (resume mid-epoch). */
  async *epoch(epoch: number, opts: { startBatch?: number } = {}): AsyncGenerator<Batch, void, undefined> {
    const order = this.order(epoch);
    const nb = this.length;
    const B = this.batchSize;
    const s = this.opts.transform.size;
    const channels = transformChannels(this.opts.transform);
    const slice = (b: number) => order.slice(b * B, Math.min((b + 1) * B, order.length));
    const start = opts.startBatch ?? 0;
    const mk = (b: number, index: Int32Array, r: { x: Float32Array; label: Int32Array }): Batch => ({
      x: r.x,
      index,
      label: r.label,
      size: index.length,
      height: s,
      width: s,
      channels,
      epoch,
      batch: b,
    });

    if (this.workers === 0) {
      for (let b = start; b < nb; b++) {
        const index = slice(b);
        yield mk(b, index, await buildBatch(this.source, index, this.opts.transform, this.seed, epoch));
      }
      return;
    }

    await this.start();
    const pending = new Map<number, Promise<{ x: Float32Array; label: Int32Array }>>();
    let sent = start;
    try {
      for (let b = start; b < nb; b++) {
        while (sent < nb && sent < b + this.prefetch) {
          const p = this.dispatch(epoch, slice(sent));
          p.catch(() => {}); // handled when awaited; avoids unhandled-rejection noise if abandoned
          pending.set(sent++, p);
        }
        const r = await pending.get(b)!;
        pending.delete(b);
        yield mk(b, slice(b), r);
      }
    } finally {
      pending.clear(); // abandoned early: in-flight results are dropped when they arrive
    }
  }

  /** Terminate the workers (the loader can be started again) and keep the source open. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.starting = null;
    if (pool) await Promise.all(pool.map((p) => p.terminate()));
  }
}

// ------------------------------------------------------------------------------------------------------

export interface ThroughputResult {
  workers: number;
  images: number;
  seconds: number;
  imagesPerSec: number;
  /** Worker start-up (spawn + tsx + opening the source), not included in `seconds`. */
  startupSeconds: number;
}

/**
 * Images/s of decode + augment + colour conversion with `workers` threads: the first `warmup` batches
 * (default max(1, workers)) are untimed, then `batches` batches (default: the rest of one epoch).
 */
export async function throughput(
  source: DataSource,
  opts: {
    workers: number;
    batchSize?: number;
    transform: LoaderTransform;
    batches?: number;
    warmup?: number;
    seed?: number;
    prefetch?: number;
  },
): Promise<ThroughputResult> {
  const loader = new Loader(source, {
    batchSize: opts.batchSize ?? 128,
    transform: opts.transform,
    workers: opts.workers,
    seed: opts.seed ?? 0,
    prefetch: opts.prefetch,
  });
  try {
    const t0 = performance.now();
    await loader.start();
    const startupSeconds = (performance.now() - t0) / 1000;
    const warmup = opts.warmup ?? Math.max(1, opts.workers);
    const limit = opts.batches === undefined ? Infinity : warmup + opts.batches;
    let k = 0,
      images = 0,
      t1 = 0;
    for await (const b of loader.epoch(0)) {
      k++;
      if (k === warmup) t1 = performance.now();
      else if (k > warmup) images += b.size;
      if (k >= limit) break;
    }
    if (k <= warmup) throw new Error(`throughput: only ${k} batches, need more than the ${warmup} warm-up batches`);
    const seconds = (performance.now() - t1) / 1000;
    return { workers: loader.workers, images, seconds, imagesPerSec: images / seconds, startupSeconds };
  } finally {
    await loader.close();
  }
}
