/**
 * A Loader over a subset of a source's samples: the probe trains on the training images minus the held-out
 * ones, and scores a held-out test split, without copying the source (worker threads reopen the full source
 * and read the subset's indices).
 *
 *   const loader = new SubsetLoader(src, { batchSize: 256, transform }, Int32Array.from([3, 10, 11]));
 */
import { Loader, epochOrder, type LoaderOptions } from './loader.ts';
import type { DataSource } from './sources.ts';

/** Batches hold the subset's samples only; `batch.index` is still the index into the full source. */
export class SubsetLoader extends Loader {
  constructor(
    source: DataSource,
    opts: LoaderOptions,
    readonly subset: Int32Array,
  ) {
    super(source, opts);
    if (subset.length === 0) throw new Error('SubsetLoader: empty subset');
  }

  override get length(): number {
    const n = this.subset.length,
      b = this.batchSize;
    return this.opts.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  override order(epoch: number): Int32Array {
    const o = epochOrder(this.subset.length, this.seed, epoch, this.opts.shuffle ?? true);
    return o.map((k) => this.subset[k]);
  }
}
