/**
 * The run folder `<model_path>/<name>` (checkpoints, metrics.jsonl) and the TensorBoard folder
 * `<tb_path>/<name>` of a run, set up before its first step: stale temporary files removed, metrics.jsonl
 * started as of the checkpoint resumed from.
 */
import fs from 'node:fs';
import path from 'node:path';
import { removeStaleTemps, writeFileAtomic } from '../../core/util/atomic_write.ts';
import { TbWriter } from '../log/tensorboard.ts';
import { runName, type TrainConfig } from './config.ts';

export interface RunFolder {
  name: string;
  runDir: string;
  metricsFile: string;
  tb: TbWriter;
}

/** Creates the run's folders; `resumed` is the checkpoint file and epoch a resumed run starts from. */
export function openRunFolder(
  cfg: TrainConfig,
  resumed: { file: string; epoch: number } | null,
  log: (line: string) => void,
): RunFolder {
  const name = runName(cfg);
  const runDir = runFolder(cfg.model_path, name);
  fs.mkdirSync(runDir, { recursive: true });
  for (const f of removeStaleTemps(runDir)) log(`[cmc] removed ${f}, left by a write that did not finish`);
  const tb = new TbWriter(path.join(cfg.tb_path, name));
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  startMetrics(
    resumed ? path.join(path.dirname(resumed.file), 'metrics.jsonl') : null,
    metricsFile,
    resumed?.epoch ?? 0,
  );
  return { name, runDir, metricsFile, tb };
}

/** `<model_path>/<name>`, refused when the name would leave model_path (`--name ../x`, an absolute path). */
export function runFolder(modelPath: string, name: string): string {
  const root = path.resolve(modelPath);
  const dir = path.resolve(root, name);
  const rel = path.relative(root, dir);
  if (!rel || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new Error(
      `the run folder ${JSON.stringify(name)} would not be inside --model_path ${modelPath}; use --name with a plain folder name (letters, digits, . _ -)`,
    );
  }
  return path.join(modelPath, name);
}

/**
 * The run's metrics.jsonl as of its checkpoint: a fresh run starts an empty file (as it starts a new
 * current.ckpt); a resumed run keeps the lines up to the checkpoint's epoch, once each (the epoch-0 kNN
 * included): lines of epochs that finished after the checkpoint was written, a line torn by a kill, or a
 * second copy of an epoch are dropped, so resuming never duplicates an epoch. A forked run (a new --name)
 * starts with the source run's lines up to the resumed epoch, so its curves start at step 0; the source
 * run's file is not touched.
 */
function startMetrics(from: string | null, to: string, lastEpoch: number): void {
  if (from === null) {
    if (fs.existsSync(to)) writeFileAtomic(to, '');
    return;
  }
  // In place, from === to; a fork reads the source run's file unless it has a log of its own already.
  const src = fs.existsSync(to) ? to : fs.existsSync(from) ? from : null;
  if (!src) return;
  const epochOf = (l: string): number => {
    try {
      return (JSON.parse(l) as { epoch: number }).epoch;
    } catch {
      return NaN;
    }
  };
  const seen = new Set<number>();
  const kept = fs
    .readFileSync(src, 'utf8')
    .split('\n')
    .filter((l) => {
      const e = epochOf(l);
      if (!(e <= lastEpoch) || seen.has(e)) return false;
      seen.add(e);
      return true;
    });
  writeFileAtomic(to, kept.map((l) => l + '\n').join(''));
}
