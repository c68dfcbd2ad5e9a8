/**
 * JPEG shrink-on-load before the exact resize (serve/preprocess.ts): which images it applies to, the
 * intermediate size (never under twice the resize side, EXIF rotation respected), and model inputs close
 * to the full-size decode path (bench/shrink_on_load.ts measures speed and top-1 on photos).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { evalResizeSide } from '../../core/preprocess/resize.ts';
import { decodeImage, decodeToInput, shrinkOnLoadSize, toModelInput } from '../../serve/preprocess.ts';
import { testPixels } from './fixture.ts';

const limits = { maxPixels: 40_000_000 };

test('shrinkOnLoadSize: large JPEGs only, to a shorter side of exactly the minimum, axes swapped for EXIF 5-8', () => {
  assert.deepEqual(shrinkOnLoadSize({ format: 'jpeg', width: 3000, height: 2000 }, 146), { width: 219, height: 146 });
  assert.deepEqual(shrinkOnLoadSize({ format: 'jpeg', width: 768, height: 1024 }, 146), { width: 146, height: 195 });
  assert.deepEqual(shrinkOnLoadSize({ format: 'jpeg', width: 3000, height: 2000, orientation: 6 }, 146), {
    width: 146,
    height: 219,
  });
  assert.equal(
    shrinkOnLoadSize({ format: 'jpeg', width: 291, height: 400 }, 146),
    null,
    'under twice the minimum: full decode',
  );
  assert.equal(shrinkOnLoadSize({ format: 'png', width: 3000, height: 2000 }, 146), null);
  assert.equal(shrinkOnLoadSize({ format: 'webp', width: 3000, height: 2000 }, 146), null);
});

test('a large JPEG is decoded at twice the resize side and gives nearly the full-decode model input', async () => {
  const size = 64;
  const min = 2 * evalResizeSide(size);
  for (const [w, h, orientation] of [
    [1024, 768, 1],
    [1600, 1200, 6],
  ] as const) {
    const jpeg = await sharp(testPixels(w, h, 5), { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: 92 })
      .withMetadata({ orientation })
      .toBuffer();
    const shrunk = await decodeImage(jpeg, limits, min);
    const [ow, oh] = orientation >= 5 ? [h, w] : [w, h];
    assert.equal(Math.min(shrunk.width, shrunk.height), min, `${w}x${h}: decoded shorter side`);
    assert.equal(shrunk.width > shrunk.height, ow > oh, 'orientation applied');
    const full = toModelInput(await decodeImage(jpeg, limits), size, limits);
    const fast = await decodeToInput(jpeg, size, limits);
    let sum = 0;
    for (let i = 0; i < full.length; i++) sum += Math.abs(full[i] - fast[i]);
    assert.ok(sum / full.length < 2, `${w}x${h}: mean |difference| ${(sum / full.length).toFixed(2)} grey levels`);
  }
});
