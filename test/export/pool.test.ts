/**
 * Adaptive pooling in the exported graph (heads trained on pooled features, train/eval/linear_probe.ts):
 * emitAdaptivePool2d run by onnxruntime-node (CPU) equals train/eval/pooling.ts adaptivePool2d (tfjs) for the sizes the
 * probe uses (15->10, 7->6, 7->5, 13->6, 27->10, 6->6 no-op; non-square and upsampling too), max and avg,
 * only WebGPU-listed operators; and end to end: a probe-format head with pool [5, 5] at layer 3 of
 * alexnet_small 32 px (random weights, written with train/eval/head.ts writeHead) exports, and encoder.onnx
 * features / head.onnx / classifier.onnx logits equal the probe's layerFeatures + headLogits within 1e-4.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { maxAbsDiff, ortRun } from '../helpers/ort.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../../train/engine/backend.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import { toViewInput } from '../../core/preprocess/color.ts';
import { Rng } from '../../core/util/rng.ts';
import type { Checkpoint } from '../../core/formats/checkpoint.ts';
import { randomModelCheckpoint } from '../helpers/random_model.ts';
import { exportModel } from '../../train/export/export.ts';
import { buildAdaptivePoolGraph } from '../../train/export/emit_pool.ts';
import { checkOps } from '../../train/export/onnx_graph.ts';
import { parseHead, type LinearHead } from '../../core/formats/head.ts';
import { adaptiveBins, type PoolType } from '../../core/network/pooling.ts';
import { loadOnnxModel, makeModel, encodeModel } from '../../core/onnx/onnx_proto.ts';
import { adaptivePool2d } from '../../train/eval/pooling.ts';
import { layerFeatures, probeLayerInfo } from '../../train/eval/features.ts';
import { headLogits, writeHead } from '../../train/eval/head.ts';

let tmp = '';
before(async () => {
  await initBackend('cpu', { quiet: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-export-pool-'));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const POOL_CASES: { hw: [number, number]; out: [number, number] }[] = [
  { hw: [15, 15], out: [10, 10] },
  { hw: [7, 7], out: [6, 6] },
  { hw: [7, 7], out: [5, 5] },
  { hw: [13, 13], out: [6, 6] },
  { hw: [27, 27], out: [10, 10] },
  { hw: [6, 6], out: [6, 6] },
  { hw: [7, 13], out: [5, 6] },
  { hw: [3, 4], out: [5, 2] },
];

for (const type of ['max', 'avg'] as PoolType[]) {
  test(`adaptive ${type} pooling in ONNX (onnxruntime-node cpu) == tfjs adaptivePool2d`, async (t) => {
    const rng = new Rng(type === 'max' ? 21 : 22);
    const n = 2;
    const c = 5;
    const diffs: string[] = [];
    for (const { hw, out } of POOL_CASES) {
      const [h, w] = hw;
      const data = Float32Array.from({ length: n * h * w * c }, () => rng.normal() * 3);
      const nhwc = tf.tensor4d(data, [n, h, w, c]);
      const refT = tf.tidy(() => tf.transpose(adaptivePool2d(nhwc, out, type), [0, 3, 1, 2]));
      const nchwT = tf.transpose(nhwc, [0, 3, 1, 2]);
      const ref = new Float32Array(await refT.data());
      const nchw = new Float32Array(await nchwT.data());
      tf.dispose([nhwc, refT, nchwT]);
      const graph = buildAdaptivePoolGraph(c, hw, out, type);
      const identity = h === out[0] && w === out[1];
      if (identity)
        assert.deepEqual(
          graph.node!.map((x) => x.opType),
          ['Identity'],
          'a no-op pool emits nothing',
        );
      else assert.doesNotThrow(() => checkOps(graph, 'adaptive pool'));
      const ops = new Set(graph.node!.map((x) => x.opType));
      if (!identity)
        assert.ok(
          ops.has(type === 'max' ? 'MaxPool' : 'AveragePool') || adaptiveBins(h, out[0]).every(([s, e]) => e - s === 1),
        );
      const bytes = encodeModel(makeModel({ graph }));
      const r = await ortRun(bytes, { x: new ort.Tensor('float32', nchw, [n, c, h, w]) });
      const y = Object.values(r)[0];
      assert.equal(y.length, n * c * out[0] * out[1]);
      const d = maxAbsDiff(y, ref);
      diffs.push(`${h}x${w}->${out[0]}x${out[1]} ${d.toExponential(2)}`);
      if (type === 'max') assert.equal(d, 0, `${type} ${hw} -> ${out}: max |diff| ${d}`);
      else assert.ok(d <= 1e-6, `${type} ${hw} -> ${out}: max |diff| ${d}`);
    }
    t.diagnostic(`adaptive ${type}: max |diff| ${diffs.join(', ')}`);
  });
}

/** alexnet_small with random weights and random BN statistics, as a checkpoint. */
function randomAlexnet(seed: number): { model: CmcModel; checkpoint: Checkpoint } {
  return randomModelCheckpoint('alexnet_small', 32, seed, { name: 'pool_test' });
}

const E2E: { layer: number; poolType?: PoolType; expectPool: [number, number] }[] = [
  { layer: 3, expectPool: [5, 5] }, // the probe's default for alexnet_small layer 3: max, 7x7 -> 5x5
  { layer: 1, poolType: 'avg', expectPool: [10, 10] }, // 15x15 -> 10x10, avg (override)
];

