/**
 * Checkpoint integrity: the SHA-256 trailer catches bit flips and edited header or offset fields, non-finite
 * weights are refused on write, on read and at export, version-1 files (no checksum) still load with a note,
 * and the one atomic-write helper keeps the previous file when the disk is full and cleans stale temporaries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  readCheckpoint,
  readCheckpointHeader,
  writeCheckpoint,
  type Checkpoint,
} from '../../core/formats/checkpoint.ts';
import { appendToFile, copyFileAtomic, removeStaleTemps, writeFileAtomic } from '../../core/util/atomic_write.ts';
import { TbWriter } from '../../train/log/tensorboard.ts';
import { exportModel } from '../../train/export/export.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-ckpt-test-'));

function sample(): Checkpoint {
  return {
    header: { format: 'cmc-train-checkpoint', epoch: 3, step: 9 },
    tensors: {
      'model/w': { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      'memory/0': { shape: [4], data: Float32Array.from([0.5, -1, 2, 7]) },
    },
  };
}

test('a checkpoint round-trips and any flipped bit, edited header field or offset is refused with a clear error', () => {
  const file = path.join(tmp, 'flip', 'current.ckpt');
  writeCheckpoint(file, sample());
  const back = readCheckpoint<{ epoch: number }>(file);
  assert.equal(back.header.epoch, 3);
  assert.deepEqual(Array.from(back.tensors['model/w'].data), [1, 2, 3, 4, 5, 6]);
  const good = fs.readFileSync(file);
  // Every byte position, one bit each: magic, header length, header JSON, padding, blob and the digest itself.
  const bad = path.join(tmp, 'flip', 'bad.ckpt');
  for (let at = 0; at < good.length; at++) {
    const b = Buffer.from(good);
    b[at] ^= 1 << (at % 8);
    fs.writeFileSync(bad, b);
    assert.throws(
      () => readCheckpoint(bad),
      /checksum mismatch|not a cmc checkpoint/,
      `bit flip at byte ${at} of ${good.length} went unnoticed`,
    );
  }
  // Edited fields that keep the JSON valid and the size right: the epoch, and a tensor's offset.
  for (const [from, to] of [
    ['"epoch":3', '"epoch":4'],
    ['"offset":6', '"offset":0'],
  ]) {
    const s = good.toString('latin1');
    assert.ok(s.includes(from), from);
    fs.writeFileSync(bad, Buffer.from(s.replace(from, to), 'latin1'));
    assert.throws(() => readCheckpoint(bad), /checksum mismatch/);
  }
  assert.throws(() => readCheckpoint(path.join(tmp, 'flip', 'missing.ckpt')), /cannot read checkpoint .*missing\.ckpt/);
});

/** A version-1 file as the earlier writer made it: the same layout without the digest trailer. */
function writeV1(file: string, ck: Checkpoint): void {
  const index: { name: string; shape: number[]; offset: number; length: number }[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(ck.tensors)) {
    index.push({ name, shape: t.shape, offset, length: t.data.length });
    offset += t.data.length;
  }
  const header = Buffer.from(JSON.stringify({ ...ck.header, __tensors: index }));
  const pre = 12 + header.length;
  const head = Buffer.alloc(pre + ((4 - (pre % 4)) % 4));
  head.write('CMCCKPT1', 0, 'latin1');
  head.writeUInt32LE(header.length, 8);
  header.copy(head, 12);
  fs.writeFileSync(
    file,
    Buffer.concat([head, ...index.map((e) => Buffer.from(ck.tensors[e.name].data.buffer.slice(0)))]),
  );
}

test('version-1 checkpoints (no checksum) still load, with a note; a NaN in one is refused', () => {
  const file = path.join(tmp, 'v1.ckpt');
  writeV1(file, sample());
  const notes: string[] = [];
  const back = readCheckpoint<{ step: number }>(file, { onNote: (m) => notes.push(m) });
  assert.equal(back.header.step, 9);
  assert.deepEqual(Array.from(back.tensors['memory/0'].data), [0.5, -1, 2, 7]);
  assert.equal(notes.length, 1);
  assert.match(notes[0], /version-1 checkpoint .*without verification/);
  assert.equal(readCheckpointHeader<{ epoch: number }>(file)?.epoch, 3, 'cmc report still reads its header');
  const nan = sample();
  nan.tensors['model/w'].data[4] = NaN;
  writeV1(file, nan);
  assert.throws(() => readCheckpoint(file, { onNote: () => {} }), /tensor model\/w holds NaN at index 4/);
});

