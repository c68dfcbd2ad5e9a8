/**
 * A minimal Prometheus registry (text exposition format 0.0.4): counters, gauges and histograms with
 * labels, enough for the server's /metrics. No dependency, no global state: one Metrics per app.
 *
 *   const m = new Metrics();
 *   m.requests.inc({ route: '/v1/embed', method: 'POST', code: '200' });
 *   res.type('text/plain; version=0.0.4').send(m.render());
 */

type Labels = Record<string, string>;

function labelKey(l: Labels): string {
  return Object.keys(l)
    .sort()
    .map((k) => `${k}="${escapeLabel(l[k])}"`)
    .join(',');
}

function escapeLabel(v: string): string {
  return String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function fmt(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${fmt(v)}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private values = new Map<string, number | (() => number)>();
  constructor(readonly name: string, readonly help: string) {}
  set(labels: Labels, v: number | (() => number)): void {
    this.values.set(labelKey(labels), v);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${fmt(typeof v === 'function' ? v() : v)}`);
    return lines.join('\n');
  }
}

export class Histogram implements Metric {
  private series = new Map<string, { counts: number[]; sum: number; count: number; labels: Labels }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {}
  observe(labels: Labels, v: number): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0, labels }));
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) s.counts[i]++;
    s.sum += v;
    s.count++;
  }
  /** Sum and count of one series (for tests and the bench's mean batch size). */
  stats(labels: Labels): { sum: number; count: number } {
    const s = this.series.get(labelKey(labels));
    return { sum: s?.sum ?? 0, count: s?.count ?? 0 };
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      const base = labelKey(s.labels);
      const withLe = (le: string) => `{${base ? `${base},` : ''}le="${le}"}`;
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${withLe(fmt(b))} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket${withLe('+Inf')} ${s.count}`);
      lines.push(`${this.name}_sum${base ? `{${base}}` : ''} ${fmt(s.sum)}`);
      lines.push(`${this.name}_count${base ? `{${base}}` : ''} ${s.count}`);
    }
    return lines.join('\n');
  }
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export class Metrics {
  readonly requests = new Counter('cmc_http_requests_total', 'HTTP requests by route, method and status code');
  readonly errors = new Counter('cmc_http_errors_total', 'HTTP error responses by route, status code and error code');
  readonly latency = new Histogram('cmc_http_request_duration_seconds', 'HTTP request latency by route', LATENCY_BUCKETS);
  readonly images = new Counter('cmc_images_total', 'images processed by model and graph');
  readonly batchSize = new Histogram('cmc_batch_size', 'images per inference batch by model and graph', BATCH_BUCKETS);
  readonly inference = new Histogram('cmc_inference_duration_seconds', 'onnxruntime run time per batch by model and graph', LATENCY_BUCKETS);
  readonly preprocess = new Histogram('cmc_preprocess_duration_seconds', 'decode + resize + crop time per image', LATENCY_BUCKETS);
  readonly queueDepth = new Gauge('cmc_queue_depth', 'images waiting for a batch by model and graph');
  readonly inFlight = new Gauge('cmc_http_in_flight_requests', 'HTTP requests being processed');
  readonly provider = new Gauge('cmc_execution_provider', 'onnxruntime execution provider in use (value 1)');
  readonly rss = new Gauge('process_resident_memory_bytes', 'resident set size of the server process');
  readonly uptime = new Gauge('process_uptime_seconds', 'seconds since the server process started');

  constructor() {
    this.rss.set({}, () => process.memoryUsage.rss());
    this.uptime.set({}, () => process.uptime());
  }

  render(): string {
    const all: Metric[] = [
      this.requests, this.errors, this.latency, this.images, this.batchSize, this.inference,
      this.preprocess, this.queueDepth, this.inFlight, this.provider, this.rss, this.uptime,
    ];
    return all.map((m) => m.render()).join('\n') + '\n';
  }
}
