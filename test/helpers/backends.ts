/**
 * The backends the tests run on, and running one test body on each, compared with the `cpu` reference.
 *
 * CMC_TEST_BACKENDS picks the backends under test, comma-separated; default "wasm,native,webgpu" (every
 * backend besides the cpu reference). Kernel tests compare each with cpu (describeBackends, onBoth); the
 * golden-value tests run on cpu and each of them (GOLDEN_BACKENDS). A backend that cannot start here (no
 * WebGPU adapter, the native addon not built) is reported as skipped with the reason, never silently passed.
 */
import { describe } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../train/engine/backend.ts';

export const BACKENDS_UNDER_TEST = (process.env.CMC_TEST_BACKENDS ?? 'wasm,native,webgpu')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean) as BackendName[];

/** Where the golden-value tests run: the cpu reference first, then the backends under test. */
export const GOLDEN_BACKENDS: BackendName[] = ['cpu', ...BACKENDS_UNDER_TEST.filter((b) => b !== 'cpu')];

const availability = new Map<string, string | null>();

/**
 * null when the backend works here, else why not. `readsSync`: the test reads tensors synchronously
 * (dataSync), which tfjs-backend-webgpu cannot do in Node.
 */
export async function unavailableReason(name: BackendName, o: { readsSync?: boolean } = {}): Promise<string | null> {
  if (o.readsSync && name === 'webgpu') return 'the test reads tensors with dataSync, which webgpu cannot do in Node';
  if (!availability.has(name)) {
    try {
      await initBackend(name, { quiet: true });
      availability.set(name, null);
    } catch (e) {
      availability.set(name, (e as Error).message.split('\n')[0]);
    }
  }
  return availability.get(name)!;
}

/** Run `fn` on the reference cpu backend and on `name`; returns both results as Float32Arrays. */
export async function onBoth(
  name: BackendName,
  fn: () => tf.Tensor | tf.Tensor[],
): Promise<{ ref: Float32Array[]; got: Float32Array[] }> {
  const run = async (b: BackendName) => {
    await initBackend(b, { quiet: true });
    const out = tf.tidy(fn);
    const list = Array.isArray(out) ? out : [out];
    const data = await Promise.all(list.map(async (t) => new Float32Array(await t.data())));
    const shapes = list.map((t) => t.shape.join('x'));
    tf.dispose(list);
    return { data, shapes };
  };
  const ref = await run('cpu');
  const got = await run(name);
  ref.shapes.forEach((s, i) => {
    if (got.shapes[i] !== s) throw new Error(`output ${i}: shape ${got.shapes[i]} on ${name} but ${s} on cpu`);
  });
  return { ref: ref.data, got: got.data };
}

/** Max |a-b| relative to the reference's scale: max|a-b| / max(1e-12, max|ref|). */
export function scaledError(ref: Float32Array, got: Float32Array): number {
  if (ref.length !== got.length) throw new Error(`length mismatch ${ref.length} vs ${got.length}`);
  let err = 0;
  let scale = 1e-12;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ref[i] - got[i]);
    if (!(d <= err)) err = Number.isNaN(d) ? Infinity : Math.max(err, d);
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return err / scale;
}

/** describe() once per backend under test, with a skip message when it cannot run here. */
export function describeBackends(title: string, body: (name: BackendName) => void): void {
  for (const name of BACKENDS_UNDER_TEST) {
    describe(`${title} [${name} vs cpu]`, () => body(name));
  }
}

/** Deterministic pseudo-random tensor (tests must not depend on tfjs's global random state). */
export function seededTensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  let s = seed >>> 0 || 1;
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    v[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return tf.tensor(v, shape);
}
