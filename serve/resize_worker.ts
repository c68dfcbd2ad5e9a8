/**
 * Worker thread body for the preprocessing pool (serve/resize_pool.ts): runs valAugmentRgb (the
 * Pillow-identical resize + centre crop) off the event loop. Messages: { id, rgb, width, height, size }
 * → { id, out } | { id, error }.
 */
import { parentPort } from 'node:worker_threads';
import { valAugmentRgb } from '../train/data/augment.ts';

parentPort!.on('message', (m: { id: number; rgb: Uint8Array; width: number; height: number; size: number }) => {
  try {
    const out = valAugmentRgb({ rgb: m.rgb, width: m.width, height: m.height }, m.size);
    parentPort!.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
parentPort!.postMessage({ ready: true });
