/**
 * `cmc probe`: linear probing of frozen CMC encoders (upstream `LinearProbing.py` + `models/LinearModel.py`).
 * This module wires the parts: the encoders (encoder.ts), the splits (splits.ts, selection.ts), the frozen
 * features (features.ts), one head per schedule (fit_head.ts) and the head file (head.ts).
 *
 *   const r = await probe({ checkpoint: 'runs/x/current.ckpt', dataFolder: 'data/cifar', layer: 5, mode: 'cached' });
 *   r.best.top1; r.chosenOn; r.headPath;   // by default the epoch is chosen on 10% of train held out
 *
 * Protocol (upstream's): both encoders frozen in eval mode (BN running statistics, no gradient); features of
 * block `layer` of each view, concatenated along channels (L first, then ab); optional adaptive pooling
 * (AlexNet: max, ResNet: avg); flatten in PyTorch's NCHW order (channel-major, so a head maps one to one onto
 * upstream's nn.Linear); one Linear layer, weights N(0, 0.01), bias 0; softmax cross-entropy; SGD lr 0.1,
 * momentum 0.9, weight decay 0, batch 256, 60 epochs, lr x0.2 after epochs 30, 40, 50; top-1/top-5 after
 * every epoch.
 *
 * Modes: 'augmented' is upstream's (every epoch, train transform = RandomResizedCrop(crop_low)+flip through
 * the frozen encoders); 'cached' computes the train features once with the val transform (resize + centre
 * crop, no augmentation) and trains the head on those (much faster; the head never sees augmented crops).
 * The test features do not depend on the epoch (frozen encoders, deterministic transform) and are computed
 * once in both modes.
 *
 * Model selection (selection.ts): by default a stratified, seeded 10% of the TRAIN split is held out (never
 * trained on) and the reported epoch is the one with the best held-out top-1; the test split is only
 * reported. `selectOn: 'test'` picks on the test split as upstream does (labelled optimistic), 'last' takes
 * the schedule's last epoch.
 */
import { initBackend, type BackendInfo, type BackendName } from '../engine/backend.ts';
import { Loader, type LoaderOptions } from '../data/loader.ts';
import { SubsetLoader } from '../data/subset.ts';
import { openSource, type DataSource, type SourceKind } from '../data/sources.ts';
import type { PoolType } from '../../core/network/pooling.ts';
import type { LinearHead } from '../../core/formats/head.ts';
import { loadEncoder, type EncoderChoice, type LoadedEncoder } from './encoder.ts';
import { concatSets, extractFeatures, probeLayerInfo, type FeatureSet, type ProbeLayerInfo } from './features.ts';
import { describeTestSplit, openTestSplit, splitTrainVal, type TestSplit, type TestSplitInfo } from './splits.ts';
import { describeSelection, planSelection, type ProbeSelection, type SelectionPlan } from './selection.ts';
import {
  augmentedBatches,
  cachedBatches,
  fitHead,
  type FittedHead,
  type HeadBatches,
  type HeadSchedule,
  type ProbeEpochMetrics,
} from './fit_head.ts';
import { writeHead } from './head.ts';
import { pct } from './metrics.ts';

export interface ProbeOptions extends EncoderChoice {
  dataFolder: string;
  dataset?: SourceKind | 'auto';
  layer: number;
  epochs?: number;
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  batchSize?: number;
  /**
   * Images per forward pass when features are extracted (cached mode); default max(batchSize, 64). The encoder's
   * activations for a whole batch live in wasm memory at once: resnet18v1_small at 64 px aborts at 256.
   */
  featureBatch?: number;
  decayEpochs?: number[];
  decayRate?: number;
  mode?: 'cached' | 'augmented';
  /** Fraction of TRAIN held out (never trained on); default 0.1, and 0 without `selectOn` means 'last'. */
  valSplit?: number;
  /** Where the reported epoch is chosen (selection.ts); default 'held_out'. */
  selectOn?: ProbeSelection;
  /** For a dataset without a test split: this fraction of TRAIN held out as the test split (0 = refuse such a dataset). */
  testSplit?: number;
  /**
   * Weight decays to choose from (cached mode, held-out images): one head per value on the features computed
   * once, the value whose best epoch scores highest on the held-out images wins; then a head with that
   * value is refitted on ALL training images for the fixed schedule and its last epoch is the result.
   */
  selectWeightDecay?: number[];
  /** RandomResizedCrop lower bound for 'augmented' (default: the checkpoint's crop_low, else 0.2). */
  cropLow?: number;
  /** Override the pooling (size or null = none). */
  pool?: [number, number] | null;
  poolType?: PoolType;
  backend?: BackendName;
  seed?: number;
  workers?: number;
  /** Where to write the head JSON ('' or undefined = do not write). */
  out?: string;
  log?: (line: string) => void;
}

