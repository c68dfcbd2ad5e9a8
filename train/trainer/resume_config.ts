/**
 * Which flags a resumed run (`cmc train --resume`) takes from the checkpoint and which from the command
 * line. Pure: no files, so each rule has its row in test/trainer/resume_config.test.ts.
 *
 * The run's hyper-parameters come from the checkpoint. How to run may change, and so may its length and
 * learning-rate schedule when asked for explicitly (upstream's HobbitLong/CMC `train_CMC.py` re-reads them
 * from its flags on --resume); a bare --resume finishes the run as it was planned (length, checkpoint and kNN
 * frequency), not with the flags' defaults.
 *
 * The extra folders (--extra_folder) are rows of the memory bank, so they are the checkpoint's: a bare
 * --resume keeps them, and folders given again (moved, say, like --data_folder) must be the same folders by
 * name, in the same order; anything else is refused rather than silently mixing other images into the bank.
 */
import path from 'node:path';
import { TRAIN_DEFAULTS, withViewDefaults, type TrainConfig } from './config.ts';

/** How to run: always the command line's (data_folder only when given: a bare --resume keeps the saved one). */
export const FROM_COMMAND_LINE = ['backend', 'workers', 'print_freq', 'resume', 'data_folder'] as const;

/**
 * The command line's when given explicitly, else the checkpoint's. A new --name (or --model_path) forks the
 * run: the same history up to the checkpoint, continued in its own folder, so a longer schedule can branch off
 * an earlier checkpoint without overwriting the original run.
 */
export const FROM_COMMAND_LINE_IF_GIVEN = [
  'epochs',
  'save_freq',
  'knn_freq',
  'learning_rate',
  'lr_decay_epochs',
  'lr_decay_rate',
  'cosine',
  'knn_k',
  'knn_source',
  'name',
  'model_path',
  'tb_path',
] as const;

/** The flags set explicitly when the caller does not say: those that differ from TRAIN_DEFAULTS. */
export function flagsDifferingFromDefaults(cmdLine: TrainConfig): (keyof TrainConfig)[] {
  return (Object.keys(cmdLine) as (keyof TrainConfig)[]).filter(
    (k) => JSON.stringify(cmdLine[k]) !== JSON.stringify(TRAIN_DEFAULTS[k]),
  );
}

/**
 * The config of a resumed run: the checkpoint's `saved` config, with the command line's flags by the rules
 * above; fields added since the checkpoint was written get the value that reproduces its run.
 */
export function resumeConfig(
  saved: Partial<TrainConfig>,
  cmdLine: TrainConfig,
  given: readonly (keyof TrainConfig)[] = flagsDifferingFromDefaults(cmdLine),
): TrainConfig {
  const cfg = { ...saved } as Record<string, unknown>;
  for (const k of FROM_COMMAND_LINE) if (k !== 'data_folder' || cmdLine.data_folder) cfg[k] = cmdLine[k];
  for (const k of FROM_COMMAND_LINE_IF_GIVEN) if (given.includes(k)) cfg[k] = cmdLine[k];
  cfg.extra_folder = resumedExtraFolders(
    saved.extra_folder ?? [],
    cmdLine.extra_folder,
    given.includes('extra_folder'),
  );
  cfg.knn_source ??= 'recompute'; // checkpoints written before the option existed
  cfg.negatives ??= 'memory';
  cfg.cosine ??= false;
  return withViewDefaults(cfg as unknown as TrainConfig); // ... and before --views / --objective
}

/** The extra folders of a resumed run (rule in the header); throws when the command line's differ. */
export function resumedExtraFolders(saved: readonly string[], cmdLine: readonly string[], given: boolean): string[] {
  if (!given) return [...saved];
  const names = (fs: readonly string[]) => fs.map((f) => path.basename(path.resolve(f)));
  if (names(saved).join('\0') !== names(cmdLine).join('\0'))
    throw new Error(
      `--extra_folder ${cmdLine.join(',') || '(none)'} does not match the checkpoint's extra folders ` +
        `${saved.join(',') || '(none)'}: their images are rows of its memory bank. Resume without --extra_folder to ` +
        'keep them, give the same folders (by name, in the same order), or start a new run',
    );
  return [...cmdLine];
}
