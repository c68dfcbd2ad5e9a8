/**
 * RandomResizedCrop parameters (torchvision's algorithm), Pillow-exact bilinear resizing, flip and the
 * validation transform.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../core/util/rng.ts';
import {
  centreFallback,
  hflip,
  randomResizedCropParams,
  trainAugmentRgb,
  trainTransform,
  valTransform,
} from '../../train/data/augment.ts';
import { resizeBilinear, roundHalfEven, resizeCenterCrop, evalResizeSide } from '../../core/preprocess/resize.ts';
import { toViewInput } from '../../core/preprocess/color.ts';

/** Deterministic test image: value (x*37 + y*91 + c*53) mod 256. */
function pattern(w: number, h: number) {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) rgb[(y * w + x) * 3 + c] = (x * 37 + y * 91 + c * 53) % 256;
  return { rgb, width: w, height: h };
}

/** One row image from per-pixel [r,g,b]. */
function row(px: number[][]) {
  return { rgb: Uint8Array.from(px.flat()), width: px.length, height: 1 };
}

describe('augment: RandomResizedCrop parameters', () => {
  it('roundHalfEven is Python round()', () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, 3].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 3, 3]);
  });

  it('area fraction and aspect ratio stay within scale/ratio, crops lie inside the image', () => {
    const rng = new Rng(1);
    const W = 224,
      H = 224,
      lo = 0.2;
    let fallbacks = 0,
      sumLogR = 0;
    const n = 4000;
    for (let k = 0; k < n; k++) {
      const c = randomResizedCropParams(W, H, rng, [lo, 1]);
      if (c.fallback) fallbacks++;
      assert.ok(c.top >= 0 && c.left >= 0 && c.top + c.height <= H && c.left + c.width <= W, JSON.stringify(c));
      if (c.fallback) continue;
      // Rounding w and h to integers moves area/ratio by at most ~1 px on each side.
      const frac = (c.width * c.height) / (W * H);
      assert.ok(frac >= lo * 0.97 && frac <= 1, `area fraction ${frac}`);
      const r = c.width / c.height;
      assert.ok(r >= (3 / 4) * 0.97 && r <= (4 / 3) * 1.03, `ratio ${r}`);
      sumLogR += Math.log(r);
    }
    // Square image, scale ≥ 0.2: rejections happen (w or h > 224 for large areas) but rarely all 10 times.
    assert.ok(fallbacks < n * 0.01, `fallbacks ${fallbacks}`);
    assert.ok(Math.abs(sumLogR / (n - fallbacks)) < 0.02, 'log-ratio is centred (log-uniform in [3/4, 4/3])');
  });

  it('the fallback crops centrally with the ratio clamped (torchvision logic)', () => {
    const rng = new Rng(2);
    // Very wide: every attempt fails (h would exceed 10) → h = 10, w = round(10 * 4/3) = 13.
    const wide = randomResizedCropParams(1000, 10, rng, [0.08, 1]);
    assert.deepEqual(wide, { top: 0, left: 493, height: 10, width: 13, fallback: true });
    // Very tall → w = 10, h = round(10 / (3/4)) = 13.
    const tall = randomResizedCropParams(10, 1000, rng, [0.08, 1]);
    assert.deepEqual(tall, { top: 493, left: 0, height: 13, width: 10, fallback: true });
    // In-range aspect but impossible scale → the whole image.
    const whole = randomResizedCropParams(24, 20, rng, [1.5, 2]);
    assert.deepEqual(whole, { top: 0, left: 0, height: 20, width: 24, fallback: true });
    // Rounding of the clamp (Python round) and the (H - h) // 2 offsets.
    assert.deepEqual(centreFallback(7, 2), { top: 0, left: 2, height: 2, width: 3 }); // round(2.667) = 3
    assert.deepEqual(centreFallback(3, 9), { top: 2, left: 0, height: 4, width: 3 }); // h = round(4.0), top = (9 - 4) // 2
  });

  it('is deterministic given the Rng state', () => {
    const a = randomResizedCropParams(100, 80, new Rng(9), [0.2, 1]);
    const b = randomResizedCropParams(100, 80, new Rng(9), [0.2, 1]);
    assert.deepEqual(a, b);
  });
});