export const PROBE_DEFAULTS = {
  epochs: 60,
  lr: 0.1,
  momentum: 0.9,
  weightDecay: 0,
  batchSize: 256,
  decayEpochs: [30, 40, 50],
  decayRate: 0.2,
  mode: 'augmented' as 'cached' | 'augmented',
  testSplit: 0,
  seed: 0,
  workers: 2,
};

export interface WeightDecayChoice {
  /** The held-out fraction the weight decay was chosen on (the key predates the word "held-out"). */
  val_split: number;
  n_held_out: number;
  chosen: number;
  candidates: { weight_decay: number; val_top1: number; test_top1: number; best_epoch: number; seconds: number }[];
}

export interface ProbeResult {
  /** With selectWeightDecay: how the weight decay was chosen. */
  wdSelection?: WeightDecayChoice;
  layer: ProbeLayerInfo;
  epochs: ProbeEpochMetrics[];
  best: ProbeEpochMetrics;
  last: ProbeEpochMetrics;
  selectedOn: ProbeSelection;
  /** The phrase saying where the reported epoch was chosen (describeSelection). */
  chosenOn: string;
  head: LinearHead;
  headPath: string | null;
  nTrain: number;
  /** Training images held out to choose the epoch (0 after a weight-decay refit on all of them). */
  nHeldOut: number;
  /** The held-out fraction asked for (0: none). */
  heldOutFraction: number;
  nTest: number;
  testSplit: TestSplitInfo;
  encoder: string;
  backend: BackendInfo;
  featureSeconds: number;
  seconds: number;
}

type ResolvedOptions = ProbeOptions & typeof PROBE_DEFAULTS & { plan: SelectionPlan };

