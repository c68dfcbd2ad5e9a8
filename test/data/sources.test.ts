/**
 * Dataset sources on generated data only: raw uint8, CIFAR-10 / STL-10 binaries, ImageFolder (with a
 * corrupt JPEG and a truncated PNG that must be reported and skipped).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import {
  Cifar10BinSource,
  ImageFolderSource,
  RawU8Source,
  Stl10BinSource,
  detectKind,
  openSource,
  sourceFromSpec,
} from '../../train/data/sources.ts';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-sources-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function mkdir(...p: string[]): string {
  const d = path.join(tmp, ...p);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** Pixel value used by the generators: distinct per (image, y, x, c). */
const val = (n: number, y: number, x: number, c: number) => (n * 31 + y * 7 + x * 3 + c * 101) & 255;

describe('RawU8Source', () => {
  it('reads the shared/data layout (meta.json, {split}_x.u8, {split}_y.u8)', async () => {
    const d = mkdir('raw');
    const N = 5,
      H = 4,
      W = 6;
    const x = new Uint8Array(N * H * W * 3);
    for (let n = 0; n < N; n++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++) for (let c = 0; c < 3; c++) x[((n * H + y) * W + xx) * 3 + c] = val(n, y, xx, c);
    fs.writeFileSync(path.join(d, 'train_x.u8'), x);
    fs.writeFileSync(path.join(d, 'train_y.u8'), Uint8Array.from([3, 1, 4, 1, 5]));
    fs.writeFileSync(
      path.join(d, 'meta.json'),
      JSON.stringify({
        height: H,
        width: W,
        class_names: ['a', 'b', 'c', 'd', 'e', 'f'],
        splits: { train: { n: N, shape: [N, H, W, 3] } },
      }),
    );
    assert.equal(detectKind(d), 'raw');
    const s = await openSource('auto', d, 'train');
    assert.ok(s instanceof RawU8Source);
    assert.equal(s.length, N);
    assert.equal(s.width, W);
    assert.equal(s.height, H);
    assert.deepEqual(Array.from(s.labels()!), [3, 1, 4, 1, 5]);
    const g = await s.get(3);
    assert.equal(g.label, 1);
    assert.equal(g.rgb.length, H * W * 3);
    assert.equal(g.rgb[(2 * W + 5) * 3 + 1], val(3, 2, 5, 1));
    await assert.rejects(s.get(5), /out of range/);
    const again = sourceFromSpec(s.spec());
    assert.deepEqual((await again.get(4)).rgb, (await s.get(4)).rgb);
    s.close();
    again.close();
    assert.throws(() => new RawU8Source(d, 'test'), /no split 'test'/);
    fs.writeFileSync(path.join(d, 'train_x.u8'), x.subarray(1));
    assert.throws(() => new RawU8Source(d, 'train'), /expected 5\*4\*6\*3/);
  });
});

describe('Cifar10BinSource', () => {
  function batch(n0: number, count: number): Uint8Array {
    const b = new Uint8Array(count * 3073);
    for (let k = 0; k < count; k++) {
      const n = n0 + k;
      b[k * 3073] = n % 10;
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < 32; y++)
          for (let x = 0; x < 32; x++) b[k * 3073 + 1 + c * 1024 + y * 32 + x] = val(n, y, x, c);
    }
    return b;
  }

  it('parses label + CHW records into HWC RGB across consecutive batches', async () => {
    const d = mkdir('cifar', 'cifar-10-batches-bin');
    fs.writeFileSync(path.join(d, 'data_batch_1.bin'), batch(0, 3));
    fs.writeFileSync(path.join(d, 'data_batch_2.bin'), batch(3, 2));
    fs.writeFileSync(path.join(d, 'test_batch.bin'), batch(100, 2));
    const root = path.dirname(d);
    assert.equal(detectKind(root), 'cifar10');
    const s = await openSource('auto', root, 'train');
    assert.ok(s instanceof Cifar10BinSource);
    assert.equal(s.length, 5);
    assert.deepEqual(Array.from(s.labels()!), [0, 1, 2, 3, 4]);
    for (const i of [0, 2, 3, 4]) {
      const g = await s.get(i);
      assert.equal(g.label, i % 10);
      assert.equal(g.width, 32);
      for (const [y, x, c] of [
        [0, 0, 0],
        [5, 17, 1],
        [31, 31, 2],
      ])
        assert.equal(g.rgb[(y * 32 + x) * 3 + c], val(i, y, x, c), `img ${i} (${y},${x},${c})`);
    }
    const t = await openSource('cifar10', root, 'test');
    assert.equal(t.length, 2);
    assert.equal((await t.get(1)).rgb[(3 * 32 + 4) * 3 + 2], val(101, 3, 4, 2));
    s.close();
    t.close();
  });

  it('rejects a gap in the batches and a partial record', () => {
    const d = mkdir('cifar-gap');
    fs.writeFileSync(path.join(d, 'data_batch_1.bin'), batch(0, 1));
    fs.writeFileSync(path.join(d, 'data_batch_3.bin'), batch(0, 1));
    assert.throws(() => new Cifar10BinSource(d, 'train'), /consecutive/);
    const e = mkdir('cifar-partial');
    fs.writeFileSync(path.join(e, 'data_batch_1.bin'), batch(0, 2).subarray(0, 5000));
    assert.throws(() => new Cifar10BinSource(e, 'train'), /whole number/);
  });
});

