/**
 * Browser preprocessing, the same code as the server's (serve/preprocess.ts): canvas RGBA ImageData →
 * RGB (alpha dropped, like sharp's removeAlpha) → resizeCenterCrop (core/preprocess/resize.ts): shorter side →
 * round(size*256/224) with the Pillow-identical bilinear resize, centre crop size x size → uint8 HWC, the
 * exported models' `images` input.
 *
 * Portable (no DOM types needed for the transform itself): test it in node with a fake ImageData.
 */
import { resizeCenterCrop, evalResizeSide } from '../core/preprocess/resize.ts';

export { evalResizeSide };

/** The part of ImageData we use. */
export interface RgbaImage {
  data: Uint8ClampedArray | Uint8Array;
  width: number;
  height: number;
}

/** RGBA → RGB, alpha dropped (not blended), as sharp's removeAlpha() does on the server. */
export function rgbaToRgb(img: RgbaImage): Uint8Array {
  const n = img.width * img.height;
  if (img.data.length !== n * 4)
    throw new RangeError(`rgbaToRgb: ${img.data.length} bytes for ${img.width}x${img.height} RGBA`);
  const out = new Uint8Array(n * 3);
  const d = img.data;
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    out[3 * i] = d[j];
    out[3 * i + 1] = d[j + 1];
    out[3 * i + 2] = d[j + 2];
  }
  return out;
}

/** The model input for one decoded image: uint8 size*size*3 (HWC), exactly the server's transform. */
export function preprocessImageData(img: RgbaImage, size: number): Uint8Array {
  return resizeCenterCrop({ rgb: rgbaToRgb(img), width: img.width, height: img.height }, size);
}

/** Cosine similarity of two vectors (0 when either is all zeros). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`cosine: lengths ${a.length} and ${b.length}`);
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}
