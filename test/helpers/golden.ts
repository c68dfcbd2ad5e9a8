/**
 * Shared helpers for the golden-value tests: loads test/fixtures/golden.json (a copy of the shared golden
 * file, so the suite runs without /work/shared) and compares float32 results with float64 references. The
 * backends they run on: GOLDEN_BACKENDS of backends.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Golden = any;

export function loadGolden(): Golden {
  return JSON.parse(fs.readFileSync(new URL('../fixtures/golden.json', import.meta.url), 'utf8'));
}

export function flat(x: unknown): number[] {
  return Array.isArray(x) ? (x as unknown[]).flatMap(flat) : [x as number];
}

/**
 * Golden meta's error definition: relative error for out_*, loss_*, Z_*, probabilities ('rel');
 * absolute error for unit-scale quantities (grad_*, memory_*, scores, logits: 'unit', which becomes
 * relative above magnitude 1).
 */
export function assertClose(
  actual: ArrayLike<number> | number,
  expected: unknown,
  kind: 'rel' | 'unit',
  what: string,
  tol = 1e-5,
): void {
  const a = typeof actual === 'number' ? [actual] : Array.from(actual);
  const e = flat(expected);
  assert.equal(a.length, e.length, `${what}: length ${a.length} vs ${e.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const scale = kind === 'rel' ? Math.abs(e[i]) : Math.max(Math.abs(e[i]), 1);
    const err = Math.abs(a[i] - e[i]) / (scale || 1e-300);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(
    worst <= tol,
    `${what}: worst ${kind} error ${worst.toExponential(3)} at ${at} (got ${a[at]}, want ${e[at]})`,
  );
}
