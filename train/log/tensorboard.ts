/**
 * TensorBoard event-file writer (scalars only), no dependency.
 *
 *   const tb = new TbWriter('runs/x');  tb.scalar('loss/l', 3.2, step);  tb.flush();  tb.close();
 *
 * File `events.out.tfevents.<secs>.<hostname>` (a `.<pid>.<n>` suffix is added if that name exists).
 * Records use TFRecord framing: uint64 LE length, uint32 masked CRC32C(length bytes), data, uint32 masked
 * CRC32C(data). The first event carries file_version "brain.Event:2". Encoded protobuf fields:
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
 * Events are buffered and written on flush()/close(), when 64 KiB are pending, or when `flushSecs`
 * (default 10 s) have passed since the last write (checked on each scalar() call; no timers).
 * `readEvents(path)` decodes such a file (for tests and tools).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeError } from '../../core/util/atomic_write.ts';

// ---------------------------------------------------------------------------------------------------
// CRC32C (Castagnoli, reflected polynomial 0x82F63B78)

const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: ((crc >>> 15) | (crc << 17)) + 0xa282ead8, mod 2^32. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, masked CRC of length, data, masked CRC of data. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  dv.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Minimal protobuf writer

class Pb {
  private parts: number[] = [];

  varint(v: bigint | number): this {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.parts.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.parts.push(Number(x));
    return this;
  }

  key(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.key(field, 1);
    this.parts.push(...b);
    return this;
  }

  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.key(field, 5);
    this.parts.push(...b);
    return this;
  }

  int64(field: number, v: number | bigint): this {
    return this.key(field, 0).varint(v);
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2).varint(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export function encodeScalarEvent(tag: string, value: number, step: number, wallTime: number): Uint8Array {
  const val = new Pb().string(1, tag).float(2, value).finish();
  const summary = new Pb().bytes(1, val).finish();
  return new Pb().double(1, wallTime).int64(2, Math.trunc(step)).bytes(5, summary).finish();
}

export function encodeFileVersionEvent(wallTime: number): Uint8Array {
  return new Pb().double(1, wallTime).string(3, 'brain.Event:2').finish();
}

// ---------------------------------------------------------------------------------------------------
// Writer

export class TbWriter {
  readonly file: string;
  private fd: number | null;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private lastWrite = Date.now();

  constructor(
    readonly dir: string,
    private readonly opts: { flushSecs?: number } = {},
  ) {
    fs.mkdirSync(dir, { recursive: true });
    const now = Date.now() / 1000;
    const base = `events.out.tfevents.${Math.floor(now)}.${os.hostname()}`;
    let name = base;
    let fd: number | null = null;
    for (let n = 0; fd === null; n++) {
      try {
        fd = fs.openSync(path.join(dir, name), 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || n > 1000) throw e;
        name = `${base}.${process.pid}.${n + 1}`;
      }
    }
    this.fd = fd;
    this.file = path.join(dir, name);
    this.write(encodeFileVersionEvent(now));
    this.flush();
  }

  private write(event: Uint8Array): void {
    const rec = tfRecord(event);
    this.pending.push(rec);
    this.pendingBytes += rec.length;
  }

  /** Log a scalar (stored as float32). */
  scalar(tag: string, value: number, step: number, wallTime = Date.now() / 1000): void {
    if (this.fd === null) throw new Error(`TbWriter: ${this.file} is closed`);
    this.write(encodeScalarEvent(tag, value, step, wallTime));
    if (this.pendingBytes >= 65536 || Date.now() - this.lastWrite >= (this.opts.flushSecs ?? 10) * 1000) this.flush();
  }

  flush(): void {
    if (this.fd === null || this.pending.length === 0) return;
    const buf = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    let off = 0;
    try {
      while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    } catch (e) {
      throw writeError(this.file, e as NodeJS.ErrnoException);
    }
    this.lastWrite = Date.now();
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

// ---------------------------------------------------------------------------------------------------
// Reader (tests, tools)

export interface TbEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: { tag: string; simpleValue: number }[];
  /** Convenience: tag and value of the first summary value (scalar events carry exactly one). */
  tag?: string;
  value?: number;
}

