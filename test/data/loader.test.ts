/**
 * Loader: seeded epoch order, drop_last false, identical batches for 0 and 2 worker threads, resume
 * mid-epoch, warnings from workers, and (if present) the real imagenette64-sub data.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { openSource, RawU8Source } from '../../train/data/sources.ts';
import {
  Loader,
  epochOrder,
  maxWorkers,
  sampleRng,
  throughput,
  type Batch,
  type LoaderTransform,
} from '../../train/data/loader.ts';

let tmp = '';
let rawDir = '';
const N = 37,
  H = 20,
  W = 24;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-loader-'));
  rawDir = path.join(tmp, 'raw');
  fs.mkdirSync(rawDir);
  const x = new Uint8Array(N * H * W * 3);
  for (let i = 0; i < x.length; i++) x[i] = (i * 2654435761) >>> 24;
  fs.writeFileSync(path.join(rawDir, 'train_x.u8'), x);
  fs.writeFileSync(
    path.join(rawDir, 'train_y.u8'),
    Uint8Array.from({ length: N }, (_, i) => i % 10),
  );
  fs.writeFileSync(
    path.join(rawDir, 'meta.json'),
    JSON.stringify({ height: H, width: W, splits: { train: { n: N, shape: [N, H, W, 3] } } }),
  );
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const train: LoaderTransform = { mode: 'train', size: 16, view: 'Lab', cropLow: 0.2 };

async function collect(l: Loader, epoch: number, startBatch = 0): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of l.epoch(epoch, { startBatch })) out.push(b);
  return out;
}

describe('Loader', () => {
  it('caps worker threads at the CPU count and says so (--workers 1000 took 11.7 GB)', async () => {
    const warns: string[] = [];
    const l = new Loader(new RawU8Source(rawDir, 'train'), {
      batchSize: 8,
      workers: 1000,
      transform: train,
      onWarn: (m) => warns.push(m),
    });
    assert.equal(l.workers, maxWorkers());
    assert.deepEqual(warns, [
      `--workers 1000 is more than the ${maxWorkers()} CPU cores here; using ${maxWorkers()} worker threads`,
    ]);
    assert.equal(
      new Loader(new RawU8Source(rawDir, 'train'), { batchSize: 8, workers: 1, transform: train }).workers,
      1,
    );
  });

  it('epoch order is a seeded permutation, different per epoch and seed', () => {
    const a = epochOrder(100, 1, 0),
      b = epochOrder(100, 1, 0),
      c = epochOrder(100, 1, 1),
      d = epochOrder(100, 2, 0);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.notDeepEqual(a, d);
    assert.deepEqual(
      Array.from(a).sort((p, q) => p - q),
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.deepEqual(Array.from(epochOrder(5, 1, 0, false)), [0, 1, 2, 3, 4]);
    assert.equal(sampleRng(1, 2, 3).nextU32(), sampleRng(1, 2, 3).nextU32());
    assert.notEqual(sampleRng(1, 2, 3).nextU32(), sampleRng(1, 2, 4).nextU32());
  });

  it('0 and 2 workers give bit-identical batches (drop_last false, last batch partial)', async () => {
    const src = new RawU8Source(rawDir, 'train');
    const l0 = new Loader(src, { batchSize: 8, seed: 11, workers: 0, transform: train });
    const l2 = new Loader(src, { batchSize: 8, seed: 11, workers: 2, prefetch: 3, transform: train });
    try {
      assert.equal(l0.length, 5);
      const a = await collect(l0, 3);
      const b = await collect(l2, 3);
      assert.deepEqual(
        a.map((x) => x.size),
        [8, 8, 8, 8, 5],
      );
      assert.equal(a.length, b.length);
      for (let k = 0; k < a.length; k++) {
        assert.deepEqual(a[k].index, b[k].index);
        assert.deepEqual(a[k].label, b[k].label);
        assert.equal(a[k].x.length, a[k].size * 16 * 16 * 3);
        assert.ok(Buffer.from(a[k].x.buffer).equals(Buffer.from(b[k].x.buffer)), `batch ${k} differs`);
      }
      const seen = a.flatMap((x) => Array.from(x.index)).sort((p, q) => p - q);
      assert.deepEqual(
        seen,
        Array.from({ length: N }, (_, i) => i),
      );
      assert.deepEqual(
        Array.from(a[0].label),
        Array.from(a[0].index).map((i) => i % 10),
      );
      // A different epoch draws a different order and different crops.
      const e4 = await collect(l2, 4);
      assert.notDeepEqual(e4[0].index, a[0].index);
      // Resume at batch 2: identical to the tail of the full epoch.
      const tail = await collect(l2, 3, 2);
      assert.equal(tail.length, 3);
      assert.deepEqual(tail[0].index, a[2].index);
      assert.ok(Buffer.from(tail[2].x.buffer).equals(Buffer.from(a[4].x.buffer)));
      // Breaking out early leaves the loader usable.
      for await (const bb of l2.epoch(5)) {
        assert.equal(bb.batch, 0);
        break;
      }
      assert.equal((await collect(l2, 3)).length, 5);
    } finally {
      await l2.close();
      src.close();
    }
  });

  it('dropLast, no shuffle and the val transform', async () => {
    const src = new RawU8Source(rawDir, 'train');
    const l = new Loader(src, {
      batchSize: 10,
      dropLast: true,
      shuffle: false,
      transform: { mode: 'val', size: 16, view: 'YCbCr' },
    });
    const bs = await collect(l, 0);
    assert.equal(bs.length, 3);
    assert.deepEqual(Array.from(bs[1].index), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    const again = await collect(l, 7);
    assert.ok(
      Buffer.from(again[2].x.buffer).equals(Buffer.from(bs[2].x.buffer)),
      'val is deterministic for every epoch',
    );
  });

  it('worker threads forward bad-image warnings and match the in-thread result', async () => {
    const root = path.join(tmp, 'folder');
    for (const c of ['a', 'b']) fs.mkdirSync(path.join(root, c), { recursive: true });
    const img = (s: number) => sharp(Buffer.alloc(18 * 14 * 3, s), { raw: { width: 18, height: 14, channels: 3 } });
    for (let k = 0; k < 4; k++)
      await img(40 * k)
        .png()
        .toFile(path.join(root, k < 2 ? 'a' : 'b', `${k}.png`));
    const noise = Buffer.alloc(32 * 32 * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    const png = await sharp(noise, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toBuffer(); // header survives truncation
    fs.writeFileSync(path.join(root, 'a', '1b_trunc.png'), png.subarray(0, png.length >> 1));
    const warns: string[] = [];
    const src = await openSource('imagefolder', root, 'train', { onWarn: (m) => warns.push(m) });
    assert.equal(src.length, 5);
    const l2 = new Loader(src, { batchSize: 2, seed: 5, workers: 2, transform: train, onWarn: (m) => warns.push(m) });
    const l0 = new Loader(src, { batchSize: 2, seed: 5, workers: 0, transform: train, onWarn: () => {} });
    try {
      const a = await collect(l2, 0);
      const b = await collect(l0, 0);
      for (let k = 0; k < a.length; k++) assert.ok(Buffer.from(a[k].x.buffer).equals(Buffer.from(b[k].x.buffer)));
      assert.ok(
        warns.some((w) => w.includes('1b_trunc.png') && w.includes('cannot decode')),
        warns.join('\n'),
      );
    } finally {
      await l2.close();
    }
  });

  it('real data: imagenette64-sub shapes and a loader pass', async (t) => {
    // ../shared/data beside the checkout (as on developer machines and CI), or CMC_DATA_DIR.
    const root = process.env.CMC_DATA_DIR ?? path.resolve(import.meta.dirname, '../../../shared/data');
    const dir = path.join(root, 'imagenette64-sub');
    if (!fs.existsSync(path.join(dir, 'meta.json'))) {
      t.skip(`real data not found at ${dir} (optional; generated data covers the rest)`);
      return;
    }
    const src = await openSource('auto', dir, 'train');
    assert.equal(src.kind, 'raw');
    assert.equal(src.length, 5000);
    assert.deepEqual([src.width, src.height], [64, 64]);
    assert.equal(src.classNames.length, 10);
    const y = src.labels()!;
    const counts = new Array(10).fill(0);
    for (const v of y) counts[v]++;
    assert.deepEqual(counts, new Array(10).fill(500));
    const test = await openSource('auto', dir, 'test');
    assert.equal(test.length, 2000);
    const r = await throughput(src, {
      workers: 2,
      batchSize: 64,
      transform: { mode: 'train', size: 64, view: 'Lab', cropLow: 0.2 },
      batches: 6,
    });
    assert.ok(r.images === 6 * 64 && r.imagesPerSec > 0);
    t.diagnostic(`imagenette64-sub train aug @64px, 2 workers: ${r.imagesPerSec.toFixed(0)} images/s`);
    const l = new Loader(src, { batchSize: 256, workers: 0, transform: { mode: 'train', size: 64, view: 'Lab' } });
    const first = (await l.epoch(0).next()).value!;
    assert.equal(first.x.length, 256 * 64 * 64 * 3);
    let mn = Infinity,
      mx = -Infinity;
    for (const v of first.x) {
      mn = Math.min(mn, v);
      mx = Math.max(mx, v);
    }
    assert.ok(mn >= -1.01 && mx <= 1.01, `Lab inputs normalised to about [-1, 1]: ${mn}..${mx}`);
    src.close();
    test.close();
  });
});
