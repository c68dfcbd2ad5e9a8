/**
 * The express middleware around the routes, in the order createApp (app.ts) installs them: per-request
 * metrics, the shutdown gate, CORS, the route wrapper, the bearer-token gate (deny by default: every route
 * not in OPEN_ROUTES), then the JSON 404 and the error handler.
 */
import crypto from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { ApiError, ShuttingDownError, toApiError } from './errors.ts';
import type { InferenceFlow } from './flow.ts';
import type { Metrics } from './metrics.ts';
import { errorBodyFor } from './protocol_errors.ts';

/** Routes answered without a token when --auth_token is set (besides the demo's static files). */
export const OPEN_ROUTES: readonly string[] = ['/v2/health/live', '/v2/health/ready', '/openapi.json', '/'];

/** Routes whose requests count as inference requests (cmc_inference_requests_total, per model). */
export const INFERENCE_ROUTES: ReadonlySet<string> = new Set([
  '/v1/embed',
  '/v1/classify',
  '/v1/embeddings',
  '/v2/models/{name}/infer',
  '/v2/models/{name}/versions/{version}/infer',
]);

export type Handler = (req: Request, res: Response) => Promise<void> | void;
/** Wraps a route's handler: labels the request with its route pattern (metrics) and tracks inference. */
export type RouteWrap = (pattern: string, h: Handler) => Handler;

export function routeWrap(flow?: InferenceFlow): RouteWrap {
  return (pattern, h) => async (req, res) => {
    res.locals.route = pattern;
    if (flow && INFERENCE_ROUTES.has(pattern)) await flow.track(async () => h(req, res));
    else await h(req, res);
  };
}

/** Metrics and in-flight accounting for every request; the route label is the route pattern. */
export function requestMetrics(metrics: Metrics): express.RequestHandler {
  let inFlight = 0;
  metrics.inFlight.set({}, () => inFlight);
  return (req, res, next) => {
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
  };
}

/** 503 and Connection: close once shutdown began. */
export function shutdownGate(isDraining?: () => boolean): express.RequestHandler {
  return (_req, res, next) => {
    if (isDraining?.()) {
      res.setHeader('Connection', 'close');
      return next(new ShuttingDownError());
    }
    next();
  };
}

/** Access-Control-Allow-Origin on every answer; preflight requests are answered here (204). */
export function cors(origin: string): express.RequestHandler {
  return (req, res, next) => {
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
  };
}

/**
 * The auth gate, installed after the open routes: every route registered so far must be in OPEN_ROUTES
 * (the router itself decides what is open, with its own case and trailing-slash rules), and with a token
 * every request the router did not answer yet needs it (deny by default).
 */
export function installAuthGate(app: express.Express, token: string | undefined): void {
  for (const p of routePaths(app))
    if (!OPEN_ROUTES.includes(p))
      throw new Error(`route ${p} is registered before the auth gate but is not in OPEN_ROUTES`);
  if (token) app.use(bearerAuth(token));
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

/** A JSON 404 for every request no route answered. */
export function routeNotFound(): express.RequestHandler {
  return (req, res, next) => {
    res.locals.route ??= 'unmatched';
    next(new ApiError(404, 'route_not_found', `no route ${req.method} ${req.path.slice(0, 200)}`));
  };
}

/** Every error as its status and its protocol's body (protocol_errors.ts); internal errors are logged. */
export function errorHandler(log?: (line: string) => void): express.ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toApiError(err);
    if (e.status >= 500 && e.code === 'internal')
      log?.(`[serve] error on ${req.method} ${req.path}: ${(err as Error)?.stack ?? String(err)}`);
    else if (e.status >= 500 && e.code === 'non_finite_output') log?.(`[serve] ${e.message}`);
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
  };
}
