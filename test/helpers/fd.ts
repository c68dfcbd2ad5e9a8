/**
 * Finite-difference gradient check, backend-agnostic: compares tf.variableGrads of a scalar loss with
 * central differences (L(w + e) - L(w - e)) / (2e) on selected entries of selected variables. Works on
 * any tfjs backend (cpu, wasm, webgpu): only variable assignment and scalar reads are used.
 *
 *   const r = fdCheck({ loss: () => myLoss(), vars: [{ name: 'fc.weight', variable: v }], rng: new Rng(1) });
 *   assert.ok(r.ok, r.report);
 *
 * With float32 use eps ~1e-3 and rtol ~2e-2: at eps 1e-2 ReLU/maxpool kinks crossed by the step already
 * bias conv-weight differences by several per cent; much below 1e-3 float32 rounding of the loss takes
 * over. Entries are chosen among `candidates` random ones by the largest |analytic gradient| so the
 * comparison is not dominated by rounding noise.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../core/util/rng.ts';

export interface FdCheckOptions {
  /** Scalar loss of the current variable values; must be deterministic (no dropout, fixed inputs). */
  loss: () => tf.Scalar;
  /** Variables to probe; `name` is only for the report. */
  vars: { name: string; variable: tf.Variable }[];
  rng: Rng;
  /** Entries checked per variable (default 2). */
  samplesPerVar?: number;
  /** Random candidates per variable; the ones with the largest |analytic| are checked (default 32). */
  candidates?: number;
  /** Absolute step added to the entry (default 1e-3). */
  eps?: number;
  /**
   * Pass if |analytic - numeric| <= rtol * max(|analytic|, |numeric|) + atol (defaults 2e-2, 1e-3); atol
   * is the floor for gradients that are truly ~0 (e.g. a bias followed by BatchNorm), where the numeric
   * value is float32 rounding of the loss divided by 2 eps.
   */
  rtol?: number;
  atol?: number;
}

export interface FdEntry {
  name: string;
  index: number;
  analytic: number;
  numeric: number;
  relErr: number;
  ok: boolean;
}

export interface FdResult {
  ok: boolean;
  entries: FdEntry[];
  maxRelErr: number;
  /** One line per entry, for assertion messages. */
  report: string;
}

/** Asynchronous reads throughout: WebGPU in Node has no synchronous readback. */
async function lossValue(loss: () => tf.Scalar): Promise<number> {
  const l = tf.tidy(loss);
  const v = (await l.data())[0];
  l.dispose();
  return v;
}

export async function fdCheck(opts: FdCheckOptions): Promise<FdResult> {
  const { loss, vars, rng } = opts;
  const samples = opts.samplesPerVar ?? 2;
  const candidates = opts.candidates ?? 32;
  const eps = opts.eps ?? 1e-3;
  const rtol = opts.rtol ?? 2e-2;
  const atol = opts.atol ?? 1e-3;

  // Analytic gradients (copied out, then freed).
  const { value, grads } = tf.variableGrads(
    loss,
    vars.map((v) => v.variable),
  );
  const analytic: Float32Array[] = [];
  for (const v of vars) {
    const g = grads[v.variable.name];
    if (!g) throw new Error(`fdCheck: no gradient for ${v.name}`);
    analytic.push(Float32Array.from((await g.data()) as Float32Array));
  }
  tf.dispose([value, ...Object.values(grads)]);

  const entries: FdEntry[] = [];
  for (const [vi, { name, variable }] of vars.entries()) {
    const g = analytic[vi];
    const cand = new Set<number>();
    const want = Math.min(candidates, variable.size);
    while (cand.size < want) cand.add(rng.int(variable.size));
    const picked = [...cand].sort((a, b) => Math.abs(g[b]) - Math.abs(g[a])).slice(0, samples);

    const original = Float32Array.from((await variable.data()) as Float32Array);
    const setEntry = (index: number, value: number) => {
      const data = original.slice();
      data[index] = value;
      tf.tidy(() => variable.assign(tf.tensor(data, variable.shape, 'float32')));
    };
    for (const index of picked) {
      const w = original[index];
      // The step actually taken in float32.
      const wp = Math.fround(w + eps);
      const wm = Math.fround(w - eps);
      setEntry(index, wp);
      const lp = await lossValue(loss);
      setEntry(index, wm);
      const lm = await lossValue(loss);
      const numeric = (lp - lm) / (wp - wm);
      const a = g[index];
      const err = Math.abs(a - numeric);
      const scale = Math.max(Math.abs(a), Math.abs(numeric));
      entries.push({
        name,
        index,
        analytic: a,
        numeric,
        relErr: scale > 0 ? err / scale : 0,
        ok: err <= rtol * scale + atol,
      });
    }
    tf.tidy(() => variable.assign(tf.tensor(original, variable.shape, 'float32')));
  }

  const report = entries
    .map(
      (e) =>
        `${e.ok ? 'ok  ' : 'FAIL'} ${e.name}[${e.index}] analytic ${e.analytic.toExponential(4)} numeric ${e.numeric.toExponential(4)} rel ${e.relErr.toExponential(2)}`,
    )
    .join('\n');
  return { ok: entries.every((e) => e.ok), entries, maxRelErr: Math.max(0, ...entries.map((e) => e.relErr)), report };
}
