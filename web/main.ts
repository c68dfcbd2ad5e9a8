/**
 * The browser demo, a static app: it reads models/<name>/manifest.json (relative to the page) and the model
 * files beside it, so web/dist plus a models folder works from any static file server; `cmc serve` serves it
 * at / too (and then "Compare with server" posts the images to /v1/embed).
 *
 *   ?model=<name>                    default: the server's default model (cmc serve), else imagenette64
 *   ?runtime=onnxruntime|tfjs        onnxruntime-web on the ONNX file, or tfjs on the tfjs graph model
 *   ?backend=webgpu|wasm             default: webgpu when the browser gives an adapter, else wasm
 *   (?ep=webgpu|wasm is the older name of ?backend with onnxruntime)
 *
 * Inference runs in a Web Worker (worker.ts); the main thread decodes images (createImageBitmap + canvas),
 * runs the server's resize + centre crop (preprocess.ts) and draws. Model files are cached under their
 * sha256 (model_cache.ts): a second visit and an offline one load them from the cache.
 *
 * State for tests and the console: window.cmcDemo (see DemoState).
 */
import { topK } from '../core/util/top_k.ts';
import { cosine, preprocessImageData } from './preprocess.ts';
import { fetchManifest } from './model_cache.ts';
import type { Backend, LoadRequest, Runtime, WorkerReply } from './protocol.ts';

interface ManifestFile {
  sha256: string;
  bytes: number;
  role: string;
  format?: string;
}
interface Manifest {
  name: string;
  version: string;
  input: { name: string; size: number };
  classNames: string[];
  embeddingDim: number;
  files: Record<string, ManifestFile>;
}

interface ImageResult {
  name: string;
  file: Blob;
  width: number;
  height: number;
  embedding: number[];
  top: { label: string; index: number; probability: number }[];
  /** Per-image share of its batch's inference time (warm). */
  ms: number;
  /** The model input (uint8 size*size*3), base64, for parity checks. */
  input: string;
  serverCosine?: number;
  thumb: HTMLCanvasElement;
}

interface DemoState {
  ready: boolean;
  error?: string;
  notice?: string;
  runtime?: Runtime;
  backend?: Backend;
  /** runtime/backend pairs this model and browser offer, e.g. 'onnxruntime/wasm'. */
  options: string[];
  model?: { name: string; version: string; files: string[]; size: number; bytes: number };
  /** Cold load: files (cache or network) + session / graph model + first run. */
  loadMs?: number;
  filesMs?: number;
  sources?: Record<string, string>;
  manifestSource?: string;
  /** Mean warm per-image inference time over the batches so far. */
  warmMsPerImage?: number;
  images: Omit<ImageResult, 'file' | 'thumb'>[];
  errors: { name: string; message: string }[];
  /** For each image (index), its nearest neighbours by cosine: [index, cosine], best first. */
  neighbours: [number, number][][];
  similarity?: number;
  busy: number;
  logs: string[];
  api?: {
    benchBatch(n: number): Promise<{ n: number; ms: number; maxGapMs: number; ticks: number; idleMaxGapMs: number }>;
  };
}

const state: DemoState = { ready: false, images: [], errors: [], neighbours: [], busy: 0, options: [], logs: [] };
(window as unknown as { cmcDemo: DemoState }).cmcDemo = state;
const results: ImageResult[] = [];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const asset = (p: string) => new URL(p, location.href).href;

let worker: Worker | undefined;
let manifest: Manifest | undefined;
let outputs: string[] = [];
let serverApi = false;
let nextId = 1;
const pending = new Map<
  number,
  { resolve: (r: { outputs: Record<string, Float32Array>; ms: number }) => void; reject: (e: Error) => void }
>();
let warmTotalMs = 0;
let warmImages = 0;

function setStatus(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', error);
}

async function webgpuAvailable(): Promise<boolean> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown | null> } }).gpu;
  if (!gpu) return false;
  try {
    return !!(await gpu.requestAdapter());
  } catch {
    return false;
  }
}

/** The model name: ?model=, else the server's default when the page comes from cmc serve, else imagenette64. */
async function modelName(): Promise<string> {
  try {
    const r = await fetch(asset('v1/models'));
    if (r.ok && (r.headers.get('content-type') ?? '').includes('json')) {
      const list = (await r.json()) as { default?: string | null; models?: { name: string }[] };
      serverApi = true;
      const p = params.get('model');
      if (p) return p;
      if (list.default) return list.default;
      if (list.models?.length) return list.models[0].name;
    }
  } catch {
    // a static host (or offline): no API
  }
  return params.get('model') ?? 'imagenette64';
}

