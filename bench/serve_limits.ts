/**
 * `cmc bench serve --overload` and `--hostile`: the server's limits under load, with its default settings
 * (no raised --max_queue), in a child process on loopback.
 *
 *   overload  autocannon POSTs real JPEGs to /v1/embed at 1, 32 and 1024 connections: served images/s
 *             (2xx only), p50/p99 latency of the admitted (2xx) requests, 429s. The targets:
 *             images/s at 1024 >= 80% of the figure at 32, p99 at 1024 <= 3x the p99 at 32, on open
 *             connections (each connection's first answer is left out: it also holds the opening of 1,024
 *             connections at once, which a control run measures against a bare node:http server that
 *             answers at once; on a 2-core machine, client included, that alone had a first-answer p99 of
 *             1.7-4.8 s in three runs).
 *   hostile   a mix of requests each within the documented limits (64-image multipart bodies of
 *             1250x1250 PNGs summing to --max_request_pixels, 6000x6000 PNGs, near-limit JSON bodies, a
 *             KServe v2 body of half a million values, slow senders) while /v2/health/live is probed every
 *             100 ms: the server's peak RSS (VmHWM) and the slowest health answer. Must hold: < 2 GB, < 1 s.
 *
 *   const r = await runOverloadBench({ durationS: 10 }); console.log(formatOverload(r));
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { multipart, testPixels } from '../test/serve/fixture.ts';
import { benchModel, startChild } from './serve.ts';

export interface LimitsBenchOptions {
  models?: string;
  model?: string;
  arch?: string;
  size?: number;
  durationS?: number;
  /** Connections of the overload case (default 1, 32, 1024). */
  connections?: number[];
  imageSide?: number;
  provider?: string;
  /** More `cmc serve` flags for the server under test (e.g. ['--admission_wait_ms', '500']). */
  serverArgs?: string[];
  log?: (line: string) => void;
}

export interface OverloadFigures {
  connections: number;
  /** Images the server ran per second (its cmc_images_total over the run): what it served, even when the
   * load generator, starved of CPU, reads the answers late. */
  serverImagesPerS: number;
  ok: number;
  refused: number;
  otherErrors: number;
  imagesPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** The same over the answers after each connection's first: what a client sees once its connection is
   * open (the first answer also holds the connection's wait to be accepted, which a burst of 1,024 new
   * connections on one 2-core machine, client included, stretches to seconds). */
  steadyP50Ms: number;
  steadyP99Ms: number;
}

export interface OverloadResult {
  figures: OverloadFigures[];
  /** images/s answered 2xx at the most connections / the same at 32 (must be >= 0.8). */
  goodputRatio: number | null;
  /** The same from the server's own count. */
  serverGoodputRatio: number | null;
  /** p99 of admitted requests at the most connections / p99 at 32 (must be <= 3). */
  p99Ratio: number | null;
  /** The same without each connection's first answer (steadyP99Ms). */
  steadyP99Ratio: number | null;
  /**
   * The same client at the most connections against a bare node:http server that answers every request at
   * once: what opening that many connections at once costs on this machine (client and kernel), with no
   * server work at all. Its first answers bound what any server's first answers can be here.
   */
  control: BurstControl | null;
  peakRssMb: number;
}

/** autocannon's returned tracker: the result's promise and an emitter of per-response events. */
type Tracked = Promise<autocannon.Result> & {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
};

