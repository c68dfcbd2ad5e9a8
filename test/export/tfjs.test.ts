/**
 * `cmc export --format tfjs`: tfjs graph models (train/export/tfjs_graph.ts, tfjs.ts) loaded with
 * @tensorflow/tfjs-converter's loadGraphModel in Node on the cpu and wasm backends give the same embeddings,
 * features, logits and probabilities as onnxruntime-node on the ONNX files of the same export (max |diff|
 * <= 1e-4, float32 weights; a stated bound with float16 weights), for random models with random BN
 * statistics: alexnet_small (padded max pools), resnet18v1_small (residuals, global average pool), a head on
 * adaptively pooled features (Gather / Concat), and a six-view input (Y, CbCr, DbDr, Sobel with edge padding).
 * Also: the manifest lists the tfjs files with their sha256; the ONNX files are byte-identical to a plain
 * ONNX export; `--from` on an ONNX-only folder gives the same tfjs files; unsupported operators are refused
 * by name; the shipped models/imagenette64 tfjs export (when present) agrees with its ONNX files.
 *
 *   node --import tsx --test test/export/tfjs.test.ts
 *
 * Over 500 lines: the cases share the residual spec, the export-case table and the comparison helpers (about
 * half the file); split, each part would import them from a helper module used by this file alone.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import * as ort from 'onnxruntime-node';
import '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { addTfjsExport, defaultLayer, exportModel } from '../../train/export/export.ts';
import { featuresDim } from '../../train/export/emit.ts';
import { onnxToTfGraph, TFJS_OPS, TfjsExportError } from '../../train/export/tfjs_graph.ts';
import { makeNode, valueInfo, DataType, floatTensor, type IGraphProto } from '../../core/onnx/onnx_proto.ts';
import type { LinearHead } from '../../core/formats/head.ts';
import type { PoolType } from '../../core/network/pooling.ts';
import type { Checkpoint, TensorEntry } from '../../core/formats/checkpoint.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import { randomizeBatchNorm } from '../helpers/random_model.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';
import { maxAbsDiff } from '../helpers/ort.ts';
import { loadTfjsDir, runTfjs } from '../helpers/tfjs_model.ts';
import { Rng } from '../../core/util/rng.ts';
import { RawU8Source } from '../../train/data/sources.ts';

const TOL = 1e-4;
/**
 * float16 weights (11-bit significand, relative rounding <= 2^-11 per weight): measured on these random
 * models max |diff| ~1e-4 on embeddings and ~1e-3 on probabilities; the bounds keep a margin of a few times.
 */
const F16_TOL = { embedding: 2e-3, probabilities: 1e-2 };
const BACKENDS = ['cpu', 'wasm'] as const;

let tmp = '';
before(async () => {
  await initBackend('cpu', { quiet: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-export-tfjs-'));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function images(n: number, size: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const img = new Uint8Array(n * size * size * 3);
  for (let i = 0; i < img.length; i++) img[i] = rng.int(256);
  // The extremes and the sRGB knee, and a smooth ramp (edges of every size for the Sobel view).
  [0, 255, 10, 11, 1, 254].forEach((v, k) => img.fill(v, k * 3, k * 3 + 3));
  for (let y = 0; y < size; y++)
    for (let x = 0; x < 8; x++) img.fill(x * 30 + y, (y * size + x) * 3, (y * size + x) * 3 + 3);
  return img;
}

async function ortRun(file: string, img: Uint8Array, n: number, size: number): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(file);
  try {
    const r = await s.run({ images: new ort.Tensor('uint8', img, [n, size, size, 3]) });
    return Object.fromEntries(Object.entries(r).map(([k, t]) => [k, t.data as Float32Array]));
  } finally {
    await s.release();
  }
}

function argmaxRows(a: Float32Array, n: number): number[] {
  const c = a.length / n;
  return Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let j = 1; j < c; j++) if (a[i * c + j] > a[i * c + best]) best = j;
    return best;
  });
}

