/**
 * The HTTP API (express 5), without listen(): createApp(deps) for main.ts and for tests.
 *
 *   POST /v1/embed                      images → { model, version, dim, embeddings: number[][] }
 *   POST /v1/classify                   images → { model, version, predictions: [{ label, index, probability }][] }
 *   GET  /v1/models                     the repository
 *   GET  /v2/health/live | /v2/health/ready
 *   GET  /v2, /v2/models/{name}[/versions/{v}][/ready]   KServe v2 server / model metadata
 *   POST /v2/models/{name}[/versions/{v}]/infer           KServe v2 tensor inference (UINT8 images)
 *   GET  /metrics                       Prometheus text
 *   GET  /openapi.json                  OpenAPI 3.1 description of all of the above
 *   GET  /models/{name}/{file}          read-only model files for the browser demo: manifest.json and the
 *                                       manifest's *.onnx files (?version=, default the latest)
 *   GET  /                              the browser demo (web/dist) or a page saying it is not built
 *
 * Every error is `{ "error": { "code", "message" } }` with the right status (see errors.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { ApiError, badRequest, errorBody, notFound, ShuttingDownError, toApiError, tooLarge } from './errors.ts';
import { intParam, readImageRequest, readJson, stringParam, type InputLimits } from './inputs.ts';
import type { Metrics } from './metrics.ts';
import { openApiDocument } from './openapi.ts';
import { decodeToInput, headerPixels, type DecodeLimits } from './preprocess.ts';
import { Budget } from './budget.ts';
import type { Graph, ImageOutputs, ModelVersion, Repository, TensorInfo } from './repository.ts';
import type { ResizePool } from './resize_pool.ts';
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
  /** True once shutdown began: new requests get 503. */
  isDraining?: () => boolean;
  log?: (line: string) => void;
  /** Worker threads for the resize + crop (none: in the event loop). */
  resizePool?: ResizePool;
}

/** Routes answered without a token when --auth_token is set (besides the demo's static files). */
export const OPEN_ROUTES: readonly string[] = ['/v2/health/live', '/v2/health/ready', '/openapi.json', '/'];

