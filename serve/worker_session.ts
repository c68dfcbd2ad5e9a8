/**
 * An onnxruntime session in its own worker thread (serve/session_worker.ts), so that running a batch does not
 * hold the event loop: while one batch runs, the server keeps reading requests, taking in decoded images and
 * answering. The input crosses threads once (transferred), each output once (transferred back).
 *
 *   const { session, provider } = await WorkerSession.create(bytes, 'cpu', { threads: 2, spinning: false });
 *   const outs = await session.run('images', u8, [n, 64, 64, 3], ['embedding']);   // { embedding: Float32Array }
 *   await session.release();
 */
import type { Worker } from 'node:worker_threads';
import { spawnTsWorker } from '../core/util/ts_worker.ts';
import type { Logger, Provider } from './providers.ts';

export class WorkerSession {
  private next = 1;
  private pending = new Map<
    number,
    { resolve: (o: Record<string, Float32Array>) => void; reject: (e: Error) => void }
  >();
  private dead: Error | null = null;

  private constructor(private readonly w: Worker) {
    w.on('message', (m: { id?: number; outputs?: Record<string, Float32Array>; error?: string }) => {
      if (m.id === undefined) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.outputs!);
    });
    const fail = (e: Error) => {
      this.dead = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the inference worker exited (code ${code})`)));
  }

  static async create(
    bytes: Uint8Array,
    provider: Provider,
    opts: { threads?: number; spinning?: boolean; log?: Logger; what?: string } = {},
  ): Promise<{ session: WorkerSession; provider: Provider }> {
    const w = spawnTsWorker(new URL('./session_worker.ts', import.meta.url));
    const r = await new Promise<{ provider: Provider; notes: string[] }>((resolve, reject) => {
      const onMsg = (m: { ready?: boolean; provider?: Provider; notes?: string[]; initError?: string }) => {
        if (m.ready) resolve({ provider: m.provider!, notes: m.notes ?? [] });
        else if (m.initError !== undefined) reject(new Error(m.initError));
        else return;
        w.off('message', onMsg);
      };
      w.on('message', onMsg);
      w.once('error', reject);
      w.postMessage({
        init: { bytes, provider, threads: opts.threads, spinning: opts.spinning, what: opts.what ?? 'model' },
      });
    }).catch(async (e) => {
      await w.terminate();
      throw e;
    });
    for (const n of r.notes) opts.log?.(n);
    w.unref(); // an idle session does not keep the process alive
    return { session: new WorkerSession(w), provider: r.provider };
  }

  run(
    inputName: string,
    data: Uint8Array,
    dims: number[],
    outputNames: string[],
  ): Promise<Record<string, Float32Array>> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.w.ref(); // a batch in flight keeps the process alive until it is answered
      this.w.postMessage({ id, inputName, data, dims, outputNames }, [data.buffer as ArrayBuffer]);
    }).finally(() => {
      if (this.pending.size === 0) this.w.unref();
    }) as Promise<Record<string, Float32Array>>;
  }

  async release(): Promise<void> {
    if (this.dead) return;
    const done = new Promise<void>((r) => {
      const on = (m: { released?: boolean }) => m.released && (this.w.off('message', on), r());
      this.w.on('message', on);
    });
    this.w.ref(); // held until the worker has released its session
    this.w.postMessage({ release: true });
    await Promise.race([done, new Promise((r) => setTimeout(r, 2000).unref())]);
    this.dead = new Error('the inference worker exited (released)');
    await this.w.terminate();
  }
}
