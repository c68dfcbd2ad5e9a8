/**
 * The view vocabulary: named views computed from RGB, and the model input they form. PORTABLE: no tfjs and
 * no node imports (train/, serve/ and web/ share it). Every view is a pure function of the uint8 RGB image:
 *
 *   L     1 ch  Lab lightness          (L - 50) / 50                       (upstream's Lab normalisation)
 *   ab    2 ch  Lab chroma a, b        (v - LAB_MEAN) / LAB_STD            (upstream's)
 *   Y     1 ch  luma of YCbCr (BT.601) (Y - 116.151) / 109.5               (upstream's --view YCbCr)
 *   CbCr  2 ch  YCbCr chroma           (v - YCBCR_MEAN) / YCBCR_STD        (upstream's)
 *   DbDr  2 ch  YDbDr chroma (SECAM)   v / 1.333: Db = -0.450R-0.883G+1.333B, Dr = -1.333R+1.116G+0.217B on
 *                                      R,G,B in [0,1], so each lies in [-1.333, 1.333] -> exactly [-1, 1]
 *   grad  2 ch  Sobel x, y of Lab L    sobel(L) / 400, L in [0,100]: |sobel| <= 4*100, so exactly [-1, 1];
 *                                      borders replicate the edge pixel (no artificial edge at the frame)
 *
 * `Y` is the one luma (YDbDr's Y is the same BT.601 luma as YCbCr's, up to an affine map, so there is a
 * single name). The input of a model is the concatenation of its views' channels in the declared order
 * (an "input layout"); spec views index into it. ['L','ab'] is exactly upstream's normalised Lab and
 * ['Y','CbCr'] its YCbCr, so toLayoutInput(rgb, w, h, ['L','ab']) === toViewInput(rgb, 'Lab') bit for bit.
 *
 *   const x = toLayoutInput(rgbHWC, 64, 64, ['L', 'ab', 'grad']);   // Float32Array 64*64*5, HWC
 */
import {
  LAB_MEAN,
  LAB_STD,
  YCBCR_MEAN,
  YCBCR_STD,
  rgbPixelToLab,
  rgbPixelToYCbCr,
  type ColorView,
  type RgbPixels,
} from './color.ts';

/** Colour spaces (and the derived gradient) views are taken from. */
export type ViewSpace = 'Lab' | 'YCbCr' | 'YDbDr' | 'gradL';

export interface ViewDef {
  name: string;
  space: ViewSpace;
  /** Components of the space (e.g. [1, 2] = a, b of Lab). */
  comps: readonly number[];
  /** Per channel: out = (v - mean) / std, in float64, stored float32 once. */
  mean: readonly number[];
  std: readonly number[];
  doc: string;
}

/** YDbDr chroma scale: |Db|, |Dr| <= 1.333 over the RGB cube. */
export const DBDR_SCALE = 1.333;
/** Sobel response bound of L in [0, 100]: 4 * 100. */
export const GRAD_SCALE = 400;

export const VIEW_DEFS: Readonly<Record<string, ViewDef>> = Object.freeze({
  L: { name: 'L', space: 'Lab', comps: [0], mean: [LAB_MEAN[0]], std: [LAB_STD[0]], doc: 'Lab lightness' },
  ab: {
    name: 'ab',
    space: 'Lab',
    comps: [1, 2],
    mean: LAB_MEAN.slice(1),
    std: LAB_STD.slice(1),
    doc: 'Lab chroma a, b',
  },
  Y: {
    name: 'Y',
    space: 'YCbCr',
    comps: [0],
    mean: [YCBCR_MEAN[0]],
    std: [YCBCR_STD[0]],
    doc: 'luma (BT.601, YCbCr scaling)',
  },
  CbCr: {
    name: 'CbCr',
    space: 'YCbCr',
    comps: [1, 2],
    mean: YCBCR_MEAN.slice(1),
    std: YCBCR_STD.slice(1),
    doc: 'YCbCr chroma',
  },
  DbDr: {
    name: 'DbDr',
    space: 'YDbDr',
    comps: [1, 2],
    mean: [0, 0],
    std: [DBDR_SCALE, DBDR_SCALE],
    doc: 'YDbDr chroma',
  },
  grad: {
    name: 'grad',
    space: 'gradL',
    comps: [0, 1],
    mean: [0, 0],
    std: [GRAD_SCALE, GRAD_SCALE],
    doc: 'Sobel x, y of Lab L',
  },
});

export const VIEW_NAMES: readonly string[] = Object.freeze(Object.keys(VIEW_DEFS));

/** Upstream's two views. */
export const DEFAULT_VIEWS: readonly string[] = Object.freeze(['L', 'ab']);

/**
 * True for upstream's two views L, ab (the two-view model, unchanged since before views were declarable),
 * and for no list at all (configs saved before --views existed).
 */
export function isDefaultViews(views: readonly string[] | undefined): boolean {
  return !views || (views.length === DEFAULT_VIEWS.length && views.every((v, i) => v === DEFAULT_VIEWS[i]));
}

export function viewDef(name: string): ViewDef {
  const d = Object.prototype.hasOwnProperty.call(VIEW_DEFS, name) ? VIEW_DEFS[name] : undefined;
  if (!d) throw new RangeError(`Unknown view '${name}'; expected one of: ${VIEW_NAMES.join(', ')}`);
  return d;
}

export function viewChannels(name: string): number {
  return viewDef(name).comps.length;
}

/** Parse and check a comma list of views ("L,ab,DbDr"): known names, no repeats, at least two. */
export function parseViews(list: string | readonly string[]): string[] {
  const names = (typeof list === 'string' ? list.split(',') : [...list]).map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) viewDef(n);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new RangeError(`view '${dup}' is listed twice`);
  if (names.length < 2) throw new RangeError(`CMC needs at least two views, got ${names.length} (${names.join(',')})`);
  return names;
}