export const SERVER_NAME = 'cmc-serve';
export const SERVER_VERSION = '0.1.0';

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
      metrics.latency.observe({ route }, (performance.now() - t0) / 1000);
      if (res.statusCode >= 400) metrics.errors.inc({ route, code, error: (res.locals.errorCode as string | undefined) ?? 'unknown' });
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
    await h(req, res);
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
  const decodeBudget = new Budget(Math.max(config.maxDecodePixels ?? config.maxPixels, config.maxPixels), 'decode room (--max_decode_pixels)');

  // ---------------------------------------------------------------------------------------------------
  // Open routes: health, the OpenAPI document and the demo. They are registered before the auth gate, so
  // the router itself decides what is open (with its own case and trailing-slash rules); every request
  // it does not answer here falls through to the gate (deny by default).

  app.get('/v2/health/live', route('/v2/health/live', (_req, res) => void res.json({ live: true })));
  app.get(
    '/v2/health/ready',
    route('/v2/health/ready', (_req, res) => {
      const ready = repo.ready && !deps.isDraining?.();
      res.status(ready ? 200 : 503).json({ ready });
    }),
  );
  app.get('/openapi.json', route('/openapi.json', (_req, res) => void res.json(openApiDocument())));

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

  for (const p of routePaths(app)) if (!OPEN_ROUTES.includes(p)) throw new Error(`route ${p} is registered before the auth gate but is not in OPEN_ROUTES`);
  if (config.authToken) app.use(bearerAuth(config.authToken));

  // ---------------------------------------------------------------------------------------------------
  // Metadata (behind the gate from here on)

  app.get(
    '/v2',
    route('/v2', (_req, res) => void res.json({ name: SERVER_NAME, version: SERVER_VERSION, extensions: [], provider: deps.provider })),
  );
  const modelMeta = (pattern: string) =>
    route(pattern, (req, res) => {
      const m = repo.resolve(String(req.params.name), req.params.version as string | undefined);
      res.json(kserveMetadata(m, repo.versions(m.name).map((v) => v.version)));
    });
  app.get('/v2/models/:name', modelMeta('/v2/models/{name}'));
  app.get('/v2/models/:name/versions/:version', modelMeta('/v2/models/{name}/versions/{version}'));
  const modelReady = (pattern: string) =>
    route(pattern, (req, res) => {
      const m = repo.resolve(String(req.params.name), req.params.version as string | undefined);
      res.json({ name: m.name, version: m.version, ready: true });
    });
  app.get('/v2/models/:name/ready', modelReady('/v2/models/{name}/ready'));
  app.get('/v2/models/:name/versions/:version/ready', modelReady('/v2/models/{name}/versions/{version}/ready'));

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

  app.get('/metrics', route('/metrics', (_req, res) => void res.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render())));

  // ---------------------------------------------------------------------------------------------------
  // Inference

  /**
   * Decode + transform every image (422/413/415 name the failing index), run them through `graph` and
   * return its output `output` (or its first output when it has none of that name) per image.
   */
  const inferImages = async (m: ModelVersion, graph: Graph, images: Buffer[], output: string): Promise<Float32Array[]> => {
    // Admission first: places in the model's queue are held before any decoding, so a refused request
    // (429) costs no decode.
    const places = await graph.batcher.reserveWithin(images.length, config.admissionWaitMs ?? 0);
    try {
      const pixels = await Promise.all(images.map((b) => headerPixels(b)));
      // Images over --max_pixels are refused one by one (image_too_large) by decodeToInput from the header.
      const total = pixels.reduce((a, b) => a + (b <= config.maxPixels ? b : 0), 0);
      if (total > maxRequestPixels) {
        throw tooLarge(`the request's images hold ${total} pixels, more than the per-request limit of ${maxRequestPixels} (--max_request_pixels)`, 'request_too_large');
      }
      const inputs = await Promise.all(
        images.map(async (buf, i) => {
          const room = pixels[i] <= config.maxPixels ? Math.max(pixels[i], 1) : 0;
          if (room > 0) await decodeBudget.take(room, config.decodeTimeoutMs ?? 30_000);
          const t0 = performance.now();
          try {
            // With worker threads, decode there too: a decoded image never crosses threads.
            return deps.resizePool ? await deps.resizePool.decode(buf, m.size, config.maxPixels) : await decodeToInput(buf, m.size, limits);
          } catch (e) {
            const err = toApiError(e);
            throw images.length > 1 ? new ApiError(err.status, err.code, `images[${i}]: ${err.message}`, err.headers) : err;
          } finally {
            if (room > 0) decodeBudget.give(room);
            metrics.preprocess.observe({}, (performance.now() - t0) / 1000);
          }
        }),
      );
      const name = graph.outputs.some((o) => o.name === output) ? output : graph.outputs[0].name;
      return finiteOutputs(m, await places.submit(inputs), [name]).map((o) => o[name]);
    } finally {
      places.release();
    }
  };

  app.post(
    '/v1/embed',
    route('/v1/embed', async (req, res) => {
      const { images, params } = await readImageRequest(req, limits);
      const m = repo.resolve(stringParam(req, params, 'model'), stringParam(req, params, 'version'));
      const embeddings = (await inferImages(m, m.encoder, images, 'embedding')).map((e) => Array.from(e));
      res.json({ model: m.name, version: m.version, dim: embeddings[0]?.length ?? 0, embeddings });
    }),
  );

  app.post(
    '/v1/classify',
    route('/v1/classify', async (req, res) => {
      const { images, params } = await readImageRequest(req, limits);
      const m = repo.resolve(stringParam(req, params, 'model'), stringParam(req, params, 'version'));
      const topK = intParam(req, params, 'top_k', config.defaultTopK ?? 5, 1, 100000);
      if (!m.classifier) throw notFound(`model ${m.name} v${m.version} has no classifier (export it with a probe head)`, 'classifier_not_found');
      const probs = await inferImages(m, m.classifier, images, 'probabilities');
      const predictions = probs.map((p) => topk(p, m.classNames, topK));
      res.json({ model: m.name, version: m.version, predictions });
    }),
  );

  const infer = (pattern: string) =>
    route(pattern, async (req, res) => {
      const m = repo.resolve(String(req.params.name), req.params.version as string | undefined);
      if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) {
        throw new ApiError(415, 'unsupported_media_type', 'KServe v2 inference takes application/json');
      }
      const body = await readJson(req, limits);
      const r = parseInferRequest(body, m, config.maxImages);
      const plan = planGraphs(m, r.outputs);
      const results = new Map<string, { data: Float32Array[]; info: TensorInfo }>();
      for (const [graph, names] of plan) {
        const outs = finiteOutputs(m, await graph.batcher.submit(r.images), names);
        for (const n of names) results.set(n, { data: outs.map((o) => o[n]), info: graph.outputs.find((t) => t.name === n)! });
      }
      res.json({
        model_name: m.name,
        model_version: m.version,
        ...(r.id !== undefined ? { id: r.id } : {}),
        outputs: r.outputs.map((n) => {
          const { data } = results.get(n)!;
          const w = data[0]?.length ?? 0;
          const flat: number[] = new Array(data.length * w);
          data.forEach((d, i) => {
            for (let k = 0; k < w; k++) flat[i * w + k] = d[k];
          });
          return { name: n, datatype: 'FP32', shape: [data.length, w], data: flat };
        }),
      });
    });
  app.post('/v2/models/:name/infer', infer('/v2/models/{name}/infer'));
  app.post('/v2/models/:name/versions/:version/infer', infer('/v2/models/{name}/versions/{version}/infer'));

  // ---------------------------------------------------------------------------------------------------
  // Model files for the browser demo (read-only): manifest.json and the ONNX files the manifest lists.
  // The name and version are looked up in memory (repo.resolve validates them); the file name must be
  // manifest.json or a plain *.onnx name that the manifest lists, so no request can leave the model folder.

  app.get(
    '/models/:name/:file',
    route('/models/{name}/{file}', async (req, res) => {
      const m = repo.resolve(String(req.params.name), stringParam(req, {}, 'version'));
      const file = String(req.params.file);
      const allowed = file === 'manifest.json' || (MODEL_FILE_RE.test(file) && !file.includes('..') && Object.hasOwn(m.manifest.files ?? {}, file));
      if (!allowed) throw notFound(`model ${m.name} v${m.version} serves no file ${JSON.stringify(file.slice(0, 64))} (manifest.json or its .onnx files)`, 'file_not_found');
      const full = path.resolve(m.dir, file);
      if (path.dirname(full) !== path.resolve(m.dir)) throw notFound('no such file', 'file_not_found');
      // Opened once and checked on the descriptor: a regular file inside the repository (a symlink swapped
      // in after start-up cannot point the route at another file of the machine).
      let opened: { fd: number; size: number };
      try {
        opened = openModelFile(full, repo.opts.root, file === 'manifest.json' ? MAX_MANIFEST_BYTES : MAX_ONNX_BYTES);
      } catch {
        throw notFound(`model ${m.name} v${m.version} has no ${file}`, 'file_not_found');
      }
      const { fd, size } = opened;
      res.setHeader('Content-Type', file.endsWith('.json') ? 'application/json; charset=utf-8' : 'application/octet-stream');
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
    }),
  );

  // ---------------------------------------------------------------------------------------------------
  // JSON 404s and the error handler

  app.use((req, res, next) => {
    res.locals.route ??= 'unmatched';
    next(new ApiError(404, 'route_not_found', `no route ${req.method} ${req.path.slice(0, 200)}`));
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toApiError(err);
    if (e.status >= 500 && e.code === 'internal') deps.log?.(`[serve] error on ${req.method} ${req.path}: ${(err as Error)?.stack ?? String(err)}`);
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
    res.status(e.status).json(errorBody(e));
  });

  return app;
}