function roleOf(m: Manifest): 'classifier' | 'encoder' {
  return m.files['classifier.onnx'] || m.files['tfjs/classifier/model.json'] ? 'classifier' : 'encoder';
}

function runtimesOf(m: Manifest, role: string): Runtime[] {
  const r: Runtime[] = [];
  if (m.files[`${role}.onnx`]) r.push('onnxruntime');
  if (m.files[`tfjs/${role}/model.json`]) r.push('tfjs');
  return r;
}

function filesFor(m: Manifest, runtime: Runtime, role: string): { path: string; sha256: string }[] {
  if (runtime === 'onnxruntime') return [{ path: `${role}.onnx`, sha256: m.files[`${role}.onnx`].sha256 }];
  return Object.entries(m.files)
    .filter(([k]) => k.startsWith(`tfjs/${role}/`))
    .map(([path, f]) => ({ path, sha256: f.sha256 }));
}

function call(images: Uint8Array, n: number): Promise<{ outputs: Record<string, Float32Array>; ms: number }> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker!.postMessage({ type: 'run', id, images, n }, [images.buffer]);
  });
}

async function init(): Promise<void> {
  const name = await modelName();
  const base = asset(`models/${encodeURIComponent(name)}/`);
  setStatus(`reading ${name}'s manifest…`);
  const mf = await fetchManifest(`${base}manifest.json`);
  manifest = mf.manifest as Manifest;
  state.manifestSource = mf.source;
  if (!manifest?.files || !manifest.input) throw new Error(`models/${name}/manifest.json is not a cmc export manifest`);
  const role = roleOf(manifest);
  const runtimes = runtimesOf(manifest, role);
  if (runtimes.length === 0) throw new Error(`models/${name} lists neither ${role}.onnx nor a tfjs export`);
  const backends: Backend[] = (await webgpuAvailable()) ? ['webgpu', 'wasm'] : ['wasm'];
  state.options = runtimes.flatMap((r) => backends.map((b) => `${r}/${b}`));

  let runtime = (params.get('runtime') as Runtime | null) ?? runtimes[0];
  if (!runtimes.includes(runtime)) {
    state.notice = `${name} has no ${runtime} export here; using ${runtimes[0]}`;
    runtime = runtimes[0];
  }
  const wantBackend = (params.get('backend') ?? params.get('ep')) as Backend | null;
  const backend: Backend = wantBackend ?? backends[0];
  if (wantBackend && !backends.includes(wantBackend))
    throw new Error(`this browser offers no ${wantBackend} (available: ${backends.join(', ')})`);
  renderOptions(runtime, backend);

  outputs = role === 'classifier' ? ['probabilities', 'embedding'] : ['embedding'];
  const files = filesFor(manifest, runtime, role);
  worker = new Worker(asset('worker.js'), { type: 'module' });
  const loaded = new Promise<Extract<WorkerReply, { type: 'loaded' }>>((resolve, reject) => {
    worker!.onmessage = (e: MessageEvent<WorkerReply>) => {
      const m = e.data;
      if (m.type === 'loaded') resolve(m);
      else if (m.type === 'log') {
        state.logs.push(m.line);
        console.info(`[cmc worker] ${m.line}`);
      } else if (m.type === 'result') {
        pending.get(m.id)?.resolve(m);
        pending.delete(m.id);
      } else if (m.type === 'error') {
        if (m.id !== undefined) {
          pending.get(m.id)?.reject(new Error(m.message));
          pending.delete(m.id);
        } else reject(new Error(m.message));
      }
    };
    worker!.onerror = (e) => reject(new Error(`worker: ${e.message}`));
  });
  setStatus(`loading ${name} v${manifest.version} with ${runtime} (${backend}) in a worker…`);
  const req: LoadRequest = {
    type: 'load',
    runtime,
    backend,
    modelBase: base,
    files,
    inputName: manifest.input.name,
    size: manifest.input.size,
    outputs,
    ortPath: asset('ort/'),
    tfjsPath: asset('tfjs/'),
  };
  worker.postMessage(req);
  const l = await loaded;
  Object.assign(state, { runtime, backend, loadMs: l.loadMs, filesMs: l.filesMs, sources: l.sources });
  state.model = {
    name,
    version: manifest.version,
    files: files.map((f) => f.path),
    size: manifest.input.size,
    bytes: l.bytes,
  };
  const fromCache = Object.values(l.sources).filter((s) => s === 'cache').length;
  $('model').textContent =
    `${name} v${manifest.version} (${role}, ${manifest.input.size}×${manifest.input.size}, ${(l.bytes / 1e6).toFixed(1)} MB in ${files.length} file${files.length > 1 ? 's' : ''})`;
  $('runtime-used').textContent = `${runtime} · ${backend}`;
  $('cold-ms').textContent =
    `${l.loadMs.toFixed(0)} ms (files ${l.filesMs.toFixed(0)} ms, ${fromCache}/${files.length} from cache)`;
  ($('compare') as HTMLButtonElement).hidden = !serverApi;
  setStatus(state.notice ? `ready · ${state.notice}` : 'ready: drop images, pick files or use the camera');
  state.ready = true;
  document.body.dataset.ready = 'true';
}

