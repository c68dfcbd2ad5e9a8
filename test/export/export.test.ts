/**
 * Exporter parity: for every architecture family at small sizes (alexnet_small 32, resnet18v1_small 32,
 * resnet50v1_small 32) and upstream's AlexNet at 224 (one image), a CmcModel with random weights AND random
 * BN running statistics (so the BN folding is exercised) is exported with a random linear head, then
 * tfjs's eval-mode forward (inputs preprocessed by core/preprocess/color.ts) is compared with
 * onnxruntime-node (CPU), onnxruntime-web (wasm, in Node) and onnxruntime-node's WebGPU EP (Dawn on
 * SwiftShader here): max |diff| <= 1e-4 on embeddings, logits and probabilities, the same top-1.
 *
 * WebGPU in software is slow (seconds per run), so by default it checks alexnet_small only;
 * CMC_EXPORT_WEBGPU=all checks every architecture, CMC_EXPORT_WEBGPU=0 none. A runtime that cannot
 * start here is reported as skipped with the reason.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { maxAbsDiff } from '../helpers/ort.ts';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../train/engine/backend.ts';
import { exportModel } from '../../train/export/export.ts';
import { loadOnnxModel } from '../../core/onnx/onnx_proto.ts';
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { CmcModel } from '../../train/model/cmc.ts';
import { toViewInput, type ColorView } from '../../core/preprocess/color.ts';
import { randomModelCheckpoint } from '../helpers/random_model.ts';
import { Rng } from '../../core/util/rng.ts';
import type { Checkpoint } from '../../core/formats/checkpoint.ts';
import type { LinearHead } from '../../core/formats/head.ts';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
// onnxruntime-node's WebGPU EP (Dawn) runs on SwiftShader's software Vulkan here; must be set before Dawn starts.
if (!process.env.VK_ICD_FILENAMES && fs.existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;

interface RandomModel {
  model: CmcModel;
  checkpoint: Checkpoint;
}

/** CmcModel with random weights and random BN statistics (gamma, beta, running mean and variance). */
function randomModel(arch: string, imageSize: number, seed: number, view: ColorView = 'Lab'): RandomModel {
  return randomModelCheckpoint(arch, imageSize, seed, { view, metrics: [{ epoch: 1, loss: 1.5 }] });
}

/** n random RGB uint8 images [n, size, size, 3], including the extremes 0 and 255 and the sRGB knee. */
function randomImages(n: number, size: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const img = new Uint8Array(n * size * size * 3);
  for (let i = 0; i < img.length; i++) img[i] = rng.int(256);
  const special = [0, 255, 10, 11, 1, 254];
  for (let i = 0; i < special.length * 3 && i < img.length; i++) img[i] = special[Math.floor(i / 3)];
  return img;
}

/** NHWC [B, H, W, C] -> [B, C*H*W] in NCHW order (a vector block stays as it is). */
function flattenNchw(t: tf.Tensor): tf.Tensor2D {
  return (t.rank === 4 ? tf.reshape(tf.transpose(t, [0, 3, 1, 2]), [t.shape[0], -1]) : t) as tf.Tensor2D;
}

/** tfjs eval-mode reference: embedding (views concatenated) and features of `layer` (flattened NCHW, L then ab). */
async function tfjsReference(
  model: CmcModel,
  images: Uint8Array,
  n: number,
  view: ColorView,
  layer: number,
): Promise<{ embedding: Float32Array; features: Float32Array }> {
  const size = model.spec.imageSize;
  const x = new Float32Array(images.length);
  const px = size * size * 3;
  for (let b = 0; b < n; b++)
    toViewInput(images.subarray(b * px, (b + 1) * px), view, x.subarray(b * px, (b + 1) * px));
  const input = tf.tensor4d(x, [n, size, size, 3]);
  try {
    const emb = model.forward(input, { training: false });
    const feat = model.forward(input, { training: false, layer });
    const e = tf.tidy(() => tf.concat(emb.views as tf.Tensor2D[], 1));
    const f = tf.tidy(() => tf.concat(feat.views.map(flattenNchw), 1));
    const out = { embedding: new Float32Array(await e.data()), features: new Float32Array(await f.data()) };
    tf.dispose([...emb.views, ...feat.views, e, f]);
    return out;
  } finally {
    input.dispose();
  }
}

