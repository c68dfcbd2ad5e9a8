/**
 * Checkpoints: one self-describing file holding the weights and BN statistics, the optimiser's momentum
 * buffers, both memories, Z, epoch and step, random states and the resolved config.
 *
 * Layout (version 2): 'CMCCKPT2' | u32 header length | JSON header | zero padding to 4 bytes | float32 blob |
 * SHA-256 of everything before it (32 bytes). The header lists each tensor's name, shape and offset into the
 * blob. Reading verifies the checksum (bit flips, edited header or offset fields are refused) and that every
 * value is finite; writing refuses non-finite values, so a run whose weights blew up keeps its last good
 * checkpoint. Writes are atomic (util/atomic_write.ts): a crash mid-write leaves the previous checkpoint intact.
 *
 * Version 1 files ('CMCCKPT1', written before checksums, the same layout without the trailer) still load:
 * their size and values are checked and `onNote` says they carry no checksum.
 *
 * Every checkpoint cmc writes has one header type, CheckpointHeader (`cmc train`, `cmc supervised`,
 * `cmc import-torch`); readModelCheckpoint reads one with its network and model weights, for whoever rebuilds
 * the encoder (resume, evaluation, export).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { writeFileAtomic } from '../util/atomic_write.ts';
import type { CmcSpec } from '../network/layers.ts';
import { getCmcSpec } from '../network/registry.ts';
import type { ColorView } from '../preprocess/color.ts';
import type { RngState } from '../util/rng.ts';

const MAGIC = 'CMCCKPT2';
const MAGIC_V1 = 'CMCCKPT1';
const DIGEST_BYTES = 32;

export interface TensorEntry {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint<H = Record<string, unknown>> {
  /** Everything that is not a tensor (config, epoch, step, rng states, Z, ...). */
  header: H;
  tensors: Record<string, TensorEntry>;
}

interface IndexEntry {
  name: string;
  shape: number[];
  offset: number;
  length: number;
}

/** The first non-finite value of a tensor, or -1. */
function firstNonFinite(d: Float32Array): number {
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) return i;
  return -1;
}

/** Throws naming the first tensor holding NaN or Inf (`what` says whose: a checkpoint, a model to export). */
export function assertFinite(tensors: Record<string, TensorEntry>, what: string): void {
  for (const [name, t] of Object.entries(tensors)) {
    const i = firstNonFinite(t.data);
    if (i >= 0)
      throw new Error(
        `${what}: tensor ${name} holds ${t.data[i]} at index ${i} (non-finite weights; the training diverged or the file was damaged)`,
      );
  }
}

export function writeCheckpoint(file: string, ckpt: Checkpoint<object>): void {
  const index: IndexEntry[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(ckpt.tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length)
      throw new Error(`checkpoint tensor ${name}: shape [${t.shape}] but ${t.data.length} values`);
    index.push({ name, shape: t.shape, offset, length: n });
    offset += n;
  }
  assertFinite(ckpt.tensors, `not writing ${file}`);
  const header = Buffer.from(JSON.stringify({ ...ckpt.header, __tensors: index }), 'utf8');
  const pre = 8 + 4 + header.length;
  const pad = (4 - (pre % 4)) % 4;
  const head = Buffer.alloc(pre + pad);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(header.length, 8);
  header.copy(head, 12);
  const hash = crypto.createHash('sha256');
  function* chunks(): Generator<Uint8Array> {
    hash.update(head);
    yield head;
    for (const e of index) {
      const d = ckpt.tensors[e.name].data;
      const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      hash.update(bytes);
      yield bytes;
    }
    yield hash.digest();
  }
  writeFileAtomic(file, chunks());
}

export interface ReadOptions {
  /** Told when the file is a version-1 checkpoint (no checksum to verify). Default: console.warn. */
  onNote?: (message: string) => void;
}

