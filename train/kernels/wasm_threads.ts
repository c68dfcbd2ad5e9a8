/**
 * Multi-threaded XNNPACK for tfjs-backend-wasm under Node.
 *
 * tfjs ships a pthread build (tfjs-backend-wasm-threaded-simd.wasm) but never uses it in Node: its
 * WASM_HAS_MULTITHREAD_SUPPORT flag answers false there, and even when forced it hands emscripten its
 * pthread worker script and main script as blob: URLs, which Node's worker_threads cannot load. This
 * module makes it work without forking tfjs:
 *
 *  - writes the worker script (tfjs embeds it as a string) to a file in the OS temp dir, patched so each
 *    worker loads the threaded emscripten glue from its real path in node_modules instead of a blob;
 *  - while the backend initialises, answers `URL.createObjectURL` for that worker blob with the file path;
 *  - sets the flag and tfjs's thread count, so `init_with_threads_count(n)` builds an n-thread pthreadpool
 *    (tfjs caps it at half the logical cores, so `os.cpus()` reports 2n entries while the module starts).
 *
 * Call before `tf.setBackend('wasm')`; `finishWasmThreads()` after it restores `URL.createObjectURL`.
 */
import * as tf from '@tensorflow/tfjs-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { writeFileAtomic } from '../../core/util/atomic_write.ts';

const require = createRequire(import.meta.url);

let restore: (() => void) | null = null;

/** Threads asked for: CMC_WASM_THREADS if set (1 = the single-threaded build), else the available cores, at most 8. */
export function wasmThreadsWanted(): number {
  const env = Number.parseInt(process.env.CMC_WASM_THREADS ?? '', 10);
  const n = Number.isFinite(env) && env > 0 ? env : os.availableParallelism();
  return Math.max(1, Math.min(8, n)); // tfjs pre-creates 8 pthread workers
}

/** Prepare the threaded build with `threads` XNNPACK threads; returns false (single-threaded) if not possible. */
export function prepareWasmThreads(threads: number, wasm: { setThreadsCount(n: number): void }): boolean {
  if (threads <= 1 || typeof SharedArrayBuffer === 'undefined') return false;
  let pkgDir: string;
  let workerSrc: string;
  try {
    pkgDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    workerSrc = (
      require(path.join(pkgDir, 'wasm-out/tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string }
    ).wasmWorkerContents;
  } catch {
    return false;
  }
  const mainJs = path.join(pkgDir, 'wasm-out/tfjs-backend-wasm-threaded-simd.js');
  const load = 'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}';
  if (!workerSrc.includes(load) || !fs.existsSync(mainJs)) return false;
  // tfjs escapes newlines the same way before making its blob (the template literal unescaped them).
  const script = workerSrc.replace(/\n/g, '\\n').replace(load, `if(true){importScripts(${JSON.stringify(mainJs)})}`);
  const file = path.join(os.tmpdir(), `cmc-tfjs-wasm-worker-${tf.version_core}-${hash(script)}.cjs`);
  try {
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== script) writeFileAtomic(file, script);
  } catch {
    return false;
  }
  const orig = URL.createObjectURL;
  URL.createObjectURL = (obj: Blob) =>
    obj instanceof Blob && obj.type === 'application/javascript' ? file : orig.call(URL, obj);
  // tfjs caps the pool at emscripten_num_logical_cores() / 2 (it assumes hyper-threading), which Node answers
  // with os.cpus().length when the module starts: report at least 2 * threads while it does.
  const origCpus = os.cpus;
  os.cpus = () => {
    const c = origCpus.call(os);
    while (c.length > 0 && c.length < 2 * threads) c.push(c[0]);
    return c;
  };
  restore = () => {
    URL.createObjectURL = orig;
    os.cpus = origCpus;
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  return true;
}

/**
 * Undo the temporary hooks (call once the backend is initialised, or failed). Given the wasm backend, also
 * unref its pool threads: emscripten refs a worker while it runs a pthread, and XNNPACK's pool threads run
 * for the life of the process, so Node would otherwise never exit on its own.
 */
export function finishWasmThreads(backend?: unknown): void {
  restore?.();
  restore = null;
  const pthread = (backend as { wasm?: { PThread?: { runningWorkers?: { unref?: () => void }[] } } } | undefined)?.wasm
    ?.PThread;
  for (const w of pthread?.runningWorkers ?? []) w.unref?.();
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}
