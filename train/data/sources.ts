/**
 * Dataset sources. A source has N samples; sample i is row i of the memory banks (the index of upstream's
 * `ImageFolderInstance`, HobbitLong/CMC `dataset.py`). `get(i)` returns the decoded image as RGB uint8 HWC.
 *
 *   const src = await openSource('auto', 'data/imagenette64-sub', 'train');
 *   const { rgb, width, height, label } = await src.get(0);
 *
 * Kinds (one file each under ./sources/, with the shared interfaces in ./sources/source.ts):
 *  - RawU8Source       our raw layout: `{split}_x.u8` (N*H*W*3 bytes, NHWC RGB, no header), `{split}_y.u8`
 *                      (N class bytes, optional) and meta.json ({ splits: { train: { shape: [N,H,W,3] } }, class_names })
 *  - ImageFolderSource torchvision ImageFolder order (class dirs sorted, files sorted, recursive), decoded by sharp
 *  - Cifar10BinSource  CIFAR-10 binary batches (1 label byte + 3072 bytes CHW per record)
 *  - Stl10BinSource    STL-10 binaries (3x96x96 per image, each plane column-major; labels 1-based on disk)
 *  - ConcatSource      several of the above as one sample list (`cmc train --extra_folder`)
 *
 * Binary sources read records lazily with positional reads (no whole-file load), so STL-10's 2.7 GB
 * unlabeled split costs no memory and many worker threads share the OS page cache.
 *
 * Every source can describe itself as a plain, structured-clonable `SourceSpec` so that loader worker
 * threads reopen the *same* sample list (for ImageFolder the validated file list travels in the spec, so
 * workers neither rescan nor disagree on indices).
 */
import path from 'node:path';
import {
  isDir,
  isFile,
  NoTestSplitError,
  type DataSource,
  type SourceKind,
  type SourceSpec,
  type Split,
  type WarnFn,
} from './sources/source.ts';
import { RawU8Source } from './sources/raw.ts';
import { Cifar10BinSource, cifarDir } from './sources/cifar10.ts';
import { Stl10BinSource, stlDir } from './sources/stl10.ts';
import { ImageFolderSource, type ImageFolderOptions } from './sources/image_folder.ts';
import { ConcatSource } from './sources/concat.ts';

export * from './sources/source.ts';
export { RawU8Source } from './sources/raw.ts';
export { Cifar10BinSource } from './sources/cifar10.ts';
export { Stl10BinSource } from './sources/stl10.ts';
export { ConcatSource } from './sources/concat.ts';
export {
  ImageFolderSource,
  IMAGE_EXTENSIONS,
  decodeImageFile,
  type ImageFolderOptions,
} from './sources/image_folder.ts';

/** Which kind of dataset lives at `p` (for `split`), or null if none recognised. */
export function detectKind(p: string, split: Split = 'train'): SourceKind | null {
  if (
    isFile(path.join(p, 'meta.json')) &&
    (isFile(path.join(p, `${split}_x.u8`)) || isFile(path.join(p, 'train_x.u8')))
  )
    return 'raw';
  if (cifarDir(p)) return 'cifar10';
  if (stlDir(p)) return 'stl10';
  if (isDir(p)) return 'imagefolder';
  return null;
}

/**
 * For ImageFolder, CMC's layout is `<data>/train` and `<data>/val`: use `p/<split>` when it exists. Training
 * falls back to `p` itself (plain `p/<class>/` folders); the test split never does, since `p` holds the training
 * images (or `train/` as a class): it is a NoTestSplitError.
 */
function imageFolderRoot(p: string, split: Split): string {
  const cands = split === 'test' ? ['test', 'val'] : split === 'train' ? ['train'] : [];
  for (const c of cands) if (isDir(path.join(p, c))) return path.join(p, c);
  if (split === 'test')
    throw new NoTestSplitError(
      `${p} has no labelled test split (no ${path.join(p, 'val')}/<class>/ or ${path.join(p, 'test')}/<class>/ folder)`,
    );
  return p;
}

function rawOrCifarSplit(kind: string, split: Split): 'train' | 'test' {
  if (split !== 'train' && split !== 'test') throw new Error(`${kind} has no split '${split}' (use train or test)`);
  return split;
}

/**
 * Open a dataset. 'auto' detects: meta.json + *_x.u8 → raw; data_batch_*.bin/test_batch.bin → cifar10;
 * *_X.bin → stl10; any other directory → imagefolder (using `path/train` or `path/val|test` if present).
 */
export async function openSource(
  kind: SourceKind | 'auto',
  p: string,
  split: Split = 'train',
  opts: ImageFolderOptions = {},
): Promise<DataSource> {
  const k = kind === 'auto' ? detectKind(p, split) : kind;
  if (k === null) throw new Error(`dataset path ${p} does not exist or is not a directory`);
  switch (k) {
    case 'raw':
      return new RawU8Source(p, rawOrCifarSplit('raw dataset', split));
    case 'cifar10':
      return new Cifar10BinSource(p, rawOrCifarSplit('CIFAR-10', split));
    case 'stl10':
      return new Stl10BinSource(p, split);
    case 'imagefolder':
      if (split !== 'train' && split !== 'test')
        throw new Error(`imagefolder has no split '${split}' (use train or test)`);
      return ImageFolderSource.open(imageFolderRoot(p, split), opts);
    default: {
      const never: never = k;
      throw new Error(`unknown dataset kind '${String(never)}'; expected raw, imagefolder, cifar10, stl10 or auto`);
    }
  }
}

/** Reopen a source from its spec (no rescan for ImageFolder). */
export function sourceFromSpec(spec: SourceSpec, onWarn?: WarnFn): DataSource {
  switch (spec.kind) {
    case 'raw':
      return new RawU8Source(spec.dir, spec.split);
    case 'cifar10':
      return new Cifar10BinSource(spec.dir, spec.split);
    case 'stl10':
      return new Stl10BinSource(spec.dir, spec.split);
    case 'imagefolder':
      return ImageFolderSource.fromSpec(spec, onWarn);
    case 'concat':
      return new ConcatSource(
        spec.parts.map((p) => sourceFromSpec(p, onWarn)),
        undefined,
        { labelled: spec.labelled },
      );
  }
}
