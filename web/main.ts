/**
 * The browser demo: an exported CMC model (models/<name>/ from `cmc export`, served by `cmc serve` at
 * /models/<name>/<file>) run with onnxruntime-web, WebGPU when the browser has an adapter, else wasm.
 *
 *   ?ep=wasm | webgpu     force an execution provider (default: webgpu when navigator.gpu gives an adapter)
 *   ?model=<name>         a model of /v1/models (default: the server's default)
 *   ?version=<v>          its version (default: the latest)
 *
 * Images are decoded by the browser, drawn on a canvas and turned into the model input by web/preprocess.ts,
 * which runs the server's own resize + centre crop (train/data/augment.ts valAugmentRgb). "Compare with
 * server" posts the same file to /v1/embed and shows the cosine similarity of the two embeddings.
 *
 * State for tests and the console: window.cmcDemo (see DemoState).
 */
import * as ort from 'onnxruntime-web';
import { cosine, preprocessImageData, topK } from './preprocess.ts';

interface ModelInfo {
  name: string;
  version: string;
  input: { name: string; size: number };
  classifier: boolean;
  classNames: string[];
  embeddingDim: number | null;
}

interface ImageResult {
  name: string;
  file: Blob;
  width: number;
  height: number;
  embedding: number[];
  top: { label: string; index: number; probability: number }[];
  ms: number;
  serverCosine?: number;
}

interface DemoState {
  ready: boolean;
  error?: string;
  provider?: string;
  model?: { name: string; version: string; file: string; size: number };
  loadMs?: number;
  images: ImageResult[];
  similarity?: number;
  busy: number;
}

const state: DemoState = { ready: false, images: [], busy: 0 };
(window as unknown as { cmcDemo: DemoState }).cmcDemo = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const ORT_PATH = new URL('ort/', location.href).href;

let session: ort.InferenceSession | undefined;
let model: ModelInfo | undefined;

