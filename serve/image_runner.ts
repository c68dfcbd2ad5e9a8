/**
 * Encoded images → one graph's outputs, shared by every route that takes images (/v1/embed,
 * /v1/classify, /v1/embeddings): decode + transform each image (a failing one is named by its index),
 * then submit them together to the graph's batcher.
 *
 *   const run = imageRunner(metrics, limits, pool);
 *   const outs = await run(model, model.encoder, [jpeg1, png2]);   // one ImageOutputs per image
 */
import { ApiError, toApiError } from './errors.ts';
import type { Metrics } from './metrics.ts';
import { decodeToInput, type DecodeLimits } from './preprocess.ts';
import type { Graph, ImageOutputs, ModelVersion } from './repository.ts';
import type { ResizePool } from './resize_pool.ts';

export type ImageRunner = (m: ModelVersion, graph: Graph, images: Buffer[], indexLabel?: string) => Promise<ImageOutputs[]>;

export function imageRunner(metrics: Metrics, limits: DecodeLimits, pool?: ResizePool): ImageRunner {
  return async (m, graph, images, indexLabel = 'images') => {
    const inputs = await Promise.all(
      images.map(async (buf, i) => {
        const t0 = performance.now();
        try {
          return await decodeToInput(buf, m.size, limits, pool);
        } catch (e) {
          const err = toApiError(e);
          throw images.length > 1 ? new ApiError(err.status, err.code, `${indexLabel}[${i}]: ${err.message}`, err.headers) : err;
        } finally {
          metrics.preprocess.observe({}, (performance.now() - t0) / 1000);
        }
      }),
    );
    return graph.batcher.submit(inputs);
  };
}
