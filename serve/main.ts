/**
 * `cmc serve` without the CLI: configuration (flags, or CMC_SERVE_* environment variables), start-up
 * (provider choice, model loading, listen) and graceful shutdown (SIGINT/SIGTERM: stop accepting, finish
 * in-flight requests, drain the batchers, release the sessions).
 *
 *   const s = await startServer({ ...SERVE_DEFAULTS, models: 'models', port: 0 });
 *   console.log(s.url); ... await s.close();
 *
 * Run directly: node --import tsx serve/main.ts --models models --port 8080
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { createApp } from './app.ts';
import { startGrpcServer } from './grpc/server.ts';
import { InferenceFlow } from './flow.ts';
import { Metrics } from './metrics.ts';
import { chooseProvider, PROVIDERS, type ProviderChoice, type ProviderRequest } from './providers.ts';
import { Repository } from './repository.ts';
import { ResizePool } from './resize_pool.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ServeConfig {
  models: string;
  port: number;
  /** OIP gRPC port (-1 = no gRPC server, 0 = any free port). */
  grpc_port: number;
  host: string;
  provider: ProviderRequest;
  max_batch: number;
  max_delay_ms: number;
  /** Images admitted per model graph (being decoded or waiting for a batch) before 429. */
  max_queue: number;
  /** Longest wait in the queue before 503. */
  timeout_ms: number;
  /** Longest wait for a place in a full queue before 429 (newest request admitted first). */
  admission_wait_ms: number;
  max_body_mb: number;
  /** Images per request. */
  max_images: number;
  /** Largest decoded image (width*height). */
  max_pixels: number;
  /** Decoded pixels summed over one request's images. */
  max_request_pixels: number;
  /** Pixels being decoded at once, all requests together (at least max_pixels). */
  max_decode_pixels: number;
  /** Largest JSON request body (JSON.parse blocks the event loop). */
  max_json_mb: number;
  /** Request bodies held in memory at once, all requests together (429 beyond). */
  max_inflight_body_mb: number;
  /** Open TCP connections; more are closed on accept. */
  max_connections: number;
  /** Time for a client to send the request headers (408 and close beyond). */
  headers_timeout_ms: number;
  /** Time for a client to send the whole request, headers and body (408 and close beyond). */
  request_timeout_ms: number;
  /** Idle keep-alive connections are closed after this. */
  keep_alive_timeout_ms: number;
  /** onnxruntime intra-op threads per session (0 = onnxruntime's default). */
  threads: number;
  /** Let onnxruntime's idle intra-op threads busy-wait (faster alone, slower next to decoding). */
  ort_spinning: boolean;
  /** Worker threads that decode + resize + crop (0 = the resize in the event loop, where a 36 MP image blocks it for ~0.3 s). */
  preprocess_workers: number;
  default_model: string;
  auth_token: string;
  cors_origin: string;
  web_dist: string;
  /** How long shutdown waits for in-flight requests. */
  shutdown_timeout_ms: number;
  quiet: boolean;
}

export const SERVE_DEFAULTS: ServeConfig = {
  models: 'models',
  port: 8080,
  grpc_port: -1,
  host: '127.0.0.1',
  provider: 'auto',
  max_batch: 32,
  max_delay_ms: 5,
  max_queue: 128,
  timeout_ms: 30000,
  admission_wait_ms: 2000,
  max_body_mb: 32,
  max_images: 64,
  max_pixels: 36_000_000,
  max_request_pixels: 100_000_000,
  max_decode_pixels: 72_000_000,
  max_json_mb: 4,
  max_inflight_body_mb: 256,
  max_connections: 2048,
  headers_timeout_ms: 10_000,
  request_timeout_ms: 30_000,
  keep_alive_timeout_ms: 5_000,
  threads: 0,
  ort_spinning: false,
  preprocess_workers: 2,
  default_model: '',
  auth_token: '',
  cors_origin: '',
  web_dist: path.join(REPO_ROOT, 'web', 'dist'),
  shutdown_timeout_ms: 10000,
  quiet: false,
};

const BOOLEAN: (keyof ServeConfig)[] = ['quiet', 'ort_spinning'];
const NUMERIC: (keyof ServeConfig)[] = [
  'port',
  'grpc_port',
  'max_batch',
  'max_delay_ms',
  'max_queue',
  'timeout_ms',
  'admission_wait_ms',
  'max_body_mb',
  'max_images',
  'max_pixels',
  'max_request_pixels',
  'max_decode_pixels',
  'max_json_mb',
  'max_inflight_body_mb',
  'max_connections',
  'headers_timeout_ms',
  'request_timeout_ms',
  'keep_alive_timeout_ms',
  'threads',
  'preprocess_workers',
  'shutdown_timeout_ms',
];