/** A head with logits of a few units (so the probabilities are not flat) on the encoder's features. */
function randomHead(
  features: Float32Array,
  f: number,
  layer: number,
  seed: number,
  pool?: { pool: [number, number]; poolType: PoolType },
): LinearHead {
  let ss = 0;
  for (const v of features) ss += v * v;
  const rms = Math.sqrt(ss / features.length) || 1;
  const rng = new Rng(seed);
  const classes = 5;
  const weight = new Float32Array(f * classes);
  for (let i = 0; i < weight.length; i++) weight[i] = (rng.normal() * 3) / (rms * Math.sqrt(f));
  const bias = Float32Array.from({ length: classes }, () => rng.range(-0.5, 0.5));
  return {
    format: 'cmc-linear-head',
    version: 1,
    layer,
    features: 'flatten',
    classNames: ['a', 'b', 'c', 'd', 'e'],
    inFeatures: f,
    weight,
    bias,
    ...(pool ?? {}),
  };
}

interface Case {
  title: string;
  size: number;
  checkpoint: () => { model: CmcModel; checkpoint: Checkpoint };
  /** A head at this layer (with optional adaptive pooling); none: encoder only. */
  head?: { layer?: number; pool?: [number, number]; poolType?: PoolType };
}

/**
 * A small spec with what upstream's nets use at full size (alexnet_small / resnet18v1_small take minutes on
 * the cpu backend here): padded convolutions, a padded max pool, a batch norm after a pool (Mul + Add on an
 * NCHW map), residual units with and without a projection shortcut, global average pooling, a batch norm on
 * a vector, linear + l2norm.
 */
function residualSpec(): CmcSpec {
  const conv = (name: string, filters: number, kernel: number, stride: number, pad: number) => ({
    kind: 'conv2d',
    name,
    filters,
    kernel,
    stride,
    pad,
    bias: false,
    init: 'he_normal',
  });
  const bn = (name: string) => ({ kind: 'batchnorm', name, eps: 1e-5, momentum: 0.1 });
  const encoder = (inChannels: number) => ({
    arch: 'tiny_res',
    inChannels,
    imageSize: 16,
    blocks: [
      {
        name: 'stem',
        layers: [
          conv('stem.0', 8, 3, 1, 1),
          bn('stem.1'),
          { kind: 'relu' },
          { kind: 'maxpool', size: 3, stride: 2, pad: 1 },
          bn('stem.2'),
        ],
      },
      {
        name: 'res',
        layers: [
          {
            kind: 'residual',
            name: 'res.0',
            body: [
              conv('res.0.c1', 8, 3, 1, 1),
              bn('res.0.b1'),
              { kind: 'relu' },
              conv('res.0.c2', 8, 3, 1, 1),
              bn('res.0.b2'),
            ],
            shortcut: [],
          },
          {
            kind: 'residual',
            name: 'res.1',
            body: [
              conv('res.1.c1', 12, 3, 2, 1),
              bn('res.1.b1'),
              { kind: 'relu' },
              conv('res.1.c2', 12, 3, 1, 1),
              bn('res.1.b2'),
            ],
            shortcut: [conv('res.1.sc', 12, 1, 2, 0), bn('res.1.sb')],
          },
        ],
      },
      {
        name: 'fc',
        layers: [
          { kind: 'global_avgpool' },
          bn('fc.0'),
          { kind: 'linear', name: 'fc.1', units: 16, bias: true, init: 'pytorch' },
          { kind: 'l2norm' },
        ],
      },
    ],
  });
  return {
    arch: 'tiny_res',
    imageSize: 16,
    featDim: 16,
    views: [
      { name: 'L', channels: [0], encoder: encoder(1) },
      { name: 'ab', channels: [1, 2], encoder: encoder(2) },
    ],
  } as unknown as CmcSpec;
}

