/** Data for the data-loader benchmark when the user gives none: generated images in the temp folder. */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { writeSyntheticDataset } from '../train/data/synthetic.ts';
export { openSource } from '../train/data/sources.ts';

export function writeSyntheticDatasetIfNeeded(size: number): string {
  const dir = path.join(os.tmpdir(), `cmc-bench-data-${size}`);
  if (!fs.existsSync(path.join(dir, 'meta.json'))) writeSyntheticDataset(dir, { size, train: 4096, test: 16 });
  return dir;
}
