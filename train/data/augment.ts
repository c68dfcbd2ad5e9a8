/**
 * The seed's image transforms (SEED_NOTES §4), on RGB uint8 HWC arrays, ending in the normalised view
 * input of color.ts.
 *
 *   train: RandomResizedCrop(size, scale=(cropLow, 1), ratio=(3/4, 4/3)) → RandomHorizontalFlip(0.5)
 *          → toViewInput(view)
 *   val:   Resize(shorter side → round(size*256/224)) → CenterCrop(size) → toViewInput(view)
 *
 *   const x = trainTransform(sample, { size: 64, view: 'Lab', cropLow: 0.2 }, rng); // Float32Array 64*64*3
 *
 * Crop parameters replicate torchvision's `RandomResizedCrop.get_params` (torchvision >= 0.5: 10 attempts,
 * area fraction uniform in scale, aspect ratio log-uniform in ratio, Python round-half-even, then the
 * ratio-clamped centre-crop fallback). The random numbers come from our seeded Rng, so the *distribution*
 * is torchvision's, not its exact stream. Order of draws per sample: crop (area, ratio per attempt, then
 * top, left), then one uniform for the flip — as torchvision draws them.
 *
 * Resizing is a pure-JS port of Pillow's `ImagingResample` for 8-bit images with the BILINEAR (triangle)
 * filter — what torchvision's PIL path does (`img.crop(...).resize(size, BILINEAR)`):
 *  - separable, horizontal pass first (only over the rows the vertical pass needs), then vertical;
 *  - the filter support grows with the downscale factor (= PIL's antialiasing), support 1 when upscaling;
 *  - coefficients normalised in float64, then quantised to 22-bit fixed point, rounding like Pillow;
 *  - the intermediate image is uint8 (rounded + clipped), exactly as in Pillow.
 * The result matches Pillow (>= 7) byte for byte for the cases we checked by hand (see the tests); we chose
 * this over sharp's resize because sharp/libvips uses a different kernel and centre convention and
 * would need an async round trip per sample, while this runs synchronously inside the loader workers.
 */
import type { Rng } from '../util/rng.ts';
import { toViewInput, type ColorView } from '../preprocess/color.ts';
import { layoutChannels, toLayoutInput } from '../preprocess/views.ts';

