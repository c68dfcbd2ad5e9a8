/**
 * A small worker-thread pool for decode + resize + centre crop (decodeToInput), so large images (about 0.1 s
 * of JavaScript resize for 12 MP) do not block the event loop. `--preprocess_workers 0` keeps it in-thread.
 * Workers register tsx themselves (they do not inherit the main thread's loader hooks; same bootstrap as
 * train/data/loader.ts).
 */
import type { Worker } from 'node:worker_threads';
import { spawnTsWorker } from '../core/util/ts_worker.ts';
import { ApiError } from './errors.ts';
import type { ImageHeader } from './preprocess.ts';

interface Slot {
  w: Worker;
  busy: number;
  ready: Promise<void>;
}

export class ResizePool {
  private slots: Slot[] = [];
  private next = 1;
  private tasks = new Map<number, { resolve: (u: Uint8Array) => void; reject: (e: Error) => void }>();

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const w = spawnTsWorker(new URL('./resize_worker.ts', import.meta.url));
      w.unref();
      let onReady!: () => void;
      const ready = new Promise<void>((r) => (onReady = r));
      const slot: Slot = { w, busy: 0, ready };
      w.on(
        'message',
        (m: { ready?: boolean; id?: number; out?: Uint8Array; error?: string; status?: number; code?: string }) => {
          if (m.ready) return onReady();
          const t = this.tasks.get(m.id!);
          if (!t) return;
          this.tasks.delete(m.id!);
          slot.busy--;
          if (m.error !== undefined)
            t.reject(
              m.status !== undefined ? new ApiError(m.status, m.code ?? 'invalid_image', m.error) : new Error(m.error),
            );
          else t.resolve(m.out!);
        },
      );
      w.on('error', (e) => {
        for (const [id, t] of this.tasks) {
          this.tasks.delete(id);
          t.reject(e);
        }
      });
      this.slots.push(slot);
    }
  }

  /**
   * Decode + resize + crop in a worker (decodeToInput there): only the encoded bytes cross threads, not a
   * decoded image of up to --max_pixels x 3 bytes, whose copy would otherwise block the event loop.
   */
  async decode(encoded: Uint8Array, size: number, maxPixels: number, header?: ImageHeader | null): Promise<Uint8Array> {
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    await slot.ready;
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.tasks.set(id, { resolve, reject });
      slot.w.postMessage({ id, encoded, size, maxPixels, header });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.w.terminate()));
  }
}