export function readCheckpoint<H = Record<string, unknown>>(file: string, opts: ReadOptions = {}): Checkpoint<H> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read checkpoint ${file}: ${(e as Error).message}`, { cause: e });
  }
  const magic = buf.length >= 12 ? buf.toString('latin1', 0, 8) : '';
  if (magic !== MAGIC && magic !== MAGIC_V1) throw new Error(`${file} is not a cmc checkpoint (bad magic)`);
  let end = buf.length;
  if (magic === MAGIC) {
    if (buf.length < 12 + DIGEST_BYTES)
      throw new Error(`${file}: truncated or corrupt checkpoint (${buf.length} bytes)`);
    end = buf.length - DIGEST_BYTES;
    const want = buf.subarray(end);
    const got = crypto.createHash('sha256').update(buf.subarray(0, end)).digest();
    if (!got.equals(want)) {
      throw new Error(
        `${file}: checksum mismatch: the file is truncated or corrupt (damaged or edited); use an earlier ckpt_epoch_N.ckpt`,
      );
    }
  } else {
    (opts.onNote ?? ((m: string) => console.warn(m)))(
      `${file}: a version-1 checkpoint (written before checksums); loaded without verification`,
    );
  }
  const hlen = buf.readUInt32LE(8);
  if (12 + hlen > end) throw new Error(`${file}: truncated checkpoint header`);
  let header: H & { __tensors: IndexEntry[] };
  try {
    header = JSON.parse(buf.toString('utf8', 12, 12 + hlen));
  } catch {
    throw new Error(`${file}: corrupt checkpoint header`);
  }
  const index = header.__tensors;
  const start = 12 + hlen + ((4 - ((12 + hlen) % 4)) % 4);
  const total = Array.isArray(index) ? index.reduce((a, e) => a + e.length, 0) : NaN;
  if (start + total * 4 !== end)
    throw new Error(
      `${file}: truncated or corrupt checkpoint (${buf.length} bytes, expected ${start + total * 4 + (end === buf.length ? 0 : DIGEST_BYTES)})`,
    );
  // Copy into an aligned buffer (the file buffer's offset need not be 4-aligned).
  const blob = new Float32Array(total);
  new Uint8Array(blob.buffer).set(buf.subarray(start, start + total * 4));
  const tensors: Record<string, TensorEntry> = {};
  for (const e of index) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (!(Number.isInteger(e.offset) && e.offset >= 0 && n === e.length && e.offset + e.length <= total)) {
      throw new Error(
        `${file}: corrupt checkpoint index (tensor ${e.name}: shape [${e.shape}], offset ${e.offset}, length ${e.length})`,
      );
    }
    tensors[e.name] = { shape: e.shape, data: blob.subarray(e.offset, e.offset + e.length) };
  }
  assertFinite(tensors, file);
  const { __tensors: _, ...rest } = header;
  return { header: rest as H, tensors };
}

/**
 * The JSON header alone (no tensors read, nothing verified): for listings such as `cmc report`. Null when the
 * file is missing or not a checkpoint.
 */
export function readCheckpointHeader<H = Record<string, unknown>>(file: string): H | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const pre = Buffer.alloc(12);
    if (fs.readSync(fd, pre, 0, 12, 0) !== 12) return null;
    const magic = pre.toString('latin1', 0, 8);
    if (magic !== MAGIC && magic !== MAGIC_V1) return null;
    const hlen = pre.readUInt32LE(8);
    const hb = Buffer.alloc(hlen);
    if (fs.readSync(fd, hb, 0, hlen, 12) !== hlen) return null;
    return JSON.parse(hb.toString('utf8')) as H;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

export const TRAIN_CHECKPOINT_FORMAT = 'cmc-train-checkpoint';

/**
 * What readers use of a checkpoint's config. `cmc train` saves its whole TrainConfig
 * (train/trainer/config.ts), which core/ cannot name: the writer passes it as CheckpointHeader's Config.
 */
export type CheckpointConfig = {
  model?: string;
  image_size?: number;
  feat_dim?: number;
  view?: ColorView;
  views?: string[];
  crop_low?: number;
  name?: string;
  epochs?: number;
};

/** The memory bank's scalars (train/loss/memory_bank.ts MemoryBankState; its memories are the memory/N tensors). */
export interface BankHeader {
  nData: number;
  featDim: number;
  views: number;
  K: number;
  T: number;
  momentum: number;
  softmax: boolean;
  z: number[];
}

/** The optimiser's scalars (train/optim/sgd.ts SGDState; its momentum buffers are the sgd/<param> tensors). */
export interface SgdHeader {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/**
 * The header of every checkpoint cmc writes. Tensors: `model/<view>.<param>` (the encoders), and after
 * `cmc train` `sgd/<view>.<param>` (momentum buffers) and `memory/<view index>` (the memory bank); after
 * `cmc supervised` `classifier/weight` and `classifier/bias`.
 */
export interface CheckpointHeader<Config = CheckpointConfig, Metrics = Record<string, unknown>> {
  format: typeof TRAIN_CHECKPOINT_FORMAT;
  version: 1;
  /** 'supervised': `cmc supervised`'s baseline (a classifier, no memory bank); absent: CMC training. */
  objective?: 'supervised';
  config: Config;
  /** The network; headers older than it are resolved from config.model/image_size (readModelCheckpoint). */
  spec: CmcSpec;
  /** Last completed epoch (1-based). */
  epoch: number;
  /** SGD steps done so far. */
  step: number;
  /** Training images (rows of the memory bank). */
  nData: number;
  classNames: string[];
  /** One entry per finished epoch. */
  metrics: Metrics[];
  /** CMC training's state to resume from (absent after `cmc import-torch`; `cmc supervised` keeps only sgd). */
  bankRng?: RngState;
  bank?: BankHeader;
  sgd?: SgdHeader;
  /** `cmc supervised`: the linear classifier on the encoders' outputs. */
  classifier?: { input: string; inDim: number; classes: number };
  /** `cmc import-torch`: the PyTorch trainer's checkpoint this one was converted from. */
  importedFrom?: { file: string; format: string; version: unknown; z: unknown };
}

/** A checkpoint with its network and model weights resolved. */
export interface ModelCheckpoint<Config = CheckpointConfig, Metrics = Record<string, unknown>> {
  header: CheckpointHeader<Config, Metrics>;
  spec: CmcSpec;
  /** The colour space of the default views (config.view, default Lab). */
  view: ColorView;
  /** The model tensors by parameter name (`<view>.<param>`, without the `model/` prefix). */
  model: Record<string, TensorEntry>;
  /** Every tensor of the file, with its prefix. */
  tensors: Record<string, TensorEntry>;
}

/** The tensors whose names start with `prefix`, keyed by the rest of the name. */
export function tensorsUnder(tensors: Record<string, TensorEntry>, prefix: string): Record<string, TensorEntry> {
  const out: Record<string, TensorEntry> = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = t;
  return out;
}

/**
 * A training checkpoint file (CMCCKPT1 or CMCCKPT2, verified as readCheckpoint does) with its network and
 * model weights. Refuses files that are not cmc training checkpoints or hold no model.
 */
export function readModelCheckpoint<Config = CheckpointConfig, Metrics = Record<string, unknown>>(
  file: string,
  opts: ReadOptions = {},
): ModelCheckpoint<Config, Metrics> {
  const ckpt = readCheckpoint<Partial<CheckpointHeader>>(file, opts);
  const format = ckpt.header.format;
  if (format !== TRAIN_CHECKPOINT_FORMAT)
    throw new Error(
      `${file} is not a cmc training checkpoint (its header's format is ${JSON.stringify(format ?? null)})`,
    );
  return checkpointModel<Config, Metrics>(ckpt);
}

