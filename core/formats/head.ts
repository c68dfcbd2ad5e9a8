/**
 * The linear-probe head file: `cmc probe` writes it (train/eval/linear_probe.ts, through headToJson), `cmc
 * export --head` turns it into head.onnx and classifier.onnx (through readHeadFile). The one `LinearHead`
 * type of the project. Portable: no tfjs and no static node imports (only readHeadFile touches the file
 * system, through a dynamic import of node:fs).
 *
 * Format (JSON, one object):
 *
 *   {
 *     "format": "cmc-linear-head",        // required, exactly this
 *     "version": 1,                        // required, 1
 *     "layer": 5,                          // encoder block (1-based, upstream's --layer) whose output feeds the head
 *     "features": "flatten",               // optional, default "flatten": the features are each view's block
 *                                          //   output flattened in PyTorch's NCHW order (C, then H, then W),
 *                                          //   concatenated L view first, then ab: F = sum over views of C*H*W
 *     "classNames": ["airplane", ...],     // C names, index = class id
 *     "pool": [5, 5] | null,               // optional, default null: adaptive pooling target [h, w] of the map
 *                                          //   (views concatenated along channels), PyTorch's bins
 *                                          //   (core/network/pooling.ts), applied before the flatten
 *     "poolType": "max" | "avg",           // required when pool is set (AdaptiveMaxPool2d / AdaptiveAvgPool2d)
 *     "inFeatures": 4608,                  // optional, F (checked against the encoder when given)
 *     "weight": [...],                     // F*C numbers, row-major [F, C] (logits = features @ weight + bias),
 *                                          //   or nested [F][C]
 *     "bias": [...],                       // C numbers
 *     "views": ["L", "ab"],                // optional: the views whose features the head reads, in order
 *     "arch": "alexnet_small",             // optional: the encoder the head was fitted on (for people;
 *     "imageSize": 32, "view": "Lab",      //   the exporter takes these from the checkpoint)
 *     "probe": { ... },                    // optional: the probe's training config, copied into the manifest
 *     "metrics": { ... }                   // optional: e.g. the probe's epochs and the split its epoch was
 *                                          //   chosen on, copied into the manifest
 *   }
 *
 * Heads written before this format was shared name F `featureDim` and the config `probeConfig`, and carry a
 * descriptive `featureLayout` string; they are read as `inFeatures` and `probe` (the string is ignored).
 * The exporter puts the same adaptive pooling into the graph (train/export/emit.ts), so the exported
 * `features` are exactly what the head was trained on. Any other "features" value is refused.
 */
import type { PoolType } from '../network/pooling.ts';
import type { ColorView } from '../preprocess/color.ts';

export const HEAD_FORMAT = 'cmc-linear-head';

export interface LinearHead {
  format: typeof HEAD_FORMAT;
  version: 1;
  layer: number;
  features: 'flatten';
  /** Adaptive pooling target [h, w] of the concatenated map before the flatten, or null (none). */
  pool?: [number, number] | null;
  /** Only meaningful with a pool (default 'max'). */
  poolType?: PoolType;
  classNames: string[];
  inFeatures: number;
  /** Row-major [inFeatures, classNames.length]. */
  weight: Float32Array;
  bias: Float32Array;
  probe?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  /** The views whose features the head reads, in order (the probe writes them; absent = all of the model's). */
  views?: string[];
  /** The encoder the head was fitted on (informative: the exporter reads the checkpoint's). */
  arch?: string;
  imageSize?: number;
  view?: ColorView;
}

/** The JSON object as written by the probe trainer (before validation). */
export interface LinearHeadJson {
  format: string;
  version: number;
  views?: string[];
  layer: number;
  features?: string;
  pool?: [number, number] | null;
  poolType?: PoolType;
  classNames: string[];
  inFeatures?: number;
  weight: number[] | number[][];
  bias: number[];
  probe?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  arch?: string;
  imageSize?: number;
  view?: ColorView;
}

function fail(where: string, msg: string): never {
  throw new Error(`${where}: ${msg}`);
}