/** A random head for F features, scaled so the logits are O(1) whatever the feature magnitude. */
function randomHead(features: Float32Array, n: number, layer: number, classes: number, seed: number): LinearHead {
  const f = features.length / n;
  let ss = 0;
  for (const v of features) ss += v * v;
  const rms = Math.sqrt(ss / features.length) || 1;
  const rng = new Rng(seed);
  const weight = new Float32Array(f * classes);
  for (let i = 0; i < weight.length; i++) weight[i] = (rng.normal() * 3) / (rms * Math.sqrt(f));
  const bias = new Float32Array(classes);
  for (let i = 0; i < classes; i++) bias[i] = rng.range(-0.5, 0.5);
  return {
    format: 'cmc-linear-head',
    version: 1,
    layer,
    features: 'flatten',
    classNames: Array.from({ length: classes }, (_, i) => `class_${i}`),
    inFeatures: f,
    weight,
    bias,
    probe: { epochs: 1, learning_rate: 0.1 },
    metrics: { val_top1: 0.5 },
  };
}

/** logits = features @ W + b in float64 (the reference for head.onnx and classifier.onnx). */
function referenceLogits(features: Float32Array, n: number, head: LinearHead): Float64Array {
  const f = head.inFeatures;
  const c = head.classNames.length;
  const out = new Float64Array(n * c);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < c; k++) {
      let s = head.bias[k];
      for (let i = 0; i < f; i++) s += features[b * f + i] * head.weight[i * c + k];
      out[b * c + k] = s;
    }
  }
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function argmaxRows(a: ArrayLike<number>, n: number): number[] {
  const c = a.length / n;
  const out: number[] = [];
  for (let b = 0; b < n; b++) {
    let best = 0;
    for (let k = 1; k < c; k++) if (a[b * c + k] > a[b * c + best]) best = k;
    out.push(best);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Runtimes

type Feeds = Record<string, { type: 'uint8' | 'float32'; data: Uint8Array | Float32Array; dims: number[] }>;

interface Runtime {
  name: string;
  /** Why it cannot run here, or null. */
  unavailable: string | null;
  run(model: Uint8Array, feeds: Feeds): Promise<Record<string, Float32Array>>;
}

type OrtLike = typeof import('onnxruntime-node');

function runtime(name: string, ort: OrtLike | typeof import('onnxruntime-web'), eps: string[]): Runtime['run'] {
  return async (bytes, feeds) => {
    const o = ort as OrtLike;
    const session = await o.InferenceSession.create(bytes, { executionProviders: eps, graphOptimizationLevel: 'all' });
    try {
      const inputs: Record<string, InstanceType<OrtLike['Tensor']>> = {};
      for (const [k, f] of Object.entries(feeds)) inputs[k] = new o.Tensor(f.type, f.data as Float32Array, f.dims);
      const r = await session.run(inputs);
      const out: Record<string, Float32Array> = {};
      for (const [k, t] of Object.entries(r)) out[k] = new Float32Array((await t.getData()) as Float32Array);
      return out;
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
    } finally {
      await session.release();
    }
  };
}

/** A tiny Relu model to probe whether a runtime starts here. */
async function probe(run: Runtime['run']): Promise<string | null> {
  const { encodeModel, makeModel, makeNode, valueInfo, DataType } = await import('../../core/onnx/onnx_proto.ts');
  const bytes = encodeModel(
    makeModel({
      graph: {
        name: 'probe',
        node: [makeNode('Relu', ['x'], ['y'], 'relu')],
        input: [valueInfo('x', DataType.FLOAT, ['N', 2])],
        output: [valueInfo('y', DataType.FLOAT, ['N', 2])],
      },
    }),
  );
  try {
    const r = await run(bytes, { x: { type: 'float32', data: new Float32Array([-1, 2]), dims: [1, 2] } });
    return r.y[0] === 0 && r.y[1] === 2 ? null : `probe model gave ${Array.from(r.y)}`;
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  }
}

async function runtimes(): Promise<Runtime[]> {
  const ortNode = await import('onnxruntime-node');
  const list: Runtime[] = [];
  const add = async (name: string, run: Runtime['run'] | string) => {
    if (typeof run === 'string') list.push({ name, unavailable: run, run: async () => ({}) });
    else list.push({ name, unavailable: await probe(run), run });
  };
  await add('onnxruntime-node cpu', runtime('onnxruntime-node cpu', ortNode, ['cpu']));
  await add('onnxruntime-node webgpu', runtime('onnxruntime-node webgpu', ortNode, ['webgpu']));
  let web: typeof import('onnxruntime-web') | string;
  try {
    web = await import('onnxruntime-web');
    web.env.wasm.numThreads = 1;
  } catch (e) {
    web = `cannot import onnxruntime-web in Node: ${(e as Error).message}`;
  }
  await add('onnxruntime-web wasm', typeof web === 'string' ? web : runtime('onnxruntime-web wasm', web, ['wasm']));
  return list;
}

// ---------------------------------------------------------------------------------------------------------
// Tests

const TOL = 1e-4;
const WEBGPU = process.env.CMC_EXPORT_WEBGPU ?? 'default';

interface Case {
  arch: string;
  size: number;
  n: number;
  /** Block of the `features` output and of the head. */
  layer: number;
  /** Checked on WebGPU by default (the others only with CMC_EXPORT_WEBGPU=all). */
  webgpuByDefault: boolean;
}

const CASES: Case[] = [
  { arch: 'alexnet_small', size: 32, n: 2, layer: 5, webgpuByDefault: true },
  { arch: 'resnet18v1_small', size: 32, n: 2, layer: 6, webgpuByDefault: false },
  { arch: 'resnet50v1_small', size: 32, n: 2, layer: 4, webgpuByDefault: false },
  { arch: 'alexnet', size: 224, n: 1, layer: 6, webgpuByDefault: false },
];

interface Exported {
  dir: string;
  images: Uint8Array;
  ref: { embedding: Float32Array; features: Float32Array };
  logits: Float64Array;
  probabilities: Float64Array;
}

let tmp = '';
let rts: Runtime[] = [];
const exported = new Map<string, Exported>();

before(async () => {
  try {
    await initBackend('wasm', { quiet: true });
  } catch {
    await initBackend('cpu', { quiet: true });
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-export-test-'));
  rts = await runtimes();
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function softmaxRows(logits: Float64Array, n: number): Float64Array {
  const c = logits.length / n;
  const out = new Float64Array(logits.length);
  for (let b = 0; b < n; b++) {
    let m = -Infinity;
    for (let k = 0; k < c; k++) m = Math.max(m, logits[b * c + k]);
    let s = 0;
    for (let k = 0; k < c; k++) s += out[b * c + k] = Math.exp(logits[b * c + k] - m);
    for (let k = 0; k < c; k++) out[b * c + k] /= s;
  }
  return out;
}

type Diag = (msg: string) => void;

/** Run encoder/head/classifier (or only the classifier) on one runtime and check every output. */
async function checkRuntime(rt: Runtime, c: Case, e: Exported, diag: Diag, classifierOnly = false): Promise<void> {
  const imgs = { images: { type: 'uint8' as const, data: e.images, dims: [c.n, c.size, c.size, 3] } };
  const load = (f: string) => loadOnnxModel(path.join(e.dir, f)).bytes;
  const parts: string[] = [];
  if (!classifierOnly) {
    const enc = await rt.run(load('encoder.onnx'), imgs);
    const de = maxAbsDiff(enc.embedding, e.ref.embedding);
    const df = maxAbsDiff(enc.features, e.ref.features);
    const scale = Math.max(1, maxAbs(e.ref.features));
    parts.push(`embedding ${de.toExponential(2)}`, `features ${df.toExponential(2)} (max |f| ${scale.toFixed(1)})`);
    assert.ok(de <= TOL, `${rt.name} ${c.arch}: embedding max |diff| ${de}`);
    assert.ok(df <= TOL * scale, `${rt.name} ${c.arch}: features max |diff| ${df} (scale ${scale})`);
    const head = await rt.run(load('head.onnx'), {
      features: { type: 'float32', data: enc.features, dims: [c.n, enc.features.length / c.n] },
    });
    const dh = maxAbsDiff(head.logits, e.logits);
    parts.push(`head logits ${dh.toExponential(2)}`);
    assert.ok(dh <= TOL, `${rt.name} ${c.arch}: head.onnx logits max |diff| ${dh}`);
  }
  const cls = await rt.run(load('classifier.onnx'), imgs);
  const dl = maxAbsDiff(cls.logits, e.logits);
  const dp = maxAbsDiff(cls.probabilities, e.probabilities);
  const dce = maxAbsDiff(cls.embedding, e.ref.embedding);
  parts.push(
    `classifier logits ${dl.toExponential(2)}`,
    `probabilities ${dp.toExponential(2)}`,
    `embedding ${dce.toExponential(2)}`,
  );
  assert.ok(dl <= TOL, `${rt.name} ${c.arch}: classifier logits max |diff| ${dl}`);
  assert.ok(dp <= TOL, `${rt.name} ${c.arch}: probabilities max |diff| ${dp}`);
  assert.ok(dce <= TOL, `${rt.name} ${c.arch}: classifier embedding max |diff| ${dce}`);
  assert.deepEqual(argmaxRows(cls.logits, c.n), argmaxRows(e.logits, c.n), `${rt.name} ${c.arch}: top-1 differs`);
  assert.deepEqual(
    argmaxRows(cls.probabilities, c.n),
    argmaxRows(e.logits, c.n),
    `${rt.name} ${c.arch}: top-1 (probabilities) differs`,
  );
  diag(
    `${c.arch} ${c.size}px on ${rt.name}: max |diff| ${parts.join(', ')}; top-1 ${argmaxRows(cls.logits, c.n).join(',')}`,
  );
}

for (const c of CASES) {
  test(`${c.arch} ${c.size}px (${c.n} image${c.n > 1 ? 's' : ''}): tfjs eval == onnxruntime-node cpu == onnxruntime-web wasm`, async (t) => {
    const { model, checkpoint } = randomModel(c.arch, c.size, 11);
    let e: Exported;
    try {
      const images = randomImages(c.n, c.size, 12);
      const ref = await tfjsReference(model, images, c.n, 'Lab', c.layer);
      const head = randomHead(ref.features, c.n, c.layer, 5, 13);
      const logits = referenceLogits(ref.features, c.n, head);
      const dir = path.join(tmp, c.arch);
      const r = await exportModel({ checkpoint, head, outDir: dir, name: c.arch, version: '0.0.1' });
      assert.deepEqual(Object.keys(r.manifest.files).sort(), ['classifier.onnx', 'encoder.onnx', 'head.onnx']);
      assert.equal(r.manifest.featuresDim, ref.features.length / c.n);
      e = { dir, images, ref, logits, probabilities: softmaxRows(logits, c.n) };
      exported.set(c.arch, e);
    } finally {
      model.dispose();
    }
    for (const rt of rts.filter((x) => x.name !== 'onnxruntime-node webgpu')) {
      if (rt.unavailable) {
        t.diagnostic(`${rt.name} skipped: ${rt.unavailable}`);
        continue;
      }
      await checkRuntime(rt, c, e, (m) => t.diagnostic(m));
    }
  });
}

for (const c of CASES) {
  const enabled = WEBGPU === 'all' || (WEBGPU !== '0' && c.webgpuByDefault);
  test(`${c.arch} ${c.size}px: onnxruntime-node webgpu == tfjs (classifier.onnx)`, async (t) => {
    if (!enabled) {
      t.skip(
        WEBGPU === '0'
          ? 'CMC_EXPORT_WEBGPU=0'
          : 'WebGPU runs in software here (slow); CMC_EXPORT_WEBGPU=all checks this architecture',
      );
      return;
    }
    const rt = rts.find((x) => x.name === 'onnxruntime-node webgpu')!;
    if (rt.unavailable) {
      t.skip(`onnxruntime-node webgpu cannot start here: ${rt.unavailable}`);
      return;
    }
    const e = exported.get(c.arch);
    assert.ok(e, `the ${c.arch} export test did not produce a model`);
    await checkRuntime(rt, c, e, (m) => t.diagnostic(m), true);
  });
}
