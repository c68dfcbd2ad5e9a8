/**
 * Worker thread body of WorkerSession (serve/worker_session.ts): one onnxruntime session, off the event loop.
 * onnxruntime-node's `run` is synchronous inside a setImmediate (node_modules/onnxruntime-node/dist/backend.js),
 * so on the main thread a batch of 32 holds the event loop for its whole run (~50 ms here), during which no
 * request is read, no decoded image is taken in and no answer is sent. Messages:
 *   { init: { bytes, provider, threads, spinning, what } } → { ready, provider } | { initError }
 *   { id, inputName, data, dims, outputNames } → { id, outputs: { name: Float32Array } } | { id, error }
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { createSession, type Provider } from './providers.ts';

interface Init {
  bytes: Uint8Array;
  provider: Provider;
  threads?: number;
  spinning?: boolean;
  what: string;
}
interface Run {
  id: number;
  inputName: string;
  data: Uint8Array;
  dims: number[];
  outputNames: string[];
}

let session: ort.InferenceSession | null = null;
const port = parentPort!;

port.on('message', async (m: { init?: Init; release?: true } & Partial<Run>) => {
  if (m.init) {
    try {
      const notes: string[] = [];
      const r = await createSession(m.init.bytes, m.init.provider, {
        threads: m.init.threads,
        spinning: m.init.spinning,
        what: m.init.what,
        log: (l) => notes.push(l),
      });
      session = r.session;
      port.postMessage({ ready: true, provider: r.provider, notes });
    } catch (e) {
      port.postMessage({ initError: (e as Error).message });
    }
    return;
  }
  if (m.release) {
    await session?.release().catch(() => {});
    session = null;
    port.postMessage({ released: true });
    return;
  }
  try {
    const out = await session!.run({ [m.inputName!]: new ort.Tensor('uint8', m.data!, m.dims!) }, m.outputNames!);
    const outputs: Record<string, Float32Array> = {};
    for (const n of m.outputNames!) outputs[n] = out[n].data as Float32Array;
    port.postMessage(
      { id: m.id, outputs },
      Object.values(outputs).map((d) => d.buffer as ArrayBuffer),
    );
  } catch (e) {
    port.postMessage({ id: m.id, error: (e as Error).message });
  }
});