test('non-finite weights are never written, and an in-memory checkpoint with one is refused at export', async () => {
  const file = path.join(tmp, 'nan', 'current.ckpt');
  writeCheckpoint(file, sample());
  const before = fs.readFileSync(file);
  const inf = sample();
  inf.tensors['memory/0'].data[1] = -Infinity;
  assert.throws(() => writeCheckpoint(file, inf), /not writing .*current\.ckpt: tensor memory\/0 holds -Infinity/);
  assert.deepEqual(fs.readFileSync(file), before, 'the previous checkpoint is kept');
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['current.ckpt']);

  const spec = tinySpec();
  const tensors: Checkpoint['tensors'] = {};
  // Only the tensor names matter before the finiteness check; one NaN weight is enough.
  tensors['model/L.c1.0.weight'] = { shape: [3, 3, 1, 8], data: new Float32Array(72).fill(0.1) };
  tensors['model/L.c1.0.weight'].data[5] = NaN;
  await assert.rejects(
    exportModel({
      checkpoint: { header: { spec, config: { view: 'Lab' } }, tensors },
      outDir: path.join(tmp, 'export-nan'),
    }),
    /refusing to export this checkpoint: tensor L\.c1\.0\.weight holds NaN/,
  );
  assert.ok(!fs.existsSync(path.join(tmp, 'export-nan')), 'nothing exported');
});

test('a full disk (ENOSPC) names the file, keeps the previous one and leaves no temporary file', () => {
  const dir = path.join(tmp, 'full');
  const file = path.join(dir, 'current.ckpt');
  writeCheckpoint(file, sample());
  const before = fs.readFileSync(file);
  const writeSync = fs.writeSync;
  let calls = 0;
  // The kernel's answer to a write on a full disk, after the first chunk went through.
  (fs as { writeSync: unknown }).writeSync = (...args: unknown[]) => {
    if (++calls > 1)
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
    return (writeSync as (...a: unknown[]) => number)(...args);
  };
  try {
    const next = sample();
    next.header.epoch = 4;
    assert.throws(
      () => writeCheckpoint(file, next),
      (e: Error) => {
        assert.match(
          e.message,
          /^cannot write .*full\/current\.ckpt: no space left on device \(ENOSPC\); the previous current\.ckpt is kept$/,
        );
        return true;
      },
    );
    calls = 1; // the snapshot copy fails on its first write
    assert.throws(
      () => copyFileAtomic(file, path.join(dir, 'ckpt_epoch_4.ckpt')),
      /cannot write .*ckpt_epoch_4\.ckpt: no space left on device/,
    );
  } finally {
    (fs as { writeSync: unknown }).writeSync = writeSync;
  }
  assert.deepEqual(fs.readFileSync(file), before);
  assert.equal(readCheckpoint<{ epoch: number }>(file).header.epoch, 3);
  // Logs are appended, not replaced: their failures name the file too (node's own message names none).
  const metrics = path.join(dir, 'metrics.jsonl');
  const tb = new TbWriter(path.join(tmp, 'full-tb'));
  tb.scalar('train/loss', 1, 1);
  const append = fs.appendFileSync;
  (fs as { appendFileSync: unknown }).appendFileSync = () => {
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  };
  (fs as { writeSync: unknown }).writeSync = () => {
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  };
  try {
    assert.throws(
      () => appendToFile(metrics, '{"epoch":4}\n'),
      new RegExp(`^Error: cannot write ${metrics}: no space left on device \\(ENOSPC\\)$`),
    );
    assert.throws(
      () => tb.flush(),
      /^Error: cannot write .*full-tb\/events\.out\.tfevents\.[^:]*: no space left on device \(ENOSPC\)$/,
    );
  } finally {
    (fs as { appendFileSync: unknown }).appendFileSync = append;
    (fs as { writeSync: unknown }).writeSync = writeSync;
  }
  tb.close();
  fs.rmSync(metrics, { force: true });
  assert.deepEqual(fs.readdirSync(dir), ['current.ckpt'], 'no temporary or partial file left');
});

test("stale temporary files of dead writers are removed on start; a live writer's are left alone", () => {
  const dir = path.join(tmp, 'stale');
  writeFileAtomic(path.join(dir, 'metrics.jsonl'), '{"epoch":1}\n');
  // A pid that is not running: one past the highest pid the kernel hands out is never alive.
  const max = Number(
    fs.existsSync('/proc/sys/kernel/pid_max') ? fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8') : 4194304,
  );
  const dead = `current.ckpt.tmp-${max + 1}`;
  const live = `current.ckpt.tmp-${process.pid}`;
  fs.writeFileSync(path.join(dir, dead), 'half');
  fs.writeFileSync(path.join(dir, live), 'mine');
  fs.writeFileSync(path.join(dir, 'notes.tmp'), 'not ours');
  assert.deepEqual(removeStaleTemps(dir), [path.join(dir, dead)]);
  assert.deepEqual(fs.readdirSync(dir).sort(), [live, 'metrics.jsonl', 'notes.tmp']);
  assert.equal(fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8'), '{"epoch":1}\n');
});