function specCheckpoint(spec: CmcSpec, seed: number, views?: string[]): { model: CmcModel; checkpoint: Checkpoint } {
  const model = new CmcModel(spec, seed);
  const arrays = randomizeBatchNorm(model, new Rng(seed + 1));
  const tensors: Record<string, TensorEntry> = {};
  for (const [k, t] of Object.entries(arrays)) tensors[`model/${k}`] = t;
  return {
    model,
    checkpoint: {
      header: {
        config: { model: spec.arch, image_size: 16, feat_dim: 16, view: 'Lab', ...(views ? { views } : {}) },
        spec,
        classNames: ['a', 'b'],
      },
      tensors,
    },
  };
}

const SIX_VIEWS = ['L', 'ab', 'Y', 'CbCr', 'DbDr', 'grad'];
const CASES: Case[] = [
  { title: 'tiny 2-view + head', size: 16, checkpoint: () => specCheckpoint(tinySpec() as CmcSpec, 21), head: {} },
  {
    title: 'residual net + head on the NCHW map of layer 2',
    size: 16,
    checkpoint: () => specCheckpoint(residualSpec(), 22),
    head: { layer: 2 },
  },
  {
    title: 'residual net + head on adaptive max pool 3x3 of layer 1',
    size: 16,
    checkpoint: () => specCheckpoint(residualSpec(), 23),
    head: { layer: 1, pool: [3, 3], poolType: 'max' },
  },
  {
    title: 'residual net + head on adaptive avg pool 5x5 of layer 1',
    size: 16,
    checkpoint: () => specCheckpoint(residualSpec(), 24),
    head: { layer: 1, pool: [5, 5], poolType: 'avg' },
  },
  {
    title: 'six-view tiny spec (L, ab, Y, CbCr, DbDr, grad), encoder only',
    size: 16,
    checkpoint: () => specCheckpoint(tinySpec({ views: SIX_VIEWS }) as CmcSpec, 25, SIX_VIEWS),
  },
];

const N = 3;

/** Export the case (tfjs, float32 or float16) and return the folder; the head is fitted to the features' scale. */
async function exportCase(
  c: Case,
  dir: string,
  quantize?: 'float16',
  format: 'tfjs' | 'onnx' = 'tfjs',
): Promise<{ dir: string; hasHead: boolean; layer: number }> {
  const { model, checkpoint } = c.checkpoint();
  try {
    const spec = model.spec;
    if (!c.head) {
      await exportModel({ checkpoint, outDir: dir, format, quantize, layer: 1 });
      return { dir, hasHead: false, layer: 1 };
    }
    const layer = c.head.layer ?? defaultLayer(spec);
    const pool = c.head.pool ? { pool: c.head.pool, poolType: c.head.poolType ?? 'max' } : undefined;
    // The features' scale, from the encoder alone, sizes the head.
    const probe = await exportModel({ checkpoint, outDir: `${dir}-features`, layer, format: 'onnx' });
    let features: Float32Array;
    if (pool) {
      const f = featuresDim(spec, layer, pool.pool);
      features = new Float32Array(f).fill(1);
    } else {
      features = (await ortRun(path.join(probe.outDir, 'encoder.onnx'), images(N, c.size, 5), N, c.size)).features;
    }
    const f = featuresDim(spec, layer, pool?.pool ?? null);
    const head = randomHead(features, f, layer, 31, pool);
    await exportModel({ checkpoint, head, outDir: dir, format, quantize });
    return { dir, hasHead: true, layer };
  } finally {
    model.dispose();
  }
}

test("every operator the tfjs emitter writes is in tfjs-converter 4.22's op list", async () => {
  const lists = [
    'arithmetic',
    'basic_math',
    'control',
    'convolution',
    'creation',
    'dynamic',
    'evaluation',
    'graph',
    'hash_table',
    'image',
    'logical',
    'matrices',
    'normalization',
    'reduction',
    'slice_join',
    'sparse',
    'spectral',
    'string',
    'transformation',
  ];
  const known = new Set<string>();
  for (const l of lists) {
    const m = (await import(`@tensorflow/tfjs-converter/dist/operations/op_list/${l}.js`)) as {
      json: { tfOpName: string }[];
    };
    for (const op of m.json) known.add(op.tfOpName);
  }
  // Placeholder and Const are graph plumbing the converter handles itself (op_list/graph.ts lists both).
  for (const op of TFJS_OPS) assert.ok(known.has(op), `${op} is not in tfjs-converter's op list`);
});