for (const c of E2E) {
  test(`probe head with adaptive ${c.poolType ?? 'max'} pool ${c.expectPool.join('x')} at alexnet_small 32px layer ${c.layer}: exported logits == tfjs`, async (t) => {
    const { model, checkpoint } = randomAlexnet(31 + c.layer);
    const n = 3;
    const rng = new Rng(40 + c.layer);
    const images = Uint8Array.from({ length: n * 32 * 32 * 3 }, () => rng.int(256));
    const info = probeLayerInfo(model.spec, c.layer, c.poolType ? { poolType: c.poolType } : undefined);
    assert.deepEqual(info.pool, c.expectPool);
    const classes = 4;
    const head: LinearHead = {
      format: 'cmc-linear-head',
      version: 1,
      layer: c.layer,
      features: 'flatten',
      pool: info.pool,
      poolType: info.poolType,
      inFeatures: info.featureDim,
      classNames: Array.from({ length: classes }, (_, i) => `class${i}`),
      weight: Float32Array.from({ length: info.featureDim * classes }, () => rng.normal() / Math.sqrt(info.featureDim)),
      bias: Float32Array.from({ length: classes }, () => rng.range(-0.1, 0.1)),
      arch: 'alexnet_small',
      imageSize: 32,
      view: 'Lab',
      views: model.spec.views.map((v) => v.name),
      probe: { lr: 0.1, layer: c.layer },
      metrics: {
        selectedOn: 'test',
        best: { epoch: 1, lr: 0.1, loss: 1, train_top1: 0.3, top1: 0.3, top5: 1, epoch_sec: 1 },
        last: { epoch: 1, lr: 0.1, loss: 1, train_top1: 0.3, top1: 0.3, top5: 1, epoch_sec: 1 },
        epochs: [],
      },
    };
    const headFile = path.join(tmp, `head_l${c.layer}.json`);
    writeHead(headFile, head);
    let refF: Float32Array;
    let refL: Float32Array;
    try {
      const x = new Float32Array(images.length);
      const px = 32 * 32 * 3;
      for (let b = 0; b < n; b++)
        toViewInput(images.subarray(b * px, (b + 1) * px), 'Lab', x.subarray(b * px, (b + 1) * px));
      const input = tf.tensor4d(x, [n, 32, 32, 3]);
      const f = layerFeatures(model, input, info);
      const l = headLogits(head, f);
      refF = new Float32Array(await f.data());
      refL = new Float32Array(await l.data());
      tf.dispose([input, f, l]);
    } finally {
      model.dispose();
    }
    assert.equal(parseHead(JSON.parse(fs.readFileSync(headFile, 'utf8'))).pool?.join(), c.expectPool.join());
    const dir = path.join(tmp, `alexnet_l${c.layer}`);
    const r = await exportModel({ checkpoint, head: headFile, outDir: dir });
    assert.equal(r.manifest.featuresDim, info.featureDim);
    assert.deepEqual(r.manifest.pool, c.expectPool);
    assert.equal(r.manifest.poolType, info.poolType);
    assert.equal(r.manifest.files['head.onnx'].inputs[0].shape[1], info.featureDim);
    const feeds = { images: new ort.Tensor('uint8', images, [n, 32, 32, 3]) };
    const load = (file: string) => loadOnnxModel(path.join(dir, file));
    const enc = load('encoder.onnx');
    assert.equal(enc.metadata['cmc.pool'], JSON.stringify(c.expectPool));
    const encOut = await ortRun(enc.bytes, feeds);
    const df = maxAbsDiff(encOut.features, refF);
    const scale = Math.max(1, ...Array.from(refF, Math.abs));
    const headOut = await ortRun(load('head.onnx').bytes, {
      features: new ort.Tensor('float32', encOut.features, [n, info.featureDim]),
    });
    const dh = maxAbsDiff(headOut.logits, refL);
    const cls = load('classifier.onnx');
    for (const node of cls.model.graph!.node!) assert.notEqual(node.opType, 'Identity');
    const clsOut = await ortRun(cls.bytes, feeds);
    const dl = maxAbsDiff(clsOut.logits, refL);
    t.diagnostic(
      `layer ${c.layer} ${info.poolType} ${c.expectPool.join('x')} (F ${info.featureDim}): max |diff| features ${df.toExponential(2)} (max |f| ${scale.toFixed(2)}), head.onnx logits ${dh.toExponential(2)}, classifier.onnx logits ${dl.toExponential(2)}`,
    );
    assert.ok(df <= 1e-4 * scale, `features max |diff| ${df}`);
    assert.ok(dh <= 1e-4, `head.onnx logits max |diff| ${dh}`);
    assert.ok(dl <= 1e-4, `classifier.onnx logits max |diff| ${dl}`);
  });
}

test('a pooled head at a vector layer, or a malformed pool, is refused clearly', async () => {
  const base = { format: 'cmc-linear-head', version: 1, layer: 3, classNames: ['a'], weight: [1, 2], bias: [0] };
  assert.throws(() => parseHead({ ...base, pool: [5], poolType: 'max' }), /pool must be null or \[h, w\]/);
  assert.throws(() => parseHead({ ...base, pool: [5, 5] }), /poolType must be "max" or "avg"/);
  assert.equal(parseHead({ ...base, pool: null, poolType: 'max' }).pool, null);
  const { model, checkpoint } = randomAlexnet(50);
  model.dispose();
  await assert.rejects(
    exportModel({
      checkpoint,
      outDir: path.join(tmp, 'bad'),
      head: { ...base, layer: 6, pool: [2, 2], poolType: 'max' } as never,
    }),
    /layer 6 of alexnet_small gives vectors; it cannot be adaptively pooled/,
  );
});
