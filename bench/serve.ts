/**
 * `cmc bench serve`: the server under load on loopback next to onnxruntime in process, same model.
 *
 *   1. in-process: onnxruntime session.run on random uint8 batches of 1, 8 and max_batch images
 *      (images/s), and the server's per-image preprocessing (sharp decode + Pillow-identical resize/crop);
 *   2. the server in a child process (so the load generator does not share its event loop), autocannon
 *      POSTing real JPEGs (image/jpeg bodies) to /v1/embed at each concurrency: images/s, p50/p90/p95/p99 latency,
 *      and the mean dynamic-batch size from the server's /metrics (cmc_batch_size sum/count difference).
 *
 *   const r = await runServeBench({ concurrency: [1, 4, 16, 32, 64], durationS: 5 }); console.log(formatServeBench(r));
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { parseManifest } from '../core/formats/manifest.ts';
import { decodeToInput } from '../serve/preprocess.ts';
import { chooseProvider, createSession, type ProviderRequest } from '../serve/providers.ts';
import os from 'node:os';
import { exportRandomModel, testPixels } from '../test/serve/fixture.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ServeBenchOptions {
  /** Model repository (default: ./models when it holds a model, else a random-weight export of `arch`). */
  models?: string;
  /** Architecture and input size of the random-weight model exported when there is none (alexnet_small, 64). */
  arch?: string;
  size?: number;
  model?: string;
  concurrency?: number[];
  durationS?: number;
  maxBatch?: number;
  maxDelayMs?: number;
  /** Side of the generated JPEGs (4:3, the longer side). */
  imageSide?: number;
  images?: number;
  provider?: ProviderRequest;
  /** Pass --ort_spinning to the server (onnxruntime threads busy-wait between runs). */
  ortSpinning?: boolean;
  /** Seconds per in-process batch size. */
  ortSeconds?: number;
  log?: (line: string) => void;
}

export interface HttpFigures {
  concurrency: number;
  requests: number;
  errors: number;
  imagesPerS: number;
  p50Ms: number;
  p90Ms: number;
  p95Ms: number;
  p99Ms: number;
  meanMs: number;
  meanBatch: number;
}

export interface ServeBenchResult {
  model: string;
  version: string;
  size: number;
  provider: string;
  jpeg: { width: number; height: number; meanBytes: number };
  preprocessImagesPerS: number;
  inProcess: { batch: number; imagesPerS: number; msPerBatch: number }[];
  /**
   * The server's work without HTTP, in process: decode + resize + crop of max_batch JPEGs (concurrently, as
   * the server does), then one session.run. What the server adds beyond this is HTTP and batching.
   */
  inProcessPipeline: { batch: number; imagesPerS: number };
  http: HttpFigures[];
}

/** Nearest-rank percentiles of a sample (ms); NaN for an empty one. */
export function percentiles(xs: number[]): (p: number) => number {
  const s = [...xs].sort((a, b) => a - b);
  return (p) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] : NaN);
}

function findModelDir(root: string, name?: string): { dir: string; manifest: ReturnType<typeof parseManifest> } | null {
  if (!fs.existsSync(root)) return null;
  const cands: string[] = [];
  for (const e of fs.readdirSync(root, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!e.isDirectory() || (name && e.name !== name)) continue;
    const d = path.join(root, e.name);
    if (fs.existsSync(path.join(d, 'manifest.json'))) cands.push(d);
    for (const v of fs.readdirSync(d, { withFileTypes: true }))
      if (v.isDirectory() && fs.existsSync(path.join(d, v.name, 'manifest.json'))) cands.push(path.join(d, v.name));
  }
  for (const dir of cands.reverse()) {
    try {
      const manifest = parseManifest(JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')));
      if (fs.existsSync(path.join(dir, 'encoder.onnx'))) return { dir, manifest };
    } catch {
      // not a usable model folder
    }
  }
  return null;
}

export async function startChild(
  args: string[],
  log: (l: string) => void,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'cmc.js'), 'serve', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr!.on('data', (d: Buffer) => {
    for (const l of d.toString().split('\n')) if (l.trim()) log(`  [server] ${l}`);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start within 60 s')), 60000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`server exited with code ${code}`));
    });
  });
  return { child, url };
}

async function batchStats(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0,
    count = 0;
  for (const l of text.split('\n')) {
    if (l.startsWith('cmc_batch_size_sum')) sum += Number(l.split(' ').pop());
    else if (l.startsWith('cmc_batch_size_count')) count += Number(l.split(' ').pop());
  }
  return { sum, count };
}

