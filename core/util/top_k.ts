/**
 * The k largest entries of a plain array of scores, best first, ties broken by the lower index: the order
 * /v1/classify answers and the browser demo shows, so the two agree on equal probabilities.
 */
export interface Ranked {
  index: number;
  value: number;
}

export function topK(scores: ArrayLike<number>, k: number): Ranked[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return idx.slice(0, Math.max(0, Math.min(k, scores.length))).map((i) => ({ index: i, value: scores[i] }));
}