describe('augment: Pillow bilinear resize', () => {
  it('downscale 4→2 by hand (antialiased triangle, support 2)', () => {
    // weights for output 0: (3/7, 3/7, 1/7) over x = 0..2; output 1: (1/7, 3/7, 3/7) over x = 1..3
    // R: (10+20)*3/7 + 30/7 = 17.14 → 17;  20/7 + (30+40)*3/7 = 32.86 → 33.  G 0 → 0, B 255 → 255.
    const img = row([
      [10, 0, 255],
      [20, 0, 255],
      [30, 0, 255],
      [40, 0, 255],
    ]);
    assert.deepEqual(Array.from(resizeBilinear(img, 2, 1)), [17, 0, 255, 33, 0, 255]);
  });

  it('upscale 2→4 by hand (support 1, edge pixels replicated)', () => {
    // centres 0.25, 0.75, 1.25, 1.75 → [v0, .75 v0 + .25 v1, .25 v0 + .75 v1, v1]
    const img = row([
      [0, 200, 7],
      [100, 0, 7],
    ]);
    assert.deepEqual(Array.from(resizeBilinear(img, 4, 1)), [0, 200, 7, 25, 150, 7, 75, 50, 7, 100, 0, 7]);
  });

  it('identity size copies the crop', () => {
    const img = pattern(7, 5);
    const out = resizeBilinear(img, 3, 2, { top: 1, left: 2, height: 2, width: 3 });
    const want: number[] = [];
    for (let y = 1; y < 3; y++)
      for (let x = 2; x < 5; x++) for (let c = 0; c < 3; c++) want.push(img.rgb[(y * 7 + x) * 3 + c]);
    assert.deepEqual(Array.from(out), want);
  });

  it('matches Pillow 12.3 byte for byte (crop + resize, values recorded from PIL)', () => {
    const img = pattern(7, 5);
    // im.crop((1,0,6,4)).resize((3,2), Image.BILINEAR)
    assert.deepEqual(
      Array.from(resizeBilinear(img, 3, 2, { top: 0, left: 1, height: 4, width: 5 })),
      [102, 134, 140, 139, 168, 136, 135, 141, 131, 104, 95, 132, 100, 144, 145, 137, 174, 117],
    );
    // im.crop((2,1,5,4)).resize((4,5), Image.BILINEAR)
    assert.deepEqual(
      Array.from(resizeBilinear(img, 4, 5, { top: 1, left: 2, height: 3, width: 3 })),
      [
        165, 218, 15, 188, 241, 38, 216, 173, 66, 239, 36, 89, 99, 152, 51, 122, 175, 74, 150, 145, 102, 173, 72, 125,
        0, 53, 106, 23, 76, 129, 51, 104, 157, 74, 127, 180, 55, 108, 161, 78, 131, 184, 106, 159, 154, 129, 182, 81,
        91, 144, 197, 114, 167, 220, 142, 195, 152, 165, 218, 15,
      ],
    );
    // im.resize((2,3), Image.BILINEAR)
    assert.deepEqual(
      Array.from(resizeBilinear(img, 2, 3)),
      [98, 143, 150, 146, 141, 124, 114, 120, 116, 117, 144, 151, 118, 147, 154, 120, 126, 108],
    );
  });

  it('rejects crops outside the image', () => {
    assert.throws(() => resizeBilinear(pattern(4, 4), 2, 2, { top: 2, left: 0, height: 3, width: 2 }), /outside/);
  });
});

describe('augment: flip, train and val transforms', () => {
  it('hflip mirrors each row; twice is the identity', () => {
    const img = pattern(3, 2);
    const f = hflip(img.rgb.slice(), 3, 2);
    for (let y = 0; y < 2; y++)
      for (let x = 0; x < 3; x++)
        for (let c = 0; c < 3; c++) {
          assert.equal(f[(y * 3 + x) * 3 + c], img.rgb[(y * 3 + (2 - x)) * 3 + c]);
        }
    assert.deepEqual(hflip(f, 3, 2), img.rgb);
  });

  it('flips about half of the samples, and the flip is the mirrored unflipped crop', () => {
    const img = pattern(40, 30);
    let flips = 0;
    const n = 2000;
    for (let k = 0; k < n; k++) if (trainAugmentRgb(img, { size: 8, view: 'Lab' }, new Rng(k)).flipped) flips++;
    assert.ok(Math.abs(flips / n - 0.5) < 0.05, `flip rate ${flips / n}`);
    // Same crop with flipP 0 vs 1 (the crop draws come first, the flip draw last).
    const a = trainAugmentRgb(img, { size: 8, view: 'Lab', flipP: 0 }, new Rng(5));
    const b = trainAugmentRgb(img, { size: 8, view: 'Lab', flipP: 1 }, new Rng(5));
    assert.deepEqual(a.crop, b.crop);
    assert.deepEqual(hflip(a.rgb, 8, 8), b.rgb);
  });

  it('trainTransform = toViewInput(RRC + flip) with cropLow, output HWC float32', () => {
    const img = pattern(50, 40);
    const x = trainTransform(img, { size: 16, view: 'YCbCr', cropLow: 0.5 }, new Rng(3));
    const r = trainAugmentRgb(img, { size: 16, view: 'YCbCr', cropLow: 0.5 }, new Rng(3));
    assert.equal(x.length, 16 * 16 * 3);
    assert.deepEqual(x, toViewInput(r.rgb, 'YCbCr'));
    assert.ok((r.crop.width * r.crop.height) / (50 * 40) >= 0.45);
  });

  it('val transform: shorter side → round(size*256/224), centre crop', () => {
    assert.equal(evalResizeSide(224), 256);
    assert.equal(evalResizeSide(64), 73);
    assert.equal(evalResizeSide(96), 110);
    // 73x80 input at size 64: already resized (no resampling); crop top round(16/2)=8, left round(9/2)=4 (half-even).
    const img = pattern(73, 80);
    const out = resizeCenterCrop(img, 64);
    assert.equal(out.length, 64 * 64 * 3);
    assert.deepEqual(
      Array.from(out.subarray(0, 3)),
      Array.from(img.rgb.subarray((8 * 73 + 4) * 3, (8 * 73 + 4) * 3 + 3)),
    );
    // A larger image is resized first: 146x200 → 73x100 (int(73*200/146)); the crop is that image's centre.
    const big = pattern(146, 200);
    const resized = resizeBilinear(big, 73, 100);
    const v = resizeCenterCrop(big, 64);
    const top = 18,
      left = 4; // round(36/2), round(9/2) = 4
    assert.deepEqual(
      Array.from(v.subarray(0, 6)),
      Array.from(resized.subarray((top * 73 + left) * 3, (top * 73 + left) * 3 + 6)),
    );
    assert.equal(valTransform(big, { size: 64, view: 'Lab' }).length, 64 * 64 * 3);
  });
});
