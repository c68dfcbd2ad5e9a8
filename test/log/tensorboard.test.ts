/**
 * TensorBoard event files: CRC32C known vectors, TFRecord framing and a write → decode round trip.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  TbWriter,
  crc32c,
  decodeEvent,
  encodeScalarEvent,
  maskedCrc32c,
  readEvents,
  readRecords,
  tfRecord,
} from '../../train/log/tensorboard.ts';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-tb-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ascii = (s: string) => new TextEncoder().encode(s);

describe('tensorboard', () => {
  it('CRC32C known vectors (RFC 3720 B.4 and the check value)', () => {
    assert.equal(crc32c(ascii('123456789')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  });

  it('masked CRC = rotr15(crc) + 0xa282ead8 (mod 2^32)', () => {
    const c = 0xe3069283n;
    const rot = ((c >> 15n) | (c << 17n)) & 0xffffffffn;
    const want = Number((rot + 0xa282ead8n) & 0xffffffffn);
    assert.equal(maskedCrc32c(ascii('123456789')), want);
    // unmasking gives the CRC back
    const m = BigInt(maskedCrc32c(ascii('123456789')));
    const r = (m - 0xa282ead8n) & 0xffffffffn;
    assert.equal(Number(((r >> 17n) | (r << 15n)) & 0xffffffffn), 0xe3069283);
  });

  it('TFRecord framing: uint64 LE length, masked CRCs; corruption is detected', () => {
    const data = ascii('hello');
    const rec = tfRecord(data);
    assert.equal(rec.length, 8 + 4 + 5 + 4);
    assert.deepEqual(Array.from(rec.subarray(0, 8)), [5, 0, 0, 0, 0, 0, 0, 0]);
    const dv = new DataView(rec.buffer);
    assert.equal(dv.getUint32(8, true), maskedCrc32c(rec.subarray(0, 8)));
    assert.equal(dv.getUint32(17, true), maskedCrc32c(data));
    assert.deepEqual(
      readRecords(rec).map((r) => Array.from(r)),
      [Array.from(data)],
    );
    const bad = rec.slice();
    bad[13] ^= 1;
    assert.throws(() => readRecords(bad), /bad data CRC/);
  });

  it('Event protobuf bytes for a scalar', () => {
    const b = encodeScalarEvent('a', 1, 3, 0);
    // 09 <double 0> | 10 03 | 2a 0a (Summary, 10 bytes): 0a 08 (Value, 8 bytes): 0a 01 'a' 15 <float 1.0 = 00 00 80 3f>
    assert.deepEqual(
      Array.from(b),
      [
        0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x03, 0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 0x61, 0x15, 0x00, 0x00, 0x80,
        0x3f,
      ],
    );
    const e = decodeEvent(encodeScalarEvent('loss/x', -2.5, 2 ** 40 + 3, 1700000000.25));
    assert.deepEqual(e, {
      wallTime: 1700000000.25,
      step: 2 ** 40 + 3,
      values: [{ tag: 'loss/x', simpleValue: -2.5 }],
      tag: 'loss/x',
      value: -2.5,
    });
  });

  it('TbWriter round trip: file name, file_version first, scalars as float32', () => {
    const dir = path.join(tmp, 'run1');
    const w = new TbWriter(dir);
    assert.match(
      path.basename(w.file),
      new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${os.hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
    );
    w.scalar('loss/l', 0.1, 1);
    w.scalar('loss/ab', 3.75, 1);
    w.flush();
    w.scalar('lr', 0.03, 2);
    w.close();
    w.close(); // idempotent
    assert.throws(() => w.scalar('x', 1, 1), /closed/);
    const ev = readEvents(w.file);
    assert.equal(ev.length, 4);
    assert.equal(ev[0].fileVersion, 'brain.Event:2');
    assert.ok(Math.abs(ev[0].wallTime - Date.now() / 1000) < 60);
    assert.deepEqual(
      ev.slice(1).map((e) => [e.step, e.values[0].tag, e.values[0].simpleValue]),
      [
        [1, 'loss/l', Math.fround(0.1)],
        [1, 'loss/ab', 3.75],
        [2, 'lr', Math.fround(0.03)],
      ],
    );
    // A second writer in the same second gets its own file.
    const w2 = new TbWriter(dir);
    const w3 = new TbWriter(dir);
    assert.notEqual(w2.file, w3.file);
    w2.close();
    w3.close();
  });
});
