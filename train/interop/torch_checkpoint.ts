/**
 * `cmc import-torch`: a checkpoint of the PyTorch DDP trainer (torch_ddp/cmc_ddp/checkpoint.py: the safetensors
 * layout, https://github.com/huggingface/safetensors) -> this project's checkpoint (core/formats/checkpoint.ts),
 * so `cmc probe`, `cmc knn`, `cmc export` and `cmc serve` use it unchanged.
 *
 * The conversion is a layout change only: conv weights [out, in, kh, kw] -> tfjs [kh, kw, in, out], linear
 * [out, in] -> [in, out]; BN parameters and running statistics as they are (core/network/shapes.ts paramShapes
 * lists the names and tfjs shapes). Every tensor the network description needs must be there with its shape,
 * and nothing else: a checkpoint of another architecture is refused, naming the first tensor that differs.
 *
 *   const ckpt = importTorchCheckpoint('runs/x/current.safetensors');  // throws on a foreign file
 *   writeCheckpoint('runs/x/current.ckpt', ckpt);
 */
import fs from 'node:fs';
import type { CmcSpec } from '../../core/network/layers.ts';
import { paramShapes } from '../../core/network/shapes.ts';
import {
  TRAIN_CHECKPOINT_FORMAT,
  type Checkpoint,
  type CheckpointHeader,
  type TensorEntry,
} from '../../core/formats/checkpoint.ts';

export const TORCH_CHECKPOINT_FORMAT = 'cmc-torch-checkpoint';
export const TORCH_CHECKPOINT_VERSION = 1;

export interface Safetensors {
  tensors: Record<string, TensorEntry>;
  /** `__metadata__`: string to string, as the format defines it. */
  metadata: Record<string, string>;
}

/** Parse a safetensors file (F32 tensors only: what the trainer writes). */
export function readSafetensors(file: string): Safetensors {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const notOurs = (why: string) => new Error(`${file} is not a checkpoint of the PyTorch trainer (torch_ddp/): ${why}`);
  if (buf.length < 8) throw notOurs('too short for a safetensors file');
  const n = Number(buf.readBigUInt64LE(0));
  if (!(n > 1 && 8 + n <= buf.length)) throw notOurs('no safetensors header');
  let header: Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
  >;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  } catch {
    throw notOurs('its safetensors header is not JSON');
  }
  const { __metadata__: metadata = {}, ...entries } = header as Record<string, never>;
  const tensors: Record<string, TensorEntry> = {};
  const base = 8 + n;
  for (const [name, e] of Object.entries(entries) as [
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] },
  ][]) {
    if (e.dtype !== 'F32') throw notOurs(`tensor ${name} is ${e.dtype}, not F32`);
    const [lo, hi] = e.data_offsets;
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (hi - lo !== 4 * count || base + hi > buf.length) throw notOurs(`tensor ${name}: truncated or corrupt data`);
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(buf.subarray(base + lo, base + hi)); // copy: the file offset need not be 4-aligned
    tensors[name] = { shape: e.shape, data };
  }
  return { tensors, metadata };
}

/** Serialise tensors (+ string metadata) in the safetensors layout; the tests build foreign files with it. */
export function encodeSafetensors(s: Safetensors): Buffer {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, t] of Object.entries(s.tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * t.data.length] };
    off += 4 * t.data.length;
  }
  header.__metadata__ = s.metadata;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const blobs = Object.values(s.tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return Buffer.concat([head, Buffer.from(json, 'utf8'), ...blobs]);
}

/** PyTorch layout -> tfjs layout for one parameter, by its tfjs shape's rank and the owning layer's kind. */
function toTfjsLayout(name: string, t: TensorEntry, want: number[], kind: string): TensorEntry {
  const mismatch = () =>
    new Error(
      `tensor ${name} has shape [${t.shape}] but the network description needs ${describe(want, kind)}: ` +
        'the checkpoint is of another architecture than the description stored in it',
    );
  if (kind === 'conv2d' && want.length === 4) {
    const [kh, kw, cin, cout] = want;
    if (t.shape.join() !== [cout, cin, kh, kw].join()) throw mismatch();
    const out = new Float32Array(t.data.length);
    for (let o = 0; o < cout; o++)
      for (let i = 0; i < cin; i++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) {
            out[((y * kw + x) * cin + i) * cout + o] = t.data[((o * cin + i) * kh + y) * kw + x];
          }
    return { shape: want, data: out };
  }
  if (kind === 'linear' && want.length === 2) {
    const [fin, fout] = want;
    if (t.shape.join() !== [fout, fin].join()) throw mismatch();
    const out = new Float32Array(t.data.length);
    for (let o = 0; o < fout; o++) for (let i = 0; i < fin; i++) out[i * fout + o] = t.data[o * fin + i];
    return { shape: want, data: out };
  }
  if (t.shape.join() !== want.join()) throw mismatch();
  return { shape: want, data: t.data };
}