export interface BurstControl {
  connections: number;
  firstP50Ms: number;
  firstP99Ms: number;
  laterP50Ms: number;
  laterP99Ms: number;
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

/** Images the server has run through its models so far (sum of cmc_images_total). */
async function imagesRun(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('cmc_images_total'))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

/** Peak resident memory of a process (Linux /proc; NaN elsewhere). */
function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function server(o: LimitsBenchOptions, log: (l: string) => void) {
  const { root, manifest } = await benchModel(o, log);
  const { child, url } = await startChild(
    [
      '--models',
      root,
      '--port',
      '0',
      '--provider',
      o.provider ?? 'cpu',
      '--default_model',
      manifest.name,
      '--web_dist',
      '',
      ...(o.serverArgs ?? []),
    ],
    log,
  );
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  return { child, url, name: manifest.name, stop };
}

/** The connection-burst control (OverloadResult.control): autocannon against a bare server in a child process. */
async function burstControl(connections: number, durationS: number, body: Buffer): Promise<BurstControl> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      "require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => s.end('{}')); })" +
        ".listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, function () { console.log(this.address().port); });",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise<string>((resolve, reject) => {
      child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
      child.once('exit', (code) => reject(new Error(`the control server exited (${code})`)));
    });
    const first: number[] = [];
    const later: number[] = [];
    const isFirst = firstAnswers();
    const inst = autocannon({
      url: `http://127.0.0.1:${port}`,
      connections,
      duration: durationS,
      requests: [{ method: 'POST', path: '/', headers: { 'content-type': 'image/jpeg' }, body }],
      timeout: 30,
    }) as unknown as Tracked;
    inst.on('response', (client, _status, _bytes, ms) => (isFirst(client) ? first : later).push(ms));
    await inst;
    return {
      connections,
      firstP50Ms: quantile(first, 0.5),
      firstP99Ms: quantile(first, 0.99),
      laterP50Ms: quantile(later, 0.5),
      laterP99Ms: quantile(later, 0.99),
    };
  } finally {
    child.kill();
  }
}

/** A tracker of answers per connection: true for a connection's first answer (which carries its set-up). */
function firstAnswers(): (client: unknown) => boolean {
  const answered = new Set<unknown>();
  return (client) => {
    if (answered.has(client)) return false;
    answered.add(client);
    return true;
  };
}

export async function runOverloadBench(o: LimitsBenchOptions = {}): Promise<OverloadResult> {
  const log = o.log ?? (() => {});
  const side = o.imageSide ?? 256;
  const w = side,
    h = Math.round((side * 3) / 4);
  const jpegs = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      sharp(testPixels(w, h, 100 + i), { raw: { width: w, height: h, channels: 3 } })
        .jpeg({ quality: 90 })
        .toBuffer(),
    ),
  );
  const s = await server(o, log);
  const figures: OverloadFigures[] = [];
  try {
    const requests = jpegs.map((body) => ({
      method: 'POST' as const,
      path: `/v1/embed?model=${encodeURIComponent(s.name)}`,
      headers: { 'content-type': 'image/jpeg' },
      body,
    }));
    await autocannon({ url: s.url, connections: 2, amount: 40, requests });
    for (const c of o.connections ?? [1, 32, 1024]) {
      const okMs: number[] = [];
      const steadyMs: number[] = [];
      const isFirst = firstAnswers();
      let refused = 0,
        other = 0;
      const t0 = await imagesRun(s.url);
      // The returned tracker is both the result's promise and an emitter of per-response events.
      const inst = autocannon({
        url: s.url,
        connections: c,
        duration: o.durationS ?? 10,
        requests,
        timeout: 30,
      }) as unknown as Tracked;
      inst.on('response', (client, status, _bytes, ms) => {
        const first = isFirst(client);
        if (status >= 200 && status < 300) {
          okMs.push(ms);
          if (!first) steadyMs.push(ms);
        } else if (status === 429) refused++;
        else other++;
      });
      const r = await inst;
      const ran = (await imagesRun(s.url)) - t0;
      const f: OverloadFigures = {
        connections: c,
        serverImagesPerS: ran / r.duration,
        ok: okMs.length,
        refused,
        otherErrors: other + r.errors + r.timeouts,
        imagesPerS: okMs.length / r.duration,
        p50Ms: quantile(okMs, 0.5),
        p99Ms: quantile(okMs, 0.99),
        steadyP50Ms: quantile(steadyMs, 0.5),
        steadyP99Ms: quantile(steadyMs, 0.99),
      };
      figures.push(f);
      log(
        `[bench] ${c} connections: ${f.imagesPerS.toFixed(1)} images/s answered 2xx (server ran ${f.serverImagesPerS.toFixed(1)}/s), admitted p50 ${f.p50Ms} ms p99 ${f.p99Ms} ms (after each connection's first answer: p50 ${f.steadyP50Ms} p99 ${f.steadyP99Ms}), ${refused} refused (429), ${f.otherErrors} other errors`,
      );
    }
  } finally {
    await s.stop().catch(() => {});
  }
  const ref = figures.find((f) => f.connections === 32);
  const top = figures.reduce((a, b) => (b.connections > a.connections ? b : a), figures[0]);
  const control =
    top && top.connections > 32 ? await burstControl(top.connections, Math.min(5, o.durationS ?? 10), jpegs[0]) : null;
  if (control) log(`[bench] connection-burst control: ${formatControl(control)}`);
  return {
    control,
    figures,
    goodputRatio: ref && top !== ref ? top.imagesPerS / ref.imagesPerS : null,
    serverGoodputRatio: ref && top !== ref ? top.serverImagesPerS / ref.serverImagesPerS : null,
    p99Ratio: ref && top !== ref ? top.p99Ms / ref.p99Ms : null,
    steadyP99Ratio: ref && top !== ref ? top.steadyP99Ms / ref.steadyP99Ms : null,
    peakRssMb: peakRssMb(s.child.pid!),
  };
}

