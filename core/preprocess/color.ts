/**
 * Colour conversion and normalisation for the two CMC views. PORTABLE: no tfjs and no node imports, so
 * train/, serve/ and web/ produce bit-identical inputs.
 *
 * Upstream's order (HobbitLong/CMC `train_CMC.py`): RGB uint8 (after crop/flip) → skimage rgb2lab (float64) → ToTensor (no /255,
 * the array is already float) → Normalize(mean, std) in float64 → `.float()`. We compute in float64 and
 * store float32 once at the end, so the result equals upstream's input tensor up to that final rounding.
 *
 *   const x = toViewInput(rgbHWC, 'Lab');   // Float32Array H*W*3, channel 0 = L view, 1..2 = ab view
 *
 * Layout: interleaved HWC everywhere (pixel p has channels at 3p, 3p+1, 3p+2).
 */

export type ColorView = 'Lab' | 'YCbCr';
export type RgbPixels = Uint8Array | Uint8ClampedArray;

/** Lab normalisation: each channel maps onto about [-1, 1] over the sRGB gamut (a/b extremes of sRGB). */
export const LAB_MEAN: readonly [number, number, number] = Object.freeze([
  (0 + 100) / 2,
  (-86.183 + 98.233) / 2,
  (-107.857 + 94.478) / 2,
]) as readonly [number, number, number];
export const LAB_STD: readonly [number, number, number] = Object.freeze([
  (100 - 0) / 2,
  (86.183 + 98.233) / 2,
  (107.857 + 94.478) / 2,
]) as readonly [number, number, number];

/** YCbCr normalisation constants of upstream's `--view YCbCr`. */
export const YCBCR_MEAN: readonly [number, number, number] = Object.freeze([116.151, 121.08, 132.342]) as readonly [
  number,
  number,
  number,
];
export const YCBCR_STD: readonly [number, number, number] = Object.freeze([109.5, 111.855, 111.964]) as readonly [
  number,
  number,
  number,
];

type Matrix3 = readonly (readonly [number, number, number])[];

/** sRGB (D65) → XYZ, skimage's xyz_from_rgb (rows: X, Y, Z). */
export const XYZ_FROM_RGB: Matrix3 = [
  [0.412453, 0.35758, 0.180423],
  [0.212671, 0.71516, 0.072169],
  [0.019334, 0.119193, 0.950227],
];
/** D65, 2° observer reference white (Xn, Yn, Zn). */
export const WHITE_D65: readonly [number, number, number] = [0.95047, 1.0, 1.08883];
/** skimage's rgb2ycbcr on RGB in [0, 1]: YCbCr = YCBCR_FROM_RGB · rgb + YCBCR_OFFSET. */
export const YCBCR_FROM_RGB: Matrix3 = [
  [65.481, 128.553, 24.966],
  [-37.797, -74.203, 112.0],
  [112.0, -93.786, -18.214],
];
export const YCBCR_OFFSET: readonly [number, number, number] = [16, 128, 128];

const [[M00, M01, M02], [M10, M11, M12], [M20, M21, M22]] = XYZ_FROM_RGB;
const [XN, YN, ZN] = WHITE_D65;
const [[C00, C01, C02], [C10, C11, C12], [C20, C21, C22]] = YCBCR_FROM_RGB;
const [CY, CB, CR] = YCBCR_OFFSET;

/** sRGB linearisation (skimage's rgb2xyz): c > threshold ? ((c + offset) / scale)^gamma : c / slope. */
export const SRGB_LINEAR = Object.freeze({ threshold: 0.04045, offset: 0.055, scale: 1.055, gamma: 2.4, slope: 12.92 });
/** CIE Lab's f(t) (skimage's xyz2lab): t > threshold ? cbrt(t) : slope * t + offset. */
export const LAB_F = Object.freeze({ threshold: 0.008856, slope: 7.787, offset: 16 / 116 });

// skimage's img_as_float multiplies uint8 by 1/255 (not a division).
const INV255 = 1 / 255;

/** Linearised sRGB for the 256 uint8 levels (float64), computed once. */
const LINEAR: Float64Array = (() => {
  const t = new Float64Array(256);
  for (let v = 0; v < 256; v++) {
    const c = v * INV255;
    const { threshold, offset, scale, gamma, slope } = SRGB_LINEAR;
    t[v] = c > threshold ? Math.pow((c + offset) / scale, gamma) : c / slope;
  }
  return t;
})();

function labF(t: number): number {
  return t > LAB_F.threshold ? Math.cbrt(t) : LAB_F.slope * t + LAB_F.offset;
}

