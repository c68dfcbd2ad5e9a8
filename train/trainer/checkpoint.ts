/**
 * Checkpoints: one self-describing file holding the weights and BN statistics, the optimiser's momentum
 * buffers, both memories, Z, epoch and step, random states and the resolved config.
 *
 * Layout: 'CMCCKPT1' | u32 header length | JSON header | zero padding to 4 bytes | float32 blob. The header
 * lists each tensor's name, shape and offset into the blob. Writes are atomic: a temporary file in the
 * same folder is written, fsync'ed and renamed over the target, so a crash mid-write leaves the previous
 * checkpoint intact.
 */
import fs from 'node:fs';
import path from 'node:path';

const MAGIC = 'CMCCKPT1';

export interface TensorEntry {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint<H = Record<string, unknown>> {
  /** Everything that is not a tensor (config, epoch, step, rng states, Z, ...). */
  header: H;
  tensors: Record<string, TensorEntry>;
}

export function writeCheckpoint(file: string, ckpt: Checkpoint): void {
  const index: { name: string; shape: number[]; offset: number; length: number }[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(ckpt.tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`checkpoint tensor ${name}: shape [${t.shape}] but ${t.data.length} values`);
    index.push({ name, shape: t.shape, offset, length: n });
    offset += n;
  }
  const header = Buffer.from(JSON.stringify({ ...ckpt.header, __tensors: index }), 'utf8');
  const pre = 8 + 4 + header.length;
  const pad = (4 - (pre % 4)) % 4;
  const head = Buffer.alloc(pre + pad);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(header.length, 8);
  header.copy(head, 12);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, head);
    for (const e of index) {
      const d = ckpt.tensors[e.name].data;
      fs.writeSync(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  try {
    const dfd = fs.openSync(path.dirname(file), 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    // fsync on a directory is not supported everywhere; the rename itself is atomic.
  }
}

export function readCheckpoint<H = Record<string, unknown>>(file: string): Checkpoint<H> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read checkpoint ${file}: ${(e as Error).message}`);
  }
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) throw new Error(`${file} is not a cmc checkpoint (bad magic)`);
  const hlen = buf.readUInt32LE(8);
  if (12 + hlen > buf.length) throw new Error(`${file}: truncated checkpoint header`);
  let header: H & { __tensors: { name: string; shape: number[]; offset: number; length: number }[] };
  try {
    header = JSON.parse(buf.toString('utf8', 12, 12 + hlen));
  } catch {
    throw new Error(`${file}: corrupt checkpoint header`);
  }
  const start = 12 + hlen + ((4 - ((12 + hlen) % 4)) % 4);
  const total = header.__tensors.reduce((a, e) => a + e.length, 0);
  if (start + total * 4 !== buf.length) throw new Error(`${file}: truncated or corrupt checkpoint (${buf.length} bytes, expected ${start + total * 4})`);
  // Copy into an aligned buffer (the file buffer's offset need not be 4-aligned).
  const blob = new Float32Array(total);
  new Uint8Array(blob.buffer).set(buf.subarray(start, start + total * 4));
  const tensors: Record<string, TensorEntry> = {};
  for (const e of header.__tensors) tensors[e.name] = { shape: e.shape, data: blob.subarray(e.offset, e.offset + e.length) };
  const { __tensors: _, ...rest } = header;
  return { header: rest as H, tensors };
}