function renderOptions(runtime: Runtime, backend: Backend): void {
  const sel = $('runtime') as HTMLSelectElement;
  sel.replaceChildren(
    ...state.options.map((o) => {
      const opt = document.createElement('option');
      opt.value = opt.textContent = o;
      opt.selected = o === `${runtime}/${backend}`;
      return opt;
    }),
  );
  sel.onchange = () => {
    const [r, b] = sel.value.split('/');
    const p = new URLSearchParams(location.search);
    p.set('runtime', r);
    p.set('backend', b);
    p.delete('ep');
    location.search = p.toString();
  };
}

async function decode(file: Blob): Promise<ImageData> {
  const bmp = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
  const c = document.createElement('canvas');
  c.width = bmp.width;
  c.height = bmp.height;
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  return ctx.getImageData(0, 0, c.width, c.height);
}

function thumbnail(rgb: Uint8Array, size: number): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = c.height = size;
  const id = new ImageData(size, size);
  for (let k = 0; k < size * size; k++) {
    id.data.set([rgb[3 * k], rgb[3 * k + 1], rgb[3 * k + 2], 255], 4 * k);
  }
  c.getContext('2d')!.putImageData(id, 0, 0);
  return c;
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Decode and preprocess every file (undecodable ones are reported and skipped), then one batch in the worker. */
async function addImages(items: { file: Blob; name: string }[]): Promise<void> {
  if (!worker || !manifest) return;
  state.busy++;
  try {
    const size = manifest.input.size;
    const ok: { file: Blob; name: string; img: ImageData; rgb: Uint8Array }[] = [];
    for (const it of items) {
      try {
        const img = await decode(it.file);
        ok.push({ ...it, img, rgb: preprocessImageData(img, size) });
      } catch (e) {
        const message = `cannot decode this image (${(e as Error).message ?? e})`;
        state.errors.push({ name: it.name, message });
        const li = document.createElement('li');
        li.textContent = `${it.name}: ${message}`;
        $('errors').append(li);
      }
    }
    if (ok.length === 0) return;
    const batch = new Uint8Array(ok.length * size * size * 3);
    ok.forEach((o, i) => batch.set(o.rgb, i * size * size * 3));
    const r = await call(batch, ok.length);
    warmTotalMs += r.ms;
    warmImages += ok.length;
    state.warmMsPerImage = warmTotalMs / warmImages;
    $('warm-ms').textContent =
      `${state.warmMsPerImage.toFixed(1)} ms per image (last batch: ${ok.length} in ${r.ms.toFixed(0)} ms)`;
    const e = manifest.embeddingDim || r.outputs.embedding.length / ok.length;
    const c = manifest.classNames.length;
    ok.forEach((o, i) => {
      const embedding = Array.from(r.outputs.embedding.subarray(i * e, (i + 1) * e));
      const top = r.outputs.probabilities
        ? topK(r.outputs.probabilities.subarray(i * c, (i + 1) * c), 5).map(({ index, value }) => ({
            label: manifest!.classNames[index] ?? String(index),
            index,
            probability: value,
          }))
        : [];
      const res: ImageResult = {
        name: o.name,
        file: o.file,
        width: o.img.width,
        height: o.img.height,
        embedding,
        top,
        ms: r.ms / ok.length,
        input: base64(o.rgb),
        thumb: thumbnail(o.rgb, size),
      };
      results.push(res);
      const { file: _f, thumb: _t, ...plain } = res;
      state.images.push(plain);
      render(res);
    });
    updateSimilarity();
  } catch (e) {
    setStatus(String((e as Error).message ?? e), true);
    console.error(e);
  } finally {
    state.busy--;
  }
}