/** One pixel to Lab in float64, exactly skimage 0.19's rgb2lab (L in [0, 100]). */
export function rgbPixelToLab(r: number, g: number, b: number): [number, number, number] {
  const rl = LINEAR[r & 255],
    gl = LINEAR[g & 255],
    bl = LINEAR[b & 255];
  const x = (M00 * rl + M01 * gl + M02 * bl) / XN;
  const y = (M10 * rl + M11 * gl + M12 * bl) / YN;
  const z = (M20 * rl + M21 * gl + M22 * bl) / ZN;
  const fx = labF(x),
    fy = labF(y),
    fz = labF(z);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/** One pixel to YCbCr in float64, exactly skimage's rgb2ycbcr (Y in [16, 235], Cb/Cr in [16, 240]). */
export function rgbPixelToYCbCr(r: number, g: number, b: number): [number, number, number] {
  const rf = (r & 255) * INV255,
    gf = (g & 255) * INV255,
    bf = (b & 255) * INV255;
  return [
    C00 * rf + C01 * gf + C02 * bf + CY,
    C10 * rf + C11 * gf + C12 * bf + CB,
    C20 * rf + C21 * gf + C22 * bf + CR,
  ];
}

function convert(
  rgb: RgbPixels,
  out: Float32Array | undefined,
  px: (r: number, g: number, b: number) => [number, number, number],
  mean?: readonly number[],
  std?: readonly number[],
): Float32Array {
  if (rgb.length % 3 !== 0) throw new RangeError(`expected interleaved RGB (length multiple of 3), got ${rgb.length}`);
  const o = out ?? new Float32Array(rgb.length);
  if (o.length < rgb.length) throw new RangeError(`output too small: ${o.length} < ${rgb.length}`);
  for (let i = 0; i < rgb.length; i += 3) {
    const v = px(rgb[i], rgb[i + 1], rgb[i + 2]);
    if (mean && std) {
      o[i] = (v[0] - mean[0]) / std[0];
      o[i + 1] = (v[1] - mean[1]) / std[1];
      o[i + 2] = (v[2] - mean[2]) / std[2];
    } else {
      o[i] = v[0];
      o[i + 1] = v[1];
      o[i + 2] = v[2];
    }
  }
  return o;
}

/** RGB uint8 HWC → Lab HWC (float64 maths, stored float32). */
export function rgbToLab(rgb: RgbPixels, out?: Float32Array): Float32Array {
  return convert(rgb, out, rgbPixelToLab);
}

/** RGB uint8 HWC → YCbCr HWC (skimage rgb2ycbcr, float64 maths, stored float32). */
export function rgbToYCbCr(rgb: RgbPixels, out?: Float32Array): Float32Array {
  return convert(rgb, out, rgbPixelToYCbCr);
}

/**
 * (x - mean[c]) / std[c] per channel of an interleaved array with mean.length channels; in place when
 * `out` is `x` (the default writes a new array).
 */
export function normalize(
  x: Float32Array | Float64Array,
  mean: readonly number[],
  std: readonly number[],
  out?: Float32Array,
): Float32Array {
  const c = mean.length;
  if (std.length !== c) throw new RangeError('normalize: mean and std lengths differ');
  if (x.length % c !== 0) throw new RangeError(`normalize: length ${x.length} is not a multiple of ${c} channels`);
  const o = out ?? new Float32Array(x.length);
  for (let i = 0; i < x.length; i += c) {
    for (let k = 0; k < c; k++) o[i + k] = (x[i + k] - mean[k]) / std[k];
  }
  return o;
}

/** Mean/std used for a view. */
export function viewStats(view: ColorView): { mean: readonly number[]; std: readonly number[] } {
  switch (view) {
    case 'Lab':
      return { mean: LAB_MEAN, std: LAB_STD };
    case 'YCbCr':
      return { mean: YCBCR_MEAN, std: YCBCR_STD };
    default: {
      const never: never = view;
      throw new RangeError(`Unknown view '${String(never)}'; expected one of: Lab, YCbCr`);
    }
  }
}

/**
 * RGB uint8 HWC → normalised network input HWC (Float32Array, same length): colour conversion and
 * normalisation both in float64, rounded to float32 once (upstream's order). Channel 0 is the first
 * view (L or Y), channels 1..2 the second (ab or CbCr).
 */
export function toViewInput(rgb: RgbPixels, view: ColorView, out?: Float32Array): Float32Array {
  const { mean, std } = viewStats(view);
  return convert(rgb, out, view === 'Lab' ? rgbPixelToLab : rgbPixelToYCbCr, mean, std);
}

/**
 * Lab to sRGB uint8, the inverse of rgbPixelToLab (same white point and matrix), clamped to the gamut. Used to
 * draw generated images whose lightness and chroma are chosen independently (train/data/synthetic.ts).
 */
export function labPixelToRgb(L: number, a: number, b: number): [number, number, number] {
  const fy = (L + 16) / 116;
  const inv = (f: number) => (f > 0.206893 ? f * f * f : (f - 16 / 116) / 7.787);
  const x = XN * inv(fy + a / 500),
    y = YN * inv(fy),
    z = ZN * inv(fy - b / 200);
  const lin = [
    3.240479 * x - 1.53715 * y - 0.498535 * z,
    -0.969256 * x + 1.875992 * y + 0.041556 * z,
    0.055648 * x - 0.204043 * y + 1.057311 * z,
  ];
  const srgb = lin.map((c) => (c > 0.0031308 ? 1.055 * Math.pow(c, 1 / 2.4) - 0.055 : 12.92 * c));
  return srgb.map((c) => Math.max(0, Math.min(255, Math.round(255 * c)))) as [number, number, number];
}
