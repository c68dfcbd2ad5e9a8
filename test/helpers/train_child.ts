/**
 * `train()` in a child process for tests that kill it (test/trainer/chaos.test.ts): the config is one JSON
 * argument (TrainConfig fields over TRAIN_DEFAULTS); the flags given are its keys, as `cmc train` passes them.
 * It loads only the trainer, not the whole CLI, so each of the many short-lived children starts faster.
 */
import { TRAIN_DEFAULTS, type TrainConfig } from '../../train/trainer/config.ts';
import { train } from '../../train/trainer/train.ts';

const over = JSON.parse(process.argv[2] ?? '{}') as Partial<TrainConfig>;
await train({ ...TRAIN_DEFAULTS, ...over }, { explicit: Object.keys(over) as (keyof TrainConfig)[] });
