/**
 * `cmc serve`'s start-up (provider choice, model loading, listen) and graceful shutdown (SIGINT/SIGTERM:
 * stop accepting, finish in-flight requests, drain the batchers, release the sessions). The flags and
 * their checks are config.ts; the command is bin/commands/serve.ts.
 *
 *   const s = await startServer({ models: 'models', port: 0 });
 *   console.log(s.url); ... await s.close();
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { createApp } from './app.ts';
import { SERVE_DEFAULTS, validateConfig, type ServeConfig } from './config.ts';
import { startGrpcServer } from './grpc/server.ts';
import { InferenceFlow } from './flow.ts';
import { Metrics } from './metrics.ts';
import { chooseProvider, type ProviderChoice } from './providers.ts';
import { emptyRepositoryMessage, Repository } from './repository.ts';
import { ResizePool } from './resize_pool.ts';

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
    inlineInference: cfg.inline_inference,
    defaultModel: cfg.default_model || undefined,
    metrics,
    flow,
    log,
  });
  if (!repo.ready) {
    const why = emptyRepositoryMessage(path.resolve(cfg.models), repo.failures);
    if (!cfg.allow_empty) {
      await repo.close();
      throw new Error(`${why} (--allow_empty starts anyway)`);
    }
    log(`[serve] warning: ${why}; readiness reports 503 (--allow_empty)`);
  }
  let draining = false;
  const resizePool = cfg.preprocess_workers > 0 ? new ResizePool(Math.floor(cfg.preprocess_workers)) : undefined;
  const app = createApp({
    resizePool,
    flow,
    repo,
    metrics,
    provider: provider.provider,
    providerNotes: provider.notes,
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
      refuseAfterMs: cfg.refuse_after_ms,
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
    // The accept backlog holds as many connections as the cap allows (the kernel trims it to somaxconn):
    // with Node's default of 511, a burst of clients beyond it waits for SYN retries (1 s, then 3 s).
    server.listen({ port: cfg.port, host: cfg.host, backlog: cfg.max_connections }, () => {
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
