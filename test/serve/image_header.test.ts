/**
 * readHeader (serve/preprocess.ts) parses JPEG, PNG and WebP headers in JS (image-size) instead of asking
 * libvips: checked here against sharp's own metadata() as the second implementation, and the guard that
 * makes a disagreement harmless (libvips decodes no more pixels than the header declared).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodeImage, readHeader } from '../../serve/preprocess.ts';
import { ApiError } from '../../serve/errors.ts';

const raw = (w: number, h: number) => {
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) & 255;
  return sharp(px, { raw: { width: w, height: h, channels: 3 } });
};

test('readHeader: format, width, height (and JPEG orientation) equal to sharp metadata() for JPEG, PNG and WebP', async () => {
  const cases: [string, Buffer][] = [];
  for (const [w, h] of [
    [37, 23],
    [640, 480],
    [3, 1000],
  ]) {
    cases.push([`jpeg ${w}x${h}`, await raw(w, h).jpeg().toBuffer()]);
    cases.push([`progressive jpeg ${w}x${h}`, await raw(w, h).jpeg({ progressive: true }).toBuffer()]);
    cases.push([`png ${w}x${h}`, await raw(w, h).png().toBuffer()]);
    cases.push([`lossy webp ${w}x${h}`, await raw(w, h).webp().toBuffer()]);
    cases.push([`lossless webp ${w}x${h}`, await raw(w, h).webp({ lossless: true }).toBuffer()]);
    cases.push([`webp with alpha ${w}x${h}`, await raw(w, h).ensureAlpha(0.5).webp().toBuffer()]);
  }
  for (const o of [1, 3, 6, 8]) {
    cases.push([`jpeg orientation ${o}`, await raw(40, 30).jpeg().withMetadata({ orientation: o }).toBuffer()]);
  }
  for (const [name, buf] of cases) {
    const m = await sharp(buf).metadata();
    const h = await readHeader(buf);
    assert.ok(h, name);
    assert.deepEqual(
      { format: h.format, width: h.width, height: h.height },
      { format: m.format, width: m.width, height: m.height },
      name,
    );
    if (m.format === 'jpeg') assert.equal(h.orientation ?? 1, m.orientation ?? 1, `${name}: orientation`);
  }
});

test('readHeader: other formats and unreadable bytes go to sharp (a GIF is named; garbage gives null)', async () => {
  const gif = await raw(12, 9).gif().toBuffer();
  assert.deepEqual(await readHeader(gif), { format: 'gif', width: 12, height: 9, orientation: undefined });
  assert.equal(await readHeader(Buffer.from('not an image at all')), null);
  const jpeg = await raw(64, 48).jpeg().toBuffer();
  assert.equal(await readHeader(jpeg.subarray(0, 8)), null, 'a JPEG cut before its frame header');
});

test('decodeImage decodes no more pixels than the header declared: an under-stated header is refused, not decoded', async () => {
  const jpeg = await raw(200, 150).jpeg().toBuffer();
  const limits = { maxPixels: 40_000_000 };
  const ok = await decodeImage(jpeg, limits, 0, { format: 'jpeg', width: 200, height: 150 });
  assert.equal(ok.width * ok.height, 200 * 150);
  await assert.rejects(
    decodeImage(jpeg, limits, 0, { format: 'jpeg', width: 20, height: 15 }),
    (e: unknown) => e instanceof ApiError && e.status === 422 && /pixel limit/i.test(e.message),
  );
});
