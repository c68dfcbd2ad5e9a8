/** onnxruntime-node helpers for the export tests. */
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';

/** Run a model (bytes) once with all graph optimisations; outputs as Float32Arrays. */
export async function ortRun(
  bytes: Uint8Array,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' });
  try {
    const r = await s.run(feeds);
    const out: Record<string, Float32Array> = {};
    for (const [k, t] of Object.entries(r)) out[k] = t.data as Float32Array;
    return out;
  } finally {
    await s.release();
  }
}

/** Largest |a-b|; a NaN anywhere makes it Infinity, so a tolerance check can never pass on NaNs. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