// -----------------------------------------------------------------------------------------------------
// Helpers

/**
 * The outputs, or a 500 `non_finite_output` naming the output and image when one holds NaN or Inf: JSON
 * has no such numbers (they would go out as null), and a broken model must not look like data.
 */
export function finiteOutputs(m: ModelVersion, outs: ImageOutputs[], names: string[]): ImageOutputs[] {
  outs.forEach((o, i) => {
    for (const n of names) {
      const v = o[n];
      if (!v) continue;
      for (let k = 0; k < v.length; k++) {
        if (!Number.isFinite(v[k])) {
          throw new ApiError(500, 'non_finite_output', `model ${m.name} v${m.version} produced ${v[k]} in output ${JSON.stringify(n)} for images[${i}] (element ${k}): its weights or graph are broken`);
        }
      }
    }
  });
  return outs;
}

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
    const got = crypto.createHash('sha256').update(m ? m[1].trim() : '').digest();
    if (!m || !crypto.timingSafeEqual(want, got)) {
      return next(new ApiError(401, 'unauthorized', 'missing or invalid bearer token', { 'WWW-Authenticate': 'Bearer' }));
    }
    next();
  };
}

/** Model files served at /models/{name}/{file} besides manifest.json (only those the manifest lists). */
const MODEL_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.onnx$/;

export function topk(p: Float32Array, names: string[], k: number): { label: string; index: number; probability: number }[] {
  const idx = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
  return idx.slice(0, Math.min(k, p.length)).map((i) => ({ label: names[i] ?? String(i), index: i, probability: p[i] }));
}

export function kserveMetadata(m: ModelVersion, versions: string[]) {
  const outputs = new Map<string, TensorInfo>();
  for (const g of m.classifier ? [m.encoder, m.classifier] : [m.encoder]) for (const o of g.outputs) if (!outputs.has(o.name)) outputs.set(o.name, o);
  return {
    name: m.name,
    versions,
    platform: 'onnxruntime_onnx',
    inputs: [m.encoder.input],
    outputs: [...outputs.values()],
    parameters: { view: m.manifest.view, input_size: m.size, class_names: m.classifier ? m.classNames : [] },
  };
}

