/**
 * Worker thread body for the preprocessing pool (serve/resize_pool.ts): decode + the Pillow-identical resize
 * + centre crop (decodeToInput) off the event loop, so the decoded image never crosses threads. Messages:
 * { id, encoded, size, maxPixels, header? } → { id, out } | { id, error, status?, code? }.
 */
import { parentPort } from 'node:worker_threads';
import { ApiError } from './errors.ts';
import { decodeToInput, type ImageHeader } from './preprocess.ts';

type Task = { id: number; encoded: Uint8Array; size: number; maxPixels: number; header?: ImageHeader | null };

parentPort!.on('message', async (m: Task) => {
  try {
    const out = await decodeToInput(m.encoded, m.size, { maxPixels: m.maxPixels }, m.header);
    parentPort!.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
  } catch (e) {
    const api = e instanceof ApiError ? { status: e.status, code: e.code } : {};
    parentPort!.postMessage({ id: m.id, error: (e as Error).message, ...api });
  }
});
parentPort!.postMessage({ ready: true });
