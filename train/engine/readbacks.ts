/**
 * Counts reads of tensor data back from a backend (tensor.data(), dataSync(), arraySync(), array() all end
 * in the backend's read or readSync). On a GPU backend each one is a device-to-host copy and a wait for
 * the queued work, so a training step should do as few as it can; `cmc bench train-step` reports the
 * count per step and a test holds it.
 *
 *   const counter = countReadbacks();   // the active backend
 *   await step.run(x, y);
 *   counter.count;                      // reads since creation (or reset())
 *   counter.stop();                     // restores the backend's own methods
 *
 * A read made from inside another (wasm's and cpu's read() call readSync()) counts once. Reads made by
 * kernels while they run (wasm's Slice and GatherV2 read their inputs through readSync: on the wasm heap,
 * no copy) are not counted: a GPU backend's kernels do not read back.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface ReadbackCounter {
  /** Reads since the counter started or was last reset. */
  readonly count: number;
  reset(): void;
  stop(): void;
}

type Reader = { read(...args: unknown[]): Promise<unknown>; readSync(...args: unknown[]): unknown };

export function countReadbacks(backend: tf.KernelBackend = tf.backend()): ReadbackCounter {
  const b = backend as unknown as Partial<Reader>;
  if (Object.hasOwn(b, 'read') || Object.hasOwn(b, 'readSync'))
    throw new Error('countReadbacks: this backend is already being counted');
  const { read, readSync } = b as Reader;
  let count = 0;
  let depth = 0;
  const engineState = tf.engine().state as unknown as { kernelDepth: number };
  const enter = <T>(fn: () => T): T => {
    if (depth === 0 && engineState.kernelDepth === 0) count++;
    depth++;
    try {
      return fn(); // read() returns its promise after its synchronous part, where a nested readSync runs
    } finally {
      depth--;
    }
  };
  b.read = (...args: unknown[]) => enter(() => read.apply(b, args));
  b.readSync = (...args: unknown[]) => enter(() => readSync.apply(b, args));
  return {
    get count() {
      return count;
    },
    reset() {
      count = 0;
    },
    stop() {
      delete b.read;
      delete b.readSync;
    },
  };
}
