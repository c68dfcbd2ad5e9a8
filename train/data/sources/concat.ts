/**
 * Several sources as one sample list (ConcatSource): the first part's samples, then the second's, and so on,
 * so pre-training can draw on more images than the labelled data set holds (`cmc train --extra_folder`), with
 * one memory bank over all of them (row i = sample i, as in upstream's HobbitLong/CMC `dataset.py`).
 *
 *   const all = new ConcatSource([labelled, extra]); // labelled: rows 0..n0-1, extra: the rows after them
 *   all.partOf(n0); // { part: 1, index: 0 }
 *
 * The first part is the labelled data set: its class names and labels stand; the images of the other parts
 * count as unlabelled (label -1), since pre-training never reads labels and evaluation uses the first part
 * alone. With `labelled: true` (a supervised upper bound on every label, `cmc supervised --extra_folder`)
 * every part keeps its labels, and all parts must name the same classes in the same order. Fixed image sizes must agree: every image is cropped and resized to --image_size anyway, but a
 * 32 px folder beside a 64 px one would train the encoders on two kinds of image (upsampled and not), which
 * is a mistake more often than a plan; resize such a folder first. ImageFolder parts (sizes vary) mix with
 * any size, as they do on their own.
 */
import type { DataSource, Sample, SourceSpec } from './source.ts';
import { checkIndex } from './source.ts';

export class ConcatSource implements DataSource {
  readonly kind = 'concat' as const;
  readonly length: number;
  readonly width: number | null;
  readonly height: number | null;
  readonly classNames: readonly string[];
  /** starts[p] = the index of part p's first sample; starts[parts.length] = length. */
  private readonly starts: number[];

  /** `names` label the parts in error messages (their folders); default "part <p>". */
  constructor(
    readonly parts: readonly DataSource[],
    names: readonly string[] = parts.map((_, p) => `part ${p}`),
    readonly opts: { labelled?: boolean } = {},
  ) {
    if (parts.length === 0) throw new Error('ConcatSource: no parts');
    if (opts.labelled) {
      parts.forEach((s, p) => {
        if (!s.labels()) throw new Error(`${names[p]} has no labels: every folder of a labelled run needs them`);
        if (s.classNames.join('\n') !== parts[0].classNames.join('\n'))
          throw new Error(
            `${names[p]} names the classes ${s.classNames.join(', ')} but ${names[0]} names ${parts[0].classNames.join(', ')}: ` +
              'their labels would mean different classes',
          );
      });
    }
    this.starts = [0];
    for (const s of parts) this.starts.push(this.starts[this.starts.length - 1] + s.length);
    this.length = this.starts[parts.length];
    const fixed = parts.map((s, p) => ({ s, p })).filter(({ s }) => s.width !== null && s.height !== null);
    const first = fixed[0];
    for (const { s, p } of fixed)
      if (s.width !== first.s.width || s.height !== first.s.height)
        throw new Error(
          `${names[p]} holds ${s.width}x${s.height} images but ${names[first.p]} holds ${first.s.width}x${first.s.height}: ` +
            'the folders of one training run must hold images of one size (resize one of them first)',
        );
    const allFixed = fixed.length === parts.length;
    this.width = allFixed ? first.s.width : null;
    this.height = allFixed ? first.s.height : null;
    this.classNames = parts[0].classNames;
  }

  /** Which part sample `i` comes from, and its index there. */
  partOf(i: number): { part: number; index: number } {
    checkIndex(i, this.length);
    let lo = 0,
      hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return { part: lo, index: i - this.starts[lo] };
  }

  /**
   * The first part's labels, then -1 for every image of the other parts (every part's labels when
   * `labelled`); null when the first has none.
   */
  labels(): Int32Array | null {
    const first = this.parts[0].labels();
    if (!first) return null;
    const out = new Int32Array(this.length).fill(-1);
    out.set(first);
    if (this.opts.labelled) this.parts.forEach((s, p) => p > 0 && out.set(s.labels()!, this.starts[p]));
    return out;
  }

  async get(i: number): Promise<Sample> {
    const { part, index } = this.partOf(i);
    const s = await this.parts[part].get(index);
    return part === 0 || this.opts.labelled ? s : { ...s, label: -1 };
  }

  spec(): SourceSpec {
    return {
      kind: 'concat',
      parts: this.parts.map((s) => s.spec()),
      ...(this.opts.labelled ? { labelled: true } : {}),
    };
  }

  close(): void {
    for (const s of this.parts) s.close();
  }
}
