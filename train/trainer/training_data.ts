/**
 * The images of a training run, opened before anything is allocated so that a missing or empty data set
 * stops the run first: the training split (pre-training never reads labels; on STL-10 it takes the unlabeled
 * images too, as the CMC paper does), then each --extra_folder's training images after it in one sample list
 * (train/data/sources/concat.ts), and, for the kNN monitor, the labelled test split. The monitor's neighbours
 * are --data_folder's training images only (`labelled`, rows 0..n-1 of the memory bank).
 */
import path from 'node:path';
import { ConcatSource, detectKind, openSource, type DataSource, type SourceKind } from '../data/sources.ts';
import type { TrainConfig } from './config.ts';

export interface TrainingData {
  /** Every pre-training image: --data_folder's, then each extra folder's (one memory-bank row each). */
  source: DataSource;
  /** --data_folder's training images alone (the first rows of `source`), for the kNN monitor. */
  labelled: DataSource;
  testSource: DataSource | null;
  /** Where the images come from, in row order: each folder and its number of images. */
  folders: { folder: string; images: number }[];
}

export async function openTrainingData(
  cfg: TrainConfig,
  resumedRows: number | null,
  log: (line: string) => void,
): Promise<TrainingData> {
  const onWarn = (m: string) => log(`[data] ${m}`);
  const openTrain = async (kind: SourceKind | 'auto', folder: string) => {
    const k = kind === 'auto' ? detectKind(folder) : kind;
    const s = await openSource(kind, folder, k === 'stl10' ? 'train+unlabeled' : 'train', { onWarn });
    if (s.length === 0) throw new Error(`no training images in ${folder}`);
    return s;
  };
  const labelled = await openTrain(cfg.dataset, cfg.data_folder);
  const parts = [labelled];
  const folders = [{ folder: cfg.data_folder, images: labelled.length }];
  let source: DataSource = labelled;
  try {
    // --dataset names data_folder's format; an extra folder may be another (a folder of photos beside a raw set).
    for (const folder of cfg.extra_folder ?? []) {
      parts.push(await openTrain('auto', folder));
      folders.push({ folder, images: parts[parts.length - 1].length });
    }
    if (parts.length > 1)
      source = new ConcatSource(
        parts,
        folders.map((f) => f.folder),
      );
  } catch (e) {
    for (const s of parts) s.close();
    throw e;
  }
  if (resumedRows !== null && resumedRows !== source.length) {
    throw new Error(
      `the checkpoint's memory bank has ${resumedRows} rows but ${describeFolders(folders)} ${folders.length > 1 ? 'hold' : 'has'} ${source.length} images`,
    );
  }
  let testSource: DataSource | null = null;
  if (cfg.knn_freq > 0) {
    testSource = await openSource(cfg.dataset, cfg.data_folder, 'test').catch((e: Error) => {
      throw new Error(`--knn_freq needs a labelled test split next to the training data: ${e.message}`);
    });
    if (!labelled.labels())
      throw new Error("--knn_freq needs labels for the training images (for the neighbours' votes)");
  }
  return { source, labelled, testSource, folders };
}

/** "5000 images of imagenette64-sub + 4296 of imagenette64-extra", or the one folder's path. */
export function describeFolders(folders: readonly { folder: string; images: number }[]): string {
  if (folders.length === 1) return folders[0].folder;
  return folders.map((f) => `${f.images} images of ${path.basename(path.resolve(f.folder))}`).join(' + ');
}