/** Outputs returned when the request names none. */
export function defaultOutputs(m: ModelVersion): string[] {
  return m.classifier ? ['embedding', 'probabilities'] : ['embedding'];
}

/** Which graphs to run for the requested outputs: one graph when one has them all. */
export function planGraphs(m: ModelVersion, outputs: string[]): Map<Graph, string[]> {
  const graphs = m.classifier ? [m.classifier, m.encoder] : [m.encoder];
  const has = (g: Graph, n: string) => g.outputs.some((o) => o.name === n);
  const plan = new Map<Graph, string[]>();
  const all = graphs.find((g) => outputs.every((n) => has(g, n)));
  if (all) {
    plan.set(all, outputs);
    return plan;
  }
  for (const n of outputs) {
    const g = graphs.find((x) => has(x, n))!;
    plan.set(g, [...(plan.get(g) ?? []), n]);
  }
  return plan;
}

interface InferRequest {
  id?: string;
  images: Uint8Array[];
  outputs: string[];
}

/** Validate a KServe v2 inference request: one UINT8 input [N, size, size, 3], integer data 0..255. */
export function parseInferRequest(body: unknown, m: ModelVersion, maxImages: number): InferRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('inference request must be a JSON object', 'invalid_request');
  const o = body as Record<string, unknown>;
  if (o.id !== undefined && typeof o.id !== 'string') throw badRequest('"id" must be a string', 'invalid_request');
  if (!Array.isArray(o.inputs) || o.inputs.length !== 1) throw badRequest('"inputs" must be an array holding exactly one tensor', 'invalid_request');
  const t = o.inputs[0] as Record<string, unknown>;
  if (!t || typeof t !== 'object' || Array.isArray(t)) throw badRequest('inputs[0] must be a tensor object', 'invalid_request');
  const want = m.encoder.input;
  if (t.name !== want.name) throw badRequest(`inputs[0].name must be ${JSON.stringify(want.name)}`, 'invalid_input');
  if (t.datatype !== 'UINT8') throw badRequest(`inputs[0].datatype must be "UINT8", got ${JSON.stringify(t.datatype)?.slice(0, 40)}`, 'invalid_input');
  const shape = t.shape;
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw badRequest(`inputs[0].shape must be [N, ${m.size}, ${m.size}, 3]`, 'invalid_input');
  }
  const [n, h, w, c] = shape as number[];
  if (h !== m.size || w !== m.size || c !== 3 || n < 1) throw badRequest(`inputs[0].shape must be [N, ${m.size}, ${m.size}, 3] with N >= 1, got [${shape.join(', ')}]`, 'invalid_input');
  if (n > maxImages) throw tooLarge(`${n} images in one request; the limit is ${maxImages}`, 'too_many_images');
  const per = h * w * c;
  const flat = new Uint8Array(n * per);
  let k = 0;
  const walk = (v: unknown, depth: number): void => {
    if (Array.isArray(v)) {
      if (depth > 4) throw badRequest('inputs[0].data is nested too deeply', 'invalid_input');
      for (const x of v) walk(x, depth + 1);
      return;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) throw badRequest(`inputs[0].data[${k}] is not an integer in [0, 255]`, 'invalid_input');
    if (k >= flat.length) throw badRequest(`inputs[0].data holds more than the ${flat.length} values of its shape`, 'invalid_input');
    flat[k++] = v;
  };
  if (!Array.isArray(t.data)) throw badRequest('inputs[0].data must be an array of numbers', 'invalid_input');
  walk(t.data, 0);
  if (k !== flat.length) throw badRequest(`inputs[0].data holds ${k} values; shape [${shape.join(', ')}] needs ${flat.length}`, 'invalid_input');
  const available = new Set((m.classifier ? [m.encoder, m.classifier] : [m.encoder]).flatMap((g) => g.outputs.map((x) => x.name)));
  let outputs = defaultOutputs(m).filter((x) => available.has(x));
  if (o.outputs !== undefined) {
    if (!Array.isArray(o.outputs) || o.outputs.length === 0) throw badRequest('"outputs" must be a non-empty array of { name }', 'invalid_request');
    outputs = o.outputs.map((x, i) => {
      const name = (x as { name?: unknown })?.name;
      if (typeof name !== 'string') throw badRequest(`outputs[${i}].name must be a string`, 'invalid_request');
      if (!available.has(name)) throw badRequest(`unknown output ${JSON.stringify(name.slice(0, 64))} (available: ${[...available].join(', ')})`, 'invalid_output');
      return name;
    });
    outputs = [...new Set(outputs)];
  }
  const images = Array.from({ length: n }, (_, i) => flat.subarray(i * per, (i + 1) * per));
  return { id: o.id as string | undefined, images, outputs };
}
