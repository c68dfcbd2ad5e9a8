/**
 * A counted budget shared by concurrent requests (bytes of request bodies held in memory, pixels being
 * decoded): `tryTake` takes units now or refuses, `take` waits in FIFO order (so a large claim is not
 * starved by small ones) up to a timeout, `give` returns units.
 *
 *   const pixels = new Budget(72e6, 'decode pixels');
 *   await pixels.take(w * h, 30_000); try { decode(); } finally { pixels.give(w * h); }
 */
import { QueueTimeoutError } from './errors.ts';

interface Waiter {
  n: number;
  resolve: () => void;
  reject: (e: unknown) => void;
  timer?: NodeJS.Timeout;
}

export class Budget {
  private used = 0;
  private waiters: Waiter[] = [];

  constructor(
    readonly capacity: number,
    readonly name: string,
  ) {
    if (!(capacity > 0)) throw new RangeError(`${name}: capacity must be > 0`);
  }

  get inUse(): number {
    return this.used;
  }

  /** Take `n` units if they are free now (and nobody waits ahead); false otherwise. */
  tryTake(n: number): boolean {
    if (this.waiters.length > 0 || this.used + n > this.capacity) return false;
    this.used += n;
    return true;
  }

  /** Wait for `n` units (at most the capacity), FIFO; QueueTimeoutError (503) after `timeoutMs` (0 = no limit). */
  take(n: number, timeoutMs: number): Promise<void> {
    if (n > this.capacity)
      return Promise.reject(new RangeError(`${this.name}: ${n} units exceed the capacity ${this.capacity}`));
    if (this.tryTake(n)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { n, resolve, reject };
      if (timeoutMs > 0) {
        w.timer = setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i < 0) return;
          this.waiters.splice(i, 1);
          reject(new QueueTimeoutError(`waited more than ${timeoutMs} ms for ${this.name}`));
          this.wake();
        }, timeoutMs);
        w.timer.unref?.();
      }
      this.waiters.push(w);
    });
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
    this.wake();
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.used + this.waiters[0].n <= this.capacity) {
      const w = this.waiters.shift()!;
      if (w.timer) clearTimeout(w.timer);
      this.used += w.n;
      w.resolve();
    }
  }
}
