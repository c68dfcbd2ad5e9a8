/**
 * Which view pairs the CMC loss contrasts (the paper's §3.3 "core view" and "full graph" objectives).
 * Each unordered pair {a, b} contributes both directions, (a anchor vs b's memory) then (b vs a's), as the
 * two-view loss does for its one pair; so with two views both objectives give [[0,1],[1,0]], upstream's
 * (out_l, out_ab) of HobbitLong/CMC `NCE/NCEAverage.py`.
 *
 *   objectivePairs(['L', 'ab', 'DbDr'], 'core', 'L');  // [[0,1],[1,0],[0,2],[2,0]]
 *   objectivePairs(['L', 'ab', 'DbDr'], 'full');       // [[0,1],[1,0],[0,2],[2,0],[1,2],[2,1]]
 */
export type Objective = 'core' | 'full';
export const OBJECTIVES: readonly Objective[] = ['core', 'full'];

export function objectivePairs(views: readonly string[], objective: Objective, coreView = ''): [number, number][] {
  if (views.length < 2) throw new Error(`CMC needs at least two views, got ${views.length}`);
  const unordered: [number, number][] = [];
  if (objective === 'full') {
    for (let a = 0; a < views.length; a++) for (let b = a + 1; b < views.length; b++) unordered.push([a, b]);
  } else if (objective === 'core') {
    const c = coreView ? views.indexOf(coreView) : 0;
    if (c < 0) throw new Error(`--core_view ${coreView} is not one of the views (${views.join(', ')})`);
    for (let v = 0; v < views.length; v++) if (v !== c) unordered.push([Math.min(c, v), Math.max(c, v)]);
  } else {
    throw new Error(`--objective must be core or full, got ${String(objective)}`);
  }
  return unordered.flatMap(
    ([a, b]) =>
      [
        [a, b],
        [b, a],
      ] as [number, number][],
  );
}

/** "L>ab": the anchor view scored against the other view's memory. */
export function pairName(views: readonly string[], [a, m]: readonly [number, number]): string {
  return `${views[a]}>${views[m]}`;
}
