/**
 * The view vocabulary (core/preprocess/views.ts): upstream's layouts are bit-identical to toViewInput,
 * YDbDr and the Sobel gradient match independent float64 references and known values, offsets follow
 * the declared order, and bad lists are refused.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rgbPixelToLab, toViewInput } from '../../core/preprocess/color.ts';
import { layoutChannels, layoutViews, parseViews, toLayoutInput, VIEW_NAMES } from '../../core/preprocess/views.ts';
import { Rng } from '../../core/util/rng.ts';

function randomRgb(w: number, h: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const a = new Uint8Array(w * h * 3);
  for (let i = 0; i < a.length; i++) a[i] = rng.int(256);
  a.set([0, 0, 0, 255, 255, 255, 10, 11, 12], 0); // black, white, the sRGB knee
  return a;
}

/** Channel c of an HWC array with C channels. */
function plane(x: Float32Array, C: number, c: number): number[] {
  return Array.from({ length: x.length / C }, (_, p) => x[p * C + c]);
}

describe('views', () => {
  it('L,ab and Y,CbCr are bit-identical to the upstream input (toViewInput Lab / YCbCr)', () => {
    const rgb = randomRgb(9, 7, 1);
    assert.deepEqual(toLayoutInput(rgb, 9, 7, ['L', 'ab']), toViewInput(rgb, 'Lab'));
    assert.deepEqual(toLayoutInput(rgb, 9, 7, ['Y', 'CbCr']), toViewInput(rgb, 'YCbCr'));
    // A different order only moves channels: ab,L = channels (1, 2, 0) of Lab.
    const lab = toViewInput(rgb, 'Lab');
    const abL = toLayoutInput(rgb, 9, 7, ['ab', 'L']);
    assert.deepEqual(plane(abL, 3, 0), plane(lab, 3, 1));
    assert.deepEqual(plane(abL, 3, 2), plane(lab, 3, 0));
  });

  it('DbDr: the YDbDr chroma over 1.333 (known values and a float64 reference)', () => {
    // Grey has no chroma; pure red has Dr = -1.333 -> -1; pure blue has Db = 1.333 -> 1.
    const known: [number[], number, number][] = [
      [[128, 128, 128], 0, 0],
      [[255, 0, 0], -0.45 / 1.333, -1],
      [[0, 0, 255], 1, 0.217 / 1.333],
      [[0, 255, 0], -0.883 / 1.333, 1.116 / 1.333],
    ];
    for (const [p, db, dr] of known) {
      const x = toLayoutInput(Uint8Array.from(p), 1, 1, ['DbDr']);
      assert.ok(Math.abs(x[0] - db) < 1e-6 && Math.abs(x[1] - dr) < 1e-6, `${p}: ${Array.from(x)} vs ${db}, ${dr}`);
    }
    const rgb = randomRgb(6, 5, 2);
    const x = toLayoutInput(rgb, 6, 5, ['DbDr']);
    for (let i = 0; i < 30; i++) {
      const [r, g, b] = [rgb[3 * i] / 255, rgb[3 * i + 1] / 255, rgb[3 * i + 2] / 255];
      assert.equal(x[2 * i], Math.fround((-0.45 * r - 0.883 * g + 1.333 * b) / 1.333));
      assert.ok(Math.abs(x[2 * i + 1] - (-1.333 * r + 1.116 * g + 0.217 * b) / 1.333) < 1e-6);
      assert.ok(Math.abs(x[2 * i]) <= 1 && Math.abs(x[2 * i + 1]) <= 1);
    }
  });

  it('grad: Sobel x, y of Lab L / 400 with replicated borders (direct 3x3 reference, a step edge = 1)', () => {
    const [W, H] = [7, 6];
    const rgb = randomRgb(W, H, 3);
    const x = toLayoutInput(rgb, W, H, ['grad']);
    const L = Array.from({ length: W * H }, (_, p) => rgbPixelToLab(rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2])[0]);
    // Reference: pad by replication into a (H+2)x(W+2) array, then correlate with the Sobel kernels.
    const P = (y: number, x: number) =>
      L[Math.min(H - 1, Math.max(0, y - 1)) * W + Math.min(W - 1, Math.max(0, x - 1))];
    const kx = [
      [-1, 0, 1],
      [-2, 0, 2],
      [-1, 0, 1],
    ];
    const ky = [
      [-1, -2, -1],
      [0, 0, 0],
      [1, 2, 1],
    ];
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < W; xx++) {
        let gx = 0,
          gy = 0;
        for (let a = 0; a < 3; a++)
          for (let b = 0; b < 3; b++) {
            gx += kx[a][b] * P(y + a, xx + b);
            gy += ky[a][b] * P(y + a, xx + b);
          }
        const p = y * W + xx;
        assert.ok(Math.abs(x[2 * p] - gx / 400) < 1e-6, `gx at ${y},${xx}`);
        assert.ok(Math.abs(x[2 * p + 1] - gy / 400) < 1e-6, `gy at ${y},${xx}`);
      }
    }
    // A vertical black|white edge: gx = 4 * 100 / 400 = 1 on both sides of it, 0 elsewhere; gy = 0.
    const edge = new Uint8Array(4 * 3 * 3);
    for (let y = 0; y < 3; y++) for (let xx = 2; xx < 4; xx++) edge.fill(255, (y * 4 + xx) * 3, (y * 4 + xx) * 3 + 3);
    const e = toLayoutInput(edge, 4, 3, ['grad']);
    for (let y = 0; y < 3; y++) {
      assert.deepEqual(
        [0, 1, 2, 3].map((xx) => Math.round(e[2 * (y * 4 + xx)] * 1e5) / 1e5),
        [0, 1, 1, 0],
      );
      for (let xx = 0; xx < 4; xx++) assert.ok(Math.abs(e[2 * (y * 4 + xx) + 1]) < 1e-9);
    }
  });

  it('a layout concatenates views in the declared order; offsets and channel counts follow it', () => {
    const layout = ['L', 'ab', 'DbDr', 'grad', 'Y', 'CbCr'];
    assert.equal(layoutChannels(layout), 10);
    assert.deepEqual(
      layoutViews(layout).map((v) => v.channels),
      [[0], [1, 2], [3, 4], [5, 6], [7], [8, 9]],
    );
    const rgb = randomRgb(5, 4, 4);
    const all = toLayoutInput(rgb, 5, 4, layout);
    const lab = toViewInput(rgb, 'Lab');
    const ycc = toViewInput(rgb, 'YCbCr');
    const dd = toLayoutInput(rgb, 5, 4, ['DbDr']);
    const gr = toLayoutInput(rgb, 5, 4, ['grad']);
    const want = [
      plane(lab, 3, 0),
      plane(lab, 3, 1),
      plane(lab, 3, 2),
      plane(dd, 2, 0),
      plane(dd, 2, 1),
      plane(gr, 2, 0),
      plane(gr, 2, 1),
      plane(ycc, 3, 0),
      plane(ycc, 3, 1),
      plane(ycc, 3, 2),
    ];
    want.forEach((w, c) => assert.deepEqual(plane(all, 10, c), w, `channel ${c}`));
    assert.deepEqual(VIEW_NAMES, ['L', 'ab', 'Y', 'CbCr', 'DbDr', 'grad']);
  });

  it('parseViews refuses unknown names, repeats and single views', () => {
    assert.deepEqual(parseViews('L, ab,DbDr'), ['L', 'ab', 'DbDr']);
    assert.throws(() => parseViews('L,xyz'), /Unknown view 'xyz'.*L, ab, Y, CbCr, DbDr, grad/);
    assert.throws(() => parseViews('L,ab,L'), /listed twice/);
    assert.throws(() => parseViews('L'), /at least two views/);
    assert.throws(() => parseViews('constructor,L'), /Unknown view/);
  });
});