export interface Image {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** Crop rectangle in pixels (torchvision's i, j, h, w = top, left, height, width). */
export interface CropRect {
  top: number;
  left: number;
  height: number;
  width: number;
}

export interface TransformConfig {
  /** Output side (square). */
  size: number;
  view: ColorView;
  /**
   * The model's input layout (train/preprocess/views.ts), e.g. ['L', 'ab', 'grad']; when given it replaces
   * `view` and the output has layoutChannels(input) channels instead of 3.
   */
  input?: readonly string[];
  /** RandomResizedCrop lower area fraction (seed default 0.2; 0.08 for ResNets on full ImageNet). */
  cropLow?: number;
  /** Aspect-ratio range (default [3/4, 4/3]). */
  ratio?: [number, number];
  /** Horizontal flip probability (default 0.5). */
  flipP?: number;
}

/** Python 3's round(): nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision `RandomResizedCrop.get_params(img, scale, ratio)` for an image of `width` x `height`.
 * `fallback` tells whether the 10 attempts all failed and the centre crop was used.
 */
export function randomResizedCropParams(
  width: number,
  height: number,
  rng: Rng,
  scale: [number, number] = [0.08, 1],
  ratio: [number, number] = [3 / 4, 4 / 3],
): CropRect & { fallback: boolean } {
  const area = height * width;
  const logLo = Math.log(ratio[0]), logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.range(scale[0], scale[1]);
    const aspect = Math.exp(rng.range(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w, fallback: false };
    }
  }
  // Fallback to a central crop, with the aspect ratio clamped into `ratio`.
  return { ...centreFallback(width, height, ratio), fallback: true };
}

/** The fallback branch of torchvision's get_params (exported for tests). */
export function centreFallback(width: number, height: number, ratio: [number, number] = [3 / 4, 4 / 3]): CropRect {
  const inRatio = width / height;
  const rMin = Math.min(ratio[0], ratio[1]), rMax = Math.max(ratio[0], ratio[1]);
  let w: number, h: number;
  if (inRatio < rMin) {
    w = width;
    h = Math.trunc(roundHalfEven(w / rMin));
  } else if (inRatio > rMax) {
    h = height;
    w = Math.trunc(roundHalfEven(h * rMax));
  } else {
    w = width;
    h = height;
  }
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

// ------------------------------------------------------------------------------------------------------
// Pillow bilinear resampling

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

function bilinearFilter(x: number): number {
  if (x < 0) x = -x;
  return x < 1 ? 1 - x : 0;
}

interface Coeffs {
  ksize: number;
  /** xmin, count per output position. */
  bounds: Int32Array;
  /** Fixed-point coefficients, ksize per output position. */
  kk: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the range [in0, in1) of an input of inSize. */
function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number): Coeffs {
  const support0 = 1; // bilinear
  const scale = (in1 - in0) / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = support0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const tmp = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bilinearFilter((x + xmin - center + 0.5) * ss);
      tmp[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      let k = x < xmax ? (ww !== 0 ? tmp[x] / ww : tmp[x]) : 0;
      k = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
      kk[xx * ksize + x] = k;
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * PIL `img.crop((left, top, left+width, top+height)).resize((outW, outH), Image.BILINEAR)` on RGB uint8
 * HWC. `crop` defaults to the whole image. Returns a new (or the given) Uint8Array outW*outH*3.
 */
export function resizeBilinear(
  img: Image,
  outW: number,
  outH: number,
  crop: CropRect = { top: 0, left: 0, height: img.height, width: img.width },
  out?: Uint8Array,
): Uint8Array {
  const { rgb, width: sw } = img;
  const { top, left, width: cw, height: ch } = crop;
  if (!(cw > 0 && ch > 0 && outW > 0 && outH > 0)) throw new RangeError(`resizeBilinear: empty size (crop ${cw}x${ch} → ${outW}x${outH})`);
  if (top < 0 || left < 0 || top + ch > img.height || left + cw > img.width) {
    throw new RangeError(`resizeBilinear: crop ${JSON.stringify(crop)} outside ${img.width}x${img.height}`);
  }
  const dst = out ?? new Uint8Array(outW * outH * 3);
  const needH = outW !== cw;
  const needV = outH !== ch;

  // Source rows/cols are those of the crop: index (top + y, left + x).
  if (!needH && !needV) {
    for (let y = 0; y < ch; y++) dst.set(rgb.subarray(((top + y) * sw + left) * 3, ((top + y) * sw + left + cw) * 3), y * cw * 3);
    return dst;
  }

  const vert = precomputeCoeffs(ch, 0, ch, outH);
  // Horizontal pass → temp (uint8) over rows [yFirst, yLast) of the crop, or the crop itself.
  let tmp: Uint8Array;
  let tmpStride: number; // pixels per row in tmp
  let tmpRow0: number; // crop row held by tmp row 0 (offset added to vertical bounds)
  let tmpBase: number; // pixel offset of tmp(0,0)
  if (needH) {
    const hor = precomputeCoeffs(cw, 0, cw, outW);
    const yFirst = vert.bounds[0];
    const yLast = vert.bounds[(outH - 1) * 2] + vert.bounds[(outH - 1) * 2 + 1];
    const rows = yLast - yFirst;
    tmp = new Uint8Array(outW * rows * 3);
    const { ksize, bounds, kk } = hor;
    for (let yy = 0; yy < rows; yy++) {
      const srcRow = ((top + yFirst + yy) * sw + left) * 3;
      const dstRow = yy * outW * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[2 * xx], xn = bounds[2 * xx + 1];
        const kb = xx * ksize;
        let s0 = HALF, s1 = HALF, s2 = HALF;
        let p = srcRow + xmin * 3;
        for (let x = 0; x < xn; x++, p += 3) {
          const k = kk[kb + x];
          s0 += rgb[p] * k;
          s1 += rgb[p + 1] * k;
          s2 += rgb[p + 2] * k;
        }
        const o = dstRow + xx * 3;
        tmp[o] = clip8(s0);
        tmp[o + 1] = clip8(s1);
        tmp[o + 2] = clip8(s2);
      }
    }
    if (!needV) {
      dst.set(tmp.subarray(0, outW * outH * 3));
      return dst;
    }
    tmpStride = outW;
    tmpRow0 = yFirst;
    tmpBase = 0;
  } else {
    tmp = rgb;
    tmpStride = sw;
    tmpRow0 = 0;
    tmpBase = top * sw + left;
  }
  // Vertical pass.
  const { ksize, bounds, kk } = vert;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[2 * yy] - tmpRow0, yn = bounds[2 * yy + 1];
    const kb = yy * ksize;
    const dstRow = yy * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let y = 0; y < yn; y++) {
        const p = (tmpBase + (ymin + y) * tmpStride + xx) * 3;
        const k = kk[kb + y];
        s0 += tmp[p] * k;
        s1 += tmp[p + 1] * k;
        s2 += tmp[p + 2] * k;
      }
      const o = dstRow + xx * 3;
      dst[o] = clip8(s0);
      dst[o + 1] = clip8(s1);
      dst[o + 2] = clip8(s2);
    }
  }
  return dst;
}

