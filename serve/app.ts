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
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { ApiError, notFound, ShuttingDownError, toApiError } from './errors.ts';
import { intParam, readImageRequest, stringParam, type InputLimits } from './inputs.ts';
import type { InferenceFlow } from './flow.ts';
import type { Metrics } from './metrics.ts';
import { openApiDocument } from './openapi.ts';
import { type DecodeLimits } from './preprocess.ts';
import { Budget } from './budget.ts';
import { imageRunner } from './image_runner.ts';
import { errorBodyFor } from './protocol_errors.ts';
import { embeddingsHandler } from './routes/embeddings.ts';
import { mountV2, mountV2Health } from './routes/v2.ts';
import type { Repository } from './repository.ts';
import type { ResizePool } from './resize_pool.ts';
import { topK } from '../core/util/top_k.ts';
import { MAX_MANIFEST_BYTES, MAX_ONNX_BYTES, openModelFile } from './model_files.ts';

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
  /** Longest wait for queue places before 429 (default 0: refuse at once). */
  admissionWaitMs?: number;
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

/** Routes answered without a token when --auth_token is set (besides the demo's static files). */
export const OPEN_ROUTES: readonly string[] = ['/v2/health/live', '/v2/health/ready', '/openapi.json', '/'];

type Handler = (req: Request, res: Response) => Promise<void> | void;

