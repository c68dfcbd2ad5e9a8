/**
 * The server's Prometheus metrics, through prom-client (one Registry per Metrics: no global state, so
 * tests can run several servers in one process). Served at /metrics in the text exposition format.
 *
 * Names (Triton's nv_inference_* and TEI's te_* counterparts in brackets):
 *   cmc_http_requests_total{route,method,code}            every HTTP request
 *   cmc_http_errors_total{route,code,error}               error responses by machine error code
 *   cmc_http_request_duration_seconds{route}              HTTP latency, all routes
 *   cmc_http_in_flight_requests                           HTTP requests being processed
 *   cmc_inference_requests_total{model,route,outcome}     inference requests per model and route (HTTP
 *                                                         route pattern or gRPC method), outcome success |
 *                                                         failure [nv_inference_request_success/failure, te_request_count]
 *   cmc_inference_request_duration_seconds{model,route}   end to end per inference request [nv_inference_request_duration_us, te_request_duration]
 *   cmc_queue_duration_seconds{model,graph}               per image, time waiting in the batcher [nv_inference_queue_duration_us, te_queue_duration]
 *   cmc_inference_duration_seconds{model,graph}           onnxruntime run time per batch (compute) [nv_inference_compute_infer_duration_us, te_inference_duration]
 *   cmc_batch_size{model,graph}                           images per batch [te_batch_size]
 *   cmc_images_total{model,graph}                         images run [nv_inference_count]
 *   cmc_queue_depth{model,graph}                          images waiting now [te_queue_size]
 *   cmc_preprocess_duration_seconds                       decode + resize + crop per image [te_tokenization_duration]
 *   cmc_execution_provider{provider,requested}            onnxruntime execution provider in use (value 1)
 *   process_*, nodejs_*                                   prom-client's default process metrics (CPU, RSS,
 *                                                         open fds, start time, event-loop lag, heap, GC)
 *
 *   const m = new Metrics();
 *   m.requests.inc({ route: '/v1/embed', method: 'POST', code: '200' });
 *   res.type(m.contentType).send(await m.render());
 */
import client from 'prom-client';

type Labels = Record<string, string>;

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/** A gauge whose series are read at scrape time (functions) or set to a value. */
export class Gauge {
  private readonly values = new Map<string, { labels: Labels; v: number | (() => number) }>();
  private readonly g: client.Gauge;
  constructor(registry: client.Registry, name: string, help: string, labelNames: string[]) {
    const values = this.values;
    this.g = new client.Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect(this: client.Gauge) {
        for (const { labels, v } of values.values()) this.set(labels, typeof v === 'function' ? v() : v);
      },
    });
  }
  set(labels: Labels, v: number | (() => number)): void {
    this.values.set(JSON.stringify(Object.entries(labels).sort()), { labels, v });
  }
}

export class Metrics {
  readonly registry = new client.Registry();
  private readonly counter = (name: string, help: string, labelNames: string[]) =>
    new client.Counter({ name, help, labelNames, registers: [this.registry] });
  private readonly histogram = (name: string, help: string, labelNames: string[], buckets: number[]) =>
    new client.Histogram({ name, help, labelNames, buckets, registers: [this.registry] });

  readonly requests = this.counter('cmc_http_requests_total', 'HTTP requests by route, method and status code', [
    'route',
    'method',
    'code',
  ]);
  readonly errors = this.counter('cmc_http_errors_total', 'HTTP error responses by route, status code and error code', [
    'route',
    'code',
    'error',
  ]);
  readonly latency = this.histogram(
    'cmc_http_request_duration_seconds',
    'HTTP request latency by route',
    ['route'],
    LATENCY_BUCKETS,
  );
  readonly inferRequests = this.counter(
    'cmc_inference_requests_total',
    'inference requests by model, route (or gRPC method) and outcome (success | failure)',
    ['model', 'route', 'outcome'],
  );
  readonly inferDuration = this.histogram(
    'cmc_inference_request_duration_seconds',
    'end-to-end inference request time by model and route',
    ['model', 'route'],
    LATENCY_BUCKETS,
  );
  readonly queueDuration = this.histogram(
    'cmc_queue_duration_seconds',
    'time each image waited in the batcher queue, by model and graph',
    ['model', 'graph'],
    LATENCY_BUCKETS,
  );
  readonly inference = this.histogram(
    'cmc_inference_duration_seconds',
    'onnxruntime run (compute) time per batch by model and graph',
    ['model', 'graph'],
    LATENCY_BUCKETS,
  );
  readonly batchSize = this.histogram(
    'cmc_batch_size',
    'images per inference batch by model and graph',
    ['model', 'graph'],
    BATCH_BUCKETS,
  );
  readonly images = this.counter('cmc_images_total', 'images processed by model and graph', ['model', 'graph']);
  readonly preprocess = this.histogram(
    'cmc_preprocess_duration_seconds',
    'decode + resize + crop time per image',
    [],
    LATENCY_BUCKETS,
  );
  readonly queueDepth = new Gauge(this.registry, 'cmc_queue_depth', 'images waiting for a batch by model and graph', [
    'model',
    'graph',
  ]);
  readonly inFlight = new Gauge(this.registry, 'cmc_http_in_flight_requests', 'HTTP requests being processed', []);
  readonly provider = new Gauge(
    this.registry,
    'cmc_execution_provider',
    'onnxruntime execution provider in use (value 1)',
    ['provider', 'requested'],
  );

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Record one inference request's outcome and duration (HTTP routes and gRPC methods alike). */
  observeInference(model: string, route: string, ok: boolean, seconds: number): void {
    this.inferRequests.inc({ model, route, outcome: ok ? 'success' : 'failure' });
    this.inferDuration.observe({ model, route }, seconds);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
