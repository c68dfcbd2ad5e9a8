/**
 * The model input inside the ONNX graph: `images` uint8 NHWC RGB -> normalised float NCHW, with the
 * formulas and constants of core/preprocess/color.ts and views.ts in float32 (differences ~1e-6 after
 * normalisation). Two forms:
 * - emitPreprocess(view): upstream's 3-channel colour input (Lab: sRGB linearisation with Where/Pow, the
 *   XYZ matrix with the white point folded in as a MatMul, f(t) with Where and Pow(1/3), L/a/b as a
 *   MatMul + Add; or YCbCr: a MatMul + Add) -> (x - mean) / std -> Transpose to NCHW;
 * - emitLayoutInput(layout): any list of views (L, ab, Y, CbCr, DbDr, grad), each computed from RGB and
 *   normalised, concatenated along channels in the declared order. Each colour space is computed once;
 *   `grad` is a fixed 3x3 Sobel Conv (scaled by 1/400) on Lab L with edge padding (Pad mode 'edge'),
 *   matching views.ts's replicated borders. Only operators of emit.ts's WEBGPU_OPS are used.
 */
import {
  LAB_F,
  LAB_MEAN,
  LAB_STD,
  SRGB_LINEAR,
  WHITE_D65,
  XYZ_FROM_RGB,
  YCBCR_FROM_RGB,
  YCBCR_MEAN,
  YCBCR_OFFSET,
  YCBCR_STD,
  type ColorView,
} from '../../core/preprocess/color.ts';
import { GRAD_SCALE, layoutViews, YDBDR_FROM_RGB, type ViewSpace } from '../../core/preprocess/views.ts';
import { DataType } from '../../core/onnx/onnx_proto.ts';
import type { GraphBuilder } from './onnx_graph.ts';

/** Row-vector form: out[..., i] = sum_j x[..., j] * m[i][j] / div[i]  ->  MatMul weight [3, 3] = (m / div)^T. */
function rowVectorMatrix(m: readonly (readonly number[])[], div: readonly number[] = [1, 1, 1]): number[] {
  const w: number[] = [];
  for (let j = 0; j < 3; j++) for (let i = 0; i < 3; i++) w.push(m[i][j] / div[i]);
  return w;
}

/** uint8 NHWC -> float RGB in [0, 1] (Cast, * 1/255 as skimage's img_as_float). */
function emitRgb(g: GraphBuilder, input: string, p: string): string {
  const x = g.op('Cast', [input], p, { to: DataType.FLOAT });
  return g.op('Mul', [x, g.constFloat(`${p}/inv255`, [], [1 / 255])], p);
}

/** float RGB NHWC -> Lab NHWC (L in [0, 100]), skimage's rgb2lab. */
function emitLab(g: GraphBuilder, rgb: string, p: string): string {
  // sRGB linearisation, color.ts's SRGB_LINEAR.
  const hi = g.op('Greater', [rgb, g.constFloat(`${p}/srgb_threshold`, [], [SRGB_LINEAR.threshold])], `${p}/srgb`);
  const t = g.op(
    'Div',
    [
      g.op('Add', [rgb, g.constFloat(`${p}/srgb_a`, [], [SRGB_LINEAR.offset])], `${p}/srgb`),
      g.constFloat(`${p}/srgb_1a`, [], [SRGB_LINEAR.scale]),
    ],
    `${p}/srgb`,
  );
  const pow = g.op('Pow', [t, g.constFloat(`${p}/srgb_gamma`, [], [SRGB_LINEAR.gamma])], `${p}/srgb`);
  const lin = g.op('Div', [rgb, g.constFloat(`${p}/srgb_slope`, [], [SRGB_LINEAR.slope])], `${p}/srgb`);
  const linear = g.op('Where', [hi, pow, lin], `${p}/srgb`);
  // XYZ / white point, as one 3x3 matrix.
  const xyz = g.op(
    'MatMul',
    [linear, g.constFloat(`${p}/xyz_from_rgb`, [3, 3], rowVectorMatrix(XYZ_FROM_RGB, WHITE_D65))],
    `${p}/xyz`,
  );
  // Lab's f(t), color.ts's LAB_F.
  const big = g.op('Greater', [xyz, g.constFloat(`${p}/lab_threshold`, [], [LAB_F.threshold])], `${p}/lab_f`);
  const cbrt = g.op('Pow', [xyz, g.constFloat(`${p}/one_third`, [], [1 / 3])], `${p}/lab_f`);
  const lin2 = g.op(
    'Add',
    [
      g.op('Mul', [xyz, g.constFloat(`${p}/lab_slope`, [], [LAB_F.slope])], `${p}/lab_f`),
      g.constFloat(`${p}/lab_offset`, [], [LAB_F.offset]),
    ],
    `${p}/lab_f`,
  );
  const f = g.op('Where', [big, cbrt, lin2], `${p}/lab_f`);
  // L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz).
  const labM = [
    [0, 116, 0],
    [500, -500, 0],
    [0, 200, -200],
  ];
  return g.op(
    'Add',
    [
      g.op('MatMul', [f, g.constFloat(`${p}/lab_from_f`, [3, 3], rowVectorMatrix(labM))], `${p}/lab`),
      g.constFloat(`${p}/lab_bias`, [3], [-16, 0, 0]),
    ],
    `${p}/lab`,
  );
}

/** float RGB NHWC -> M · rgb + offset (YCbCr, YDbDr). */
function emitLinearSpace(
  g: GraphBuilder,
  rgb: string,
  m: readonly (readonly number[])[],
  offset: readonly number[] | null,
  p: string,
): string {
  const y = g.op('MatMul', [rgb, g.constFloat(`${p}_from_rgb`, [3, 3], rowVectorMatrix(m))], p);
  return offset ? g.op('Add', [y, g.constFloat(`${p}_offset`, [3], [...offset])], p) : y;
}

