/**
 * The frozen encoders an evaluation reads: loaded from a training (or `cmc supervised`) checkpoint, or
 * randomly initialised from an architecture (the baseline), optionally restricted to some views.
 *
 *   const enc = loadEncoder({ checkpoint: 'runs/x/current.ckpt', views: ['L'] });   // the L encoder alone
 *   enc.model; enc.imageSize; enc.view; enc.cropLow;
 */
import fs from 'node:fs';
import { CmcModel } from '../model/cmc.ts';
import { getCmcSpec } from '../../core/network/registry.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { subsetSpec } from '../../core/network/input.ts';
import { readModelCheckpoint } from '../../core/formats/checkpoint.ts';
import type { ColorView } from '../../core/preprocess/color.ts';

export interface LoadedEncoder {
  model: CmcModel;
  spec: CmcSpec;
  view: ColorView;
  imageSize: number;
  /** crop_low the encoder was trained with (the probe's train augmentation uses it by default). */
  cropLow: number;
  /** 'random' for a randomly initialised encoder (baseline). */
  source: string;
  classNames: string[];
}

export interface EncoderChoice {
  /** A training (or `cmc supervised`) checkpoint; null = random initialisation from `arch`. */
  checkpoint: string | null;
  arch?: string;
  imageSize?: number;
  featDim?: number;
  view?: ColorView;
  /** Views of a random-init encoder (core/preprocess/views.ts; default L,ab). */
  trainViews?: string[];
  /**
   * Use only these views' encoders, in this order (e.g. ['L']: the L encoder alone); default all views.
   * The features are their outputs concatenated in this order.
   */
  views?: string[];
  /** Initialisation seed for the random encoder. */
  seed?: number;
}

export function loadEncoder(c: EncoderChoice): LoadedEncoder {
  if (c.checkpoint) {
    const ck = readModelCheckpoint(c.checkpoint);
    const model = new CmcModel(ck.spec, 0);
    try {
      model.loadNamedArrays(ck.model);
    } catch (e) {
      model.dispose();
      throw new Error(`${c.checkpoint}: ${(e as Error).message}`, { cause: e });
    }
    const sub = restrictViews(model, c.views);
    return {
      model: sub,
      spec: sub.spec,
      view: ck.view,
      imageSize: ck.spec.imageSize,
      cropLow: ck.header.config?.crop_low ?? 0.2,
      source: c.checkpoint,
      classNames: ck.header.classNames ?? [],
    };
  }
  if (!c.arch) throw new Error('a random-init encoder needs --model (and --image_size)');
  const imageSize = c.imageSize ?? 224;
  const view = c.view ?? 'Lab';
  const spec = c.arch.endsWith('.json')
    ? (JSON.parse(fs.readFileSync(c.arch, 'utf8')) as CmcSpec)
    : getCmcSpec(c.arch, { imageSize, featDim: c.featDim ?? 128, view, views: c.trainViews });
  if (spec.imageSize !== imageSize && c.arch.endsWith('.json'))
    throw new Error(`${c.arch} is for ${spec.imageSize} px images, not ${imageSize}`);
  // All views are initialised (one Rng, view by view) before any subset, so a view's weights do not depend on the subset.
  const model = restrictViews(new CmcModel(spec, c.seed ?? 0), c.views);
  return { model, spec: model.spec, view, imageSize: spec.imageSize, cropLow: 0.2, source: 'random', classNames: [] };
}

/** The model restricted to `views` (core/network/input.ts subsetSpec) with the same weights; disposes `model` when it changes. */
export function restrictViews(model: CmcModel, views?: readonly string[]): CmcModel {
  if (!views || views.join() === model.spec.views.map((v) => v.name).join()) return model;
  let sub: CmcModel | null = null;
  try {
    const spec = subsetSpec(model.spec, views);
    sub = new CmcModel(spec, 0);
    const all = model.toNamedArrays();
    const keep = Object.fromEntries(Object.entries(all).filter(([k]) => views.some((v) => k.startsWith(`${v}.`))));
    sub.loadNamedArrays(keep);
    return sub;
  } catch (e) {
    sub?.dispose();
    throw e;
  } finally {
    model.dispose();
  }
}
