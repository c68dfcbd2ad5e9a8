/**
 * Encoded images → one graph's outputs, shared by every route that takes images (/v1/embed,
 * /v1/classify, /v1/embeddings): admission first (places in the graph's queue are reserved before any
 * decoding, so a request refused with 429 costs no decode), then the per-request pixel budget read from the
 * image headers, then decode + transform each image within the shared decode budget (a failing image is
 * named by its index), then one submission to the graph's batcher. Outputs holding NaN or Inf are refused.
 *
 *   const run = imageRunner(metrics, limits, pool, admission);
 *   const outs = await run(model, model.encoder, [jpeg1, png2]);   // one ImageOutputs per image
 */
import type { Budget } from './budget.ts';
import { ApiError, toApiError, tooLarge } from './errors.ts';
import type { Metrics } from './metrics.ts';
import { decodeToInput, readHeader, type DecodeLimits } from './preprocess.ts';
import type { Graph, ImageOutputs, ModelVersion } from './repository.ts';
import type { ResizePool } from './resize_pool.ts';

export type ImageRunner = (
  m: ModelVersion,
  graph: Graph,
  images: Buffer[],
  indexLabel?: string,
) => Promise<ImageOutputs[]>;

/** The decode limits shared by all requests (documented in README "Security and limits"). */
export interface Admission {
  /** Pixels of one image (larger ones are refused one by one from the header). */
  maxPixels: number;
  /** Pixels summed over one request's images (--max_request_pixels). */
  maxRequestPixels: number;
  /** Pixels decoded at once by all requests together (--max_decode_pixels), FIFO. */
  decodeBudget: Budget;
  /** How long an image waits for decode room before the request fails. */
  decodeTimeoutMs: number;
  /** How long a request may wait for places in a full queue and still be admitted (--admission_wait_ms). */
  admissionWaitMs: number;
  /** When a request that got no place is answered 429, from its arrival (--refuse_after_ms). */
  refuseAfterMs: number;
  /** True when no other inference request is on its way (InferenceFlow.alone). */
  alone?: () => boolean;
}

/**
 * Images up to this many pixels are decoded on the event loop when their request is alone with an idle graph:
 * the worker hop would only add time, and there is nothing else for the loop to do.
 */
export const INLINE_DECODE_PIXELS = 1_000_000;

export function imageRunner(
  metrics: Metrics,
  limits: DecodeLimits,
  pool: ResizePool | undefined,
  adm: Admission,
): ImageRunner {
  return async (m, graph, images, indexLabel = 'images') => {
    const places = await graph.batcher.reserveWithin(images.length, adm.admissionWaitMs, adm.refuseAfterMs);
    try {
      // Each header is parsed once, here: its pixels count against the budgets, and the decode reuses it.
      const headers = await Promise.all(images.map((b) => readHeader(b)));
      const pixels = headers.map((h) => (h?.width ?? 0) * (h?.height ?? 0));
      // Images over maxPixels are refused one by one (image_too_large) by decodeToInput from the header.
      const total = pixels.reduce((a, b) => a + (b <= adm.maxPixels ? b : 0), 0);
      if (total > adm.maxRequestPixels) {
        throw tooLarge(
          `the request's images hold ${total} pixels, more than the per-request limit of ${adm.maxRequestPixels} (--max_request_pixels)`,
          'request_too_large',
        );
      }
      // A lone small image with the graph idle skips the preprocessing worker (decided once per request).
      const inline =
        images.length === 1 &&
        pixels[0] <= INLINE_DECODE_PIXELS &&
        !graph.batcher.busy &&
        graph.batcher.depth === images.length &&
        (adm.alone?.() ?? false);
      const inputs = await Promise.all(
        images.map(async (buf, i) => {
          const room = pixels[i] <= adm.maxPixels ? Math.max(pixels[i], 1) : 0;
          if (room > 0) await adm.decodeBudget.take(room, adm.decodeTimeoutMs);
          const t0 = performance.now();
          try {
            // With worker threads, decode there too: a decoded image never crosses threads.
            return pool && !inline
              ? await pool.decode(buf, m.size, adm.maxPixels, headers[i])
              : await decodeToInput(buf, m.size, limits, headers[i]);
          } catch (e) {
            const err = toApiError(e);
            throw images.length > 1
              ? new ApiError(err.status, err.code, `${indexLabel}[${i}]: ${err.message}`, err.headers)
              : err;
          } finally {
            if (room > 0) adm.decodeBudget.give(room);
            metrics.preprocess.observe({}, (performance.now() - t0) / 1000);
          }
        }),
      );
      return finiteOutputs(m, await places.submit(inputs));
    } finally {
      places.release();
    }
  };
}

/**
 * The outputs, or a 500 `non_finite_output` naming the output and image when one holds NaN or Inf: JSON
 * has no such numbers (they would go out as null), and a broken model must not look like data.
 */
export function finiteOutputs(m: ModelVersion, outs: ImageOutputs[], names?: string[]): ImageOutputs[] {
  outs.forEach((o, i) => {
    for (const n of names ?? Object.keys(o)) {
      const v = o[n];
      if (!v) continue;
      for (let k = 0; k < v.length; k++) {
        if (!Number.isFinite(v[k])) {
          throw new ApiError(
            500,
            'non_finite_output',
            `model ${m.name} v${m.version} produced ${v[k]} in output ${JSON.stringify(n)} for images[${i}] (element ${k}): its weights or graph are broken`,
          );
        }
      }
    }
  });
  return outs;
}
