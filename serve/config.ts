/**
 * The server's configuration: one table of flags (SERVE_FLAGS: type, default, help) from which `cmc serve`'s
 * options (bin/commands/serve.ts) and the CMC_SERVE_* environment variables are both built, and the checks
 * a configuration must pass before start-up (validateConfig).
 *
 * Precedence: a flag given on the command line, then CMC_SERVE_<FLAG> (e.g. CMC_SERVE_PORT=9000,
 * CMC_SERVE_AUTH_TOKEN=...), then the default.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROVIDERS, type ProviderRequest } from './providers.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ServeConfig {
  models: string;
  /** Start even when --models holds no loadable model (readiness reports 503). */
  allow_empty: boolean;
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
  /** How long a request that finds the queue full may wait for a place and still be admitted (newest first). */
  admission_wait_ms: number;
  /** When a request that found no place is answered 429, counted from its arrival (>= admission_wait_ms). */
  refuse_after_ms: number;
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
  /** Every batch on the event loop instead of the inference worker thread. */
  inline_inference: boolean;
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

/** How a flag's value is read: 'int' and 'number' are checked numbers, 'boolean' a switch without a value. */
export type FlagType = 'int' | 'number' | 'string' | 'boolean';

export interface FlagSpec<T> {
  type: T extends boolean ? 'boolean' : T extends number ? 'int' | 'number' : 'string';
  /** The value's placeholder in --help, e.g. '<n>' (none for a boolean). */
  arg?: string;
  default: T;
  help: string;
  /** The only values accepted. */
  choices?: readonly string[];
}