export function createApp(deps: AppDeps): express.Express {
  const { repo, metrics, config } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  let inFlight = 0;
  metrics.inFlight.set({}, () => inFlight);

  // Metrics and in-flight accounting for every request; the route label is the route pattern.
  app.use((req, res, next) => {
    const t0 = performance.now();
    inFlight++;
    let counted = false;
    const done = () => {
      if (counted) return;
      counted = true;
      inFlight--;
      const route = (res.locals.route as string | undefined) ?? (req.method === 'GET' ? 'static' : 'unmatched');
      const code = String(res.statusCode);
      metrics.requests.inc({ route, method: req.method, code });
      const seconds = (performance.now() - t0) / 1000;
      metrics.latency.observe({ route }, seconds);
      if (INFERENCE_ROUTES.has(route))
        metrics.observeInference(
          (res.locals.model as string | undefined) ?? 'unresolved',
          route,
          res.statusCode < 400,
          seconds,
        );
      if (res.statusCode >= 400)
        metrics.errors.inc({ route, code, error: (res.locals.errorCode as string | undefined) ?? 'unknown' });
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  });

  app.use((req, res, next) => {
    if (deps.isDraining?.()) {
      res.setHeader('Connection', 'close');
      return next(new ShuttingDownError());
    }
    next();
  });

  if (config.corsOrigin) {
    const origin = config.corsOrigin;
    app.use((req, res, next) => {
      res.setHeader('Access-Control-Allow-Origin', origin);
      if (origin !== '*') res.setHeader('Vary', 'Origin');
      if (req.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
        res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type');
        res.setHeader('Access-Control-Max-Age', '600');
        res.locals.route = 'preflight';
        res.status(204).end();
        return;
      }
      next();
    });
  }

  const route = (pattern: string, h: Handler) => async (req: Request, res: Response) => {
    res.locals.route = pattern;
    if (deps.flow && INFERENCE_ROUTES.has(pattern)) await deps.flow.track(async () => h(req, res));
    else await h(req, res);
  };
  const limits: InputLimits & DecodeLimits = {
    maxBodyBytes: config.maxBodyBytes,
    maxJsonBytes: config.maxJsonBytes,
    maxImages: config.maxImages,
    maxPixels: config.maxPixels,
    bodyBudget: config.maxInflightBodyBytes ? new Budget(config.maxInflightBodyBytes, 'request body bytes') : undefined,
  };
  const maxRequestPixels = config.maxRequestPixels ?? config.maxImages * config.maxPixels;
  // Decoded images are the big allocations (3 bytes per pixel, plus the resize): all requests together
  // decode at most this many pixels at once, each image waiting its turn (FIFO) after admission.
  const decodeBudget = new Budget(
    Math.max(config.maxDecodePixels ?? config.maxPixels, config.maxPixels),
    'decode room (--max_decode_pixels)',
  );

  // ---------------------------------------------------------------------------------------------------
  // Open routes: health, the OpenAPI document and the demo. They are registered before the auth gate, so
  // the router itself decides what is open (with its own case and trailing-slash rules); every request
  // it does not answer here falls through to the gate (deny by default).

  mountV2Health(app, route, { repo, isDraining: deps.isDraining });
  app.get(
    '/openapi.json',
    route('/openapi.json', (_req, res) => void res.json(openApiDocument())),
  );

  const webDist = config.webDist;
  if (webDist && fs.existsSync(webDist)) {
    app.use(express.static(webDist, { index: 'index.html', dotfiles: 'ignore', fallthrough: true }));
  } else {
    app.get(
      '/',
      route('/', (_req, res) => {
        res
          .type('html')
          .send(
            '<!doctype html><meta charset="utf-8"><title>cmc serve</title>' +
              '<h1>cmc serve</h1><p>The browser demo is not built (web/dist is missing). ' +
              'The API is up: see <a href="/openapi.json">/openapi.json</a>, <a href="/v1/models">/v1/models</a> and <a href="/metrics">/metrics</a>.</p>',
          );
      }),
    );
  }

  for (const p of routePaths(app))
    if (!OPEN_ROUTES.includes(p))
      throw new Error(`route ${p} is registered before the auth gate but is not in OPEN_ROUTES`);
  if (config.authToken) app.use(bearerAuth(config.authToken));

  // ---------------------------------------------------------------------------------------------------
  // Behind the gate from here on: the OIP routes (metadata, ready, infer), then /v1

  mountV2(app, route, {
    repo,
    provider: deps.provider,
    providerNotes: deps.providerNotes,
    limits,
    maxImages: config.maxImages,
  });

  app.get(
    '/v1/models',
    route('/v1/models', (_req, res) => {
      res.json({
        default: repo.defaultModel ?? null,
        provider: deps.provider,
        models: repo.all().map((m) => ({
          name: m.name,
          version: m.version,
          input: { name: m.encoder.input.name, size: m.size, layout: 'NHWC', dtype: 'uint8' },
          view: m.manifest.view,
          arch: m.manifest.arch,
          layer: m.manifest.layer,
          embeddingDim: m.encoder.outputs.find((o) => o.name === 'embedding')?.shape[1] ?? null,
          classifier: !!m.classifier,
          classNames: m.classifier ? m.classNames : [],
          provider: m.encoder.provider,
          metrics: m.manifest.metrics ?? null,
        })),
      });
    }),
  );

  app.get(
    '/metrics',
    route('/metrics', async (_req, res) => void res.type(metrics.contentType).send(await metrics.render())),
  );

  // ---------------------------------------------------------------------------------------------------
  // Inference

  const inferImages = imageRunner(metrics, limits, deps.resizePool, {
    maxPixels: config.maxPixels,
    maxRequestPixels,
    decodeBudget,
    decodeTimeoutMs: config.decodeTimeoutMs ?? 30_000,
    admissionWaitMs: config.admissionWaitMs ?? 0,
  });

  app.post(
    '/v1/embed',
    route('/v1/embed', async (req, res) => {
      const { images, params } = await readImageRequest(req, limits);
      const m = repo.resolve(stringParam(req, params, 'model'), stringParam(req, params, 'version'));
      res.locals.model = `${m.name}:${m.version}`;
      const outs = await inferImages(m, m.encoder, images);
      const embeddings = outs.map((o) => Array.from(o.embedding ?? Object.values(o)[0]));
      res.json({ model: m.name, version: m.version, dim: embeddings[0]?.length ?? 0, embeddings });
    }),
  );

  app.post(
    '/v1/classify',
    route('/v1/classify', async (req, res) => {
      const { images, params } = await readImageRequest(req, limits);
      const m = repo.resolve(stringParam(req, params, 'model'), stringParam(req, params, 'version'));
      res.locals.model = `${m.name}:${m.version}`;
      const topK = intParam(req, params, 'top_k', config.defaultTopK ?? 5, 1, 100000);
      if (!m.classifier)
        throw notFound(
          `model ${m.name} v${m.version} has no classifier (export it with a probe head)`,
          'classifier_not_found',
        );
      const outs = await inferImages(m, m.classifier, images);
      const predictions = outs.map((o) => topk(o.probabilities ?? Object.values(o)[0], m.classNames, topK));
      res.json({ model: m.name, version: m.version, predictions });
    }),
  );

  app.post(
    '/v1/embeddings',
    route('/v1/embeddings', embeddingsHandler({ repo, inferImages, limits, maxImages: config.maxImages })),
  );

  // ---------------------------------------------------------------------------------------------------
  // Model files for the browser demo (read-only): manifest.json and the ONNX files the manifest lists.
  // The name and version are looked up in memory (repo.resolve validates them); the file name must be
  // manifest.json or a plain *.onnx name that the manifest lists, so no request can leave the model folder.

  // The tfjs graph models (cmc export --format tfjs) live in tfjs/<role>/: model.json and its weight shards,
  // again only when the manifest lists them.
  const modelFile = (routePath: string, fileOf: (req: express.Request) => string) =>
    route(routePath, async (req, res) => {
      const m = repo.resolve(String(req.params.name), stringParam(req, {}, 'version'));
      const file = fileOf(req);
      const allowed =
        file === 'manifest.json' ||
        ((MODEL_FILE_RE.test(file) || TFJS_FILE_RE.test(file)) &&
          !file.includes('..') &&
          Object.hasOwn(m.manifest.files ?? {}, file));
      if (!allowed)
        throw notFound(
          `model ${m.name} v${m.version} serves no file ${JSON.stringify(file.slice(0, 64))} (manifest.json or its .onnx files)`,
          'file_not_found',
        );
      const full = path.resolve(m.dir, file);
      if (path.relative(path.resolve(m.dir), full) !== file.split('/').join(path.sep))
        throw notFound('no such file', 'file_not_found');
      // Opened once and checked on the descriptor: a regular file inside the repository (a symlink swapped
      // in after start-up cannot point the route at another file of the machine).
      let opened: { fd: number; size: number };
      try {
        opened = openModelFile(full, repo.opts.root, file === 'manifest.json' ? MAX_MANIFEST_BYTES : MAX_ONNX_BYTES);
      } catch {
        throw notFound(`model ${m.name} v${m.version} has no ${file}`, 'file_not_found');
      }
      const { fd, size } = opened;
      res.setHeader(
        'Content-Type',
        file.endsWith('.json') ? 'application/json; charset=utf-8' : 'application/octet-stream',
      );
      res.setHeader('Content-Length', String(size));
      // The browser keeps the (large) ONNX files: each request revalidates with the file's sha256 from the
      // manifest as its ETag and gets a 304 while the model is unchanged.
      const sha = file === 'manifest.json' ? null : m.manifest.files[file]?.sha256;
      res.setHeader('Cache-Control', 'no-cache');
      res.setHeader('X-Model-Version', m.version);
      if (sha) {
        const etag = `"${sha}"`;
        res.setHeader('ETag', etag);
        if (req.headers['if-none-match'] === etag) {
          fs.closeSync(fd);
          res.status(304).end();
          return;
        }
      }
      if (req.method === 'HEAD') {
        fs.closeSync(fd);
        res.end();
        return;
      }
      await new Promise<void>((resolve, reject) => {
        const s = fs.createReadStream('', { fd, start: 0, end: Math.max(0, size - 1), autoClose: true });
        s.once('error', reject);
        res.once('close', () => {
          s.destroy();
          resolve();
        });
        s.pipe(res);
      });
    });
  app.get(
    '/models/:name/:file',
    modelFile('/models/{name}/{file}', (req) => String(req.params.file)),
  );
  app.get(
    '/models/:name/tfjs/:role/:file',
    modelFile(
      '/models/{name}/tfjs/{role}/{file}',
      (req) => `tfjs/${String(req.params.role)}/${String(req.params.file)}`,
    ),
  );

  // ---------------------------------------------------------------------------------------------------
  // JSON 404s and the error handler

  app.use((req, res, next) => {
    res.locals.route ??= 'unmatched';
    next(new ApiError(404, 'route_not_found', `no route ${req.method} ${req.path.slice(0, 200)}`));
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toApiError(err);
    if (e.status >= 500 && e.code === 'internal')
      deps.log?.(`[serve] error on ${req.method} ${req.path}: ${(err as Error)?.stack ?? String(err)}`);
    else if (e.status >= 500 && e.code === 'non_finite_output') deps.log?.(`[serve] ${e.message}`);
    res.locals.errorCode = e.code;
    if (!req.complete) {
      // The body was not read (rejected early): drop it and close the connection after answering.
      res.setHeader('Connection', 'close');
      req.resume();
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
    res.status(e.status).json(errorBodyFor(req.path, e));
  });

  return app;
}

// -----------------------------------------------------------------------------------------------------
// Helpers

/** Path patterns of the routes registered on `app` so far. */
function routePaths(app: express.Express): string[] {
  const stack = (app.router as unknown as { stack: { route?: { path: string } }[] }).stack;
  return stack.flatMap((l) => (l.route ? [l.route.path] : []));
}

/** 401 unless `Authorization: Bearer <token>` (constant-time compare of the hashes). */
function bearerAuth(token: string): express.RequestHandler {
  const want = crypto.createHash('sha256').update(token).digest();
  return (req, _res, next) => {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const got = crypto
      .createHash('sha256')
      .update(m ? m[1].trim() : '')
      .digest();
    if (!m || !crypto.timingSafeEqual(want, got)) {
      return next(
        new ApiError(401, 'unauthorized', 'missing or invalid bearer token', { 'WWW-Authenticate': 'Bearer' }),
      );
    }
    next();
  };
}

/** Routes whose requests count as inference requests (cmc_inference_requests_total, per model). */
const INFERENCE_ROUTES = new Set([
  '/v1/embed',
  '/v1/classify',
  '/v1/embeddings',
  '/v2/models/{name}/infer',
  '/v2/models/{name}/versions/{version}/infer',
]);

/** Model files served at /models/{name}/{file} besides manifest.json (only those the manifest lists). */
const MODEL_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.onnx$/;
const TFJS_FILE_RE = /^tfjs\/(encoder|classifier)\/(model\.json|group\d{1,4}-shard\d{1,4}of\d{1,4}\.bin)$/;

/** The top-k classes of one probability row, as /v1/classify answers them. */
export function topk(
  p: Float32Array,
  names: string[],
  k: number,
): { label: string; index: number; probability: number }[] {
  return topK(p, k).map(({ index, value }) => ({ label: names[index] ?? String(index), index, probability: value }));
}
