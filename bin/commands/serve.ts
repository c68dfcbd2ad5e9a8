import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { SERVE_DEFAULTS, configFromEnv, serveForever, type ServeConfig } from '../../serve/main.ts';
import { PROVIDERS } from '../../serve/providers.ts';
import { int, num } from '../options.ts';

const D = SERVE_DEFAULTS;

/**
 * `cmc serve`: the HTTP embedding / classification server (serve/). Flags override CMC_SERVE_* environment
 * variables (e.g. CMC_SERVE_PORT=9000, CMC_SERVE_AUTH_TOKEN=...), which override the defaults.
 */
export function addServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'HTTP server for exported models: /v1/embed, /v1/classify, KServe v2 /v2/models/{name}/infer, /metrics, /openapi.json',
    )
    .option(
      '--models <path>',
      'model repository: models/<name>/manifest.json or models/<name>/<version>/manifest.json',
      D.models,
    )
    .option('--port <n>', 'TCP port (0 = any free port)', int, D.port)
    .option(
      '--grpc_port <n>',
      'Open Inference Protocol gRPC port (-1 = off, 0 = any free port; Triton uses 8001)',
      int,
      D.grpc_port,
    )
    .option('--host <addr>', 'address to listen on (0.0.0.0 to expose beyond this machine)', D.host)
    .addOption(
      new Option(
        '--provider <name>',
        'onnxruntime execution provider (auto: cuda, then a hardware webgpu adapter, then cpu)',
      )
        .choices([...PROVIDERS])
        .default(D.provider),
    )
    .option('--max_batch <n>', 'largest dynamic batch (images)', int, D.max_batch)
    .option('--max_delay_ms <ms>', 'longest wait for a batch to fill', num, D.max_delay_ms)
    .option(
      '--max_queue <n>',
      'images admitted per model graph (being decoded or waiting for a batch) before 429 Too Many Requests',
      int,
      D.max_queue,
    )
    .option('--timeout_ms <ms>', 'longest wait in the queue before 503', int, D.timeout_ms)
    .option(
      '--admission_wait_ms <ms>',
      'longest wait for a place in a full queue before 429 (newest request admitted first; 0 = refuse at once)',
      int,
      D.admission_wait_ms,
    )
    .option('--max_body_mb <mb>', 'largest request body', num, D.max_body_mb)
    .option('--max_images <n>', 'images per request', int, D.max_images)
    .option(
      '--max_pixels <n>',
      'largest image (width*height), checked from the header before decoding',
      int,
      D.max_pixels,
    )
    .option(
      '--max_request_pixels <n>',
      "decoded pixels summed over one request's images (413 beyond)",
      int,
      D.max_request_pixels,
    )
    .option(
      '--max_decode_pixels <n>',
      'pixels decoded at once by all requests together (>= --max_pixels; others wait)',
      int,
      D.max_decode_pixels,
    )
    .option(
      '--max_json_mb <mb>',
      'largest JSON body (also bounded in depth, arrays/objects, keys and values)',
      num,
      D.max_json_mb,
    )
    .option(
      '--max_inflight_body_mb <mb>',
      'request bodies held in memory by all requests together (429 beyond)',
      num,
      D.max_inflight_body_mb,
    )
    .option('--max_connections <n>', 'open TCP connections (more are closed on accept)', int, D.max_connections)
    .option(
      '--headers_timeout_ms <ms>',
      'time for a client to send the request headers (408 beyond)',
      int,
      D.headers_timeout_ms,
    )
    .option(
      '--request_timeout_ms <ms>',
      'time for a client to send the whole request, body included (408 beyond)',
      int,
      D.request_timeout_ms,
    )
    .option(
      '--keep_alive_timeout_ms <ms>',
      'idle keep-alive connections are closed after this',
      int,
      D.keep_alive_timeout_ms,
    )
    .option('--threads <n>', 'onnxruntime intra-op threads per session (0 = its default)', int, D.threads)
    .option(
      '--ort_spinning',
      "let onnxruntime's idle threads busy-wait (its default; off here so decoding gets the cores)",
      D.ort_spinning,
    )
    .option(
      '--preprocess_workers <n>',
      'worker threads that decode, resize and centre-crop images (0 = sharp decodes in its own threads, the resize runs in the event loop)',
      int,
      D.preprocess_workers,
    )
    .option(
      '--default_model <name>',
      'model used when a request names none (default: the first by name)',
      D.default_model,
    )
    .option(
      '--auth_token <token>',
      'require Authorization: Bearer <token> on inference, model and metrics routes',
      D.auth_token,
    )
    .option('--cors_origin <origin>', "Access-Control-Allow-Origin ('*' or an origin); off when empty", D.cors_origin)
    .option('--web_dist <path>', 'built browser demo served at /', D.web_dist)
    .option(
      '--shutdown_timeout_ms <ms>',
      'how long SIGINT/SIGTERM waits for in-flight requests',
      int,
      D.shutdown_timeout_ms,
    )
    .option('--quiet', 'no start-up log lines on stderr', false)
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const cfg: Partial<ServeConfig> = { ...configFromEnv() };
      for (const k of Object.keys(D) as (keyof ServeConfig)[]) {
        const src = cmd.getOptionValueSource(k);
        if (o[k] !== undefined && (src === 'cli' || cfg[k] === undefined)) (cfg as Record<string, unknown>)[k] = o[k];
      }
      // A fresh clone has no bundle yet: build the demo once (esbuild, ~3 s) so `/` serves it.
      const dist = cfg.web_dist ?? D.web_dist;
      if (dist === D.web_dist && !fs.existsSync(path.join(dist, 'index.html'))) {
        const { buildWeb } = await import('../../web/build.ts');
        const r = await buildWeb({ outdir: dist });
        if (!cfg.quiet) console.error(`[serve] built the browser demo into ${r.outdir}`);
      }
      await serveForever(cfg);
    });
}