for (const c of CASES) {
  test(
    `tfjs graph model == onnxruntime-node (${c.title}): cpu and wasm, float32 <= ${TOL}, float16 within its bound`,
    { timeout: 120_000 },
    async (t) => {
      const e = await exportCase(c, path.join(tmp, c.title.replace(/\W+/g, '_')));
      const img = images(N, c.size, 7);
      const roles = e.hasHead ? ['encoder', 'classifier'] : ['encoder'];
      const manifest = JSON.parse(fs.readFileSync(path.join(e.dir, 'manifest.json'), 'utf8'));
      for (const role of roles) {
        const ref = await ortRun(path.join(e.dir, `${role}.onnx`), img, N, c.size);
        const outputs = Object.keys(ref);
        const entry = manifest.files[`tfjs/${role}/model.json`];
        assert.equal(entry?.format, 'tfjs-graph-model', `manifest lists tfjs/${role}/model.json`);
        assert.deepEqual(entry.outputs.map((o: { name: string }) => o.name).sort(), outputs.slice().sort());
        for (const backend of BACKENDS) {
          await initBackend(backend, { quiet: true });
          const model = await loadTfjsDir(path.join(e.dir, 'tfjs', role));
          const got = await runTfjs(model, img, N, c.size, outputs);
          model.dispose();
          const parts: string[] = [];
          for (const o of outputs) {
            const d = maxAbsDiff(got[o], ref[o]);
            parts.push(`${o} ${d.toExponential(2)}`);
            assert.ok(d <= TOL, `${c.title} ${role} on ${backend}: ${o} max |diff| ${d} > ${TOL}`);
          }
          if (ref.probabilities)
            assert.deepEqual(argmaxRows(got.probabilities, N), argmaxRows(ref.probabilities, N), 'top-1');
          t.diagnostic(`${role} ${backend}: ${parts.join(', ')}`);
        }
      }
      // float16 weights: the same graph, half the weight bytes, within the stated bound.
      const h = await exportCase(c, path.join(tmp, `${c.title.replace(/\W+/g, '_')}_f16`), 'float16');
      await initBackend('wasm', { quiet: true });
      for (const role of roles) {
        const ref = await ortRun(path.join(h.dir, `${role}.onnx`), img, N, c.size);
        const model = await loadTfjsDir(path.join(h.dir, 'tfjs', role));
        const got = await runTfjs(model, img, N, c.size, Object.keys(ref));
        model.dispose();
        const de = maxAbsDiff(got.embedding, ref.embedding);
        assert.ok(de <= F16_TOL.embedding, `float16 ${role}: embedding max |diff| ${de} > ${F16_TOL.embedding}`);
        const dp = ref.probabilities ? maxAbsDiff(got.probabilities, ref.probabilities) : 0;
        assert.ok(
          dp <= F16_TOL.probabilities,
          `float16 ${role}: probabilities max |diff| ${dp} > ${F16_TOL.probabilities}`,
        );
        const f32 = fs.statSync(path.join(e.dir, 'tfjs', role, 'group1-shard1of1.bin'), {
          throwIfNoEntry: false,
        })?.size;
        t.diagnostic(
          `float16 ${role} wasm: embedding ${de.toExponential(2)}, probabilities ${dp.toExponential(2)}${f32 ? ` (float32 shard ${f32} B)` : ''}`,
        );
      }
    },
  );
}