const ms = (x: number) => `${x.toFixed(1)} ms`;

function formatControl(c: BurstControl): string {
  return `${c.connections} connections to a bare node:http server that answers at once: first answers p50 ${ms(c.firstP50Ms)} p99 ${ms(c.firstP99Ms)}, later answers p50 ${ms(c.laterP50Ms)} p99 ${ms(c.laterP99Ms)}`;
}

export function formatOverload(r: OverloadResult): string {
  return [
    'overload: /v1/embed with image/jpeg bodies, default server limits (autocannon on loopback; 2xx latencies only)',
    ...r.figures.map(
      (f) =>
        `  ${String(f.connections).padStart(5)} connections: ${f.imagesPerS.toFixed(1).padStart(8)} images/s answered 2xx (server ran ${f.serverImagesPerS.toFixed(1)}/s)  p50 ${ms(f.p50Ms)}  p99 ${ms(f.p99Ms)}  after each connection's first answer p50 ${ms(f.steadyP50Ms)}  p99 ${ms(f.steadyP99Ms)}  429s ${f.refused}  other errors ${f.otherErrors}`,
    ),
    r.goodputRatio === null
      ? ''
      : `  goodput at the most connections: ${(100 * r.goodputRatio).toFixed(1)}% of 32 connections (server count ${(100 * r.serverGoodputRatio!).toFixed(1)}%; must be >= 80%); admitted p99 ${r.steadyP99Ratio!.toFixed(2)}x the p99 at 32 on open connections (after each connection's first answer; must be <= 3x), ${r.p99Ratio!.toFixed(2)}x counting first answers`,
    r.control
      ? `  connection-burst control (why first answers are left out of the p99 target): ${formatControl(r.control)}`
      : '',
  ]
    .filter((l) => l)
    .join('\n');
}

export interface HostileResult {
  durationS: number;
  statuses: Record<string, number>;
  peakRssMb: number;
  healthMaxMs: number;
  healthP99Ms: number;
  healthProbes: number;
}

/** POST `body` with node:http (no client-side limits); resolves with the status (0 on a connection error). */
function post(url: string, path: string, type: string, body: Buffer, slowMs = 0): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path,
        headers: { 'content-type': type, 'content-length': body.length },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    if (!slowMs) return void req.end(body);
    // A slow sender: the body in 16 pieces over slowMs.
    let k = 0;
    const piece = Math.ceil(body.length / 16);
    const t = setInterval(() => {
      req.write(body.subarray(k * piece, (k + 1) * piece));
      if (++k >= 16) {
        clearInterval(t);
        req.end();
      }
    }, slowMs / 16);
  });
}

