/**
 * The HTTP API (express 5), without listen(): createApp(deps) for main.ts and for tests.
 *
 *   POST /v1/embed                      images → { model, version, dim, embeddings: number[][] }
 *   POST /v1/classify                   images → { model, version, predictions: [{ label, index, probability }][] }
 *   POST /v1/embeddings                 OpenAI embeddings shape (routes/embeddings.ts)
 *   GET  /v1/models                     the repository
 *   GET  /v2/health/live | /v2/health/ready
 *   GET  /v2, /v2/models/{name}[/versions/{v}][/ready]   KServe v2 server / model metadata (routes/v2.ts)
 *   POST /v2/models/{name}[/versions/{v}]/infer           KServe v2 tensor inference (UINT8 images; JSON or
 *                                                         binary tensor data)
 *   GET  /metrics                       Prometheus text
 *   GET  /openapi.json                  OpenAPI 3.1 description of all of the above
 *   GET  /models/{name}/{file}          read-only model files for the browser demo: manifest.json and the
 *                                       manifest's *.onnx files (?version=, default the latest)
 *   GET  /                              the browser demo (web/dist) or a page saying it is not built
 *
 * Every error has the right status (errors.ts) and its protocol's body (protocol_errors.ts): OpenAI's on
 * /v1/embeddings, the Open Inference Protocol's on /v2, `{ "error": { "code", "message" } }` elsewhere.
 *
 * This file only wires the parts in order: middleware.ts (metrics, shutdown, CORS, auth gate, errors), the
 * route modules in routes/ (v1.ts, v2.ts, embeddings.ts, files.ts), and the image pipeline's limits.
 */
import express from 'express';
import { Budget } from './budget.ts';
import { imageRunner, type ImageRunner } from './image_runner.ts';
import type { InferenceFlow } from './flow.ts';
import type { InputLimits } from './inputs.ts';
import type { Metrics } from './metrics.ts';
import {
  cors,
  errorHandler,
  installAuthGate,
  requestMetrics,
  routeNotFound,
  routeWrap,
  shutdownGate,
} from './middleware.ts';
import { openApiDocument } from './openapi.ts';
import type { DecodeLimits } from './preprocess.ts';
import type { Repository } from './repository.ts';
import type { ResizePool } from './resize_pool.ts';
import { mountDemo, mountModelFiles } from './routes/files.ts';
import { mountV1 } from './routes/v1.ts';
import { mountV2, mountV2Health } from './routes/v2.ts';

export { OPEN_ROUTES } from './middleware.ts';

export interface AppConfig extends InputLimits, DecodeLimits {
  /** Bearer token required on every route except OPEN_ROUTES and the demo's files (deny by default). */
  authToken?: string;
  /** Access-Control-Allow-Origin value ('*' or an origin); no CORS headers when unset. */
  corsOrigin?: string;
  /** Folder of the built browser demo (web/dist). */
  webDist?: string;
  /** Default and largest top_k for /v1/classify. */
  defaultTopK?: number;
  /** Decoded pixels (width*height) summed over one request's images; 413 beyond (default maxImages*maxPixels). */
  maxRequestPixels?: number;
  /** Pixels being decoded and resized at once by all requests together (default maxPixels). */
  maxDecodePixels?: number;
  /** Bytes of request bodies held in memory by all requests together; 429 beyond (default unbounded). */
  maxInflightBodyBytes?: number;
  /** How long a request may wait for queue places and still be admitted (default 0: refuse at once). */
  admissionWaitMs?: number;
  /** When a request that got no place is answered 429, from its arrival (default admissionWaitMs). */
  refuseAfterMs?: number;
  /** Longest wait for decode room before 503 (default 30 s). */
  decodeTimeoutMs?: number;
}

export interface AppDeps {
  repo: Repository;
  metrics: Metrics;
  config: AppConfig;
  /** Execution provider in use (for /v1/models and /v2). */
  provider: string;
  /** Why that provider was chosen (GET /v2 provider_notes). */
  providerNotes?: string[];
  /** True once shutdown began: new requests get 503. */
  isDraining?: () => boolean;
  log?: (line: string) => void;
  /** Worker threads for the resize + crop (none: in the event loop). */
  resizePool?: ResizePool;
  /** Tracks inference requests until they reach a batcher (the repository's batchers read it). */
  flow?: InferenceFlow;
}

export function createApp(deps: AppDeps): express.Express {
  const { repo, metrics, config } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestMetrics(metrics));
  app.use(shutdownGate(deps.isDraining));
  if (config.corsOrigin) app.use(cors(config.corsOrigin));
  const route = routeWrap(deps.flow);
  const limits = inputLimits(config);

  // Open routes: health, the OpenAPI document and the demo. They are registered before the auth gate, so
  // the router itself decides what is open; every request it does not answer falls through to the gate.
  mountV2Health(app, route, { repo, isDraining: deps.isDraining });
  app.get(
    '/openapi.json',
    route('/openapi.json', (_req, res) => void res.json(openApiDocument())),
  );
  mountDemo(app, route, config.webDist);
  installAuthGate(app, config.authToken);

  // Behind the gate from here on.
  const { provider, providerNotes } = deps;
  mountV2(app, route, { repo, provider, providerNotes, limits, maxImages: config.maxImages });
  const inferImages = imageInference(deps, limits);
  mountV1(app, route, {
    repo,
    provider,
    inferImages,
    limits,
    maxImages: config.maxImages,
    defaultTopK: config.defaultTopK,
  });
  app.get(
    '/metrics',
    route('/metrics', async (_req, res) => void res.type(metrics.contentType).send(await metrics.render())),
  );
  mountModelFiles(app, route, repo);

  app.use(routeNotFound());
  app.use(errorHandler(deps.log));
  return app;
}

/** Body, JSON, image-count and pixel limits of one request, and the body bytes all requests hold at once. */
function inputLimits(config: AppConfig): InputLimits & DecodeLimits {
  return {
    maxBodyBytes: config.maxBodyBytes,
    maxJsonBytes: config.maxJsonBytes,
    maxImages: config.maxImages,
    maxPixels: config.maxPixels,
    bodyBudget: config.maxInflightBodyBytes ? new Budget(config.maxInflightBodyBytes, 'request body bytes') : undefined,
  };
}

/** Encoded images → decode, resize and crop → a graph's batcher, within the decode limits. */
function imageInference(deps: AppDeps, limits: InputLimits & DecodeLimits): ImageRunner {
  const { config } = deps;
  // Decoded images are the big allocations (3 bytes per pixel, plus the resize): all requests together
  // decode at most this many pixels at once, each image waiting its turn (FIFO) after admission.
  const decodeBudget = new Budget(
    Math.max(config.maxDecodePixels ?? config.maxPixels, config.maxPixels),
    'decode room (--max_decode_pixels)',
  );
  return imageRunner(deps.metrics, limits, deps.resizePool, {
    maxPixels: config.maxPixels,
    maxRequestPixels: config.maxRequestPixels ?? config.maxImages * config.maxPixels,
    decodeBudget,
    decodeTimeoutMs: config.decodeTimeoutMs ?? 30_000,
    admissionWaitMs: config.admissionWaitMs ?? 0,
    refuseAfterMs: config.refuseAfterMs ?? config.admissionWaitMs ?? 0,
    ...(deps.flow ? { alone: () => deps.flow!.alone } : {}),
  });
}
