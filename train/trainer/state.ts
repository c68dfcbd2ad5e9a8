/**
 * The training state in a checkpoint (core/formats/checkpoint.ts): what each epoch saves (model, momentum
 * buffers, memory bank, the bank's RNG, epoch and step, metrics) and restoring it on --resume, so that a
 * resumed run continues with the same losses as one that never stopped.
 */
import {
  readModelCheckpoint,
  tensorsUnder,
  TRAIN_CHECKPOINT_FORMAT,
  type Checkpoint,
  type CheckpointHeader,
  type ModelCheckpoint,
  type TensorEntry,
} from '../../core/formats/checkpoint.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import type { Rng } from '../../core/util/rng.ts';
import type { CmcModel } from '../model/cmc.ts';
import type { MemoryBank } from '../loss/memory_bank.ts';
import type { SGD } from '../optim/sgd.ts';
import type { TrainConfig } from './config.ts';
import type { EpochMetrics } from './epoch_metrics.ts';

export type TrainCheckpoint = ModelCheckpoint<TrainConfig, EpochMetrics>;

/** The parts whose state a checkpoint holds. */
export interface TrainingParts {
  model: CmcModel;
  sgd: SGD;
  bank: MemoryBank;
  bankRng: Rng;
}

/** Reads a checkpoint to resume CMC training from; refuses checkpoints that carry no CMC training state. */
export function readResumeCheckpoint(file: string, log: (line: string) => void): TrainCheckpoint {
  const ckpt = readModelCheckpoint<TrainConfig, EpochMetrics>(file, { onNote: (m) => log(`[cmc] ${m}`) });
  const h = ckpt.header;
  if (h.objective === 'supervised') {
    throw new Error(
      `${file} is a supervised-baseline checkpoint (cmc supervised); it has no memory bank to resume CMC training from`,
    );
  }
  if (h.importedFrom)
    throw new Error(
      `${file} was imported from the PyTorch trainer (cmc import-torch); continue its training there (torch_ddp: --resume ${h.importedFrom.file})`,
    );
  if (!h.bank || !h.bankRng || !h.sgd)
    throw new Error(`${file} holds no memory bank or optimiser state to resume from`);
  return ckpt;
}

/** Loads the checkpoint's state into freshly built parts; returns where the run stands. */
export function restoreState(
  ckpt: TrainCheckpoint,
  parts: TrainingParts,
): { startEpoch: number; globalStep: number; metrics: EpochMetrics[] } {
  const { model, sgd, bank, bankRng } = parts;
  const h = ckpt.header;
  model.loadNamedArrays(ckpt.model);
  // Momentum buffers are saved under parameter names; tfjs variable names differ from run to run.
  const buffers = Object.fromEntries(
    Object.entries(tensorsUnder(ckpt.tensors, 'sgd/')).map(([k, v]) => {
      const variable = model.params.get(k);
      if (!variable) throw new Error(`checkpoint has optimiser state for unknown parameter ${k}`);
      return [variable.name, v];
    }),
  );
  sgd.loadState({ ...h.sgd!, buffers });
  const memory = tensorsUnder(ckpt.tensors, 'memory/');
  const memories = Object.keys(memory)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => memory[k].data);
  bank.loadState({ ...h.bank!, memories });
  bankRng.setState(h.bankRng!);
  return { startEpoch: h.epoch + 1, globalStep: h.step, metrics: [...h.metrics] };
}

/** The checkpoint of the run after `epoch` (`metrics` up to and including it). */
export async function trainingCheckpoint(
  parts: TrainingParts,
  run: {
    cfg: TrainConfig;
    spec: CmcSpec;
    epoch: number;
    step: number;
    nData: number;
    classNames: readonly string[];
    metrics: EpochMetrics[];
  },
): Promise<Checkpoint> {
  const { model, sgd, bank, bankRng } = parts;
  const { memories, ...bankState } = await bank.snapshot();
  const header: CheckpointHeader<TrainConfig, EpochMetrics> = {
    format: TRAIN_CHECKPOINT_FORMAT,
    version: 1,
    config: run.cfg,
    spec: run.spec,
    epoch: run.epoch,
    step: run.step,
    bankRng: bankRng.getState(),
    bank: bankState,
    sgd: { lr: sgd.lr, momentum: sgd.momentum, weightDecay: sgd.weightDecay },
    nData: run.nData,
    classNames: [...run.classNames],
    metrics: run.metrics,
  };
  const tensors: Record<string, TensorEntry> = {};
  for (const [k, v] of Object.entries(await model.snapshot())) tensors[`model/${k}`] = v;
  const paramName = new Map([...model.params].map(([k, v]) => [v.name, k]));
  for (const [k, v] of Object.entries((await sgd.snapshot()).buffers)) tensors[`sgd/${paramName.get(k)}`] = v;
  memories.forEach((mem, v) => (tensors[`memory/${v}`] = { shape: [run.nData, run.spec.featDim], data: mem }));
  return { header: header as unknown as Record<string, unknown>, tensors };
}