describe('Stl10BinSource', () => {
  /** STL-10 layout: per image 3 planes, each column-major: byte (c, x, y) at c*9216 + x*96 + y. */
  function images(n0: number, count: number): Uint8Array {
    const b = new Uint8Array(count * 27648);
    for (let k = 0; k < count; k++)
      for (let c = 0; c < 3; c++)
        for (let x = 0; x < 96; x++)
          for (let y = 0; y < 96; y++) b[k * 27648 + c * 9216 + x * 96 + y] = val(n0 + k, y, x, c);
    return b;
  }

  it('transposes column-major planes to HWC RGB; labels 1-based on disk; splits', async () => {
    const d = mkdir('stl', 'stl10_binary');
    fs.writeFileSync(path.join(d, 'train_X.bin'), images(0, 2));
    fs.writeFileSync(path.join(d, 'train_y.bin'), Uint8Array.from([1, 10]));
    fs.writeFileSync(path.join(d, 'test_X.bin'), images(50, 1));
    fs.writeFileSync(path.join(d, 'test_y.bin'), Uint8Array.from([4]));
    fs.writeFileSync(path.join(d, 'unlabeled_X.bin'), images(20, 3));
    const root = path.dirname(d);
    assert.equal(detectKind(root), 'stl10');
    const tr = await openSource('auto', root, 'train');
    assert.ok(tr instanceof Stl10BinSource);
    assert.equal(tr.length, 2);
    assert.deepEqual(Array.from(tr.labels()!), [0, 9]);
    const g = await tr.get(1);
    assert.equal(g.label, 9);
    // A non-symmetric probe: (y=2, x=70) must not be confused with (y=70, x=2).
    for (const [y, x, c] of [
      [2, 70, 0],
      [70, 2, 0],
      [95, 0, 2],
      [13, 44, 1],
    ])
      assert.equal(g.rgb[(y * 96 + x) * 3 + c], val(1, y, x, c), `(${y},${x},${c})`);
    const un = await openSource('stl10', root, 'unlabeled');
    assert.equal(un.length, 3);
    assert.equal((await un.get(2)).label, -1);
    assert.equal(un.labels(), null);
    const both = await openSource('stl10', root, 'train+unlabeled');
    assert.equal(both.length, 5);
    assert.deepEqual(Array.from(both.labels()!), [0, 9, -1, -1, -1]);
    const g3 = await both.get(3);
    assert.equal(g3.rgb[(7 * 96 + 9) * 3 + 1], val(21, 7, 9, 1));
    const te = await openSource('stl10', root, 'test');
    assert.equal((await te.get(0)).label, 3);
    for (const s of [tr, un, both, te]) s.close();
  });

  it('rejects labels outside 1..10', () => {
    const d = mkdir('stl-bad');
    fs.writeFileSync(path.join(d, 'train_X.bin'), images(0, 1));
    fs.writeFileSync(path.join(d, 'train_y.bin'), Uint8Array.from([0]));
    assert.throws(() => new Stl10BinSource(d, 'train'), /1-based/);
  });
});

