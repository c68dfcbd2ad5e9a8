/**
 * The page's side of the inference worker (worker.ts, messages in protocol.ts): start it, load a model,
 * then run batches, each answered by its id. The worker's log lines go to state.logs and the console.
 */
import type { LoadRequest, WorkerReply } from './protocol.ts';
import { state } from './state.ts';

export type Loaded = Extract<WorkerReply, { type: 'loaded' }>;
export interface RunResult {
  outputs: Record<string, Float32Array>;
  ms: number;
}

export class InferenceWorker {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: RunResult) => void; reject: (e: Error) => void }>();

  private constructor(private readonly worker: Worker) {}

  /** Start the worker at `url` and load the model; resolves when its first run is done. */
  static async load(url: string, req: LoadRequest): Promise<{ worker: InferenceWorker; loaded: Loaded }> {
    const w = new InferenceWorker(new Worker(url, { type: 'module' }));
    const loaded = new Promise<Loaded>((resolve, reject) => {
      w.worker.onmessage = (e: MessageEvent<WorkerReply>) => {
        const m = e.data;
        if (m.type === 'loaded') resolve(m);
        else if (m.type === 'log') {
          state.logs.push(m.line);
          console.info(`[cmc worker] ${m.line}`);
        } else if (m.type === 'result') {
          w.pending.get(m.id)?.resolve(m);
          w.pending.delete(m.id);
        } else if (m.type === 'error') {
          if (m.id !== undefined) {
            w.pending.get(m.id)?.reject(new Error(m.message));
            w.pending.delete(m.id);
          } else reject(new Error(m.message));
        }
      };
      w.worker.onerror = (e) => reject(new Error(`worker: ${e.message}`));
    });
    w.worker.postMessage(req);
    return { worker: w, loaded: await loaded };
  }

  /** n images (uint8 NHWC, size x size x 3 each; the buffer is transferred) → the outputs, flat per name. */
  run(images: Uint8Array, n: number): Promise<RunResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'run', id, images, n }, [images.buffer]);
    });
  }
}