export async function probe(opts: ProbeOptions): Promise<ProbeResult> {
  const o = resolveOptions(opts);
  const log = opts.log ?? ((l: string) => console.error(l));
  const t0 = performance.now();
  const backend = await initBackend(o.backend ?? 'auto');
  const { trainSrc, enc } = await openTrainAndEncoder(o, log);
  let testSrc: DataSource | null = null;
  try {
    const held = await openTestSplit(o.dataset ?? 'auto', o.dataFolder, trainSrc, o.testSplit, o.seed, (m) =>
      log(`[data] ${m}`),
    );
    testSrc = held.src === trainSrc ? null : held.src;
    const poolOverride = o.pool !== undefined || o.poolType ? { pool: o.pool, poolType: o.poolType } : undefined;
    const info = probeLayerInfo(enc.spec, o.layer, poolOverride);
    const classNames = probeClassNames(trainSrc, held);
    const { trainIdx, heldIdx } = holdOut(held, o);
    log(describeRun(o, enc, info, classNames.length, trainIdx, heldIdx, held, backend));
    if (o.plan.note) log(`[probe] ${o.plan.note}`);
    if (held.info.source === 'held_out') log(`[probe] test split: ${describeTestSplit(held.info)}`);
    const f = await probeFeatures(o, enc, info, trainSrc, held, trainIdx, heldIdx, log);
    const run = { o, enc, info, classes: classNames.length, test: f.test, log };
    const { fitted, wdSelection, selectedOn } = await fitProbe(run, trainSrc, trainIdx, f);
    const { epochs, best } = fitted;
    const last = epochs[epochs.length - 1];
    const nHeldOut = wdSelection ? 0 : heldIdx.length;
    const chosenOn = describeSelection(selectedOn, nHeldOut, o.plan.heldOut);
    const metrics = { selectedOn, chosenOn, nHeldOut, best, last, epochs };
    const head = buildHead(opts, o, enc, info, classNames, fitted, wdSelection, metrics);
    if (o.out) writeHead(o.out, head);
    const headPath = o.out ? o.out : null;
    log(
      `[probe] reported epoch ${best.epoch} (${chosenOn}): ` +
        `test top-1 ${pct(best.top1)} top-5 ${pct(best.top5)}; last epoch top-1 ${pct(last.top1)}` +
        (headPath ? `; head -> ${headPath}` : ''),
    );
    return {
      wdSelection,
      layer: info,
      epochs,
      best,
      last,
      selectedOn,
      chosenOn,
      head,
      headPath,
      nTrain: trainIdx.length + heldIdx.length - nHeldOut,
      nHeldOut,
      heldOutFraction: o.plan.heldOut,
      nTest: f.test.n,
      testSplit: held.info,
      encoder: enc.source,
      backend,
      featureSeconds: f.seconds,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    enc.model.dispose();
    trainSrc.close();
    testSrc?.close();
  }
}

/** The options with the defaults filled in, checked, and the selection plan. */
function resolveOptions(opts: ProbeOptions): ResolvedOptions {
  const o = { ...PROBE_DEFAULTS, ...(stripUndefined(opts) as ProbeOptions) };
  if (!o.dataFolder) throw new Error('--data_folder is required');
  for (const k of ['epochs', 'batchSize'] as const)
    if (!(Number.isInteger(o[k]) && o[k] > 0)) throw new Error(`${k} must be a positive integer (got ${o[k]})`);
  if (o.featureBatch !== undefined && !(Number.isInteger(o.featureBatch) && o.featureBatch > 0))
    throw new Error(`featureBatch must be a positive integer (got ${o.featureBatch})`);
  if (!(o.lr > 0)) throw new Error(`learning rate must be > 0 (got ${o.lr})`);
  if (o.mode !== 'cached' && o.mode !== 'augmented')
    throw new Error(`mode must be 'cached' or 'augmented' (got ${o.mode})`);
  const plan = planSelection({ valSplit: opts.valSplit, selectOn: opts.selectOn });
  const wdList = o.selectWeightDecay;
  if (wdList) {
    if (!wdList.length || wdList.some((w) => !(w >= 0)))
      throw new Error(`weight decays to choose from must be >= 0 (got ${wdList.join(',')})`);
    if (o.mode !== 'cached' || !(plan.heldOut > 0))
      throw new Error('choosing the weight decay needs --mode cached and --val_split > 0');
    if (plan.selectOn === 'test')
      throw new Error('the weight decay is chosen on held-out images, never on the test split: drop --select_on test');
  }
  return { ...o, plan };
}

/** The training split and the encoders (the split closed again when the encoders cannot be loaded). */
async function openTrainAndEncoder(
  o: ResolvedOptions,
  log: (l: string) => void,
): Promise<{ trainSrc: DataSource; enc: LoadedEncoder }> {
  const trainSrc = await openSource(o.dataset ?? 'auto', o.dataFolder, 'train', { onWarn: (m) => log(`[data] ${m}`) });
  try {
    return { trainSrc, enc: loadEncoder(o) };
  } catch (e) {
    trainSrc.close();
    throw e;
  }
}

/** The training rows the head trains on and those held out to choose the epoch (none when the fraction is 0). */
function holdOut(held: TestSplit, o: ResolvedOptions): { trainIdx: Int32Array; heldIdx: Int32Array } {
  if (o.plan.heldOut > 0) {
    const { train, val } = splitTrainVal(held.trainLabels, o.plan.heldOut, o.seed);
    return { trainIdx: train, heldIdx: val };
  }
  const all = Int32Array.from(held.trainLabels.keys()).filter((i) => held.trainLabels[i] >= 0);
  return { trainIdx: all, heldIdx: new Int32Array(0) };
}

/** The log line that says what is probed, on what, and how. */
function describeRun(
  o: ResolvedOptions,
  enc: LoadedEncoder,
  info: ProbeLayerInfo,
  classes: number,
  trainIdx: Int32Array,
  heldIdx: Int32Array,
  held: TestSplit,
  backend: BackendInfo,
): string {
  return (
    `[probe] encoder ${enc.source === 'random' ? `${enc.spec.arch} (random init, seed ${o.seed})` : enc.source}; views ${enc.spec.views.map((v) => v.name).join(',')}; layer ${o.layer}: ` +
    `map [${info.mapShape.join('x')}], ${info.note} -> ${info.featureDim} features; ${classes} classes; ` +
    `${trainIdx.length} train${heldIdx.length ? ` + ${heldIdx.length} held out` : ''}, ${held.testIdx?.length ?? held.src.length} test; mode ${o.mode}; ${backend.name}`
  );
}

/** Class names for every label of the train and test splits (a missing name is the label itself). */
function probeClassNames(trainSrc: DataSource, held: TestSplit): string[] {
  const maxLabel = Math.max(...held.trainLabels, ...(held.src.labels() ?? [0]));
  const n = Math.max(trainSrc.classNames.length, maxLabel + 1);
  return Array.from({ length: n }, (_, k) => trainSrc.classNames[k] ?? String(k));
}

/** The features computed once, with the evaluation transform: test, held-out, and (cached mode) train. */
async function probeFeatures(
  o: ResolvedOptions,
  enc: LoadedEncoder,
  info: ProbeLayerInfo,
  trainSrc: DataSource,
  held: TestSplit,
  trainIdx: Int32Array,
  heldIdx: Int32Array,
  log: (l: string) => void,
): Promise<{ test: FeatureSet; heldOut: FeatureSet | null; cached: FeatureSet | null; seconds: number }> {
  const lo: LoaderOptions = {
    batchSize: o.featureBatch ?? Math.max(o.batchSize, 64),
    workers: o.workers,
    shuffle: false,
    transform: { mode: 'val', size: enc.imageSize, view: enc.view, input: enc.spec.input },
    onWarn: (m) => log(`[data] ${m}`),
  };
  const extract = async (src: DataSource, subset: Int32Array | null) => {
    const loader = subset ? new SubsetLoader(src, lo, subset) : new Loader(src, lo);
    try {
      return await extractFeatures(enc.model, loader, info);
    } finally {
      await loader.close();
    }
  };
  const t0 = performance.now();
  const test = await extract(held.src, held.testIdx);
  const heldOut = heldIdx.length ? await extract(trainSrc, heldIdx) : null;
  const cached = o.mode === 'cached' ? await extract(trainSrc, trainIdx) : null;
  const seconds = (performance.now() - t0) / 1000;
  const mb = ((test.features.length + (heldOut?.features.length ?? 0) + (cached?.features.length ?? 0)) * 4) / 2 ** 20;
  log(`[probe] features computed in ${seconds.toFixed(1)} s (${mb.toFixed(0)} MB cached)`);
  return { test, heldOut, cached, seconds };
}

interface ProbeRun {
  o: ResolvedOptions;
  enc: LoadedEncoder;
  info: ProbeLayerInfo;
  classes: number;
  test: FeatureSet;
  log: (l: string) => void;
}

function fit(
  run: ProbeRun,
  batches: HeadBatches,
  heldOut: FeatureSet | null,
  selectOn: ProbeSelection,
  weightDecay: number,
): Promise<FittedHead> {
  const { o } = run;
  const schedule: HeadSchedule = {
    epochs: o.epochs,
    lr: o.lr,
    momentum: o.momentum,
    weightDecay,
    decayEpochs: o.decayEpochs,
    decayRate: o.decayRate,
  };
  const { info, classes, test, log } = run;
  return fitHead({ dim: info.featureDim, classes, batches, test, heldOut, selectOn, schedule, seed: o.seed, log });
}

/** The head reported: one fit with the given weight decay, or the weight decay chosen first (selectWeightDecay). */
async function fitProbe(
  run: ProbeRun,
  trainSrc: DataSource,
  trainIdx: Int32Array,
  f: { cached: FeatureSet | null; heldOut: FeatureSet | null },
): Promise<{ fitted: FittedHead; wdSelection?: WeightDecayChoice; selectedOn: ProbeSelection }> {
  const { o } = run;
  if (o.selectWeightDecay) return chooseWeightDecay(run, f.cached!, f.heldOut!, o.selectWeightDecay);
  const fitted = await fitWithBatches(run, trainSrc, trainIdx, f.cached, f.heldOut, o.plan.selectOn, o.weightDecay);
  return { fitted, selectedOn: o.plan.selectOn };
}

/** One head on the cached features, or on the training transform through the encoders every epoch. */
async function fitWithBatches(
  run: ProbeRun,
  trainSrc: DataSource,
  trainIdx: Int32Array,
  cached: FeatureSet | null,
  heldOut: FeatureSet | null,
  selectOn: ProbeSelection,
  weightDecay: number,
): Promise<FittedHead> {
  const { o, enc } = run;
  if (cached) return fit(run, cachedBatches(cached, o.batchSize, o.seed), heldOut, selectOn, weightDecay);
  const transform = {
    mode: 'train' as const,
    size: enc.imageSize,
    view: enc.view,
    input: enc.spec.input,
    cropLow: o.cropLow ?? enc.cropLow,
  };
  const loader = new SubsetLoader(
    trainSrc,
    { batchSize: o.batchSize, seed: o.seed, workers: o.workers, transform, onWarn: (m) => run.log(`[data] ${m}`) },
    trainIdx,
  );
  try {
    return await fit(run, augmentedBatches(loader, enc.model, run.info), heldOut, selectOn, weightDecay);
  } finally {
    await loader.close();
  }
}

/** One head per weight decay scored on the held-out images; the winner refitted on all of train (last epoch). */
async function chooseWeightDecay(
  run: ProbeRun,
  cached: FeatureSet,
  heldOut: FeatureSet,
  wdList: number[],
): Promise<{ fitted: FittedHead; wdSelection: WeightDecayChoice; selectedOn: ProbeSelection }> {
  const { o, log } = run;
  const candidates: WeightDecayChoice['candidates'] = [];
  for (const wd of wdList) {
    const tw = performance.now();
    log(`[probe] weight decay ${wd}: fitting on ${cached.n} images, scoring on the ${heldOut.n} held out`);
    const r = await fit(run, cachedBatches(cached, o.batchSize, o.seed), heldOut, 'held_out', wd);
    candidates.push({
      weight_decay: wd,
      val_top1: r.best.val_top1!,
      test_top1: r.best.top1,
      best_epoch: r.best.epoch,
      seconds: (performance.now() - tw) / 1000,
    });
  }
  // Ties go to the value listed first.
  const chosen = candidates.reduce((a, c) => (c.val_top1 > a.val_top1 ? c : a), candidates[0]).weight_decay;
  log(
    `[probe] weight decay ${chosen} chosen on the held-out images (${candidates.map((c) => `${c.weight_decay}: ${pct(c.val_top1)}`).join(', ')}); refitting on all ${cached.n + heldOut.n} training images`,
  );
  const all = concatSets(cached, heldOut);
  const fitted = await fit(run, cachedBatches(all, o.batchSize, o.seed), null, 'last', chosen);
  return {
    fitted,
    wdSelection: { val_split: o.plan.heldOut, n_held_out: heldOut.n, chosen, candidates },
    selectedOn: 'last',
  };
}

/** The head file's content: the chosen epoch's weights, the encoder it reads, the config and the metrics. */
function buildHead(
  opts: ProbeOptions,
  o: ResolvedOptions,
  enc: LoadedEncoder,
  info: ProbeLayerInfo,
  classNames: string[],
  fitted: FittedHead,
  wdSelection: WeightDecayChoice | undefined,
  metrics: Record<string, unknown>,
): LinearHead {
  const { log: _l, out: _o, ...cfg } = opts;
  return {
    format: 'cmc-linear-head',
    version: 1,
    layer: o.layer,
    features: 'flatten',
    pool: info.pool,
    poolType: info.poolType,
    classNames,
    inFeatures: info.featureDim,
    weight: fitted.weight,
    bias: fitted.bias,
    arch: enc.spec.arch,
    imageSize: enc.imageSize,
    view: enc.view,
    views: enc.spec.views.map((v) => v.name),
    probe: {
      ...PROBE_DEFAULTS,
      ...stripUndefined(cfg),
      valSplit: o.plan.heldOut,
      selectOn: o.plan.selectOn,
      ...(wdSelection ? { weightDecay: wdSelection.chosen } : {}),
      encoder: enc.source,
    },
    metrics,
  };
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