describe('ImageFolderSource', () => {
  const px = (w: number, h: number, seed: number) => {
    const b = Buffer.alloc(w * h * 3);
    for (let i = 0; i < b.length; i++) b[i] = (i * 13 + seed * 29) & 255;
    return b;
  };
  const raw = (w: number, h: number, seed: number) =>
    sharp(px(w, h, seed), { raw: { width: w, height: h, channels: 3 } });

  it('torchvision order; corrupt JPEG dropped at scan; truncated PNG reported and replaced at read', async () => {
    const root = mkdir('folder', 'train');
    const b = mkdir('folder', 'train', 'bird');
    const a = mkdir('folder', 'train', 'ant');
    mkdir('folder', 'train', 'ant', 'sub');
    mkdir('folder', 'train', 'zebra_empty');
    await raw(10, 8, 1).png().toFile(path.join(b, 'b2.png'));
    await raw(12, 9, 2).jpeg({ quality: 95 }).toFile(path.join(b, 'b1.JPG'));
    await raw(7, 7, 3).webp({ lossless: true }).toFile(path.join(a, 'a2.webp'));
    await raw(5, 6, 4)
      .png()
      .toFile(path.join(a, 'sub', 'a0.png'));
    const png = await raw(16, 16, 5).png().toBuffer();
    fs.writeFileSync(path.join(a, 'a1.png'), png.subarray(0, Math.floor(png.length / 2))); // truncated: header ok
    fs.writeFileSync(path.join(a, 'a3.jpg'), Buffer.from('definitely not a jpeg')); // corrupt: header fails
    fs.writeFileSync(path.join(a, 'notes.txt'), 'ignored');
    fs.writeFileSync(path.join(b, 'b0.bmp'), 'BM'); // torchvision would list it; we skip it and say so
    // RGBA PNG → alpha dropped; EXIF orientation 6 → rotated (width/height swap).
    await sharp(Buffer.alloc(4 * 3 * 4, 200), { raw: { width: 4, height: 3, channels: 4 } })
      .png()
      .toFile(path.join(b, 'b3.png'));
    await raw(6, 4, 6).jpeg().withMetadata({ orientation: 6 }).toFile(path.join(b, 'b4.jpg'));

    const warns: string[] = [];
    const s = await openSource('auto', path.dirname(root), 'train', { onWarn: (m) => warns.push(m) });
    assert.ok(s instanceof ImageFolderSource);
    assert.deepEqual(s.classNames, ['ant', 'bird', 'zebra_empty']);
    // ant: a1.png a2.webp (files of ant/ first, sorted), then sub/a0.png; a3.jpg dropped; bird: b1.JPG b2.png b3 b4.
    assert.deepEqual(
      s.files.map((f) => path.relative(root, f)),
      ['ant/a1.png', 'ant/a2.webp', 'ant/sub/a0.png', 'bird/b1.JPG', 'bird/b2.png', 'bird/b3.png', 'bird/b4.jpg'],
    );
    assert.deepEqual(Array.from(s.labels()), [0, 0, 0, 1, 1, 1, 1]);
    assert.ok(
      warns.some((w) => w.includes('a3.jpg') && w.includes('skipping')),
      warns.join('\n'),
    );
    assert.ok(
      warns.some((w) => w.includes('zebra_empty') && w.includes('no images')),
      warns.join('\n'),
    );
    assert.ok(!warns.some((w) => w.includes('a1.png')), 'the truncated PNG passes the header check');
    assert.ok(
      warns.some((w) => w.includes('b0.bmp') && w.includes('torchvision reads')),
      warns.join('\n'),
    );

    const g0 = await s.get(0); // a1.png fails to decode → a2.webp (index 1) instead
    assert.ok(
      warns.some((w) => w.includes('a1.png') && w.includes('cannot decode')),
      warns.join('\n'),
    );
    const g1 = await s.get(1);
    assert.deepEqual(g0, g1);
    assert.equal(g1.width, 7);
    assert.deepEqual(Buffer.from(g1.rgb), px(7, 7, 3)); // lossless WebP round trip
    const n = warns.length;
    await s.get(0);
    assert.equal(warns.length, n, 'a bad file is reported once');
    const png2 = await s.get(4);
    assert.deepEqual(Buffer.from(png2.rgb), px(10, 8, 1));
    assert.equal(png2.label, 1);
    const rgba = await s.get(5);
    assert.equal(rgba.rgb.length, 4 * 3 * 3);
    assert.ok(rgba.rgb.every((v) => v === 200));
    const rot = await s.get(6);
    assert.deepEqual([rot.width, rot.height], [4, 6]);
    // The spec reopens the same list without rescanning.
    const again = sourceFromSpec(s.spec(), () => {});
    assert.equal(again.length, 7);
    assert.deepEqual((await again.get(3)).rgb, (await s.get(3)).rgb);
  });

  it('throws a clear error for a missing or empty folder', async () => {
    const empty = mkdir('empty-folder', 'cls');
    await assert.rejects(
      openSource('imagefolder', path.dirname(empty), 'train', { onWarn: () => {} }),
      /no images found under .*expected class sub-folders of \.jpg\/\.png\/\.webp/,
    );
    await assert.rejects(openSource('imagefolder', path.join(tmp, 'does-not-exist'), 'train'), /no images found under/);
    await assert.rejects(openSource('auto', path.join(tmp, 'does-not-exist'), 'train'), /does not exist/);
  });
});