function describe(tfjsShape: number[], kind: string): string {
  if (kind === 'conv2d' && tfjsShape.length === 4)
    return `[${[tfjsShape[3], tfjsShape[2], tfjsShape[0], tfjsShape[1]]}] (PyTorch layout)`;
  if (kind === 'linear' && tfjsShape.length === 2) return `[${[tfjsShape[1], tfjsShape[0]]}] (PyTorch layout)`;
  return `[${tfjsShape}]`;
}

function metaJson(file: string, meta: Record<string, string>, key: string): unknown {
  if (!(key in meta)) throw new Error(`${file}: the checkpoint's metadata has no '${key}'`);
  try {
    return JSON.parse(meta[key]);
  } catch {
    throw new Error(`${file}: the checkpoint's metadata '${key}' is not JSON`);
  }
}

const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isRecords = (v: unknown): v is Record<string, unknown>[] =>
  Array.isArray(v) && v.every((x) => x !== null && typeof x === 'object');

/** metaJson, checked to be of the type the checkpoint header declares. */
function metaOf<T>(
  file: string,
  meta: Record<string, string>,
  key: string,
  ok: (v: unknown) => v is T,
  what: string,
): T {
  const v = metaJson(file, meta, key);
  if (!ok(v)) throw new Error(`${file}: the checkpoint's metadata '${key}' is not ${what}`);
  return v;
}

export interface ImportOptions {
  /** Refuse unless the checkpoint's architecture (spec.arch) is this one. */
  expectArch?: string;
}

/** Read and convert; throws a one-line reason for anything that is not a checkpoint of this trainer and version. */
export function importTorchCheckpoint(
  file: string,
  o: ImportOptions = {},
): Checkpoint<CheckpointHeader<Record<string, unknown>>> {
  const st = readSafetensors(file);
  const meta = st.metadata;
  const format = meta.format === undefined ? undefined : metaJson(file, meta, 'format');
  if (format !== TORCH_CHECKPOINT_FORMAT) {
    throw new Error(
      `${file} is not a checkpoint of the PyTorch trainer (torch_ddp/): its format is ${JSON.stringify(format ?? null)}, expected '${TORCH_CHECKPOINT_FORMAT}'`,
    );
  }
  const version = metaJson(file, meta, 'version');
  if (version !== TORCH_CHECKPOINT_VERSION) {
    throw new Error(
      `${file} is a ${TORCH_CHECKPOINT_FORMAT} of version ${JSON.stringify(version)}; this cmc reads version ${TORCH_CHECKPOINT_VERSION}`,
    );
  }
  const spec = metaJson(file, meta, 'spec') as CmcSpec;
  if (!spec || !Array.isArray(spec.views) || typeof spec.arch !== 'string')
    throw new Error(`${file}: the checkpoint's network description is not a CmcSpec`);
  if (o.expectArch !== undefined && spec.arch !== o.expectArch) {
    throw new Error(`${file} holds a ${spec.arch} network, not ${o.expectArch}`);
  }
  const config = metaJson(file, meta, 'config') as Record<string, unknown>;
  const tensors: Record<string, TensorEntry> = {};
  const expected = new Set<string>();
  for (const view of spec.views) {
    for (const p of paramShapes(view.encoder)) {
      const name = `${view.name}.${p.name}`;
      expected.add(name);
      const t = st.tensors[`model/${name}`];
      if (!t)
        throw new Error(
          `${file} lacks the tensor ${name} that its network description (${spec.arch}) needs: the checkpoint is of another architecture`,
        );
      tensors[`model/${name}`] = toTfjsLayout(name, t, p.shape, p.layer.kind);
    }
  }
  const extra = Object.keys(st.tensors).filter(
    (k) => k.startsWith('model/') && !expected.has(k.slice('model/'.length)),
  );
  if (extra.length)
    throw new Error(
      `${file} has tensors its network description (${spec.arch}) does not name, e.g. ${extra[0].slice(6)}: the checkpoint is of another architecture`,
    );
  // The memory bank comes along (its rows are embeddings: no layout change); momentum buffers are PyTorch's
  // to resume with (torch_ddp's --resume), so they stay behind.
  for (const [k, t] of Object.entries(st.tensors)) if (k.startsWith('memory/')) tensors[k] = t;
  const header: CheckpointHeader<typeof config> = {
    format: TRAIN_CHECKPOINT_FORMAT,
    version: 1,
    config,
    spec,
    epoch: metaOf(file, meta, 'epoch', isCount, 'a count'),
    step: metaOf(file, meta, 'step', isCount, 'a count'),
    nData: metaOf(file, meta, 'n_data', isCount, 'a count'),
    classNames: metaOf(file, meta, 'class_names', isStrings, 'a list of names'),
    metrics: metaOf(file, meta, 'metrics', isRecords, 'a list of objects'),
    // No tfjs bank or optimiser state: continue training with torch_ddp's --resume on the original file.
    importedFrom: { file, format: TORCH_CHECKPOINT_FORMAT, version, z: metaJson(file, meta, 'z') },
  };
  return { header, tensors };
}
