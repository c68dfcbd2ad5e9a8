/**
 * Worker thread body for the preprocessing pool (serve/resize_pool.ts): runs valAugmentRgb (the
 * Pillow-identical resize + centre crop) off the event loop. Messages: { id, rgb, width, height, size }
 * → { id, out } | { id, error }; or { id, encoded, size, maxPixels } (decode here too, so the decoded
 * image never crosses threads) → { id, out } | { id, error, status?, code? }.
 */
import { parentPort } from 'node:worker_threads';
import { valAugmentRgb } from '../train/data/augment.ts';
import { ApiError } from './errors.ts';
import { decodeToInput } from './preprocess.ts';

type Task = { id: number; rgb: Uint8Array; width: number; height: number; size: number } | { id: number; encoded: Uint8Array; size: number; maxPixels: number };

parentPort!.on('message', async (m: Task) => {
  if ('encoded' in m) {
    try {
      const out = await decodeToInput(m.encoded, m.size, { maxPixels: m.maxPixels });
      parentPort!.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
    } catch (e) {
      const api = e instanceof ApiError ? { status: e.status, code: e.code } : {};
      parentPort!.postMessage({ id: m.id, error: (e as Error).message, ...api });
    }
    return;
  }
  try {
    const out = valAugmentRgb({ rgb: m.rgb, width: m.width, height: m.height }, m.size);
    parentPort!.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
parentPort!.postMessage({ ready: true });
