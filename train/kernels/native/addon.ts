/**
 * Loads the oneDNN addon (native/, built by `npm ci` when libdnnl-dev and a compiler are present) and
 * checks that it really works before anything relies on it: a library that is missing, of another major
 * version, lacks a function or computes a wrong convolution gives a reason instead of a crash.
 *
 *   const r = loadNativeAddon(); if ('error' in r) console.error(r.error); else r.addon.conv2d(...)
 *
 * CMC_NATIVE_ADDON overrides the path (a custom build, or a test pointing at a broken one).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The addon's interface (native/src/cmc_native.cc documents the dims). */
export interface NativeAddon {
  /** kind 0: (x, w) -> y; 1: (dy, w) -> dx; 2: (x, dy) -> dw. dims: N IH IW IC OH OW OC KH KW SH SW DH DW PT PL PB PR. */
  conv2d(kind: 0 | 1 | 2, in0: Float32Array, in1: Float32Array, out: Float32Array, dims: number[]): void;
  /** dims: BA BB M K N transposeA transposeB (0/1); c = op(a) · op(b). */
  matMul(a: Float32Array, b: Float32Array, c: Float32Array, dims: number[]): void;
  /** Batch norm in training mode over [N, C, H, W] (NHWC, or [N, C] as H = W = 1): y, mean, biased variance. */
  batchNormForward(
    x: Float32Array,
    scale: Float32Array,
    shift: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    dims: number[],
    epsilon: number,
  ): void;
  /** Its gradient (dmean = dvariance = 0): dx, dscale, dshift. */
  batchNormBackward(
    dy: Float32Array,
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array,
    dx: Float32Array,
    dscale: Float32Array,
    dshift: Float32Array,
    dims: number[],
    epsilon: number,
  ): void;
  /** Max pooling's gradient, NHWC. dims: N IH IW C OH OW KH KW SH SW PT PL PB PR. */
  maxPoolBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, dims: number[]): void;
  /** Max pooling forward, NHWC; dims as maxPoolBackward's. */
  maxPool(x: Float32Array, y: Float32Array, dims: number[]): void;
  /**
   * One parameter's SGD step (train/kernels/wasm/SgdStep.ts semantics, bit for bit): old and buf null
   * without momentum, old null on the first momentum step. hyper: lr, momentum, weightDecay (float32 values).
   */
  sgdUpdate(
    p: Float32Array,
    g: Float32Array,
    old: Float32Array | null,
    buf: Float32Array | null,
    out: Float32Array,
    hyper: number[],
  ): void;
  /** GatherV2 with batchDims 0: out[o][k][j] = x[o][idx[k]][j]; dims: outer, dim, slice. Throws on an index outside [0, dim). */
  gather(x: Float32Array, idx: Int32Array, out: Float32Array, dims: number[]): void;
  /**
   * out = a op b (op 0 add, 1 sub, 2 mul, 3 div) with broadcasting; dims: the output shape padded to rank 4,
   * then a's and b's element strides per output axis (0 where broadcast).
   */
  binary(op: 0 | 1 | 2 | 3, a: Float32Array, b: Float32Array, out: Float32Array, dims: number[]): void;
  /** tfjs ScatterNd (repeated indices accumulate, in order); dims: numUpdates, sliceRank, sliceSize, then the strides. */
  scatterNd(indices: Int32Array, updates: Float32Array, out: Float32Array, dims: number[]): void;
  /** The block of x at begin of the given size; dims: x shape, begin, size, each padded to rank 6. */
  slice(x: Float32Array, out: Float32Array, dims: number[]): void;
  relu(x: Float32Array, y: Float32Array): void;
  /** dx = dy where x > 0, else 0. */
  reluBackward(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  setThreads(n: number): void;
  info(): { version: string; builtWith: string; isa: string; threads: number; cachedPrimitives: number };
}

export const NATIVE_ADDON_PATH = fileURLToPath(
  new URL('../../../native/build/Release/cmc_native.node', import.meta.url),
);

/** What a user sees when the addon is not there: how to get it. */
export const NATIVE_HINT =
  'install libdnnl-dev, g++, make and python3 (Debian/Ubuntu: apt-get install libdnnl-dev g++ make python3) and run `npm run build:native`';

/** The functions the loader requires of an addon build (a build lacking one is refused with a rebuild hint). */
export const NATIVE_FUNCTIONS = [
  'conv2d',
  'matMul',
  'batchNormForward',
  'batchNormBackward',
  'maxPoolBackward',
  'maxPool',
  'sgdUpdate',
  'gather',
  'binary',
  'scatterNd',
  'slice',
  'relu',
  'reluBackward',
  'setThreads',
  'info',
] as const;

let loaded: { addon: NativeAddon } | { error: string } | null = null;

/** The addon, loaded and self-checked once per process, or why it cannot be used. */
export function loadNativeAddon(): { addon: NativeAddon } | { error: string } {
  loaded ??= tryLoad(process.env.CMC_NATIVE_ADDON || NATIVE_ADDON_PATH);
  return loaded;
}

/** The loaded addon, or an error saying why not (the native kernels call this; registration already checked). */
export function requireNativeAddon(): NativeAddon {
  const r = loadNativeAddon();
  if ('error' in r) throw new Error(`native backend: ${r.error}`);
  return r.addon;
}

function tryLoad(file: string): { addon: NativeAddon } | { error: string } {
  if (!fs.existsSync(file)) return { error: `the oneDNN addon is not built (${file} is missing); ${NATIVE_HINT}` };
  // oneDNN's OpenMP threads otherwise spin after each call and take the cores from XNNPACK's threads,
  // which run the kernels in between (a step took 5x longer on a loaded 2-core machine). libgomp reads
  // this when the addon loads it; a user's own setting wins.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (e) {
    return { error: `the oneDNN addon at ${file} failed to load: ${firstLine(e)}` };
  }
  for (const f of NATIVE_FUNCTIONS) {
    if (typeof addon?.[f] !== 'function')
      return { error: `the oneDNN addon at ${file} lacks the function ${f}(); rebuild it: npm run build:native` };
  }
  try {
    const info = addon.info();
    const [runMajor] = info.version.split('.');
    const [builtMajor] = info.builtWith.split('.');
    if (runMajor !== builtMajor || runMajor !== '2') {
      return {
        error: `the oneDNN addon was built against oneDNN ${info.builtWith} but runs with ${info.version} (this project uses the 2.x API); rebuild it: npm run build:native`,
      };
    }
    selfCheck(addon);
  } catch (e) {
    return { error: `the oneDNN addon at ${file} does not work: ${firstLine(e)}` };
  }
  return { addon };
}

/** A 2x2 input, one 2x2 filter, 'valid': y = sum(x*w) = 1*5+2*6+3*7+4*8 = 70; and the product [1 2]·[3 4]ᵀ = 11. */
function selfCheck(addon: NativeAddon): void {
  const y = new Float32Array(1);
  addon.conv2d(
    0,
    new Float32Array([1, 2, 3, 4]),
    new Float32Array([5, 6, 7, 8]),
    y,
    [1, 2, 2, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0],
  );
  const c = new Float32Array(1);
  addon.matMul(new Float32Array([1, 2]), new Float32Array([3, 4]), c, [1, 1, 1, 2, 1, 0, 0]);
  if (y[0] !== 70 || c[0] !== 11)
    throw new Error(`self-check computed conv ${y[0]} (want 70) and matmul ${c[0]} (want 11)`);
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}
