/**
 * Image decoding and the validation transform, as training and the linear probe see images:
 *
 *   header only (readHeader: image-size, else sharp) → format (jpeg | png | webp) and dimensions checked
 *          against --max_pixels (decompression bombs are refused before any pixel is decoded; libvips then
 *          decodes no more pixels than the header declared) → sharp: decode with EXIF rotation,
 *          sRGB, alpha removed, 8-bit RGB; a JPEG at least 4x the resize side is decoded with
 *          shrink-on-load to twice that side first (shrinkOnLoadSize: 6-19x faster on photos)
 *   → resizeCenterCrop (core/preprocess/resize.ts): shorter side → round(size*256/224) with the Pillow-identical
 *     bilinear resize, centre crop size x size → uint8 HWC, the model's `images` input.
 *
 *   const rgb = await decodeToInput(buf, 224, { maxPixels: 40e6 });   // Uint8Array 224*224*3
 */
import { imageSize } from 'image-size';
import sharp, { type Metadata } from 'sharp';
import { resizeCenterCrop, evalResizeSide } from '../core/preprocess/resize.ts';
import { ApiError, tooLarge, unprocessable, unsupported } from './errors.ts';

export const ACCEPTED_FORMATS = new Set(['jpeg', 'png', 'webp']);

// One libvips thread per decode: requests are decoded concurrently anyway, and the cache only holds
// memory for images we never see twice.
sharp.cache(false);
sharp.concurrency(1);

export interface DecodeLimits {
  /** Largest width*height accepted (the declared size in the header, and the resized intermediate). */
  maxPixels: number;
}

export interface DecodedImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** What decodeImage reads from the header (readHeader gives it, so the request path parses each header once). */
export type ImageHeader = Pick<Metadata, 'format' | 'width' | 'height' | 'orientation'>;

/** Decode an encoded image to RGB uint8 (EXIF-rotated), refusing unsupported formats and bombs. */
/**
 * The size a large JPEG is decoded at: libjpeg's shrink-on-load (through sharp's resize, which picks the
 * 1/2, 1/4 or 1/8 DCT scaling) to a shorter side of `minShortSide`, when the image is at least twice that;
 * null: decode at full size. Keeping at least twice the final side leaves the exact (Pillow-identical)
 * resize that follows the last 2x or more of the reduction.
 */
export function shrinkOnLoadSize(
  meta: Pick<Metadata, 'format' | 'width' | 'height' | 'orientation'>,
  minShortSide: number,
): { width: number; height: number } | null {
  if (meta.format !== 'jpeg' || !(minShortSide > 0)) return null;
  // EXIF orientations 5-8 swap the axes; the resize sizes the rotated image.
  const swap = (meta.orientation ?? 1) >= 5;
  const w = swap ? meta.height! : meta.width!,
    h = swap ? meta.width! : meta.height!;
  const short = Math.min(w, h);
  if (short < 2 * minShortSide) return null;
  const k = minShortSide / short;
  return { width: Math.max(minShortSide, Math.round(w * k)), height: Math.max(minShortSide, Math.round(h * k)) };
}

