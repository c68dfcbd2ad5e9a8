/**
 * Dynamic batching, independent of HTTP: concurrent callers submit items; the batcher gathers them into
 * batches of at most `maxBatch` items, waiting at most `maxDelayMs` after the oldest queued item for more
 * to arrive, and runs one batch at a time through `run` (one model session, one graph).
 *
 *   const b = new Batcher({ maxBatch: 32, maxDelayMs: 5, maxQueue: 256, timeoutMs: 10000, run: (xs) => infer(xs) });
 *   const outs = await b.submit([img1, img2]); // one output per item, in order
 *
 * - The queue is bounded: a submission that would push it past `maxQueue` items fails at once with an
 *   OverloadedError (HTTP 429 + Retry-After); a submission is all-or-nothing.
 * - An item still queued (not yet running) `timeoutMs` after its submission fails with QueueTimeoutError
 *   (HTTP 503) and is dropped from the queue; items already in a running batch are not interrupted.
 * - `reserve(n)` takes n places in the queue before the items exist (the server reserves before it decodes
 *   images, so a request refused for a full queue costs no decoding); reserved places count as queued.
 * - With `expectMore`, the delay applies only while more submissions are on their way (serve/flow.ts):
 *   a lone request does not wait for company that is not coming.
 * - `drain()` waits until the queue is empty and nothing runs; `close()` refuses new work and drains.
 */
import { OverloadedError, QueueTimeoutError, ShuttingDownError } from './errors.ts';

export interface BatcherOptions<I, O> {
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  timeoutMs: number;
  /** Runs one batch; must return one output per input, in order. */
  run: (items: I[]) => Promise<O[]>;
  /** Called after each batch (for metrics): its size, how long `run` took, and how long each item waited. */
  onBatch?: (size: number, seconds: number, queueSeconds: number[]) => void;
  /** Called on each submission, before scheduling (InferenceFlow.submitted). */
  onSubmit?: () => void;
  /** False when no other submission is on its way: the queue then runs without waiting for the delay. */
  expectMore?: () => boolean;
  /** Label used in error messages. */
  name?: string;
}

/** Places held in a batcher's queue: submit the items into them, or release them. */
export interface Reservation<I, O> {
  readonly size: number;
  /** Queue exactly `size` or fewer items into the reserved places (the rest are released). */
  submit(items: I[]): Promise<O[]>;
  /** Give the places back (no-op after submit). */
  release(): void;
}

interface Waiting<I, O> {
  n: number;
  resolve: (r: Reservation<I, O>) => void;
  reject: (e: unknown) => void;
  timer?: NodeJS.Timeout;
  /** When it arrived (performance.now()). */
  since: number;
  /** It may be admitted until since + admitMs; after that it only waits for its 429. */
  admitMs: number;
}

interface Pending<I, O> {
  item: I;
  enqueued: number;
  group: Group<O>;
  index: number;
}

