/**
 * How the probe chooses the epoch it reports (and keeps the head of). By default on held-out TRAINING
 * images: a stratified, seeded 10% of the training split is set aside, never trained on, and the epoch with
 * the best held-out top-1 wins; the test split is only reported. `test` is upstream `LinearProbing.py`'s
 * behaviour (its "val" folder is the test set), so the number it gives is optimistic and always labelled so;
 * `last` takes the schedule's last epoch.
 *
 *   const plan = planSelection({ valSplit: undefined, selectOn: undefined });   // held_out, fraction 0.1
 *   describeSelection('test', 0, 0);   // 'chosen on the test split (optimistic)'
 */

/** The split the reported epoch is chosen on; 'last' = no choice, the fixed schedule's last epoch. */
export type ProbeSelection = 'held_out' | 'test' | 'last';

export const PROBE_SELECTIONS: readonly ProbeSelection[] = ['held_out', 'test', 'last'];

/** The fraction of the training images held out when neither --val_split nor --select_on says otherwise. */
export const HELD_OUT_DEFAULT = 0.1;

export interface SelectionPlan {
  selectOn: ProbeSelection;
  /** Fraction of the training images held out (0 = none). */
  heldOut: number;
  /** Said once in the log when the plan was inferred from `--val_split 0`. */
  note: string | null;
}

/**
 * The plan from the two options, either of which may be absent. Without `selectOn`: a held-out fraction
 * (given, or HELD_OUT_DEFAULT) chooses on the held-out images, and an explicit 0 means `last` (there is
 * nothing held out to choose on, and choosing on the test split must be asked for). With `selectOn`, the
 * held-out fraction defaults to HELD_OUT_DEFAULT for `held_out` and to 0 otherwise (a fraction > 0 is still
 * held out and reported, but not chosen on).
 */
export function planSelection(o: { valSplit?: number; selectOn?: ProbeSelection }): SelectionPlan {
  const { valSplit, selectOn } = o;
  if (valSplit !== undefined && !(valSplit >= 0 && valSplit < 1))
    throw new RangeError(`--val_split must be in [0, 1) (got ${valSplit})`);
  if (selectOn !== undefined && !PROBE_SELECTIONS.includes(selectOn))
    throw new Error(`--select_on must be one of ${PROBE_SELECTIONS.join(', ')} (got ${String(selectOn)})`);
  if (selectOn === undefined) {
    if (valSplit === 0) {
      return {
        selectOn: 'last',
        heldOut: 0,
        note: '--val_split 0 holds out no training image, so no epoch is chosen: the last epoch of the schedule is reported (--select_on test chooses on the test split, optimistic)',
      };
    }
    return { selectOn: 'held_out', heldOut: valSplit ?? HELD_OUT_DEFAULT, note: null };
  }
  if (selectOn === 'held_out') {
    if (valSplit === 0) throw new Error('--select_on held_out needs held-out images: --val_split > 0');
    return { selectOn, heldOut: valSplit ?? HELD_OUT_DEFAULT, note: null };
  }
  return { selectOn, heldOut: valSplit ?? 0, note: null };
}

/** The phrase printed and saved with a result: where its epoch was chosen. */
export function describeSelection(on: ProbeSelection, nHeldOut: number, fraction: number): string {
  if (on === 'held_out') return `chosen on the held-out split (${nHeldOut} training images, --val_split ${fraction})`;
  if (on === 'test') return 'chosen on the test split (optimistic)';
  return 'not chosen: the last epoch of the schedule';
}
