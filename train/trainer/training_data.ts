/**
 * The images of a training run, opened before anything is allocated so that a missing or empty data set
 * stops the run first: the training split (pre-training never reads labels; on STL-10 it takes the unlabeled
 * images too, as the CMC paper does) and, for the kNN monitor, the labelled test split.
 */
import { detectKind, openSource, type DataSource } from '../data/sources.ts';
import type { TrainConfig } from './config.ts';

export async function openTrainingData(
  cfg: TrainConfig,
  resumedRows: number | null,
  log: (line: string) => void,
): Promise<{ source: DataSource; testSource: DataSource | null }> {
  const kind = cfg.dataset === 'auto' ? detectKind(cfg.data_folder) : cfg.dataset;
  const trainSplit = kind === 'stl10' ? 'train+unlabeled' : 'train';
  const source = await openSource(cfg.dataset, cfg.data_folder, trainSplit, {
    onWarn: (m: string) => log(`[data] ${m}`),
  });
  if (source.length === 0) throw new Error(`no training images in ${cfg.data_folder}`);
  if (resumedRows !== null && resumedRows !== source.length) {
    throw new Error(
      `the checkpoint's memory bank has ${resumedRows} rows but ${cfg.data_folder} has ${source.length} images`,
    );
  }
  let testSource: DataSource | null = null;
  if (cfg.knn_freq > 0) {
    testSource = await openSource(cfg.dataset, cfg.data_folder, 'test').catch((e: Error) => {
      throw new Error(`--knn_freq needs a labelled test split next to the training data: ${e.message}`);
    });
    if (!source.labels())
      throw new Error("--knn_freq needs labels for the training images (for the neighbours' votes)");
  }
  return { source, testSource };
}
