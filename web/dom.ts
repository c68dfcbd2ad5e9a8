/** Small DOM helpers of the page: elements by id, the status line, canvases and decoding. */

export const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export function setStatus(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', error);
}

/** A file → RGBA pixels, EXIF orientation applied and alpha not premultiplied (closest to sharp's decode). */
export async function decode(file: Blob): Promise<ImageData> {
  const bmp = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
  const c = document.createElement('canvas');
  c.width = bmp.width;
  c.height = bmp.height;
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  return ctx.getImageData(0, 0, c.width, c.height);
}

/** The model input (uint8 RGB, size x size) as a canvas. */
export function thumbnail(rgb: Uint8Array, size: number): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = c.height = size;
  const id = new ImageData(size, size);
  for (let k = 0; k < size * size; k++) {
    id.data.set([rgb[3 * k], rgb[3 * k + 1], rgb[3 * k + 2], 255], 4 * k);
  }
  c.getContext('2d')!.putImageData(id, 0, 0);
  return c;
}

export function copyCanvas(src: HTMLCanvasElement): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = src.width;
  c.height = src.height;
  c.getContext('2d')!.drawImage(src, 0, 0);
  return c;
}

export function caption(text: string): HTMLElement {
  const f = document.createElement('figcaption');
  f.textContent = text;
  return f;
}

export function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
