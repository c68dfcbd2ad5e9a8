/**
 * Which inference requests are still on their way to a batcher (reading the body, decoding images), so
 * that a batcher waits for a batch to fill (--max_delay_ms) only when more work is coming: a lone request
 * runs at once, concurrent ones still batch. AsyncLocalStorage ties a batcher submission to the request
 * that made it.
 *
 *   const flow = new InferenceFlow();
 *   await flow.track(() => handler(req, res));     // the request counts as on its way until it submits
 *   new Batcher({ ..., onSubmit: () => flow.submitted(), expectMore: () => flow.expectMore });
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export class InferenceFlow {
  private onTheWay = 0;
  private readonly als = new AsyncLocalStorage<{ submitted: boolean }>();

  /** Run one inference request; it counts as on its way until its first submission (or its end). */
  async track<T>(fn: () => Promise<T>): Promise<T> {
    const token = { submitted: false };
    this.onTheWay++;
    try {
      return await this.als.run(token, fn);
    } finally {
      if (!token.submitted) this.onTheWay--;
    }
  }

  /** The current request reached a batcher. */
  submitted(): void {
    const t = this.als.getStore();
    if (t && !t.submitted) {
      t.submitted = true;
      this.onTheWay--;
    }
  }

  /** The current request is the only one on its way (it counts itself until it submits). */
  get alone(): boolean {
    return this.onTheWay <= 1;
  }

  /** Some request is still reading or decoding and will submit soon. */
  get expectMore(): boolean {
    return this.onTheWay > 0;
  }
}