/** Environment overrides: CMC_SERVE_PORT, CMC_SERVE_MAX_BATCH, CMC_SERVE_AUTH_TOKEN, ... */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<ServeConfig> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(SERVE_DEFAULTS) as (keyof ServeConfig)[]) {
    const v = env[`CMC_SERVE_${k.toUpperCase()}`];
    if (v === undefined) continue;
    out[k] = NUMERIC.includes(k) ? Number(v) : BOOLEAN.includes(k) ? v === '1' || v === 'true' : v;
  }
  return out as Partial<ServeConfig>;
}

export function validateConfig(c: ServeConfig): void {
  const pos = (k: keyof ServeConfig, min = 1) => {
    const v = c[k] as number;
    if (!Number.isFinite(v) || v < min) throw new Error(`--${k} must be a number >= ${min}, got ${v}`);
  };
  pos('port', 0);
  if (c.port > 65535) throw new Error(`--port must be <= 65535`);
  pos('grpc_port', -1);
  if (c.grpc_port > 65535) throw new Error(`--grpc_port must be <= 65535`);
  pos('max_batch');
  pos('max_delay_ms', 0);
  pos('max_queue');
  pos('timeout_ms', 0);
  pos('admission_wait_ms', 0);
  pos('max_body_mb', 0.001);
  pos('max_images');
  pos('max_pixels');
  pos('max_request_pixels');
  pos('max_decode_pixels');
  if (c.max_decode_pixels < c.max_pixels)
    throw new Error(
      `--max_decode_pixels (${c.max_decode_pixels}) must be >= --max_pixels (${c.max_pixels}): the largest image must fit`,
    );
  pos('max_json_mb', 0.001);
  pos('max_inflight_body_mb', 0.001);
  if (c.max_inflight_body_mb < c.max_body_mb)
    throw new Error(`--max_inflight_body_mb (${c.max_inflight_body_mb}) must be >= --max_body_mb (${c.max_body_mb})`);
  pos('max_connections');
  pos('headers_timeout_ms', 1);
  pos('request_timeout_ms', 1);
  if (c.headers_timeout_ms > c.request_timeout_ms)
    throw new Error('--headers_timeout_ms must be <= --request_timeout_ms');
  pos('keep_alive_timeout_ms', 1);
  pos('threads', 0);
  pos('preprocess_workers', 0);
  if (!(PROVIDERS as readonly string[]).includes(c.provider))
    throw new Error(`--provider must be one of ${PROVIDERS.join(', ')}`);
}

export interface RunningServer {
  url: string;
  port: number;
  server: http.Server;
  /** The Express app (its router lists every route). */
  app: Express;
  /** The OIP gRPC port, when --grpc_port >= 0. */
  grpcPort?: number;
  repo: Repository;
  metrics: Metrics;
  provider: ProviderChoice;
  /** Graceful: stop accepting, finish in-flight requests (up to shutdown_timeout_ms), release models. */
  close(): Promise<void>;
}

export async function startServer(partial: Partial<ServeConfig> = {}): Promise<RunningServer> {
  const cfg: ServeConfig = { ...SERVE_DEFAULTS, ...partial };
  validateConfig(cfg);
  const log = cfg.quiet ? () => {} : (l: string) => console.error(l);
  const metrics = new Metrics();
  const flow = new InferenceFlow();
  const provider = await chooseProvider(cfg.provider, log);
  metrics.provider.set({ provider: provider.provider, requested: provider.requested }, 1);
  const repo = await Repository.load({
    root: path.resolve(cfg.models),
    provider: provider.provider,
    maxBatch: cfg.max_batch,
    maxDelayMs: cfg.max_delay_ms,
    maxQueue: cfg.max_queue,
    timeoutMs: cfg.timeout_ms,
    threads: cfg.threads,
    spinning: cfg.ort_spinning,
    defaultModel: cfg.default_model || undefined,
    metrics,
    flow,
    log,
  });
  if (!repo.ready) log(`[serve] warning: no model loaded from ${path.resolve(cfg.models)} (readiness will report 503)`);
  let draining = false;
  const resizePool = cfg.preprocess_workers > 0 ? new ResizePool(Math.floor(cfg.preprocess_workers)) : undefined;
  const app = createApp({
    resizePool,
    flow,
    repo,
    metrics,
    provider: provider.provider,
    isDraining: () => draining,
    log,
    config: {
      maxBodyBytes: Math.floor(cfg.max_body_mb * 1024 * 1024),
      maxImages: cfg.max_images,
      maxPixels: cfg.max_pixels,
      maxRequestPixels: cfg.max_request_pixels,
      maxDecodePixels: cfg.max_decode_pixels,
      maxJsonBytes: Math.floor(cfg.max_json_mb * 1024 * 1024),
      maxInflightBodyBytes: Math.floor(cfg.max_inflight_body_mb * 1024 * 1024),
      decodeTimeoutMs: cfg.timeout_ms,
      admissionWaitMs: cfg.admission_wait_ms,
      authToken: cfg.auth_token || undefined,
      corsOrigin: cfg.cors_origin || undefined,
      webDist: cfg.web_dist || undefined,
    },
  });
  // Slow clients: the headers and the whole request must arrive in time (checked every second, not
  // Node's default 30 s); connections beyond the cap are closed on accept.
  const server = http.createServer(
    {
      connectionsCheckingInterval: 1000,
      headersTimeout: cfg.headers_timeout_ms,
      requestTimeout: cfg.request_timeout_ms,
    },
    app,
  );
  server.keepAliveTimeout = cfg.keep_alive_timeout_ms;
  server.maxConnections = cfg.max_connections;
  let inFlight = 0;
  const idle: (() => void)[] = [];
  server.on('request', (_req, res: http.ServerResponse) => {
    inFlight++;
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) idle.splice(0).forEach((r) => r());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const grpcServer =
    cfg.grpc_port >= 0
      ? await startGrpcServer({
          repo,
          metrics,
          host: cfg.host,
          port: cfg.grpc_port,
          maxImages: cfg.max_images,
          maxMessageBytes: Math.floor(cfg.max_body_mb * 1024 * 1024),
          authToken: cfg.auth_token || undefined,
          isDraining: () => draining,
          flow,
          log,
        }).catch(async (e) => {
          server.close();
          await repo.close();
          throw e;
        })
      : undefined;
  const host = cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host;
  const url = `http://${host}:${port}`;
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      draining = true;
      const stopped = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      const grpcStopped = grpcServer?.close(cfg.shutdown_timeout_ms);
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((r) => idle.push(r)),
          new Promise<void>((r) => setTimeout(r, cfg.shutdown_timeout_ms).unref()),
        ]);
      }
      await grpcStopped;
      await repo.close();
      await resizePool?.close();
      server.closeAllConnections();
      await stopped;
    })());
  return { url, port, server, app, grpcPort: grpcServer?.port, repo, metrics, provider, close };
}