interface Group<O> {
  outputs: O[];
  remaining: number;
  done: boolean;
  timer?: NodeJS.Timeout;
  resolve: (o: O[]) => void;
  reject: (e: unknown) => void;
}

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Places reserved for items not yet submitted. */
  private reserved = 0;
  /** reserveWithin calls waiting for places, oldest first (admitted newest first). */
  private waiting: Waiting<I, O>[] = [];
  private idleWaiters: (() => void)[] = [];
  readonly name: string;

  constructor(private readonly o: BatcherOptions<I, O>) {
    if (!(o.maxBatch >= 1)) throw new RangeError('maxBatch must be >= 1');
    if (!(o.maxQueue >= 1)) throw new RangeError('maxQueue must be >= 1');
    this.name = o.name ?? 'model';
  }

  /** Items waiting (not yet in a running batch), reserved places included. */
  get depth(): number {
    return this.queue.length + this.reserved;
  }

  get busy(): boolean {
    return this.running;
  }

  submit(items: I[]): Promise<O[]> {
    try {
      this.admit(items.length);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.enqueue(items);
  }

  /** Hold `n` places in the queue now (OverloadedError when they are not free, ShuttingDownError once closed). */
  reserve(n: number): Reservation<I, O> {
    this.admit(n);
    this.reserved += n;
    let held = n;
    const release = () => {
      this.reserved -= held;
      held = 0;
      this.admitWaiting();
    };
    return {
      size: n,
      submit: (items) => {
        if (held === 0) return Promise.reject(new Error(`${this.name}: reservation already used or released`));
        if (items.length > held)
          return Promise.reject(new RangeError(`${this.name}: ${items.length} items for ${held} reserved places`));
        release();
        if (this.closed) return Promise.reject(new ShuttingDownError());
        return this.enqueue(items);
      },
      release,
    };
  }

  /**
   * reserve(n), waiting up to `waitMs` for the places when the queue is full: under overload a request
   * waits (costing nothing) instead of being refused at once and sent again at once by its client, which
   * would spend the server's CPU on refusals. The newest waiter is admitted first (LIFO), so admitted
   * requests see little waiting while the oldest ones give up, rather than every request waiting nearly
   * `waitMs` under a FIFO.
   *
   * `holdMs` (>= waitMs) separates the two jobs of that wait: a request may be admitted only within its
   * first `waitMs`, which bounds the latency an admitted request can have spent waiting, while its 429 is
   * sent `holdMs` after it arrived, which bounds how often a client that retries at once can make the server
   * refuse it (a held request costs a timer and an open socket; --max_connections caps those).
   */
  reserveWithin(n: number, waitMs: number, holdMs = waitMs): Promise<Reservation<I, O>> {
    const hold = Math.max(waitMs, holdMs);
    const noneAhead = this.waiting.length === 0 || !this.admissible(this.waiting[this.waiting.length - 1]);
    if (noneAhead) {
      try {
        return Promise.resolve(this.reserve(n));
      } catch (e) {
        if (!(e instanceof OverloadedError) || hold <= 0) return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      const w: Waiting<I, O> = { n, resolve, reject, since: performance.now(), admitMs: waitMs };
      w.timer = setTimeout(() => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(
          new OverloadedError(
            `${this.name}: queue full (${this.depth} of ${this.o.maxQueue} images admitted), no place within ${waitMs} ms; retry later`,
          ),
        );
      }, hold);
      this.waiting.push(w);
      this.admitWaiting();
    });
  }

  /** A waiter still within its admission window. */
  private admissible(w: Waiting<I, O>): boolean {
    return performance.now() - w.since <= w.admitMs;
  }

  private admitWaiting(): void {
    // Newest first; once the newest is past its window every older one is too (they arrived earlier), so
    // they stay until their timers refuse them.
    while (
      this.waiting.length > 0 &&
      !this.closed &&
      this.admissible(this.waiting[this.waiting.length - 1]) &&
      this.fits(this.waiting[this.waiting.length - 1].n)
    ) {
      const w = this.waiting.pop()!;
      clearTimeout(w.timer);
      w.resolve(this.reserve(w.n));
    }
    if (this.closed)
      for (const w of this.waiting.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new ShuttingDownError());
      }
  }

  /**
   * n more items fit: within maxQueue, or a request larger than the whole queue (maxQueue bounds the wait,
   * not the request: --max_images may exceed it) alone in an empty queue.
   */
  private fits(n: number): boolean {
    return this.depth + n <= this.o.maxQueue || this.depth === 0;
  }

  private admit(n: number): void {
    if (this.closed) throw new ShuttingDownError();
    if (!this.fits(n)) {
      throw new OverloadedError(
        `${this.name}: queue full (${this.depth} of ${this.o.maxQueue} images waiting); retry later`,
      );
    }
  }

  private enqueue(items: I[]): Promise<O[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<O[]>((resolve, reject) => {
      const group: Group<O> = {
        outputs: new Array(items.length),
        remaining: items.length,
        done: false,
        resolve,
        reject,
      };
      const now = performance.now();
      items.forEach((item, index) => this.queue.push({ item, enqueued: now, group, index }));
      if (this.o.timeoutMs > 0) {
        group.timer = setTimeout(() => this.expire(group), this.o.timeoutMs);
        group.timer.unref?.();
      }
      this.o.onSubmit?.();
      this.schedule();
    });
  }

  /** Resolves when nothing is queued or running. */
  drain(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.admitWaiting();
    await this.drain();
  }

  private expire(group: Group<O>): void {
    if (group.done) return;
    const before = this.queue.length;
    this.queue = this.queue.filter((p) => p.group !== group);
    this.admitWaiting();
    if (this.queue.length === before) return; // all its items are running: let them finish
    this.fail(
      group,
      new QueueTimeoutError(`${this.name}: request waited more than ${this.o.timeoutMs} ms in the queue`),
    );
    this.notifyIdle();
  }

  private fail(group: Group<O>, e: unknown): void {
    if (group.done) return;
    group.done = true;
    if (group.timer) clearTimeout(group.timer);
    group.reject(e);
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.queue.length >= this.o.maxBatch || this.o.maxDelayMs <= 0 || this.o.expectMore?.() === false) {
      this.clearTimer();
      void this.runBatch();
      return;
    }
    if (this.timer) return;
    const wait = Math.max(0, this.queue[0].enqueued + this.o.maxDelayMs - performance.now());
    if (wait === 0) {
      void this.runBatch();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.running) void this.runBatch();
    }, wait);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async runBatch(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    this.clearTimer();
    const batch = this.queue.splice(0, this.o.maxBatch);
    this.admitWaiting();
    const t0 = performance.now();
    try {
      const outs = await this.o.run(batch.map((p) => p.item));
      if (outs.length !== batch.length)
        throw new Error(`${this.name}: run returned ${outs.length} outputs for ${batch.length} inputs`);
      this.o.onBatch?.(
        batch.length,
        (performance.now() - t0) / 1000,
        batch.map((p) => (t0 - p.enqueued) / 1000),
      );
      batch.forEach((p, k) => {
        const g = p.group;
        if (g.done) return;
        g.outputs[p.index] = outs[k];
        if (--g.remaining === 0) {
          g.done = true;
          if (g.timer) clearTimeout(g.timer);
          g.resolve(g.outputs);
        }
      });
    } catch (e) {
      for (const p of batch) this.fail(p.group, e);
      // Items of the failed groups still queued are dropped too.
      const failed = new Set(batch.map((p) => p.group));
      this.queue = this.queue.filter((p) => !failed.has(p.group));
      this.admitWaiting();
    } finally {
      this.running = false;
    }
    // Whatever queued meanwhile has already waited for a batch: run it without another delay if the
    // oldest item is past its delay, otherwise the usual rule applies.
    this.schedule();
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.running || this.queue.length > 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}