test('manifest lists the tfjs files with sha256; ONNX files are those of a plain ONNX export; --from gives the same tfjs files', async () => {
  const c = CASES[0];
  // The same folder name: the model name (the folder's) is in the ONNX metadata.
  const a = await exportCase(c, path.join(tmp, 'as_tfjs', 'same'));
  const b = await exportCase(c, path.join(tmp, 'as_onnx', 'same'), undefined, 'onnx');
  const withTfjs = JSON.parse(fs.readFileSync(path.join(a.dir, 'manifest.json'), 'utf8'));
  const onlyOnnx = JSON.parse(fs.readFileSync(path.join(b.dir, 'manifest.json'), 'utf8'));
  assert.deepEqual(Object.keys(withTfjs.files).sort(), [
    'classifier.onnx',
    'encoder.onnx',
    'head.onnx',
    'tfjs/classifier/group1-shard1of1.bin',
    'tfjs/classifier/model.json',
    'tfjs/encoder/group1-shard1of1.bin',
    'tfjs/encoder/model.json',
  ]);
  for (const [k, f] of Object.entries(withTfjs.files as Record<string, { sha256: string; bytes: number }>)) {
    const bytes = fs.readFileSync(path.join(a.dir, k));
    assert.equal(bytes.length, f.bytes, k);
    assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), f.sha256, k);
  }
  // The ONNX files and every other manifest field are those of the ONNX format.
  for (const k of Object.keys(onlyOnnx.files)) assert.deepEqual(withTfjs.files[k], onlyOnnx.files[k], k);
  assert.deepEqual({ ...withTfjs, files: null }, { ...onlyOnnx, files: null });
  // --from on the ONNX-only folder: the same tfjs files, the ONNX entries untouched.
  const r = await addTfjsExport({ modelDir: b.dir });
  assert.deepEqual(r.manifest.files, withTfjs.files);
  await assert.rejects(addTfjsExport({ modelDir: path.join(tmp, 'nowhere') }), /cannot read .*manifest\.json/);
});

test('operators without a tfjs translation are refused with the node name', () => {
  const graph = (nodes: IGraphProto['node'], init: IGraphProto['initializer'] = []): IGraphProto => ({
    node: nodes,
    initializer: init,
    input: [valueInfo('x', DataType.FLOAT, ['N', 4])],
    output: [valueInfo('y', DataType.FLOAT, ['N', 4])],
  });
  assert.throws(
    () => onnxToTfGraph(graph([makeNode('Erf', ['x'], ['y'], 'my_erf')]), 'g'),
    (e: Error) =>
      e instanceof TfjsExportError && /node my_erf \(Erf\).*operator Erf has no translation/.test(e.message),
  );
  assert.throws(
    () => onnxToTfGraph(graph([makeNode('Softmax', ['x'], ['y'], 'sm', { axis: 0 })]), 'g'),
    /node sm \(Softmax\) cannot be exported to tfjs: softmax over an axis other than the last/,
  );
  const conv: IGraphProto = {
    node: [
      makeNode('Transpose', ['x'], ['t'], 'to_nchw', { perm: [0, 3, 1, 2] }),
      makeNode('Conv', ['t', 'w'], ['c'], 'grouped', { group: 2, kernel_shape: [1, 1] }),
      makeNode('Flatten', ['c'], ['y'], 'flat', { axis: 1 }),
    ],
    initializer: [floatTensor('w', [2, 1, 1, 1], [1, 2])],
    input: [valueInfo('x', DataType.FLOAT, ['N', 2, 2, 2])],
    output: [valueInfo('y', DataType.FLOAT, ['N', 8])],
  };
  assert.throws(
    () => onnxToTfGraph(conv, 'g'),
    /node grouped \(Conv\) cannot be exported to tfjs: grouped convolution/,
  );
});