/** Every server flag, in --help order. */
export const SERVE_FLAGS: { readonly [K in keyof ServeConfig]: FlagSpec<ServeConfig[K]> } = {
  models: {
    type: 'string',
    arg: '<path>',
    default: 'models',
    help: 'model repository: models/<name>/manifest.json or models/<name>/<version>/manifest.json',
  },
  allow_empty: {
    type: 'boolean',
    default: false,
    help: 'start even when --models holds no loadable model (readiness answers 503 until a restart loads one)',
  },
  port: { type: 'int', arg: '<n>', default: 8080, help: 'TCP port (0 = any free port)' },
  grpc_port: {
    type: 'int',
    arg: '<n>',
    default: -1,
    help: 'Open Inference Protocol gRPC port (-1 = off, 0 = any free port; Triton uses 8001)',
  },
  host: {
    type: 'string',
    arg: '<addr>',
    default: '127.0.0.1',
    help: 'address to listen on (0.0.0.0 to expose beyond this machine)',
  },
  provider: {
    type: 'string',
    arg: '<name>',
    default: 'auto',
    help: 'onnxruntime execution provider (auto: cuda, then a hardware webgpu adapter, then cpu)',
    choices: PROVIDERS,
  },
  max_batch: { type: 'int', arg: '<n>', default: 32, help: 'largest dynamic batch (images)' },
  max_delay_ms: { type: 'number', arg: '<ms>', default: 5, help: 'longest wait for a batch to fill' },
  max_queue: {
    type: 'int',
    arg: '<n>',
    default: 32,
    help: 'images admitted per model graph (being decoded or waiting for a batch) before 429 Too Many Requests (a larger request is admitted alone into an empty queue)',
  },
  timeout_ms: { type: 'int', arg: '<ms>', default: 30000, help: 'longest wait in the queue before 503' },
  admission_wait_ms: {
    type: 'int',
    arg: '<ms>',
    default: 50,
    help: 'how long a request that finds the queue full may wait for a place and still be admitted (newest first); this bounds the wait of admitted requests under overload',
  },
  refuse_after_ms: {
    type: 'int',
    arg: '<ms>',
    default: 2000,
    help: 'when a request that got no place is answered 429, counted from its arrival, so that clients retrying at once cost few refusals (0 = refuse at once)',
  },
  max_body_mb: { type: 'number', arg: '<mb>', default: 32, help: 'largest request body' },
  max_images: { type: 'int', arg: '<n>', default: 64, help: 'images per request' },
  max_pixels: {
    type: 'int',
    arg: '<n>',
    default: 36_000_000,
    help: 'largest image (width*height), checked from the header before decoding',
  },
  max_request_pixels: {
    type: 'int',
    arg: '<n>',
    default: 100_000_000,
    help: "decoded pixels summed over one request's images (413 beyond)",
  },
  max_decode_pixels: {
    type: 'int',
    arg: '<n>',
    default: 72_000_000,
    help: 'pixels decoded at once by all requests together (>= --max_pixels; others wait)',
  },
  max_json_mb: {
    type: 'number',
    arg: '<mb>',
    default: 4,
    help: 'largest JSON body (also bounded in depth, arrays/objects, keys and values)',
  },
  max_inflight_body_mb: {
    type: 'number',
    arg: '<mb>',
    default: 256,
    help: 'request bodies held in memory by all requests together (429 beyond)',
  },
  max_connections: {
    type: 'int',
    arg: '<n>',
    default: 2048,
    help: 'open TCP connections (more are closed on accept)',
  },
  headers_timeout_ms: {
    type: 'int',
    arg: '<ms>',
    default: 10_000,
    help: 'time for a client to send the request headers (408 beyond)',
  },
  request_timeout_ms: {
    type: 'int',
    arg: '<ms>',
    default: 30_000,
    help: 'time for a client to send the whole request, body included (408 beyond)',
  },
  keep_alive_timeout_ms: {
    type: 'int',
    arg: '<ms>',
    default: 5_000,
    help: 'idle keep-alive connections are closed after this',
  },
  threads: { type: 'int', arg: '<n>', default: 0, help: 'onnxruntime intra-op threads per session (0 = its default)' },
  inline_inference: {
    type: 'boolean',
    default: false,
    help: 'run onnxruntime on the event loop for every batch (its run holds the loop for the whole batch); by default batches run in a worker thread and only a lone image runs inline',
  },
  ort_spinning: {
    type: 'boolean',
    default: false,
    help: "let onnxruntime's idle threads busy-wait (its default; off here so decoding gets the cores)",
  },
  preprocess_workers: {
    type: 'int',
    arg: '<n>',
    default: 2,
    help: 'worker threads that decode, resize and centre-crop images (0 = sharp decodes in its own threads, the resize runs in the event loop)',
  },
  default_model: {
    type: 'string',
    arg: '<name>',
    default: '',
    help: 'model used when a request names none (default: the first by name)',
  },
  auth_token: {
    type: 'string',
    arg: '<token>',
    default: '',
    help: 'require Authorization: Bearer <token> on inference, model and metrics routes',
  },
  cors_origin: {
    type: 'string',
    arg: '<origin>',
    default: '',
    help: "Access-Control-Allow-Origin ('*' or an origin); off when empty",
  },
  web_dist: {
    type: 'string',
    arg: '<path>',
    default: path.join(REPO_ROOT, 'web', 'dist'),
    help: 'built browser demo served at /',
  },
  shutdown_timeout_ms: {
    type: 'int',
    arg: '<ms>',
    default: 10000,
    help: 'how long SIGINT/SIGTERM waits for in-flight requests',
  },
  quiet: { type: 'boolean', default: false, help: 'no start-up log lines on stderr' },
};

export type ServeFlagName = keyof ServeConfig;

export const SERVE_FLAG_NAMES = Object.keys(SERVE_FLAGS) as ServeFlagName[];

export const SERVE_DEFAULTS: ServeConfig = Object.fromEntries(
  SERVE_FLAG_NAMES.map((k) => [k, SERVE_FLAGS[k].default]),
) as unknown as ServeConfig;

/** The environment variable that sets a flag: CMC_SERVE_PORT, CMC_SERVE_MAX_BATCH, CMC_SERVE_AUTH_TOKEN, ... */
export function envVarOf(flag: ServeFlagName): string {
  return `CMC_SERVE_${flag.toUpperCase()}`;
}

/** Environment overrides (numbers as given, booleans '1' or 'true'); validateConfig checks the values. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<ServeConfig> {
  const out: Record<string, unknown> = {};
  for (const k of SERVE_FLAG_NAMES) {
    const v = env[envVarOf(k)];
    if (v === undefined) continue;
    const type: FlagType = SERVE_FLAGS[k].type;
    out[k] = type === 'int' || type === 'number' ? Number(v) : type === 'boolean' ? v === '1' || v === 'true' : v;
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
  pos('refuse_after_ms', 0);
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