/** Start, print the URL, and shut down gracefully on SIGINT/SIGTERM. Resolves when the server has closed. */
export async function serveForever(partial: Partial<ServeConfig>): Promise<void> {
  const s = await startServer(partial);
  const names = s.repo.all().map((m) => `${m.name}:${m.version}`);
  if (s.grpcPort !== undefined)
    console.log(
      `OIP gRPC (inference.GRPCInferenceService) on ${s.url.replace(/^http:\/\//, '').replace(/:\d+$/, '')}:${s.grpcPort}`,
    );
  console.log(
    `cmc serve listening on ${s.url} (provider ${s.provider.provider}; models: ${names.join(', ') || 'none'})`,
  );
  const def = s.repo.defaultModel;
  const dist = partial.web_dist ?? SERVE_DEFAULTS.web_dist;
  const demo =
    dist && fs.existsSync(path.join(dist, 'index.html'))
      ? `browser demo: ${s.url}/`
      : 'browser demo not built (npm run build:web)';
  console.log(
    `${demo}; default model: ${def ? `${def}:${s.repo.versions(def).at(-1)!.version}` : 'none (export one with cmc export)'}`,
  );
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) {
        console.error(`[serve] ${sig} again: exiting now`);
        process.exit(130);
      }
      console.error(`[serve] ${sig}: draining in-flight requests…`);
      s.close().then(
        () => {
          console.error('[serve] stopped');
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve();
        },
        (e) => {
          console.error(`[serve] error while stopping: ${(e as Error).message}`);
          resolve();
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // Under `npx cmc serve` / `npm run`, npm runs us through `sh -c`: a SIGTERM to npm kills npm and the
    // shell but never reaches this process, which would keep serving as an orphan. So when started by npm,
    // the parent going away counts as SIGTERM (drain, then exit).
    if (followsParent()) {
      const parent = process.ppid;
      const watch = setInterval(() => {
        if (process.ppid === parent) return;
        clearInterval(watch);
        console.error(`[serve] parent process ${parent} (npm) exited`);
        onSignal('SIGTERM');
      }, PARENT_POLL_MS);
      watch.unref();
    }
  });
}

const PARENT_POLL_MS = 250;

/** Started through npm (npx, npm exec, npm run): npm sets npm_command for its children. */
function followsParent(env: NodeJS.ProcessEnv = process.env): boolean {
  return typeof env.npm_command === 'string' && env.npm_command !== '';
}

/** Flags → config (for `node serve/main.ts ...`); the CLI (bin/commands/serve.ts) uses commander instead. */
export function configFromArgv(argv: string[]): Partial<ServeConfig> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const k of Object.keys(SERVE_DEFAULTS))
    options[k] = { type: BOOLEAN.includes(k as keyof ServeConfig) ? 'boolean' : 'string' };
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) continue;
    if (NUMERIC.includes(k as keyof ServeConfig)) {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new Error(`--${k}: expected a number, got '${String(v)}'`);
      out[k] = n;
    } else out[k] = v;
  }
  return out as Partial<ServeConfig>;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await serveForever({ ...configFromEnv(), ...configFromArgv(process.argv.slice(2)) });
  } catch (e) {
    console.error(`cmc serve: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