function render(r: ImageResult): void {
  const i = results.indexOf(r);
  const card = document.createElement('div');
  card.className = 'card';
  card.id = `image-${i}`;
  const c = document.createElement('canvas');
  c.width = c.height = r.thumb.width;
  c.getContext('2d')!.drawImage(r.thumb, 0, 0);
  const title = document.createElement('div');
  title.className = 'title';
  title.textContent = `${r.name} (${r.width}×${r.height}) · ${r.ms.toFixed(1)} ms`;
  card.append(c, title);
  if (r.top.length) {
    const ol = document.createElement('ol');
    ol.className = 'top';
    for (const t of r.top) {
      const li = document.createElement('li');
      li.dataset.label = t.label;
      li.dataset.probability = String(t.probability);
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(t.probability * 100).toFixed(1)}%`;
      const txt = document.createElement('span');
      txt.className = 'txt';
      txt.textContent = `${t.label} ${(t.probability * 100).toFixed(1)}%`;
      li.append(bar, txt);
      ol.append(li);
    }
    card.append(ol);
  } else {
    const p = document.createElement('div');
    p.textContent = `embedding (${r.embedding.length}-d); this model has no classifier`;
    card.append(p);
  }
  const sc = document.createElement('div');
  sc.className = 'server-cosine';
  card.append(sc);
  $('results').prepend(card);
  ($('compare') as HTMLButtonElement).disabled = false;
}

const NEIGHBOURS = 3;

/** The pair cosine of the last two images, and every image's nearest neighbours (the similar-images panel). */
function updateSimilarity(): void {
  const n = results.length;
  if (n >= 2) {
    const a = results[n - 2],
      b = results[n - 1];
    state.similarity = cosine(a.embedding, b.embedding);
    const el = $('similarity');
    el.dataset.value = String(state.similarity);
    el.textContent = `cosine(${a.name}, ${b.name}) = ${state.similarity.toFixed(4)}`;
  }
  state.neighbours = results.map((r, i) =>
    results
      .map((o, j) => [j, cosine(r.embedding, o.embedding)] as [number, number])
      .filter(([j]) => j !== i)
      .sort((x, y) => y[1] - x[1])
      .slice(0, NEIGHBOURS),
  );
  const panel = $('similar');
  panel.replaceChildren(
    ...results.map((r, i) => {
      const row = document.createElement('div');
      row.className = 'row';
      row.dataset.index = String(i);
      const q = document.createElement('figure');
      q.className = 'query';
      q.append(copyCanvas(r.thumb), caption(r.name));
      row.append(q);
      for (const [j, cs] of state.neighbours[i]) {
        const f = document.createElement('figure');
        f.dataset.index = String(j);
        f.dataset.cosine = String(cs);
        f.append(copyCanvas(results[j].thumb), caption(`${results[j].name} · ${cs.toFixed(3)}`));
        row.append(f);
      }
      return row;
    }),
  );
  $('similar-section').hidden = results.length < 2;
}

function copyCanvas(src: HTMLCanvasElement): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = src.width;
  c.height = src.height;
  c.getContext('2d')!.drawImage(src, 0, 0);
  return c;
}

function caption(text: string): HTMLElement {
  const f = document.createElement('figcaption');
  f.textContent = text;
  return f;
}

async function compareWithServer(): Promise<void> {
  if (!manifest || !state.model) return;
  state.busy++;
  try {
    for (const [i, r] of results.entries()) {
      const url = asset(
        `v1/embed?model=${encodeURIComponent(state.model.name)}&version=${encodeURIComponent(state.model.version)}`,
      );
      const t0 = performance.now();
      const resp = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': r.file.type || 'image/png' },
        body: r.file,
      });
      const body = (await resp.json()) as { embeddings?: number[][]; error?: { message: string } };
      if (!resp.ok || !body.embeddings) throw new Error(`/v1/embed: HTTP ${resp.status} ${body.error?.message ?? ''}`);
      r.serverCosine = state.images[i].serverCosine = cosine(r.embedding, body.embeddings[0]);
      const el = document.querySelector<HTMLElement>(`#image-${i} .server-cosine`)!;
      el.dataset.value = String(r.serverCosine);
      el.textContent = `browser vs server: cosine ${r.serverCosine.toFixed(5)} (server ${(performance.now() - t0).toFixed(0)} ms round trip)`;
    }
    setStatus(`compared ${results.length} image(s) with the server`);
  } catch (e) {
    setStatus(String((e as Error).message ?? e), true);
  } finally {
    state.busy--;
  }
}

