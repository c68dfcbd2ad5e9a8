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
 * Inference runs in a Web Worker (worker.ts, driven by inference.ts); the main thread decodes images
 * (createImageBitmap + canvas), runs the server's resize + centre crop (preprocess.ts) and draws
 * (render.ts). Model files are cached under their sha256 (model_cache.ts): a second visit and an offline
 * one load them from the cache. The service worker (sw.ts) keeps the page's own files, so it also opens
 * offline. This file starts it all and handles the page's buttons.
 *
 * State for tests and the console: window.cmcDemo (state.ts).
 */
import { topK } from '../core/util/top_k.ts';
import { benchBatch } from './bench.ts';
import { toggleCamera } from './camera.ts';
import { $, base64, decode, setStatus, thumbnail } from './dom.ts';
import { InferenceWorker } from './inference.ts';
import { fetchManifest } from './model_cache.ts';
import { chooseRuntime, filesFor, modelName, webgpuAvailable } from './model_choice.ts';
import { cosine, preprocessImageData } from './preprocess.ts';
import type { Backend, LoadRequest } from './protocol.ts';
import { renderCard, renderOptions, renderSimilarity } from './render.ts';
import { results, state, type ImageResult, type Manifest } from './state.ts';

const params = new URLSearchParams(location.search);
const asset = (p: string) => new URL(p, location.href).href;

let worker: InferenceWorker | undefined;
let manifest: Manifest | undefined;
let serverApi = false;
let warmTotalMs = 0;
let warmImages = 0;

async function init(): Promise<void> {
  const found = await modelName(params, asset);
  const name = found.name;
  serverApi = found.serverApi;
  const base = asset(`models/${encodeURIComponent(name)}/`);
  setStatus(`reading ${name}'s manifest…`);
  const mf = await fetchManifest(`${base}manifest.json`);
  const m = mf.manifest as Manifest;
  state.manifestSource = mf.source;
  if (!m?.files || !m.input) throw new Error(`models/${name}/manifest.json is not a cmc export manifest`);
  const backends: Backend[] = (await webgpuAvailable()) ? ['webgpu', 'wasm'] : ['wasm'];
  const { role, runtime, backend, options, notice } = chooseRuntime(name, m, params, backends);
  state.options = options;
  if (notice) state.notice = notice;
  renderOptions(runtime, backend);

  const outputs = role === 'classifier' ? ['probabilities', 'embedding'] : ['embedding'];
  const files = filesFor(m, runtime, role);
  setStatus(`loading ${name} v${m.version} with ${runtime} (${backend}) in a worker…`);
  const req: LoadRequest = {
    type: 'load',
    runtime,
    backend,
    modelBase: base,
    files,
    inputName: m.input.name,
    size: m.input.size,
    outputs,
    ortPath: asset('ort/'),
    tfjsPath: asset('tfjs/'),
  };
  const { worker: w, loaded: l } = await InferenceWorker.load(asset('worker.js'), req);
  worker = w;
  manifest = m;
  Object.assign(state, { runtime, backend, loadMs: l.loadMs, filesMs: l.filesMs, sources: l.sources });
  state.model = { name, version: m.version, files: files.map((f) => f.path), size: m.input.size, bytes: l.bytes };
  const fromCache = Object.values(l.sources).filter((s) => s === 'cache').length;
  $('model').textContent =
    `${name} v${m.version} (${role}, ${m.input.size}×${m.input.size}, ${(l.bytes / 1e6).toFixed(1)} MB in ${files.length} file${files.length > 1 ? 's' : ''})`;
  $('runtime-used').textContent = `${runtime} · ${backend}`;
  $('cold-ms').textContent =
    `${l.loadMs.toFixed(0)} ms (files ${l.filesMs.toFixed(0)} ms, ${fromCache}/${files.length} from cache)`;
  ($('compare') as HTMLButtonElement).hidden = !serverApi;
  setStatus(state.notice ? `ready · ${state.notice}` : 'ready: drop images, pick files or use the camera');
  state.ready = true;
  document.body.dataset.ready = 'true';
}

/** Decode and preprocess every file (undecodable ones are reported and skipped), then one batch in the worker. */
async function addImages(items: { file: Blob; name: string }[]): Promise<void> {
  if (!worker || !manifest) return;
  const m = manifest;
  state.busy++;
  try {
    const size = m.input.size;
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
    const r = await worker.run(batch, ok.length);
    warmTotalMs += r.ms;
    warmImages += ok.length;
    state.warmMsPerImage = warmTotalMs / warmImages;
    $('warm-ms').textContent =
      `${state.warmMsPerImage.toFixed(1)} ms per image (last batch: ${ok.length} in ${r.ms.toFixed(0)} ms)`;
    const e = m.embeddingDim || r.outputs.embedding.length / ok.length;
    const c = m.classNames.length;
    ok.forEach((o, i) => {
      const embedding = Array.from(r.outputs.embedding.subarray(i * e, (i + 1) * e));
      const top = r.outputs.probabilities
        ? topK(r.outputs.probabilities.subarray(i * c, (i + 1) * c), 5).map(({ index, value }) => ({
            label: m.classNames[index] ?? String(index),
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
      renderCard(res);
    });
    renderSimilarity();
  } catch (e) {
    setStatus(String((e as Error).message ?? e), true);
    console.error(e);
  } finally {
    state.busy--;
  }
}

/** Each image through the server's /v1/embed: the cosine of the browser's and the server's embedding. */
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
  $('camera').addEventListener(
    'click',
    () => void toggleCamera((file) => addImages([{ file, name: `camera-${results.length + 1}.png` }])),
  );
  if (!navigator.mediaDevices?.getUserMedia) ($('camera') as HTMLButtonElement).hidden = true;
  state.api = { benchBatch: (n) => benchBatch((images, k) => worker!.run(images, k), manifest!.input.size, n) };
}

/**
 * The app-shell service worker, next to the page (its scope: the page's folder). Only over http(s): a
 * file:// page has none, and navigator.serviceWorker is absent outside secure contexts (localhost counts).
 */
function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator) || !/^https?:$/.test(location.protocol)) {
    state.serviceWorker = 'unsupported';
    return;
  }
  navigator.serviceWorker.register(asset('sw.js')).then(
    (r) => (state.serviceWorker = `registered ${r.scope}`),
    (e: unknown) => {
      // The page works without it (just not offline).
      state.serviceWorker = `failed: ${(e as Error)?.message ?? e}`;
      console.warn('service worker:', e);
    },
  );
}

wire();
registerServiceWorker();
init().catch((e) => {
  state.error = String((e as Error)?.message ?? e);
  document.body.dataset.ready = 'error';
  setStatus(state.error, true);
  console.error(e);
});