/** `cmc bench serve`: HTTP throughput and latency at several concurrencies next to in-process onnxruntime. */
export function addServeBenchCommand(parent: Command): void {
  parent
    .command('serve')
    .description(
      'benchmark cmc serve on loopback with autocannon (real JPEGs) against in-process onnxruntime on the same model',
    )
    .option('--models <path>', 'model repository (default: a generated tiny model)', '')
    .option('--model <name>', 'model to benchmark (default: the first)', '')
    .option(
      '--concurrency <list>',
      'client concurrencies (images/s and p50/p90/p95/p99 latency at each)',
      '1,4,16,32,64',
    )
    .option('--duration <s>', 'seconds per concurrency', num, 5)
    .option('--max_batch <n>', 'server max batch', int, D.max_batch)
    .option('--max_delay_ms <ms>', 'server batching delay', num, D.max_delay_ms)
    .option('--image_side <px>', 'side of the generated JPEGs', int, 256)
    .option('--arch <name>', 'architecture of the random-weight model exported when --models has none', 'alexnet_small')
    .option('--size <px>', 'its input size', int, 64)
    .option(
      '--ort_spinning',
      "run the server with onnxruntime's busy-waiting threads (its default; the server's is off)",
      false,
    )
    .addOption(new Option('--provider <name>', 'execution provider').choices([...PROVIDERS]).default('auto'))
    .option('--json', 'print the figures as JSON', false)
    .option(
      '--overload',
      'instead: served images/s and admitted p99 at 1, 32 and 1024 connections with the default limits (--concurrency overrides)',
      false,
    )
    .option(
      '--hostile',
      'instead: peak RSS and /v2/health/live latency under a mix of requests within the default limits',
      false,
    )
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      if (o.overload || o.hostile) {
        const b = await import('../../bench/serve_limits.ts');
        const common = {
          models: (o.models as string) || undefined,
          model: (o.model as string) || undefined,
          arch: o.arch as string,
          size: o.size as number,
          imageSide: o.image_side as number,
          provider: o.provider === 'auto' ? undefined : (o.provider as string),
          log: (l: string) => console.error(l),
        };
        const dur = cmd.getOptionValueSource('duration') === 'cli' ? (o.duration as number) : undefined;
        if (o.overload) {
          const conns =
            cmd.getOptionValueSource('concurrency') === 'cli'
              ? String(o.concurrency)
                  .split(',')
                  .map((s) => int(s.trim()))
              : undefined;
          const r = await b.runOverloadBench({ ...common, connections: conns, durationS: dur ?? 10 });
          console.log(o.json ? JSON.stringify(r, null, 2) : b.formatOverload(r));
        }
        if (o.hostile) {
          const r = await b.runHostileBench({ ...common, durationS: dur ?? 20 });
          console.log(o.json ? JSON.stringify(r, null, 2) : b.formatHostile(r));
        }
        return;
      }
      const { runServeBench, formatServeBench } = await import('../../bench/serve.ts');
      const r = await runServeBench({
        models: (o.models as string) || undefined,
        model: (o.model as string) || undefined,
        concurrency: String(o.concurrency)
          .split(',')
          .map((s) => int(s.trim())),
        durationS: o.duration as number,
        maxBatch: o.max_batch as number,
        maxDelayMs: o.max_delay_ms as number,
        imageSide: o.image_side as number,
        arch: o.arch as string,
        size: o.size as number,
        provider: o.provider as ServeConfig['provider'],
        ortSpinning: o.ort_spinning as boolean,
        log: (l) => console.error(l),
      });
      console.log(o.json ? JSON.stringify(r, null, 2) : formatServeBench(r));
    });
}