async function addFiles(files: FileList | File[]): Promise<void> {
  await addImages(Array.from(files).map((f) => ({ file: f, name: f.name })));
}

let stream: MediaStream | undefined;
async function toggleCamera(): Promise<void> {
  const video = $('video') as HTMLVideoElement;
  if (stream) {
    const c = document.createElement('canvas');
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext('2d')!.drawImage(video, 0, 0);
    const blob = await new Promise<Blob | null>((res) => c.toBlob(res, 'image/png'));
    if (blob) await addImages([{ file: blob, name: `camera-${results.length + 1}.png` }]);
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    $('camera').textContent = 'Capture';
  } catch (e) {
    setStatus(`camera: ${(e as Error).message ?? e}`, true);
  }
}

/**
 * n random images through the worker while the main thread records the largest gap between its own
 * MessageChannel ticks: a main thread busy with inference would show a gap as long as the batch.
 */
async function benchBatch(
  n: number,
): Promise<{ n: number; ms: number; maxGapMs: number; ticks: number; idleMaxGapMs: number }> {
  const size = manifest!.input.size;
  const images = new Uint8Array(n * size * size * 3);
  for (let i = 0; i < images.length; i++) images[i] = (i * 2654435761) >>> 24;
  const r = await tickWhile(() => call(images, n).then((x) => x.ms));
  // Control: the same ticks while another worker only spins for as long: how late a busy CPU alone makes
  // them (on a loaded machine the page's threads wait for a core), with nothing of ours on the main thread.
  const spin = new Worker(
    URL.createObjectURL(
      new Blob(
        [
          'onmessage = (e) => { const end = performance.now() + e.data; while (performance.now() < end); postMessage(0); };',
        ],
        { type: 'text/javascript' },
      ),
    ),
  );
  const control = await tickWhile(
    () =>
      new Promise<number>((res) => {
        spin.onmessage = () => res(r.ms);
        spin.postMessage(r.ms);
      }),
  );
  spin.terminate();
  return { n, ms: r.ms, maxGapMs: r.maxGapMs, ticks: r.ticks, idleMaxGapMs: control.maxGapMs };
}

/** Runs `work` while a MessageChannel + setTimeout(1) loop on the main thread records its largest gap. */
async function tickWhile(work: () => Promise<number>): Promise<{ ms: number; maxGapMs: number; ticks: number }> {
  const ch = new MessageChannel();
  let last = performance.now();
  let maxGap = 0;
  let ticks = 0;
  let on = true;
  ch.port1.onmessage = () => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
    if (on) setTimeout(() => ch.port2.postMessage(0), 1);
  };
  ch.port2.postMessage(0);
  const t0 = performance.now();
  const inner = await work();
  const ms = performance.now() - t0;
  on = false;
  ch.port1.close();
  return { ms: Math.max(ms, inner), maxGapMs: maxGap, ticks };
}

function wire(): void {
  const input = $('file') as HTMLInputElement;
  input.addEventListener('change', () => {
    if (input.files) void addFiles(input.files).then(() => (input.value = ''));
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer?.files) void addFiles(e.dataTransfer.files);
  });
  $('compare').addEventListener('click', () => void compareWithServer());
  $('camera').addEventListener('click', () => void toggleCamera());
  if (!navigator.mediaDevices?.getUserMedia) ($('camera') as HTMLButtonElement).hidden = true;
  state.api = { benchBatch };
}

wire();
init().catch((e) => {
  state.error = String((e as Error)?.message ?? e);
  document.body.dataset.ready = 'error';
  setStatus(state.error, true);
  console.error(e);
});