export async function decodeImage(
  buf: Uint8Array,
  limits: DecodeLimits,
  minShortSide = 0,
  header?: ImageHeader | null,
): Promise<DecodedImage> {
  if (buf.length === 0) throw unprocessable('empty image', 'empty_image');
  let meta: ImageHeader;
  if (header) meta = header;
  else {
    const h = parseHeader(buf);
    if (h) meta = h;
    else {
      try {
        meta = await sharp(buf, { limitInputPixels: false }).metadata();
      } catch (e) {
        throw unprocessable(`cannot read the image: ${shortSharpMessage(e)}`);
      }
    }
  }
  if (!meta.format || !ACCEPTED_FORMATS.has(meta.format)) {
    throw unsupported(
      `image format ${meta.format ?? 'unknown'} is not accepted (jpeg, png or webp)`,
      'unsupported_image_format',
    );
  }
  const w = meta.width ?? 0,
    h = meta.height ?? 0;
  if (!(w > 0 && h > 0)) throw unprocessable('the image header has no dimensions');
  if (w * h > limits.maxPixels) {
    throw tooLarge(
      `image is ${w}x${h} = ${w * h} pixels, more than the limit of ${limits.maxPixels}`,
      'image_too_large',
    );
  }
  const shrunk = shrinkOnLoadSize(meta, minShortSide);
  try {
    // libvips refuses an image larger than its header declared (w * h): the budgets counted that many pixels.
    let pipeline = sharp(buf, { limitInputPixels: w * h, failOn: 'warning', pages: 1 }).rotate();
    if (shrunk) pipeline = pipeline.resize({ ...shrunk, fit: 'fill', fastShrinkOnLoad: true });
    const { data, info } = await pipeline
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    let rgb = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (info.channels === 1) {
      const out = new Uint8Array(info.width * info.height * 3);
      for (let i = 0; i < rgb.length; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = rgb[i];
      rgb = out;
    } else if (info.channels !== 3) {
      throw unprocessable(`decoded image has ${info.channels} channels, expected 3`);
    }
    return { rgb, width: info.width, height: info.height };
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw unprocessable(`cannot decode the image: ${shortSharpMessage(e)}`);
  }
}

/** The model input for one decoded image: resize (shorter side) + centre crop, uint8 size*size*3. */
export function toModelInput(img: DecodedImage, size: number, limits: DecodeLimits): Uint8Array {
  checkResize(img, size, limits);
  return resizeCenterCrop(img, size);
}

/** 413 when the shorter-side resize of an extreme aspect ratio would exceed max_pixels. */
export function checkResize(img: DecodedImage, size: number, limits: DecodeLimits): void {
  const s = evalResizeSide(size);
  const short = Math.min(img.width, img.height),
    long = Math.max(img.width, img.height);
  const resizedPixels = s * Math.trunc((s * long) / short);
  if (resizedPixels > limits.maxPixels) {
    throw tooLarge(
      `image aspect ratio ${img.width}x${img.height} would resize to ${resizedPixels} pixels, more than ${limits.maxPixels}`,
      'image_too_large',
    );
  }
}

/** Decode + resize + crop (`header`: readHeader's result for `buf`, when the caller already has it). */
export async function decodeToInput(
  buf: Uint8Array,
  size: number,
  limits: DecodeLimits,
  header?: ImageHeader | null,
): Promise<Uint8Array> {
  return toModelInput(await decodeImage(buf, limits, 2 * evalResizeSide(size), header), size, limits);
}

function shortSharpMessage(e: unknown): string {
  const m = String((e as Error)?.message ?? e).split('\n')[0];
  return m.length > 160 ? `${m.slice(0, 160)}…` : m;
}

/** A JPEG, PNG or WebP header parsed in JS; null for anything else or unreadable (sharp decides then). */
function parseHeader(buf: Uint8Array): ImageHeader | null {
  try {
    const r = imageSize(buf);
    const format = HEADER_FORMATS[r.type ?? ''];
    if (format && r.width > 0 && r.height > 0) {
      return { format, width: r.width, height: r.height, orientation: format === 'jpeg' ? r.orientation : undefined };
    }
  } catch {
    // Not a header image-size reads.
  }
  return null;
}

/** image-size's type → the format names sharp uses; other types are left to sharp's own header reading. */
const HEADER_FORMATS: Record<string, ImageHeader['format']> = { jpg: 'jpeg', png: 'png', webp: 'webp' };

/**
 * The image header (nothing decoded); null when it cannot be read (decodeImage then says why).
 * JPEG, PNG and WebP headers are parsed in JS (image-size: ~5 µs, where sharp's metadata() costs a libuv
 * thread-pool round trip, 0.3-1 ms for a lone request); anything else goes to sharp. Orientation is read for
 * JPEG only, the one format whose shrink-on-load uses it. decodeImage caps libvips at the pixels declared
 * here, so a header that under-states its size cannot decode more than the budgets counted.
 */
export async function readHeader(buf: Uint8Array): Promise<ImageHeader | null> {
  const h = parseHeader(buf);
  if (h) return h;
  try {
    const m = await sharp(buf, { limitInputPixels: false }).metadata();
    return { format: m.format, width: m.width, height: m.height, orientation: m.orientation };
  } catch {
    return null;
  }
}
