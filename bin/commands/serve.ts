import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import {
  SERVE_DEFAULTS,
  SERVE_FLAG_NAMES,
  SERVE_FLAGS,
  configFromEnv,
  type ServeConfig,
  type ServeFlagName,
} from '../../serve/config.ts';
import { serveForever } from '../../serve/main.ts';
import { PROVIDERS } from '../../serve/providers.ts';
import { int, num } from '../options.ts';

const D = SERVE_DEFAULTS;

/** A commander option from a row of serve/config.ts's flag table. */
function serveOption(name: ServeFlagName): Option {
  const f = SERVE_FLAGS[name];
  const o = new Option(f.arg ? `--${name} ${f.arg}` : `--${name}`, f.help).default(f.default);
  if (f.type === 'int') o.argParser(int);
  else if (f.type === 'number') o.argParser(num);
  if (f.choices) o.choices([...f.choices]);
  return o;
}

/**
 * `cmc serve`: the HTTP embedding / classification server (serve/). Flags override CMC_SERVE_* environment
 * variables (e.g. CMC_SERVE_PORT=9000, CMC_SERVE_AUTH_TOKEN=...), which override the defaults; all three
 * come from one table, SERVE_FLAGS (serve/config.ts).
 */
export function addServeCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description(
      'HTTP server for exported models: /v1/embed, /v1/classify, KServe v2 /v2/models/{name}/infer, /metrics, /openapi.json',
    );
  for (const name of SERVE_FLAG_NAMES) cmd.addOption(serveOption(name));
  cmd.action(async (o: Record<string, unknown>, cmd: Command) => {
    const cfg: Partial<ServeConfig> = { ...configFromEnv() };
    for (const k of SERVE_FLAG_NAMES) {
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
    .option(
      '--server_args <flags>',
      "with --overload or --hostile: more 'cmc serve' flags for the server under test, e.g. '--max_queue 64'",
      '',
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
          serverArgs: String(o.server_args).split(/\s+/).filter(Boolean),
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
