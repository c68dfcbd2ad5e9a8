/**
 * ConcatSource (train/data/sources/concat.ts) on generated folders: sample counts, which folder and image each
 * index reads, labels of the extra folders left out, image sizes that must agree, and loader worker threads
 * that reopen the same sample list from its spec.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ConcatSource, openSource, RawU8Source, sourceFromSpec } from '../../train/data/sources.ts';
import { Loader, type Batch, type LoaderTransform } from '../../train/data/loader.ts';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-concat-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Image n of folder `tag`: every byte says which folder and image it is. */
const pixel = (tag: number, n: number, k: number) => (tag * 64 + n * 5 + k) & 255;

/** A raw folder of n images of h x w, labels 0..n-1 mod 3. */
function rawFolder(name: string, tag: number, n: number, h = 4, w = 6): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  const x = new Uint8Array(n * h * w * 3);
  for (let i = 0; i < n; i++) for (let k = 0; k < h * w * 3; k++) x[i * h * w * 3 + k] = pixel(tag, i, k);
  fs.writeFileSync(path.join(d, 'train_x.u8'), x);
  fs.writeFileSync(
    path.join(d, 'train_y.u8'),
    Uint8Array.from({ length: n }, (_, i) => i % 3),
  );
  fs.writeFileSync(
    path.join(d, 'meta.json'),
    JSON.stringify({ class_names: ['a', 'b', 'c'], splits: { train: { shape: [n, h, w, 3] } } }),
  );
  return d;
}

