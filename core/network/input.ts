/**
 * A CmcSpec's input layout and view subsets. Portable: no tfjs and no node imports.
 *
 *   const sub = subsetSpec(spec, ['L']);                 // the L encoder alone (probe / kNN / export)
 *   inputChannelCount(spec);                             // channels of the NHWC model input (3 for L,ab)
 */
import type { CmcSpec } from './layers.ts';
import { layoutChannels, layoutViews } from '../preprocess/views.ts';

/** Channels of the model input: the declared layout's, or 3 (a colour space) for specs without one. */
export function inputChannelCount(spec: CmcSpec): number {
  return spec.input ? layoutChannels(spec.input) : 3;
}

/** Checks a spec's `input` (known view names) and that every view's channels lie inside the input. */
export function checkSpecInput(spec: CmcSpec, where = 'spec'): void {
  const c = inputChannelCount(spec);
  for (const v of spec.views) {
    if (
      !Array.isArray(v.channels) ||
      v.channels.length === 0 ||
      v.channels.some((k) => !Number.isInteger(k) || k < 0 || k >= c)
    ) {
      throw new Error(`${where}: view ${v.name} takes channels [${v.channels}] but the input has ${c}`);
    }
  }
}

/**
 * The model restricted to some of its views, in the order given (their parameter names are unchanged, so
 * a checkpoint's `${view}.*` tensors load into it). With a declared input layout the input shrinks to the
 * layout views those encoders read (channels remapped), so data and exported graphs compute only those.
 */
export function subsetSpec(spec: CmcSpec, names: readonly string[]): CmcSpec {
  const all = spec.views.map((v) => v.name);
  if (names.length === 0) throw new Error('at least one view is needed');
  for (const n of names)
    if (!all.includes(n)) throw new Error(`the model has no view '${n}'; its views are ${all.join(', ')}`);
  if (new Set(names).size !== names.length) throw new Error(`a view is listed twice in ${names.join(',')}`);
  const views = names.map((n) => spec.views.find((v) => v.name === n)!);
  if (!spec.input) return { ...spec, views };
  // Keep the layout views whose channels some chosen encoder reads, in layout order.
  const used = new Set(views.flatMap((v) => v.channels));
  const layout = layoutViews(spec.input);
  const keep = layout.filter((lv) => lv.channels.some((c) => used.has(c)));
  const remap = new Map<number, number>();
  let next = 0;
  for (const lv of keep) for (const c of lv.channels) remap.set(c, next++);
  return {
    ...spec,
    input: keep.map((lv) => lv.def.name),
    views: views.map((v) => ({ ...v, channels: v.channels.map((c) => remap.get(c)!) })),
  };
}
