/**
 * The inference worker: loads one model with one runtime and runs batches, so the page's main thread only
 * decodes images and draws. Runtimes: onnxruntime-web (webgpu, wasm) on the ONNX file, or tfjs (webgpu,
 * wasm backends) with tfjs-converter's loadGraphModel on the tfjs graph model. Model files come through
 * model_cache.ts (Cache API keyed by sha256, verified).
 *
 * Protocol (postMessage; see WorkerRequest / WorkerReply in protocol.ts).
 */
import * as ort from 'onnxruntime-web';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import { fetchVerified, type FileSource } from './model_cache.ts';
import type { LoadRequest, WorkerReply, WorkerRequest } from './protocol.ts';

interface Runner {
  run(images: Uint8Array, n: number): Promise<Record<string, Float32Array>>;
}

let runner: Runner | undefined;
let size = 0;

const post = (m: WorkerReply, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);
const log = (line: string) => post({ type: 'log', line });

async function files(
  req: LoadRequest,
): Promise<{ bytes: Map<string, Uint8Array>; sources: Record<string, FileSource> }> {
  const bytes = new Map<string, Uint8Array>();
  const sources: Record<string, FileSource> = {};
  await Promise.all(
    req.files.map(async (f) => {
      const got = await fetchVerified(new URL(f.path, req.modelBase).href, f.sha256, log);
      bytes.set(f.path, got.bytes);
      sources[f.path] = got.source;
    }),
  );
  return { bytes, sources };
}

async function loadOrt(req: LoadRequest, bytes: Map<string, Uint8Array>): Promise<Runner> {
  ort.env.wasm.wasmPaths = req.ortPath;
  ort.env.wasm.numThreads = 1; // no cross-origin isolation on a plain static host: no SharedArrayBuffer
  ort.env.logLevel = 'error';
  const session = await ort.InferenceSession.create(bytes.get(req.files[0].path)!, {
    executionProviders: [req.backend],
    graphOptimizationLevel: 'all',
  });
  return {
    async run(images, n) {
      const out = await session.run({ [req.inputName]: new ort.Tensor('uint8', images, [n, size, size, 3]) });
      const res: Record<string, Float32Array> = {};
      for (const name of req.outputs) res[name] = new Float32Array((await out[name].getData()) as Float32Array);
      for (const t of Object.values(out)) t.dispose?.();
      return res;
    },
  };
}

async function loadTfjs(req: LoadRequest, bytes: Map<string, Uint8Array>): Promise<Runner> {
  setWasmPaths(req.tfjsPath);
  if (!(await tf.setBackend(req.backend)) || tf.getBackend() !== req.backend)
    throw new Error(`the tfjs ${req.backend} backend cannot start here`);
  await tf.ready();
  const jsonPath = req.files.find((f) => f.path.endsWith('model.json'))!.path;
  const dir = jsonPath.slice(0, jsonPath.lastIndexOf('/') + 1);
  const json = JSON.parse(new TextDecoder().decode(bytes.get(jsonPath))) as tf.io.ModelJSON;
  const handler: tf.io.IOHandler = {
    load: () =>
      tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((g) => g.weights);
        const parts = manifest.flatMap((g) => g.paths.map((p) => bytes.get(dir + p)));
        if (parts.some((p) => !p)) throw new Error(`${jsonPath}: a weight shard is not listed in manifest.json`);
        const total = parts.reduce((s, p) => s + p!.length, 0);
        const all = new Uint8Array(total);
        let at = 0;
        for (const p of parts) {
          all.set(p!, at);
          at += p!.length;
        }
        return [specs, all.buffer];
      }),
  };
  const model: GraphModel = await loadGraphModel(handler);
  return {
    async run(images, n) {
      // tfjs has no uint8: DT_UINT8 inputs are fed as int32 (as tf.browser.fromPixels gives them).
      const x = tf.tensor(Int32Array.from(images), [n, size, size, 3], 'int32');
      try {
        const outs = model.execute({ [req.inputName]: x }, req.outputs); // no control flow: the synchronous executor
        const list = Array.isArray(outs) ? outs : [outs];
        const res: Record<string, Float32Array> = {};
        for (let k = 0; k < req.outputs.length; k++)
          res[req.outputs[k]] = new Float32Array((await list[k].data()) as Float32Array);
        tf.dispose(list);
        return res;
      } finally {
        x.dispose();
      }
    },
  };
}

async function load(req: LoadRequest): Promise<void> {
  const t0 = performance.now();
  size = req.size;
  const { bytes, sources } = await files(req);
  const tFiles = performance.now();
  runner = req.runtime === 'onnxruntime' ? await loadOrt(req, bytes) : await loadTfjs(req, bytes);
  // The first run compiles shaders / allocates: part of the cold load.
  await runner.run(new Uint8Array(size * size * 3), 1);
  const loadMs = performance.now() - t0;
  post({
    type: 'loaded',
    runtime: req.runtime,
    backend: req.backend,
    loadMs,
    filesMs: tFiles - t0,
    sources,
    bytes: [...bytes.values()].reduce((s, b) => s + b.length, 0),
  });
}

self.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const m = e.data;
  try {
    if (m.type === 'load') await load(m);
    else if (m.type === 'run') {
      if (!runner) throw new Error('no model loaded');
      const t0 = performance.now();
      const outputs = await runner.run(m.images, m.n);
      const ms = performance.now() - t0;
      post(
        { type: 'result', id: m.id, outputs, ms },
        Object.values(outputs).map((a) => a.buffer as ArrayBuffer),
      );
    }
  } catch (err) {
    post({ type: 'error', id: m.type === 'run' ? m.id : undefined, message: String((err as Error)?.message ?? err) });
  }
};