export async function runHostileBench(o: LimitsBenchOptions = {}): Promise<HostileResult> {
  const log = o.log ?? (() => {});
  const durationS = o.durationS ?? 20;
  const solid = (w: number, h: number, i: number) =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r: 10 * i, g: 200, b: 30 } } })
      .png()
      .toBuffer();
  // 64 x 1250x1250 = 100,000,000 pixels: exactly the default --max_request_pixels.
  const mid = await solid(1250, 1250, 1);
  const many = multipart(Array.from({ length: 64 }, () => ({ data: mid })));
  // 2 x 6000x6000 = 72,000,000 pixels, each at the default --max_pixels (36 MP).
  const huge = await solid(6000, 6000, 2);
  const two = multipart([{ data: huge }, { data: huge }]);
  // JSON near the limits: 999 keys and long strings (~3.9 MB); a KServe v2 body of 499,000 values.
  const keyHeavy = Buffer.from(
    `{${Array.from({ length: 999 }, (_, i) => `"k${i}":"${'x'.repeat(3900)}"`).join(',')},"images":["${'A'.repeat(64)}"]}`,
  );
  const values = Buffer.from(
    `{"inputs":[{"name":"images","datatype":"UINT8","shape":[1,1,1,3],"data":[${new Array(499_000).fill(7).join(',')}]}]}`,
  );
  const s = await server(o, log);
  const statuses: Record<string, number> = {};
  const count = (st: number) => void (statuses[st] = (statuses[st] ?? 0) + 1);
  const end = Date.now() + durationS * 1000;
  const loop = async (send: () => Promise<number>) => {
    while (Date.now() < end) count(await send());
  };
  const health: number[] = [];
  let rss: number;
  const probe = async () => {
    while (Date.now() < end) {
      const t0 = performance.now();
      await fetch(`${s.url}/v2/health/live`).then(
        (r) => r.arrayBuffer(),
        () => null,
      );
      health.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await Promise.all([
      probe(),
      ...[0, 1, 2, 3].map(() => loop(() => post(s.url, '/v1/embed', many.type, many.body))),
      ...[0, 1].map(() => loop(() => post(s.url, '/v1/classify', two.type, two.body))),
      ...[0, 1].map(() => loop(() => post(s.url, '/v1/embed', 'application/json', keyHeavy))),
      loop(() => post(s.url, `/v2/models/${s.name}/infer`, 'application/json', values)),
      loop(() => post(s.url, '/v1/embed', many.type, many.body, 3000)),
    ]);
  } finally {
    rss = peakRssMb(s.child.pid!);
    await s.stop().catch(() => {});
  }
  const r: HostileResult = {
    durationS,
    statuses,
    peakRssMb: rss,
    healthMaxMs: Math.max(...health),
    healthP99Ms: quantile(health, 0.99),
    healthProbes: health.length,
  };
  log(
    `[bench] hostile mix: peak RSS ${r.peakRssMb.toFixed(0)} MB, /v2/health/live max ${r.healthMaxMs.toFixed(0)} ms (p99 ${r.healthP99Ms.toFixed(0)} ms)`,
  );
  return r;
}

export function formatHostile(r: HostileResult): string {
  return [
    `hostile mix within the default limits, ${r.durationS} s: responses ${JSON.stringify(r.statuses)}`,
    `  server peak RSS ${r.peakRssMb.toFixed(0)} MB (must be < 2048); /v2/health/live every 100 ms: max ${r.healthMaxMs.toFixed(0)} ms, p99 ${r.healthP99Ms.toFixed(0)} ms over ${r.healthProbes} probes (must be < 1000)`,
  ].join('\n');
}