/**
 * The network and model weights of a checkpoint already read (`cmc export` also takes in-memory ones, whose
 * header may hold only spec and config). The network is header.spec, or for headers written before it the
 * registry's config.model at config.image_size.
 */
export function checkpointModel<Config = CheckpointConfig, Metrics = Record<string, unknown>>(
  ckpt: Checkpoint<object>,
): ModelCheckpoint<Config, Metrics> {
  const header = ckpt.header as Partial<CheckpointHeader>;
  const cfg = header.config ?? {};
  const view: ColorView = cfg.view ?? 'Lab';
  if (view !== 'Lab' && view !== 'YCbCr')
    throw new Error(`checkpoint config.view must be Lab or YCbCr, got ${String(view)}`);
  let spec = header.spec;
  if (!spec) {
    if (!cfg.model || !cfg.image_size)
      throw new Error('checkpoint header has neither spec nor config.model/image_size');
    spec = getCmcSpec(cfg.model, { imageSize: cfg.image_size, featDim: cfg.feat_dim ?? 128, view, views: cfg.views });
  }
  const model = tensorsUnder(ckpt.tensors, 'model/');
  if (Object.keys(model).length === 0) throw new Error('checkpoint holds no model/ tensors');
  return {
    header: ckpt.header as CheckpointHeader<Config, Metrics>,
    spec,
    view,
    model,
    tensors: ckpt.tensors,
  };
}