/** Validate a parsed head object (`where` names the file in messages). */
export function parseHead(obj: unknown, where = 'head'): LinearHead {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) fail(where, 'expected a JSON object');
  const o = obj as Partial<LinearHeadJson>;
  if (o.format !== HEAD_FORMAT) fail(where, `format must be "${HEAD_FORMAT}", got ${JSON.stringify(o.format)}`);
  if (o.version !== 1)
    fail(where, `unsupported head version ${JSON.stringify(o.version)} (this exporter reads version 1)`);
  if (!Number.isInteger(o.layer) || (o.layer as number) < 1)
    fail(where, `layer must be a block index >= 1, got ${JSON.stringify(o.layer)}`);
  // Heads written before this format was shared: `featureDim` and `probeConfig` (see the header).
  const p = obj as {
    pool?: unknown;
    poolType?: unknown;
    featureDim?: number;
    probeConfig?: Record<string, unknown>;
    views?: unknown;
  };
  if (
    p.views !== undefined &&
    !(Array.isArray(p.views) && p.views.length > 0 && p.views.every((v) => typeof v === 'string'))
  ) {
    fail(where, `views must be a non-empty array of view names, got ${JSON.stringify(p.views)}`);
  }
  let pool: [number, number] | null = null;
  let poolType: PoolType = 'max';
  if (p.pool !== undefined && p.pool !== null) {
    const q = p.pool;
    if (!Array.isArray(q) || q.length !== 2 || !q.every((v) => Number.isInteger(v) && v >= 1)) {
      fail(where, `pool must be null or [h, w] with positive integers, got ${JSON.stringify(q)}`);
    }
    pool = [q[0] as number, q[1] as number];
    if (p.poolType !== 'max' && p.poolType !== 'avg')
      fail(where, `poolType must be "max" or "avg" for a pooled head, got ${JSON.stringify(p.poolType)}`);
    poolType = p.poolType;
  } else if (p.poolType !== undefined && p.poolType !== 'max' && p.poolType !== 'avg') {
    fail(where, `poolType must be "max" or "avg", got ${JSON.stringify(p.poolType)}`);
  } else if (p.poolType !== undefined) {
    poolType = p.poolType as PoolType;
  }
  if (o.inFeatures === undefined && typeof p.featureDim === 'number') o.inFeatures = p.featureDim;
  if (o.probe === undefined && p.probeConfig) o.probe = p.probeConfig;
  const features = o.features ?? 'flatten';
  if (features !== 'flatten') {
    fail(
      where,
      `features "${features}" is not supported by the exporter (only "flatten": each view's block output flattened NCHW, L then ab)`,
    );
  }
  if (!Array.isArray(o.classNames) || o.classNames.length < 1 || !o.classNames.every((c) => typeof c === 'string')) {
    fail(where, 'classNames must be a non-empty array of strings');
  }
  const c = o.classNames.length;
  if (!Array.isArray(o.bias) || o.bias.length !== c)
    fail(
      where,
      `bias must hold ${c} numbers (one per class), got ${Array.isArray(o.bias) ? o.bias.length : typeof o.bias}`,
    );
  if (!Array.isArray(o.weight)) fail(where, 'weight must be an array ([F*C] row-major or [F][C])');
  let flat: number[];
  if (o.weight.length > 0 && Array.isArray(o.weight[0])) {
    const rows = o.weight as number[][];
    rows.forEach((r, i) => {
      if (!Array.isArray(r) || r.length !== c) fail(where, `weight row ${i} must hold ${c} numbers`);
    });
    flat = rows.flat();
  } else {
    flat = o.weight as number[];
  }
  if (flat.length === 0 || flat.length % c !== 0)
    fail(where, `weight holds ${flat.length} numbers, not a multiple of ${c} classes`);
  const f = flat.length / c;
  if (o.inFeatures !== undefined && o.inFeatures !== f)
    fail(where, `inFeatures is ${o.inFeatures} but weight gives ${f} rows`);
  const weight = Float32Array.from(flat);
  const bias = Float32Array.from(o.bias);
  for (const v of [weight, bias]) {
    for (let i = 0; i < v.length; i++)
      if (!Number.isFinite(v[i])) fail(where, 'weight and bias must be finite numbers');
  }
  return {
    format: HEAD_FORMAT,
    version: 1,
    layer: o.layer as number,
    features: 'flatten',
    pool,
    poolType,
    classNames: o.classNames.slice(),
    inFeatures: f,
    weight,
    bias,
    probe: o.probe,
    metrics: o.metrics,
    ...(p.views ? { views: (p.views as string[]).slice() } : {}),
    ...encoderFields(o, where),
  };
}

/** The optional encoder description, checked when present. */
function encoderFields(o: Partial<LinearHeadJson>, where: string): Pick<LinearHead, 'arch' | 'imageSize' | 'view'> {
  if (o.arch !== undefined && typeof o.arch !== 'string')
    fail(where, `arch must be a string, got ${JSON.stringify(o.arch)}`);
  if (o.imageSize !== undefined && !(Number.isInteger(o.imageSize) && o.imageSize > 0))
    fail(where, `imageSize must be a positive integer, got ${JSON.stringify(o.imageSize)}`);
  if (o.view !== undefined && o.view !== 'Lab' && o.view !== 'YCbCr')
    fail(where, `view must be "Lab" or "YCbCr", got ${JSON.stringify(o.view)}`);
  return {
    ...(o.arch !== undefined ? { arch: o.arch } : {}),
    ...(o.imageSize !== undefined ? { imageSize: o.imageSize } : {}),
    ...(o.view !== undefined ? { view: o.view } : {}),
  };
}

/** The JSON object for a head (weight written flat, row-major [F, C]). */
export function headToJson(
  h: Omit<LinearHead, 'format' | 'version' | 'features' | 'inFeatures'> & { inFeatures?: number },
): LinearHeadJson {
  return {
    format: HEAD_FORMAT,
    version: 1,
    layer: h.layer,
    features: 'flatten',
    ...(h.pool ? { pool: h.pool, poolType: h.poolType ?? 'max' } : {}),
    classNames: h.classNames,
    inFeatures: h.weight.length / h.classNames.length,
    weight: Array.from(h.weight),
    bias: Array.from(h.bias),
    ...(h.probe ? { probe: h.probe } : {}),
    ...(h.metrics ? { metrics: h.metrics } : {}),
    ...(h.views ? { views: h.views } : {}),
    ...(h.arch !== undefined ? { arch: h.arch } : {}),
    ...(h.imageSize !== undefined ? { imageSize: h.imageSize } : {}),
    ...(h.view !== undefined ? { view: h.view } : {}),
  };
}

/** Read and validate a head JSON file (Node only). */
export async function readHeadFile(file: string): Promise<LinearHead> {
  const fs = await import('node:fs');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read head file ${file}: ${(e as Error).message}`, { cause: e });
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseHead(obj, file);
}
