/**
 * Runs that differ only by their seed, as `cmc report` aggregates them. The convention: a method label that
 * ends in `_seed<S>` is seed S of the method before it (`cmc_seed0`, `cmc_seed1`, ... are method `cmc`; the
 * supervised baseline's `supervised_seed<S>.json` is `supervised`). eval_protocol.sh writes such files with
 * `--name cmc_seed<S>`. Two or more seeds of a method make one row of mean ± sample standard deviation;
 * a method with a single seed, or without the suffix, stays as it is.
 *
 *   groupSeeds(['cmc_seed0', 'cmc_seed1', 'random'], (m) => m)
 *   // → [{ method: 'cmc', seeds: [0, 1], members: [...] }, { method: 'random', seeds: [], members: ['random'] }]
 */

/** `cmc_seed3` → { base: 'cmc', seed: 3 }; null without the suffix. */
export function seedOf(method: string): { base: string; seed: number } | null {
  const m = /^(.+)_seed(\d+)$/.exec(method);
  return m ? { base: m[1], seed: Number(m[2]) } : null;
}

export interface SeedGroup<T> {
  /** The method without `_seed<S>` (for a group of two or more seeds), else the member's own label. */
  method: string;
  /** The seeds, ascending (empty for a single run shown as it is). */
  seeds: number[];
  /** The runs, in the order of `seeds`. */
  members: T[];
}

/**
 * Groups items by method: the seeds of one method together when there are at least two of them, every other
 * item alone under its own label. Groups keep the order of their first member.
 */
export function groupSeeds<T>(items: readonly T[], label: (t: T) => string): SeedGroup<T>[] {
  const seeded = new Map<string, { seed: number; item: T }[]>();
  for (const t of items) {
    const s = seedOf(label(t));
    if (s) seeded.set(s.base, [...(seeded.get(s.base) ?? []), { seed: s.seed, item: t }]);
  }
  const out: SeedGroup<T>[] = [];
  const done = new Set<string>();
  for (const t of items) {
    const s = seedOf(label(t));
    const runs = s ? seeded.get(s.base)! : [];
    if (!s || runs.length < 2) {
      out.push({ method: label(t), seeds: [], members: [t] });
      continue;
    }
    if (done.has(s.base)) continue;
    done.add(s.base);
    const sorted = [...runs].sort((a, b) => a.seed - b.seed);
    out.push({ method: s.base, seeds: sorted.map((r) => r.seed), members: sorted.map((r) => r.item) });
  }
  return out;
}

/** Mean and sample standard deviation (n - 1; NaN for n = 1) of the finite numbers among `xs`. */
export function meanStd(xs: readonly (number | undefined)[]): { mean: number; std: number; n: number } {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  const n = v.length;
  if (n === 0) return { mean: NaN, std: NaN, n };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : NaN;
  return { mean, std, n };
}

/** A fraction's mean ± std in percent, e.g. '69.25 ± 0.84'; with `of`, '(n=2)' when fewer than `of` runs had it. */
export function pctMeanStd(s: { mean: number; std: number; n: number }, of?: number): string {
  if (s.n === 0) return '—';
  const body = Number.isFinite(s.std)
    ? `${(100 * s.mean).toFixed(2)} ± ${(100 * s.std).toFixed(2)}`
    : (100 * s.mean).toFixed(2);
  return of !== undefined && s.n < of ? `${body} (n=${s.n})` : body;
}