/**
 * uint8 NHWC RGB `input` -> normalised float NCHW view input (channel 0 = L or Y, 1..2 = ab or CbCr).
 * Returns the NCHW tensor name.
 */
export function emitPreprocess(g: GraphBuilder, input: string, view: ColorView): string {
  const p = 'preprocess';
  const rgb = emitRgb(g, input, p);
  let y: string;
  let mean: readonly number[];
  let std: readonly number[];
  if (view === 'Lab') {
    y = emitLab(g, rgb, p);
    mean = LAB_MEAN;
    std = LAB_STD;
  } else if (view === 'YCbCr') {
    y = emitLinearSpace(g, rgb, YCBCR_FROM_RGB, YCBCR_OFFSET, `${p}/ycbcr`);
    mean = YCBCR_MEAN;
    std = YCBCR_STD;
  } else {
    const never: never = view;
    throw new Error(`unknown view ${String(never)}`);
  }
  const norm = g.op(
    'Div',
    [g.op('Sub', [y, g.constFloat(`${p}/mean`, [3], [...mean])], `${p}/norm`), g.constFloat(`${p}/std`, [3], [...std])],
    `${p}/norm`,
  );
  return g.op('Transpose', [norm], `${p}/to_nchw`, { perm: [0, 3, 1, 2] });
}

/** x[..., channels] along `axis` (Slice when contiguous, else Gather). */
function emitAxisChannels(g: GraphBuilder, x: string, channels: readonly number[], axis: number, base: string): string {
  const c0 = channels[0];
  if (channels.every((c, i) => c === c0 + i)) {
    return g.op(
      'Slice',
      [
        x,
        g.constInt64(`${base}/starts`, [1], [c0]),
        g.constInt64(`${base}/ends`, [1], [c0 + channels.length]),
        g.constInt64(`${base}/axes`, [1], [axis]),
      ],
      base,
    );
  }
  return g.op('Gather', [x, g.constInt64(`${base}/indices`, [channels.length], [...channels])], base, { axis });
}

/** x[:, channels] of an NCHW tensor (Slice when contiguous, else Gather). */
export function emitChannels(g: GraphBuilder, x: string, channels: number[], base: string): string {
  return emitAxisChannels(g, x, channels, 1, base);
}

/** Sobel x, y of NCHW [N, 1, H, W] with replicated borders, scaled by 1/GRAD_SCALE -> [N, 2, H, W]. */
function emitSobel(g: GraphBuilder, l: string, p: string): string {
  const padded = g.op('Pad', [l, g.constInt64(`${p}/pads`, [8], [0, 0, 1, 1, 0, 0, 1, 1])], p, { mode: 'edge' });
  const sx = [-1, 0, 1, -2, 0, 2, -1, 0, 1];
  const sy = [-1, -2, -1, 0, 0, 0, 1, 2, 1];
  const w = [...sx, ...sy].map((v) => v / GRAD_SCALE);
  return g.op('Conv', [padded, g.constFloat(`${p}/sobel`, [2, 1, 3, 3], w)], p, {
    kernel_shape: [3, 3],
    strides: [1, 1],
    pads: [0, 0, 0, 0],
    dilations: [1, 1],
    group: 1,
  });
}

/**
 * uint8 NHWC RGB `input` -> the layout's normalised NCHW input (views concatenated in order). Upstream's
 * layouts (L,ab and Y,CbCr) are the 3-channel emitPreprocess graph. Returns the NCHW tensor name.
 */
export function emitLayoutInput(g: GraphBuilder, input: string, layout: readonly string[]): string {
  const key = layout.join();
  if (key === 'L,ab') return emitPreprocess(g, input, 'Lab');
  if (key === 'Y,CbCr') return emitPreprocess(g, input, 'YCbCr');
  const p = 'preprocess';
  const rgb = emitRgb(g, input, p);
  const spaces = new Map<ViewSpace, string>();
  const space = (s: ViewSpace): string => {
    let t = spaces.get(s);
    if (!t) {
      if (s === 'Lab' || s === 'gradL') t = emitLab(g, rgb, `${p}/lab`);
      else if (s === 'YCbCr') t = emitLinearSpace(g, rgb, YCBCR_FROM_RGB, YCBCR_OFFSET, `${p}/ycbcr`);
      else t = emitLinearSpace(g, rgb, YDBDR_FROM_RGB, null, `${p}/ydbdr`);
      spaces.set(s, t);
    }
    return t;
  };
  const parts = layoutViews(layout).map(({ def }) => {
    const base = `${p}/${def.name}`;
    if (def.space === 'gradL') {
      const l = emitAxisChannels(g, space('Lab'), [0], 3, `${base}/l`);
      return emitSobel(g, g.op('Transpose', [l], `${base}/to_nchw`, { perm: [0, 3, 1, 2] }), base);
    }
    const k = def.comps.length;
    const sel = emitAxisChannels(g, space(def.space), def.comps, 3, `${base}/select`);
    const norm = g.op(
      'Div',
      [
        g.op('Sub', [sel, g.constFloat(`${base}/mean`, [k], [...def.mean])], `${base}/norm`),
        g.constFloat(`${base}/std`, [k], [...def.std]),
      ],
      `${base}/norm`,
    );
    return g.op('Transpose', [norm], `${base}/to_nchw`, { perm: [0, 3, 1, 2] });
  });
  return parts.length === 1 ? parts[0] : g.op('Concat', parts, `${p}/views`, { axis: 1 });
}