function setStatus(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', error);
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
  return (await r.json()) as T;
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

async function pickModel(): Promise<ModelInfo> {
  const list = await getJson<{ default: string | null; models: ModelInfo[] }>('/v1/models');
  if (list.models.length === 0) throw new Error('the server has no model loaded: export one (cmc export --checkpoint ... --out models) and restart cmc serve');
  const want = params.get('model') ?? list.default ?? list.models[0].name;
  const candidates = list.models.filter((m) => m.name === want);
  if (candidates.length === 0) throw new Error(`no model ${JSON.stringify(want)} on this server`);
  const v = params.get('version');
  const m = v ? candidates.find((c) => c.version === v) : candidates.at(-1);
  if (!m) throw new Error(`model ${want} has no version ${v}`);
  return m;
}

async function init(): Promise<void> {
  ort.env.wasm.wasmPaths = ORT_PATH;
  ort.env.wasm.numThreads = 1; // no cross-origin isolation, hence no SharedArrayBuffer threads
  ort.env.logLevel = 'error';
  model = await pickModel();
  const file = model.classifier ? 'classifier.onnx' : 'encoder.onnx';
  const url = `/models/${encodeURIComponent(model.name)}/${file}?version=${encodeURIComponent(model.version)}`;
  setStatus(`downloading ${model.name} v${model.version} ${file}…`);
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  const bytes = new Uint8Array(await r.arrayBuffer());

  const forced = params.get('ep');
  const order: string[] = forced ? [forced] : (await webgpuAvailable()) ? ['webgpu', 'wasm'] : ['wasm'];
  let lastErr: unknown;
  for (const ep of order) {
    try {
      setStatus(`creating the ${ep} session…`);
      const t0 = performance.now();
      session = await ort.InferenceSession.create(bytes, { executionProviders: [ep], graphOptimizationLevel: 'all' });
      // One warm-up run (shader compilation, allocations) so the shown times are steady-state.
      const s = model.input.size;
      const warm = await session.run({ [model.input.name]: new ort.Tensor('uint8', new Uint8Array(s * s * 3), [1, s, s, 3]) });
      for (const t of Object.values(warm)) t.dispose?.();
      state.loadMs = performance.now() - t0;
      state.provider = ep;
      break;
    } catch (e) {
      lastErr = e;
      console.warn(`[cmc] ${ep} failed:`, e);
    }
  }
  if (!session) throw new Error(`no execution provider worked (${order.join(', ')}): ${String((lastErr as Error)?.message ?? lastErr)}`);
  state.model = { name: model.name, version: model.version, file, size: model.input.size };
  $('provider').textContent = state.provider!;
  $('model').textContent = `${model.name} v${model.version} (${file}, ${model.input.size}×${model.input.size}, ${(bytes.length / 1e6).toFixed(1)} MB)`;
  $('load-ms').textContent = `${state.loadMs!.toFixed(0)} ms`;
  setStatus('ready: drop images, pick files or use the camera');
  state.ready = true;
  document.body.dataset.ready = 'true';
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

async function addImage(file: Blob, name: string): Promise<void> {
  if (!session || !model) return;
  state.busy++;
  try {
    const img = await decode(file);
    const size = model.input.size;
    const rgb = preprocessImageData(img, size);
    const t0 = performance.now();
    const out = await session.run({ [model.input.name]: new ort.Tensor('uint8', rgb, [1, size, size, 3]) });
    const ms = performance.now() - t0;
    const embedding = Array.from((await out.embedding.getData()) as Float32Array);
    let top: ImageResult['top'] = [];
    if (out.probabilities) {
      const p = (await out.probabilities.getData()) as Float32Array;
      top = topK(p, 5).map(({ index, value }) => ({ label: model!.classNames[index] ?? String(index), index, probability: value }));
    }
    for (const t of Object.values(out)) t.dispose?.();
    const res: ImageResult = { name, file, width: img.width, height: img.height, embedding, top, ms };
    state.images.push(res);
    render(res, rgb, size);
    updateSimilarity();
  } catch (e) {
    setStatus(`${name}: ${(e as Error).message ?? e}`, true);
    console.error(e);
  } finally {
    state.busy--;
  }
}

function render(r: ImageResult, rgb: Uint8Array, size: number): void {
  const i = state.images.indexOf(r);
  const card = document.createElement('div');
  card.className = 'card';
  card.id = `image-${i}`;
  const c = document.createElement('canvas');
  c.width = c.height = size;
  const id = new ImageData(size, size);
  for (let k = 0; k < size * size; k++) {
    id.data[4 * k] = rgb[3 * k];
    id.data[4 * k + 1] = rgb[3 * k + 1];
    id.data[4 * k + 2] = rgb[3 * k + 2];
    id.data[4 * k + 3] = 255;
  }
  c.getContext('2d')!.putImageData(id, 0, 0);
  const title = document.createElement('div');
  title.className = 'title';
  title.textContent = `${r.name} (${r.width}×${r.height}) · ${r.ms.toFixed(1)} ms on ${state.provider}`;
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

function updateSimilarity(): void {
  const n = state.images.length;
  if (n < 2) return;
  const a = state.images[n - 2], b = state.images[n - 1];
  state.similarity = cosine(a.embedding, b.embedding);
  const el = $('similarity');
  el.dataset.value = String(state.similarity);
  el.textContent = `cosine(${a.name}, ${b.name}) = ${state.similarity.toFixed(4)}`;
}

async function compareWithServer(): Promise<void> {
  if (!model) return;
  state.busy++;
  try {
    for (const [i, r] of state.images.entries()) {
      const url = `/v1/embed?model=${encodeURIComponent(model.name)}&version=${encodeURIComponent(model.version)}`;
      const t0 = performance.now();
      const resp = await fetch(url, { method: 'POST', headers: { 'content-type': r.file.type || 'image/png' }, body: r.file });
      const body = (await resp.json()) as { embeddings?: number[][]; error?: { message: string } };
      if (!resp.ok || !body.embeddings) throw new Error(`/v1/embed: HTTP ${resp.status} ${body.error?.message ?? ''}`);
      r.serverCosine = cosine(r.embedding, body.embeddings[0]);
      const el = document.querySelector<HTMLElement>(`#image-${i} .server-cosine`)!;
      el.dataset.value = String(r.serverCosine);
      el.textContent = `browser vs server: cosine ${r.serverCosine.toFixed(5)} (server ${(performance.now() - t0).toFixed(0)} ms round trip)`;
    }
    setStatus(`compared ${state.images.length} image(s) with the server`);
  } catch (e) {
    setStatus(String((e as Error).message ?? e), true);
  } finally {
    state.busy--;
  }
}

async function addFiles(files: FileList | File[]): Promise<void> {
  for (const f of Array.from(files)) if (f.type.startsWith('image/') || /\.(png|jpe?g|webp)$/i.test(f.name)) await addImage(f, f.name);
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
    if (blob) await addImage(blob, `camera-${new Date().toISOString().slice(11, 19)}.png`);
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
}

wire();
init().catch((e) => {
  state.error = String((e as Error)?.message ?? e);
  document.body.dataset.ready = 'error';
  setStatus(state.error, true);
  console.error(e);
});
