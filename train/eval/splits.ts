/**
 * Which images an evaluation trains on, chooses on and scores: the **held-out split** (a stratified, seeded
 * fraction of the training images set aside to choose something, `splitTrainVal`) and the **test split**
 * (the dataset's own, or, for a dataset without one, training images held out as the test split:
 * `openTestSplit`). Nothing is ever chosen on the test split unless a caller asks for it explicitly.
 *
 *   const { train, val } = splitTrainVal(labels, 0.1, seed);      // val = the held-out rows
 *   const t = await openTestSplit('auto', folder, trainSrc, 0, seed, warn);
 */
import { NoTestSplitError, openSource, type DataSource, type SourceKind } from '../data/sources.ts';
import { Rng } from '../../core/util/rng.ts';

/**
 * Stratified, seeded hold-out: per class, round(frac * count) samples (at least one when frac > 0 and the
 * class has two or more) go to `val` (the held-out rows); the rest to `train`. Unlabelled samples (label < 0)
 * are dropped. Both lists are sorted ascending.
 */
export function splitTrainVal(labels: Int32Array, frac: number, seed: number): { train: Int32Array; val: Int32Array } {
  if (!(frac >= 0 && frac < 1)) throw new RangeError(`valSplit must be in [0, 1), got ${frac}`);
  const byClass = new Map<number, number[]>();
  labels.forEach((y, i) => {
    if (y < 0) return;
    if (!byClass.has(y)) byClass.set(y, []);
    byClass.get(y)!.push(i);
  });
  const rng = new Rng(seed ^ 0x5eed);
  const train: number[] = [];
  const val: number[] = [];
  for (const y of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = byClass.get(y)!;
    rng.shuffle(idx);
    let k = Math.round(frac * idx.length);
    if (frac > 0 && k === 0 && idx.length >= 2) k = 1;
    val.push(...idx.slice(0, k));
    train.push(...idx.slice(k));
  }
  return { train: Int32Array.from(train.sort((a, b) => a - b)), val: Int32Array.from(val.sort((a, b) => a - b)) };
}

/** Where the test images came from: the dataset's own test split, or a fraction of its training images held out. */
export type TestSplitInfo = { source: 'dataset' } | { source: 'held_out'; fraction: number; seed: number; n: number };

export interface TestSplit {
  /** The source to score: the dataset's test split, or the training source itself (then `testIdx` is set). */
  src: DataSource;
  /** Held-out training rows scored as the test split (null: all of `src`). */
  testIdx: Int32Array | null;
  /** Training labels with the held-out rows set to -1 (never trained on, never neighbours). */
  trainLabels: Int32Array;
  info: TestSplitInfo;
}

/**
 * The labelled test split to evaluate on: the dataset's own (ImageFolder val/ or test/, the binary formats' test
 * files) or, with `testSplit` > 0 for a dataset that has none, a stratified, seeded fraction of the training
 * images held out. A dataset without a test split and no `testSplit` is refused: evaluating on the training
 * folder would score training images (an ImageFolder without val/ used to give every image label 0).
 */
export async function openTestSplit(
  dataset: SourceKind | 'auto',
  dataFolder: string,
  trainSrc: DataSource,
  testSplit: number,
  seed: number,
  onWarn: (m: string) => void,
): Promise<TestSplit> {
  if (!(testSplit >= 0 && testSplit < 1)) throw new Error(`--test_split must be in [0, 1) (got ${testSplit})`);
  const labels = trainSrc.labels();
  if (!labels) throw new Error(`${dataFolder}: the training split has no labels; evaluation needs them`);
  let own: DataSource | null = null;
  try {
    own = await openSource(dataset, dataFolder, 'test', { onWarn });
  } catch (e) {
    if (!(e instanceof NoTestSplitError)) throw e;
    if (!(testSplit > 0)) {
      throw new Error(
        `${e.message}; evaluating on the training folder would score the training images themselves. ` +
          'Give it a test split (for an ImageFolder, a val/<class>/ folder of other images), or pass --test_split 0.2 to hold out 20% of the training images (per class, seeded by --seed) as the test split',
        { cause: e },
      );
    }
  }
  if (own) {
    if (testSplit > 0) {
      own.close();
      throw new Error(
        `--test_split is for datasets without a test split; ${dataFolder} has one (drop --test_split to evaluate on it)`,
      );
    }
    return { src: own, testIdx: null, trainLabels: labels, info: { source: 'dataset' } };
  }
  const { val: testIdx } = splitTrainVal(labels, testSplit, seed ^ 0x7e57);
  if (testIdx.length === 0)
    throw new Error(`--test_split ${testSplit} holds out no image of ${dataFolder} (${labels.length} images)`);
  const trainLabels = Int32Array.from(labels);
  for (const i of testIdx) trainLabels[i] = -1;
  return {
    src: trainSrc,
    testIdx,
    trainLabels,
    info: { source: 'held_out', fraction: testSplit, seed, n: testIdx.length },
  };
}

/** How the test split is named in output lines. */
export function describeTestSplit(t: TestSplitInfo): string {
  return t.source === 'dataset'
    ? "the dataset's test split"
    : `${t.n} training images held out as the test split (--test_split ${t.fraction}, seed ${t.seed})`;
}
