/**
 * Upstream's image transforms (HobbitLong/CMC `train_CMC.py` and `LinearProbing.py`), on RGB uint8 HWC arrays, ending in the normalised view
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
 * Resizing (a byte-exact port of Pillow's bilinear resample) and the evaluation-time resize + centre crop
 * live in core/preprocess/resize.ts, shared with the server and the browser.
 */
import type { Rng } from '../../core/util/rng.ts';
import { toViewInput, type ColorView } from '../../core/preprocess/color.ts';
import { layoutChannels, toLayoutInput } from '../../core/preprocess/views.ts';
import {
  resizeBilinear,
  resizeCenterCrop,
  roundHalfEven,
  type CropRect,
  type Image,
} from '../../core/preprocess/resize.ts';

export interface TransformConfig {
  /** Output side (square). */
  size: number;
  view: ColorView;
  /**
   * The model's input layout (core/preprocess/views.ts), e.g. ['L', 'ab', 'grad']; when given it replaces
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
  const logLo = Math.log(ratio[0]),
    logHi = Math.log(ratio[1]);
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
  const rMin = Math.min(ratio[0], ratio[1]),
    rMax = Math.max(ratio[0], ratio[1]);
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

/** Mirror left-right, in place or into `out`. */
export function hflip(rgb: Uint8Array, width: number, height: number, out?: Uint8Array): Uint8Array {
  const o = out ?? rgb;
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let a = 0, b = width - 1; a <= b; a++, b--) {
      const pa = row + a * 3,
        pb = row + b * 3;
      const r = rgb[pa],
        g = rgb[pa + 1],
        bl = rgb[pa + 2];
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
export function trainAugmentRgb(
  img: Image,
  cfg: TransformConfig,
  rng: Rng,
): { rgb: Uint8Array; crop: CropRect; flipped: boolean } {
  const crop = randomResizedCropParams(
    img.width,
    img.height,
    rng,
    [cfg.cropLow ?? 0.2, 1],
    cfg.ratio ?? [3 / 4, 4 / 3],
  );
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
function toInput(
  rgb: Uint8Array,
  cfg: Pick<TransformConfig, 'size' | 'view' | 'input'>,
  out?: Float32Array,
): Float32Array {
  return cfg.input ? toLayoutInput(rgb, cfg.size, cfg.size, cfg.input, out) : toViewInput(rgb, cfg.view, out);
}

/** Validation / probe transform → view input (Float32Array size*size*channels, HWC). */
export function valTransform(
  img: Image,
  cfg: Pick<TransformConfig, 'size' | 'view' | 'input'>,
  out?: Float32Array,
): Float32Array {
  return toInput(resizeCenterCrop(img, cfg.size), cfg, out);
}