/** The model to benchmark: --models (or ./models) when it holds one, else a random-weight export in a temp folder. */
export async function benchModel(
  o: Pick<ServeBenchOptions, 'models' | 'model' | 'arch' | 'size'>,
  log: (l: string) => void,
) {
  let root = o.models ?? path.join(ROOT, 'models');
  let found = findModelDir(root, o.model);
  if (!found) {
    if (o.models) throw new Error(`no exported model (manifest.json + encoder.onnx) under ${o.models}`);
    const arch = o.arch ?? 'alexnet_small',
      sz = o.size ?? 64;
    root = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-bench-serve-')), 'models');
    log(`[bench] no model under models/: exporting a random-weight ${arch} at ${sz} px to ${root}`);
    await exportRandomModel(path.join(root, 'random'), { arch, size: sz, classes: ['a', 'b', 'c'] });
    found = findModelDir(root, 'random')!;
  }
  return { root, ...found };
}

export async function runServeBench(o: ServeBenchOptions = {}): Promise<ServeBenchResult> {
  const log = o.log ?? (() => {});
  const concurrency = o.concurrency ?? [1, 4, 16, 32, 64];
  const durationS = o.durationS ?? 5;
  const maxBatch = o.maxBatch ?? 32;
  const side = o.imageSide ?? 256;
  const { root, dir, manifest } = await benchModel(o, log);
  const size = manifest.input.size;

  // Real JPEGs: structured pixels (gradients + a disc), 4:3, quality 90.
  const w = side,
    h = Math.round((side * 3) / 4);
  const jpegs = await Promise.all(
    Array.from({ length: o.images ?? 16 }, (_, i) =>
      sharp(testPixels(w, h, 100 + i), { raw: { width: w, height: h, channels: 3 } })
        .jpeg({ quality: 90 })
        .toBuffer(),
    ),
  );
  const meanBytes = Math.round(jpegs.reduce((a, b) => a + b.length, 0) / jpegs.length);

  // Preprocessing cost per image (one thread of JS resize after sharp decode).
  let pre = 0;
  const tp = performance.now();
  while (performance.now() - tp < 1000) await decodeToInput(jpegs[pre++ % jpegs.length], size, { maxPixels: 1e8 });
  const preprocessImagesPerS = pre / ((performance.now() - tp) / 1000);

  // In-process onnxruntime.
  const choice = await chooseProvider(o.provider ?? 'auto', log);
  const { session, provider } = await createSession(
    new Uint8Array(fs.readFileSync(path.join(dir, 'encoder.onnx'))),
    choice.provider,
    { log },
  );
  const inProcess: ServeBenchResult['inProcess'] = [];
  const inputName = session.inputNames[0];
  for (const b of [...new Set([1, 8, maxBatch])]) {
    const data = new Uint8Array(b * size * size * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    const feeds = { [inputName]: new ort.Tensor('uint8', data, [b, size, size, 3]) };
    await session.run(feeds);
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < (o.ortSeconds ?? 1.5) * 1000 || n < 3) {
      await session.run(feeds);
      n++;
    }
    const s = (performance.now() - t0) / 1000;
    inProcess.push({ batch: b, imagesPerS: (n * b) / s, msPerBatch: (1000 * s) / n });
    log(`[bench] in-process batch ${b}: ${((n * b) / s).toFixed(1)} images/s`);
  }
  const pb = maxBatch;
  let pn = 0;
  const tpp = performance.now();
  while (performance.now() - tpp < (o.ortSeconds ?? 1.5) * 1000 || pn < 3) {
    const imgs = await Promise.all(
      Array.from({ length: pb }, (_, i) =>
        decodeToInput(jpegs[(pn * pb + i) % jpegs.length], size, { maxPixels: 1e8 }),
      ),
    );
    const data = new Uint8Array(pb * size * size * 3);
    imgs.forEach((x, i) => data.set(x, i * size * size * 3));
    await session.run({ [inputName]: new ort.Tensor('uint8', data, [pb, size, size, 3]) });
    pn++;
  }
  const inProcessPipeline = { batch: pb, imagesPerS: (pn * pb) / ((performance.now() - tpp) / 1000) };
  log(`[bench] in-process decode + run, batch ${pb}: ${inProcessPipeline.imagesPerS.toFixed(1)} images/s`);
  await session.release();

  // The server under autocannon.
  const name = manifest.name;
  const { child, url } = await startChild(
    [
      '--models',
      root,
      '--port',
      '0',
      '--provider',
      provider,
      '--max_batch',
      String(maxBatch),
      '--max_delay_ms',
      String(o.maxDelayMs ?? 5),
      '--default_model',
      name,
      '--max_queue',
      '4096',
      '--web_dist',
      '',
      ...(o.ortSpinning ? ['--ort_spinning'] : []),
    ],
    log,
  );
  const http: HttpFigures[] = [];
  try {
    const requests = jpegs.map((body) => ({
      method: 'POST' as const,
      path: `/v1/embed?model=${encodeURIComponent(name)}`,
      headers: { 'content-type': 'image/jpeg' },
      body,
    }));
    // Warm-up.
    await autocannon({ url, connections: 2, amount: 20, requests });
    for (const c of concurrency) {
      const before = await batchStats(url);
      // Every response's latency, for exact percentiles (autocannon's summary has no p95).
      const times: number[] = [];
      const r = await new Promise<autocannon.Result>((resolve, reject) => {
        const inst = autocannon({ url, connections: c, duration: durationS, requests }, (e, res) =>
          e ? reject(e) : resolve(res),
        );
        inst.on('response', (_client, status, _bytes, ms) => {
          if (status >= 200 && status < 300) times.push(ms);
        });
      });
      const pct = percentiles(times);
      const after = await batchStats(url);
      const ok = r['2xx'];
      const f: HttpFigures = {
        concurrency: c,
        requests: r.requests.total,
        errors: r.errors + r.timeouts + r.non2xx,
        imagesPerS: ok / r.duration,
        p50Ms: pct(50),
        p90Ms: pct(90),
        p95Ms: pct(95),
        p99Ms: pct(99),
        meanMs: r.latency.average,
        meanBatch: after.count > before.count ? (after.sum - before.sum) / (after.count - before.count) : 0,
      };
      http.push(f);
      log(
        `[bench] http c=${c}: ${f.imagesPerS.toFixed(1)} images/s, p50 ${f.p50Ms.toFixed(1)} ms, p90 ${f.p90Ms.toFixed(1)} ms, p95 ${f.p95Ms.toFixed(1)} ms, p99 ${f.p99Ms.toFixed(1)} ms, mean batch ${f.meanBatch.toFixed(2)}`,
      );
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  return {
    model: name,
    version: manifest.version,
    size,
    provider,
    jpeg: { width: w, height: h, meanBytes },
    preprocessImagesPerS,
    inProcess,
    inProcessPipeline,
    http,
  };
}

export function formatServeBench(r: ServeBenchResult): string {
  const lines = [
    `model ${r.model} v${r.version} (${r.size}px) on ${r.provider}; JPEG ${r.jpeg.width}x${r.jpeg.height}, ${r.jpeg.meanBytes} bytes`,
    `preprocessing (decode + resize + crop, one request at a time): ${r.preprocessImagesPerS.toFixed(1)} images/s`,
    'in-process onnxruntime:',
    ...r.inProcess.map(
      (x) =>
        `  batch ${String(x.batch).padStart(3)}: ${x.imagesPerS.toFixed(1).padStart(9)} images/s  (${x.msPerBatch.toFixed(2)} ms/batch)`,
    ),
    `in-process decode + resize + run (the server's work without HTTP), batch ${r.inProcessPipeline.batch}: ${r.inProcessPipeline.imagesPerS.toFixed(1)} images/s`,
    'HTTP /v1/embed (image/jpeg bodies, autocannon on loopback):',
    ...r.http.map(
      (x) =>
        `  concurrency ${String(x.concurrency).padStart(3)}: ${x.imagesPerS.toFixed(1).padStart(9)} images/s  p50 ${x.p50Ms.toFixed(1)} ms  p90 ${x.p90Ms.toFixed(1)} ms  p95 ${x.p95Ms.toFixed(1)} ms  p99 ${x.p99Ms.toFixed(1)} ms  mean batch ${x.meanBatch.toFixed(2)}  errors ${x.errors}`,
    ),
  ];
  // The summary's yardstick is concurrency 32 (else the highest measured).
  const top =
    r.http.find((x) => x.concurrency === 32) ??
    r.http.reduce((a, b) => (b.concurrency > a.concurrency ? b : a), r.http[0]);
  const ort = r.inProcess.reduce((a, b) => (b.batch > a.batch ? b : a), r.inProcess[0]);
  if (top && ort) {
    lines.push(
      `at concurrency ${top.concurrency}: ${((100 * top.imagesPerS) / ort.imagesPerS).toFixed(1)}% of in-process onnxruntime (batch ${ort.batch}), ` +
        `${((100 * top.imagesPerS) / r.inProcessPipeline.imagesPerS).toFixed(1)}% of in-process decode + run; p99/p50 ${(top.p99Ms / top.p50Ms).toFixed(2)}`,
    );
  }
  return lines.join('\n');
}