test('shipped models/imagenette64: its tfjs export (if any) matches its ONNX files (sha256, top-1, bound)', async (t) => {
  const dir = path.resolve(import.meta.dirname, '../../models/imagenette64');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const tfjsFiles = Object.keys(manifest.files).filter((k) => k.startsWith('tfjs/'));
  if (tfjsFiles.length === 0) {
    t.skip('models/imagenette64 has no tfjs export');
    return;
  }
  for (const k of tfjsFiles) {
    const bytes = fs.readFileSync(path.join(dir, k));
    assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), manifest.files[k].sha256, k);
  }
  const size = manifest.input.size as number;
  const n = 8;
  const img = images(n, size, 9);
  await initBackend('wasm', { quiet: true });
  const ref = await ortRun(path.join(dir, 'classifier.onnx'), img, n, size);
  const model = await loadTfjsDir(path.join(dir, 'tfjs', 'classifier'));
  const got = await runTfjs(model, img, n, size, ['probabilities', 'embedding']);
  model.dispose();
  const q = manifest.files['tfjs/classifier/model.json'].quantization === 'float16';
  const tol = q ? F16_TOL : { embedding: TOL, probabilities: TOL };
  const de = maxAbsDiff(got.embedding, ref.embedding);
  const dp = maxAbsDiff(got.probabilities, ref.probabilities);
  assert.ok(
    de <= tol.embedding && dp <= tol.probabilities,
    `embedding ${de}, probabilities ${dp} (${q ? 'float16' : 'float32'} weights)`,
  );
  assert.deepEqual(argmaxRows(got.probabilities, n), argmaxRows(ref.probabilities, n));
  t.diagnostic(
    `imagenette64 classifier (${q ? 'float16' : 'float32'} weights) on wasm: embedding ${de.toExponential(2)}, probabilities ${dp.toExponential(2)}, top-1 equal on ${n} generated images`,
  );

  // Real photos: the imagenette64-sub test split beside the checkout (or CMC_DATA_DIR); never committed.
  const root = process.env.CMC_DATA_DIR ?? path.resolve(import.meta.dirname, '../../../shared/data');
  const data = path.join(root, 'imagenette64-sub');
  if (!fs.existsSync(path.join(data, 'meta.json'))) {
    t.diagnostic(`real-photo check skipped: no ${data} (set CMC_DATA_DIR)`);
    return;
  }
  const src = new RawU8Source(data, 'test');
  const photos = Math.min(REAL_PHOTOS, src.length);
  const batch = new Uint8Array(photos * size * size * 3);
  try {
    for (let i = 0; i < photos; i++)
      batch.set((await src.get(Math.floor((i * src.length) / photos))).rgb, i * size * size * 3);
  } finally {
    src.close();
  }
  const refP = await ortRun(path.join(dir, 'classifier.onnx'), batch, photos, size);
  const m2 = await loadTfjsDir(path.join(dir, 'tfjs', 'classifier'));
  const gotP = await runTfjs(m2, batch, photos, size, ['probabilities']);
  m2.dispose();
  const a = argmaxRows(gotP.probabilities, photos);
  const b = argmaxRows(refP.probabilities, photos);
  const differ = a.filter((v, i) => v !== b[i]).length;
  const dpp = maxAbsDiff(gotP.probabilities, refP.probabilities);
  // With float32 weights top-1 must be identical everywhere. With float16 weights the probabilities may move
  // by up to the stated bound, so a photo whose ONNX top-2 margin is within twice that bound may flip; any
  // flip with a wider margin fails.
  const classes = refP.probabilities.length / photos;
  const margin = (i: number) => {
    const row = Array.from(refP.probabilities.subarray(i * classes, (i + 1) * classes)).sort((x, y) => y - x);
    return row[0] - row[1];
  };
  const flips = a.flatMap((v, i) => (v !== b[i] ? [{ i, margin: margin(i) }] : []));
  const allowed = q ? 2 * tol.probabilities : 0;
  t.diagnostic(
    `imagenette64 test split, ${photos} photos: top-1 differs on ${differ} (ONNX top-2 margins ${flips.map((f) => f.margin.toExponential(2)).join(', ') || '-'}), probabilities max |diff| ${dpp.toExponential(2)}`,
  );
  const unexplained = flips.filter((f) => f.margin > allowed);
  assert.deepEqual(
    unexplained,
    [],
    `tfjs and ONNX top-1 differ on ${unexplained.length} of ${photos} real photos beyond a near-tie of ${allowed}`,
  );
  assert.ok(dpp <= tol.probabilities, `real photos: probabilities max |diff| ${dpp}`);
});

/** Real photos compared in the shipped-model test (evenly spread over the test split). */
const REAL_PHOTOS = 200;