/** Mirror left-right, in place or into `out`. */
export function hflip(rgb: Uint8Array, width: number, height: number, out?: Uint8Array): Uint8Array {
  const o = out ?? rgb;
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let a = 0, b = width - 1; a <= b; a++, b--) {
      const pa = row + a * 3, pb = row + b * 3;
      const r = rgb[pa], g = rgb[pa + 1], bl = rgb[pa + 2];
      o[pa] = rgb[pb];
      o[pa + 1] = rgb[pb + 1];
      o[pa + 2] = rgb[pb + 2];
      o[pb] = r;
      o[pb + 1] = g;
      o[pb + 2] = bl;
    }
  }
  return o;
}

/** The training transform up to (excluding) colour conversion: RGB uint8 size*size*3. */
export function trainAugmentRgb(img: Image, cfg: TransformConfig, rng: Rng): { rgb: Uint8Array; crop: CropRect; flipped: boolean } {
  const crop = randomResizedCropParams(img.width, img.height, rng, [cfg.cropLow ?? 0.2, 1], cfg.ratio ?? [3 / 4, 4 / 3]);
  const rgb = resizeBilinear(img, cfg.size, cfg.size, crop);
  const flipped = rng.uniform() < (cfg.flipP ?? 0.5);
  if (flipped) hflip(rgb, cfg.size, cfg.size);
  return { rgb, crop, flipped };
}

/** RandomResizedCrop → RandomHorizontalFlip → view input (Float32Array size*size*channels, HWC). */
export function trainTransform(img: Image, cfg: TransformConfig, rng: Rng, out?: Float32Array): Float32Array {
  return toInput(trainAugmentRgb(img, cfg, rng).rgb, cfg, out);
}

/** Channels of a transform's output: 3 (a colour space) or its input layout's. */
export function transformChannels(cfg: Pick<TransformConfig, 'input'>): number {
  return cfg.input ? layoutChannels(cfg.input) : 3;
}

/** A size*size RGB crop to the network input (the colour space, or the declared input layout). */
function toInput(rgb: Uint8Array, cfg: Pick<TransformConfig, 'size' | 'view' | 'input'>, out?: Float32Array): Float32Array {
  return cfg.input ? toLayoutInput(rgb, cfg.size, cfg.size, cfg.input, out) : toViewInput(rgb, cfg.view, out);
}

/** Shorter side used by the validation transform: round(size * 256 / 224) (256 for 224). */
export function valResizeSide(size: number): number {
  return roundHalfEven((size * 256) / 224);
}

/**
 * torchvision Resize(s) (shorter side → s, longer side int(s * long / short)) then CenterCrop(size)
 * (offsets int(round((H - size) / 2))), RGB uint8 size*size*3.
 */
export function valAugmentRgb(img: Image, size: number): Uint8Array {
  const s = valResizeSide(size);
  const { width: w, height: h } = img;
  let nw: number, nh: number;
  if (w <= h) {
    nw = s;
    nh = Math.trunc((s * h) / w);
  } else {
    nh = s;
    nw = Math.trunc((s * w) / h);
  }
  const resized = nw === w && nh === h ? img.rgb : resizeBilinear(img, nw, nh);
  if (size > nw || size > nh) throw new RangeError(`valTransform: crop ${size} larger than resized ${nw}x${nh}`);
  const top = Math.trunc(roundHalfEven((nh - size) / 2));
  const left = Math.trunc(roundHalfEven((nw - size) / 2));
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    out.set(resized.subarray(((top + y) * nw + left) * 3, ((top + y) * nw + left + size) * 3), y * size * 3);
  }
  return out;
}

/** Validation / probe transform → view input (Float32Array size*size*channels, HWC). */
export function valTransform(img: Image, cfg: Pick<TransformConfig, 'size' | 'view' | 'input'>, out?: Float32Array): Float32Array {
  return toInput(valAugmentRgb(img, cfg.size), cfg, out);
}