function readVarint(b: Uint8Array, pos: { p: number }): bigint {
  let x = 0n,
    shift = 0n;
  for (;;) {
    if (pos.p >= b.length) throw new Error('protobuf: truncated varint');
    const c = b[pos.p++];
    x |= BigInt(c & 0x7f) << shift;
    if (!(c & 0x80)) return x;
    shift += 7n;
  }
}

/** Iterate (field, wire, payload) over a message. */
function* fields(b: Uint8Array): Generator<{ field: number; wire: number; v?: bigint; data?: Uint8Array }> {
  const pos = { p: 0 };
  while (pos.p < b.length) {
    const key = Number(readVarint(b, pos));
    const field = key >>> 3,
      wire = key & 7;
    if (wire === 0) yield { field, wire, v: readVarint(b, pos) };
    else if (wire === 1) {
      yield { field, wire, data: b.subarray(pos.p, pos.p + 8) };
      pos.p += 8;
    } else if (wire === 5) {
      yield { field, wire, data: b.subarray(pos.p, pos.p + 4) };
      pos.p += 4;
    } else if (wire === 2) {
      const n = Number(readVarint(b, pos));
      yield { field, wire, data: b.subarray(pos.p, pos.p + n) };
      pos.p += n;
    } else throw new Error(`protobuf: unsupported wire type ${wire}`);
  }
}

const dvOf = (d: Uint8Array) => new DataView(d.buffer, d.byteOffset, d.byteLength);

export function decodeEvent(b: Uint8Array): TbEvent {
  const ev: TbEvent = { wallTime: 0, step: 0, values: [] };
  for (const f of fields(b)) {
    if (f.field === 1 && f.wire === 1) ev.wallTime = dvOf(f.data!).getFloat64(0, true);
    else if (f.field === 2 && f.wire === 0) ev.step = Number(BigInt.asIntN(64, f.v!));
    else if (f.field === 3 && f.wire === 2) ev.fileVersion = new TextDecoder().decode(f.data);
    else if (f.field === 5 && f.wire === 2) {
      for (const s of fields(f.data!)) {
        if (s.field !== 1 || s.wire !== 2) continue;
        let tag = '',
          simpleValue = NaN;
        for (const v of fields(s.data!)) {
          if (v.field === 1 && v.wire === 2) tag = new TextDecoder().decode(v.data);
          else if (v.field === 2 && v.wire === 5) simpleValue = dvOf(v.data!).getFloat32(0, true);
        }
        ev.values.push({ tag, simpleValue });
      }
    }
  }
  if (ev.values.length > 0) {
    ev.tag = ev.values[0].tag;
    ev.value = ev.values[0].simpleValue;
  }
  return ev;
}

/** Split TFRecord framing, checking both CRCs. */
export function readRecords(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const dv = dvOf(buf);
  let p = 0;
  while (p < buf.length) {
    if (p + 12 > buf.length) throw new Error(`tfrecord: truncated header at ${p}`);
    const len = Number(dv.getBigUint64(p, true));
    if (dv.getUint32(p + 8, true) !== maskedCrc32c(buf.subarray(p, p + 8)))
      throw new Error(`tfrecord: bad length CRC at ${p}`);
    const data = buf.subarray(p + 12, p + 12 + len);
    if (p + 16 + len > buf.length) throw new Error(`tfrecord: truncated record at ${p}`);
    if (dv.getUint32(p + 12 + len, true) !== maskedCrc32c(data)) throw new Error(`tfrecord: bad data CRC at ${p}`);
    out.push(data);
    p += 16 + len;
  }
  return out;
}

export function readEvents(file: string): TbEvent[] {
  return readRecords(new Uint8Array(fs.readFileSync(file))).map(decodeEvent);
}