/** A view of the layout with its channel offsets in the model input. */
export interface LayoutView {
  def: ViewDef;
  channels: number[];
}

/** Channel offsets of each view in the concatenated input, in layout order. */
export function layoutViews(layout: readonly string[]): LayoutView[] {
  let c = 0;
  return layout.map((name) => {
    const def = viewDef(name);
    const channels = def.comps.map((_, k) => c + k);
    c += def.comps.length;
    return { def, channels };
  });
}

/** Total channels of an input layout. */
export function layoutChannels(layout: readonly string[]): number {
  return layout.reduce((a, n) => a + viewChannels(n), 0);
}

/** The 3-channel layout of upstream's `--view` colour space. */
export function colorLayout(view: ColorView): string[] {
  return view === 'YCbCr' ? ['Y', 'CbCr'] : ['L', 'ab'];
}

/**
 * The input layout of a model: its spec's explicit `input` list, or (specs without one: every two-view
 * model so far) the 3 channels of the `--view` colour space its view channels index into.
 */
export function specInput(spec: { input?: readonly string[] }, view: ColorView = 'Lab'): string[] {
  return spec.input ? [...spec.input] : colorLayout(view);
}

const INV255 = 1 / 255;

/** YDbDr (SECAM) on RGB in [0, 1]: [Y, Db, Dr] = YDBDR_FROM_RGB · rgb. */
export const YDBDR_FROM_RGB: readonly (readonly [number, number, number])[] = [
  [0.299, 0.587, 0.114],
  [-0.45, -0.883, 1.333],
  [-1.333, 1.116, 0.217],
];
const [[D00, D01, D02], [D10, D11, D12], [D20, D21, D22]] = YDBDR_FROM_RGB;

/** One pixel to YDbDr (float64; R, G, B scaled to [0, 1]): Y in [0, 1], Db, Dr in [-1.333, 1.333]. */
export function rgbPixelToYDbDr(r: number, g: number, b: number): [number, number, number] {
  const rf = (r & 255) * INV255,
    gf = (g & 255) * INV255,
    bf = (b & 255) * INV255;
  return [D00 * rf + D01 * gf + D02 * bf, D10 * rf + D11 * gf + D12 * bf, D20 * rf + D21 * gf + D22 * bf];
}

/** Sobel x/y of a float64 plane (H×W) with replicated borders: gx = right − left column, gy = bottom − top row. */
export function sobel(plane: Float64Array, width: number, height: number): { gx: Float64Array; gy: Float64Array } {
  const gx = new Float64Array(width * height);
  const gy = new Float64Array(width * height);
  const at = (y: number, x: number) =>
    plane[Math.min(height - 1, Math.max(0, y)) * width + Math.min(width - 1, Math.max(0, x))];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      gx[y * width + x] =
        at(y - 1, x + 1) +
        2 * at(y, x + 1) +
        at(y + 1, x + 1) -
        (at(y - 1, x - 1) + 2 * at(y, x - 1) + at(y + 1, x - 1));
      gy[y * width + x] =
        at(y + 1, x - 1) +
        2 * at(y + 1, x) +
        at(y + 1, x + 1) -
        (at(y - 1, x - 1) + 2 * at(y - 1, x) + at(y - 1, x + 1));
    }
  }
  return { gx, gy };
}

/**
 * RGB uint8 HWC (width × height) → the layout's normalised input, HWC with layoutChannels(layout) channels
 * (Float32Array). Conversions in float64, one float32 rounding at the end (as toViewInput).
 */
export function toLayoutInput(
  rgb: RgbPixels,
  width: number,
  height: number,
  layout: readonly string[],
  out?: Float32Array,
): Float32Array {
  const n = width * height;
  if (rgb.length !== n * 3)
    throw new RangeError(`expected ${width}x${height} interleaved RGB (${n * 3} values), got ${rgb.length}`);
  const views = layoutViews(layout);
  const C = layoutChannels(layout);
  const o = out ?? new Float32Array(n * C);
  if (o.length < n * C) throw new RangeError(`output too small: ${o.length} < ${n * C}`);
  const spaces = new Set(views.map((v) => v.def.space));
  const needLab = spaces.has('Lab') || spaces.has('gradL');
  const lPlane = spaces.has('gradL') ? new Float64Array(n) : null;
  for (let p = 0; p < n; p++) {
    const r = rgb[3 * p],
      g = rgb[3 * p + 1],
      b = rgb[3 * p + 2];
    const lab = needLab ? rgbPixelToLab(r, g, b) : null;
    const ycc = spaces.has('YCbCr') ? rgbPixelToYCbCr(r, g, b) : null;
    const ydd = spaces.has('YDbDr') ? rgbPixelToYDbDr(r, g, b) : null;
    if (lPlane) lPlane[p] = lab![0];
    for (const { def, channels } of views) {
      const v = def.space === 'Lab' ? lab : def.space === 'YCbCr' ? ycc : def.space === 'YDbDr' ? ydd : null;
      if (!v) continue; // gradL: filled below
      for (let k = 0; k < channels.length; k++) o[p * C + channels[k]] = (v[def.comps[k]] - def.mean[k]) / def.std[k];
    }
  }
  if (lPlane) {
    const { gx, gy } = sobel(lPlane, width, height);
    for (const { def, channels } of views) {
      if (def.space !== 'gradL') continue;
      for (let p = 0; p < n; p++) {
        o[p * C + channels[0]] = (gx[p] - def.mean[0]) / def.std[0];
        o[p * C + channels[1]] = (gy[p] - def.mean[1]) / def.std[1];
      }
    }
  }
  return o;
}