describe("ConcatSource, labelled (a supervised run on every folder's labels)", () => {
  it("keeps every folder's labels, in the sample list and in a reopened copy (loader workers)", async () => {
    const a = new RawU8Source(rawFolder('la', 1, 5), 'train');
    const b = new RawU8Source(rawFolder('lb', 2, 4), 'train');
    const all = new ConcatSource([a, b], ['la', 'lb'], { labelled: true });
    const again = sourceFromSpec(all.spec());
    try {
      const want = [0, 1, 2, 0, 1, 0, 1, 2, 0];
      assert.deepEqual(Array.from(all.labels()!), want);
      assert.deepEqual(Array.from(again.labels()!), want);
      assert.equal((await all.get(6)).label, 1);
      assert.equal((await again.get(6)).label, 1);
      // Unlabelled by default: the second folder's images count as -1.
      assert.deepEqual(Array.from(new ConcatSource([a, b]).labels()!).slice(5), [-1, -1, -1, -1]);
    } finally {
      all.close();
      again.close();
    }
  });

  it('refuses folders that name other classes', () => {
    const a = new RawU8Source(rawFolder('lc', 1, 3), 'train');
    const dir = rawFolder('ld', 2, 3);
    fs.writeFileSync(
      path.join(dir, 'meta.json'),
      JSON.stringify({ class_names: ['b', 'a', 'c'], splits: { train: { shape: [3, 4, 6, 3] } } }),
    );
    const b = new RawU8Source(dir, 'train');
    try {
      assert.throws(
        () => new ConcatSource([a, b], ['/x/lc', '/x/ld'], { labelled: true }),
        /\/x\/ld names the classes b, a, c but \/x\/lc names a, b, c/,
      );
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('ConcatSource', () => {
  it("counts every folder's images and maps each index to its folder and image", async () => {
    const a = new RawU8Source(rawFolder('a', 1, 5), 'train');
    const b = new RawU8Source(rawFolder('b', 2, 3), 'train');
    const c = new RawU8Source(rawFolder('c', 3, 4), 'train');
    const all = new ConcatSource([a, b, c]);
    try {
      assert.equal(all.length, 12);
      assert.equal(all.kind, 'concat');
      assert.deepEqual([all.width, all.height], [6, 4]);
      assert.deepEqual(all.classNames, ['a', 'b', 'c']);
      const where = Array.from({ length: 12 }, (_, i) => all.partOf(i));
      assert.deepEqual(
        where.map((w) => `${w.part}:${w.index}`),
        ['0:0', '0:1', '0:2', '0:3', '0:4', '1:0', '1:1', '1:2', '2:0', '2:1', '2:2', '2:3'],
      );
      for (let i = 0; i < 12; i++) {
        const { part, index } = where[i];
        const s = await all.get(i);
        assert.equal(s.rgb[0], pixel(part + 1, index, 0), `sample ${i} is image ${index} of folder ${part}`);
        assert.equal(s.rgb[71], pixel(part + 1, index, 71));
        assert.equal(s.label, part === 0 ? index % 3 : -1, 'only the first folder keeps its labels');
      }
      assert.deepEqual(Array.from(all.labels()!), [0, 1, 2, 0, 1, -1, -1, -1, -1, -1, -1, -1]);
      assert.throws(() => all.partOf(12), RangeError);
      assert.throws(() => all.partOf(-1), RangeError);
    } finally {
      all.close();
    }
  });

  it('reopens from its spec with the same samples, and mixes formats', async () => {
    const img = path.join(tmp, 'photos', 'cls');
    fs.mkdirSync(img, { recursive: true });
    for (const [i, v] of [10, 200].entries())
      await sharp(Buffer.alloc(8 * 8 * 3, v), { raw: { width: 8, height: 8, channels: 3 } })
        .png()
        .toFile(path.join(img, `${i}.png`));
    const a = await openSource('auto', rawFolder('d', 4, 3), 'train');
    const photos = await openSource('auto', path.join(tmp, 'photos'), 'train');
    const all = new ConcatSource([a, photos]);
    const again = sourceFromSpec(structuredClone(all.spec()));
    try {
      assert.deepEqual([all.width, all.height], [null, null], 'an ImageFolder part: sizes vary');
      assert.equal(again.length, 5);
      for (let i = 0; i < 5; i++) {
        const [s, t] = [await all.get(i), await again.get(i)];
        assert.deepEqual([t.width, t.height, t.label], [s.width, s.height, s.label]);
        assert.ok(Buffer.from(t.rgb).equals(Buffer.from(s.rgb)), `sample ${i}`);
      }
      assert.equal((await again.get(4)).rgb[0], 200);
    } finally {
      all.close();
      again.close();
    }
  });

  it('refuses folders of different image sizes, naming them', () => {
    const a = new RawU8Source(rawFolder('e', 5, 2, 4, 6), 'train');
    const b = new RawU8Source(rawFolder('f', 6, 2, 8, 8), 'train');
    try {
      assert.throws(() => new ConcatSource([a, b], ['/x/e', '/x/f']), /\/x\/f holds 8x8 images but \/x\/e holds 6x4/);
    } finally {
      a.close();
      b.close();
    }
  });

  it('loader worker threads reopen the concatenation: batches identical to 0 workers', async () => {
    const all = new ConcatSource([
      new RawU8Source(rawFolder('g', 7, 9), 'train'),
      new RawU8Source(rawFolder('h', 8, 6), 'train'),
    ]);
    const transform: LoaderTransform = { mode: 'train', size: 4, view: 'Lab', cropLow: 0.2 };
    const l0 = new Loader(all, { batchSize: 4, seed: 5, workers: 0, transform });
    const l2 = new Loader(all, { batchSize: 4, seed: 5, workers: 2, transform });
    const collect = async (l: Loader) => {
      const out: Batch[] = [];
      for await (const b of l.epoch(2)) out.push(b);
      return out;
    };
    try {
      const [a, b] = [await collect(l0), await collect(l2)];
      assert.equal(a.length, 4);
      assert.deepEqual(
        a.flatMap((x) => Array.from(x.index)).sort((p, q) => p - q),
        Array.from({ length: 15 }, (_, i) => i),
        'one epoch visits every image of both folders once',
      );
      for (let k = 0; k < a.length; k++) {
        assert.deepEqual(b[k].index, a[k].index);
        assert.deepEqual(
          Array.from(b[k].label),
          Array.from(a[k].index).map((i) => (i < 9 ? i % 3 : -1)),
        );
        assert.ok(Buffer.from(b[k].x.buffer).equals(Buffer.from(a[k].x.buffer)), `batch ${k} differs`);
      }
    } finally {
      await l2.close();
      all.close();
    }
  });
});
