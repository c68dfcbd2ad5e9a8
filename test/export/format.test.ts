/**
 * Exporter formats and guards: a hand-written CmcSpec exercising every layer kind and the general cases
 * (stand-alone BN on maps and vectors as Mul/Add, BN folded into a bias-less linear, a view with
 * non-contiguous channels (Gather), identity and projection residuals, YCbCr) against tfjs; the protobuf
 * round trip; metadata == manifest; loadOnnxModel's errors on corrupt or truncated files; the WebGPU
 * operator allowlist; head validation; the Triton layout (config.pbtxt parsed back); the CLI command.
 *
 * One file over 500 lines on purpose: the cases share the hand-written every-layer spec and its checkpoint
 * defined at the top (about a third of the file).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { maxAbsDiff, ortRun } from '../helpers/ort.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { Command } from 'commander';
import { initBackend } from '../../train/engine/backend.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import type {
  BatchNormSpec,
  CmcSpec,
  Conv2dSpec,
  EncoderSpec,
  LayerSpec,
  LinearSpec,
} from '../../core/network/layers.ts';
import { toViewInput, type ColorView } from '../../core/preprocess/color.ts';
import { Rng } from '../../core/util/rng.ts';
import { writeCheckpoint, type Checkpoint, type TensorEntry } from '../../core/formats/checkpoint.ts';
import { exportModel } from '../../train/export/export.ts';
import { checkOps, WEBGPU_OPS } from '../../train/export/onnx_graph.ts';
import { headToJson, parseHead, type LinearHead } from '../../core/formats/head.ts';
import { parseManifest } from '../../core/formats/manifest.ts';
import { parsePbtxt, tritonConfig, type PbMessage } from '../../train/export/triton.ts';
import {
  decodeModel,
  encodeModel,
  loadOnnxModel,
  makeNode,
  metadataOf,
  OPSET,
  IR_VERSION,
  sha256,
  toNumber,
  valueInfo,
  DataType,
} from '../../core/onnx/onnx_proto.ts';
import { addExportCommand } from '../../bin/commands/export.ts';
import { randomizeBatchNorm } from '../helpers/random_model.ts';

// ---------------------------------------------------------------------------------------------------------
// A tiny custom network in the description language

const conv = (
  name: string,
  filters: number,
  kernel: number,
  stride: number,
  pad: number,
  bias = false,
): Conv2dSpec => ({
  kind: 'conv2d',
  name,
  filters,
  kernel,
  stride,
  pad,
  bias,
  init: 'he_normal',
});
const bn = (name: string): BatchNormSpec => ({ kind: 'batchnorm', name, eps: 1e-5, momentum: 0.1 });
const linear = (name: string, units: number, bias: boolean): LinearSpec => ({
  kind: 'linear',
  name,
  units,
  bias,
  init: 'pytorch',
});
const relu: LayerSpec = { kind: 'relu' };

function tinyEncoder(inChannels: number): EncoderSpec {
  return {
    arch: 'tiny_custom',
    inChannels,
    imageSize: 8,
    blocks: [
      // conv with bias, then a BN that is NOT right after a conv (Mul/Add), maxpool with padding.
      {
        name: 'b1',
        layers: [conv('b1.conv', 4, 3, 1, 1, true), relu, bn('b1.bn'), { kind: 'maxpool', size: 3, stride: 2, pad: 1 }],
      },
      {
        name: 'b2',
        layers: [
          {
            kind: 'residual',
            name: 'b2.0',
            body: [
              conv('b2.0.conv1', 4, 3, 1, 1),
              bn('b2.0.bn1'),
              relu,
              conv('b2.0.conv2', 4, 3, 1, 1),
              bn('b2.0.bn2'),
            ],
            shortcut: [],
          },
          {
            kind: 'residual',
            name: 'b2.1',
            body: [conv('b2.1.conv1', 8, 3, 2, 1), bn('b2.1.bn1')],
            shortcut: [conv('b2.1.down', 8, 1, 2, 0), bn('b2.1.downbn')],
          },
        ],
      },
      // flatten (NCHW order), BN folded into a bias-less linear (creates a bias), a stand-alone BN on a vector.
      { name: 'b3', layers: [{ kind: 'flatten' }, linear('b3.fc', 6, false), bn('b3.bn'), relu, bn('b3.bn2')] },
      { name: 'b4', layers: [linear('b4.fc', 5, true), { kind: 'l2norm' }] },
    ],
  };
}

function tinySpec(): CmcSpec {
  return {
    arch: 'tiny_custom',
    imageSize: 8,
    featDim: 5,
    views: [
      { name: 'L', channels: [0], encoder: tinyEncoder(1) },
      { name: 'x', channels: [2, 0], encoder: tinyEncoder(2) },
    ],
  };
}

function tinyCheckpoint(view: ColorView, seed: number): { model: CmcModel; checkpoint: Checkpoint } {
  const spec = tinySpec();
  const model = new CmcModel(spec, seed);
  const arrays = randomizeBatchNorm(model, new Rng(seed + 1), { spread: 0.3, varLow: 0.3 });
  const tensors: Record<string, TensorEntry> = {};
  for (const [k, t] of Object.entries(arrays)) tensors[`model/${k}`] = t;
  // Checkpoints also hold optimiser buffers and memories; the exporter must ignore them.
  tensors['sgd/L.b1.conv.weight'] = { shape: [1], data: new Float32Array([0]) };
  tensors['memory/0'] = { shape: [2, 5], data: new Float32Array(10) };
  const header = {
    format: 'cmc-train-checkpoint',
    config: { model: 'tiny_custom', image_size: 8, feat_dim: 5, view, name: 'tiny' },
    spec,
    classNames: ['cat', 'dog'],
    metrics: [{ epoch: 1, loss: 2.5 }],
  };
  return { model, checkpoint: { header, tensors } };
}

function images(n: number, size: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const img = new Uint8Array(n * size * size * 3);
  for (let i = 0; i < img.length; i++) img[i] = rng.int(256);
  return img;
}

async function tfjsForward(
  model: CmcModel,
  img: Uint8Array,
  n: number,
  view: ColorView,
  layer?: number,
): Promise<Float32Array> {
  const size = model.spec.imageSize;
  const px = size * size * 3;
  const x = new Float32Array(img.length);
  for (let b = 0; b < n; b++) toViewInput(img.subarray(b * px, (b + 1) * px), view, x.subarray(b * px, (b + 1) * px));
  const input = tf.tensor4d(x, [n, size, size, 3]);
  const { views } = model.forward(input, { training: false, layer });
  const cat = tf.tidy(() =>
    tf.concat(
      views.map((t) => (t.rank === 4 ? tf.reshape(tf.transpose(t, [0, 3, 1, 2]), [n, -1]) : t)) as tf.Tensor2D[],
      1,
    ),
  );
  const out = new Float32Array(await cat.data());
  tf.dispose([input, cat, ...views]);
  return out;
}

function randomHead(f: number, classes: number, layer: number, seed: number): LinearHead {
  const rng = new Rng(seed);
  return {
    format: 'cmc-linear-head',
    version: 1,
    layer,
    features: 'flatten',
    classNames: Array.from({ length: classes }, (_, i) => `c${i}`),
    inFeatures: f,
    weight: Float32Array.from({ length: f * classes }, () => rng.normal() / Math.sqrt(f)),
    bias: Float32Array.from({ length: classes }, () => rng.range(-0.1, 0.1)),
    probe: { lr: 0.1, epochs: 3 },
    metrics: { top1: 0.42 },
  };
}

let tmp = '';
before(async () => {
  await initBackend('cpu', { quiet: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-export-format-'));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------

for (const view of ['Lab', 'YCbCr'] as const) {
  test(`custom spec, every layer kind and general case (${view}): tfjs eval == onnxruntime-node`, async () => {
    const { model, checkpoint } = tinyCheckpoint(view, view === 'Lab' ? 3 : 4);
    try {
      const n = 3;
      const img = images(n, 8, 5);
      for (const layer of [1, 2, 3]) {
        const dir = path.join(tmp, `tiny_${view}_${layer}`);
        await exportModel({ checkpoint, outDir: dir, layer });
        const enc = loadOnnxModel(path.join(dir, 'encoder.onnx'));
        const nodes = enc.model.graph!.node!.map((x) => x.opType);
        assert.ok(!nodes.includes('BatchNormalization'), 'BN must be folded or lowered to Mul/Add');
        assert.ok(nodes.includes('Gather'), 'the non-contiguous view takes its channels with Gather');
        assert.equal(enc.metadata['cmc.view'], view);
        const r = await ortRun(enc.bytes, { images: new ort.Tensor('uint8', img, [n, 8, 8, 3]) });
        const refE = await tfjsForward(model, img, n, view);
        const refF = await tfjsForward(model, img, n, view, layer);
        assert.ok(maxAbsDiff(r.embedding, refE) <= 1e-5, `embedding diff ${maxAbsDiff(r.embedding, refE)}`);
        assert.ok(maxAbsDiff(r.features, refF) <= 1e-5, `layer ${layer} features diff ${maxAbsDiff(r.features, refF)}`);
      }
    } finally {
      model.dispose();
    }
  });
}

test('protobuf round trip: decode -> encode gives the same bytes; the structure survives', async () => {
  const { model, checkpoint } = tinyCheckpoint('Lab', 6);
  model.dispose();
  const dir = path.join(tmp, 'roundtrip');
  const r = await exportModel({
    checkpoint,
    outDir: dir,
    name: 'rt',
    version: '2.0',
    head: randomHead(2 * 6, 3, 3, 1),
  });
  for (const f of ['encoder.onnx', 'head.onnx', 'classifier.onnx']) {
    const bytes = new Uint8Array(fs.readFileSync(path.join(dir, f)));
    const m = decodeModel(bytes);
    const again = encodeModel(m);
    assert.equal(sha256(again), sha256(bytes), `${f}: re-encoding changed the bytes`);
    const m2 = decodeModel(again);
    assert.deepEqual(m2.toJSON(), m.toJSON());
    assert.equal(toNumber(m.irVersion), IR_VERSION);
    assert.deepEqual(
      m.opsetImport.map((o) => [o.domain, toNumber(o.version)]),
      [['', OPSET]],
    );
    for (const node of m.graph!.node!)
      assert.ok(WEBGPU_OPS.has(node.opType ?? ''), `${f}: ${node.opType} outside the WebGPU list`);
    // The manifest's facts are the file's metadata_props.
    const meta = metadataOf(m);
    assert.equal(meta['cmc.name'], 'rt');
    assert.equal(meta['cmc.version'], '2.0');
    assert.equal(meta['cmc.input_size'], '8');
    assert.equal(meta['cmc.input_layout'], 'NHWC');
    assert.equal(meta['cmc.input_dtype'], 'uint8');
    assert.equal(meta['cmc.layer'], '3');
    assert.equal(meta['cmc.opset'], String(OPSET));
    assert.deepEqual(JSON.parse(meta['cmc.class_names']), ['c0', 'c1', 'c2']);
    assert.deepEqual(JSON.parse(meta['cmc.train_config']), r.manifest.trainConfig);
    assert.deepEqual(JSON.parse(meta['cmc.probe_config']), { lr: 0.1, epochs: 3 });
    assert.equal(r.manifest.files[f].sha256, sha256(bytes));
  }
  const man = parseManifest(JSON.parse(fs.readFileSync(r.manifestPath, 'utf8')));
  assert.equal(man.view, 'Lab');
  assert.deepEqual(man.input, { name: 'images', size: 8, layout: 'NHWC', dtype: 'uint8', shape: [-1, 8, 8, 3] });
  assert.deepEqual(man.metrics, { train: [{ epoch: 1, loss: 2.5 }], probe: { top1: 0.42 } });
  assert.equal(man.files['classifier.onnx'].outputs[0].name, 'probabilities');
});

test('loadOnnxModel: a corrupt or truncated file gives a clear error before onnxruntime sees it', async () => {
  const { model, checkpoint } = tinyCheckpoint('Lab', 7);
  model.dispose();
  const dir = path.join(tmp, 'corrupt');
  await exportModel({ checkpoint, outDir: dir });
  const file = path.join(dir, 'encoder.onnx');
  const good = fs.readFileSync(file);
  assert.doesNotThrow(() => loadOnnxModel(file));
  const loose = path.join(tmp, 'loose');
  fs.mkdirSync(loose);
  const put = (name: string, bytes: Uint8Array) => {
    const p = path.join(loose, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  // Truncated anywhere inside the graph: protobuf decoding fails.
  for (const frac of [0.5, 0.9, 0.01]) {
    const p = put(`trunc_${frac}.onnx`, good.subarray(0, Math.floor(good.length * frac)));
    assert.throws(() => loadOnnxModel(p), /is not a valid ONNX model: protobuf decoding failed .*truncated or corrupt/);
  }
  assert.throws(() => loadOnnxModel(put('empty.onnx', new Uint8Array(0))), /is empty/);
  assert.throws(() => loadOnnxModel(path.join(loose, 'missing.onnx')), /cannot read ONNX model/);
  assert.throws(
    () => loadOnnxModel(put('text.onnx', new TextEncoder().encode('{"not": "onnx"}'))),
    /not a valid ONNX model|ir_version|no graph/,
  );
  // Next to its manifest, any change is a checksum mismatch.
  const flipped = Buffer.from(good);
  flipped[flipped.length >> 1] ^= 0xff;
  fs.writeFileSync(file, flipped);
  assert.throws(
    () => loadOnnxModel(file),
    /sha256 .* does not match the expected .* \(file corrupt, truncated or replaced\)/,
  );
  fs.writeFileSync(file, good);
  // Structurally wrong models: short initializer data, a node reading an undefined tensor.
  const m = decodeModel(new Uint8Array(good));
  const init = m.graph!.initializer!.find((t) => (t.rawData?.length ?? 0) > 16)!;
  init.rawData = init.rawData!.subarray(0, init.rawData!.length - 4);
  assert.throws(
    () => loadOnnxModel(put('short.onnx', encodeModel(m))),
    /initializer .* holds \d+ bytes but dims .* need \d+ \(truncated or corrupt\)/,
  );
  const m2 = decodeModel(new Uint8Array(good));
  m2.graph!.node![3].input![0] = 'nowhere';
  assert.throws(
    () => loadOnnxModel(put('dangling.onnx', encodeModel(m2))),
    /reads 'nowhere', which is not defined before it/,
  );
});

test("operator allowlist: a graph using an operator outside onnxruntime-web WebGPU's list is refused", () => {
  const graph = {
    name: 'bad',
    node: [makeNode('LpNormalization', ['x'], ['y'], 'norm', { axis: 1, p: 2 })],
    input: [valueInfo('x', DataType.FLOAT, ['N', 4])],
    output: [valueInfo('y', DataType.FLOAT, ['N', 4])],
  };
  assert.throws(
    () => checkOps(graph),
    /node norm uses operator 'LpNormalization', which onnxruntime-web's WebGPU execution provider does not implement/,
  );
  assert.throws(
    () => checkOps({ ...graph, node: [{ ...graph.node[0], opType: 'Relu', domain: 'com.microsoft' }] }),
    /domain 'com.microsoft'/,
  );
  assert.doesNotThrow(() => checkOps({ ...graph, node: [makeNode('Relu', ['x'], ['y'], 'r')] }));
  assert.ok(!WEBGPU_OPS.has('LpNormalization') && WEBGPU_OPS.has('ReduceSum') && WEBGPU_OPS.has('Where'));
});

test('head files: validation errors are clear; a mismatched head is refused at export', async () => {
  const h = randomHead(12, 2, 3, 2);
  const json = headToJson(h);
  const back = parseHead(JSON.parse(JSON.stringify(json)));
  assert.deepEqual(Array.from(back.weight), Array.from(h.weight));
  assert.equal(back.inFeatures, 12);
  // Nested [F][C] weights are accepted too.
  const nested = {
    ...json,
    weight: Array.from({ length: 12 }, (_, i) => Array.from(h.weight.subarray(i * 2, i * 2 + 2))),
  };
  assert.deepEqual(Array.from(parseHead(nested).weight), Array.from(h.weight));
  assert.throws(() => parseHead({ ...json, format: 'x' }), /format must be "cmc-linear-head"/);
  assert.throws(() => parseHead({ ...json, bias: [1] }), /bias must hold 2 numbers/);
  assert.throws(
    () => parseHead({ ...json, features: 'adaptive_avgpool' }),
    /features "adaptive_avgpool" is not supported/,
  );
  assert.throws(() => parseHead({ ...json, inFeatures: 13 }), /inFeatures is 13 but weight gives 12 rows/);
  const { model, checkpoint } = tinyCheckpoint('Lab', 8);
  model.dispose();
  await assert.rejects(
    exportModel({ checkpoint, outDir: path.join(tmp, 'h1'), head: { ...h, layer: 2 } }),
    /the head takes 12 features but layer 2 of tiny_custom gives 64/,
  );
  await assert.rejects(
    exportModel({ checkpoint, outDir: path.join(tmp, 'h2'), head: h, layer: 4 }),
    /--layer 4 differs from the head's layer 3/,
  );
  await assert.rejects(
    exportModel({ checkpoint, outDir: path.join(tmp, 'h3'), layer: 9 }),
    /layer must be a block index in 1..4/,
  );
});

test('pbtxt parser reads protobuf text format (comments, nesting, lists, enums)', () => {
  const m = parsePbtxt(`
    # a comment
    name: "x"  max_batch_size: 8
    dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
    input [ { name: "a" data_type: TYPE_FP32 dims: [ -1 ] }, { name: 'b', data_type: TYPE_UINT8, dims: [1, 2] } ]
    parameters: { key: "k" value: { string_value: "v" } }
    flag: true
  `);
  assert.deepEqual(m.name, ['x']);
  assert.deepEqual(m.max_batch_size, [8]);
  const db = m.dynamic_batching[0] as PbMessage;
  assert.deepEqual(db.preferred_batch_size, [4, 8]);
  const inputs = m.input as PbMessage[];
  assert.deepEqual(
    inputs.map((i) => [i.name[0], i.data_type[0], i.dims]),
    [
      ['a', 'TYPE_FP32', [-1]],
      ['b', 'TYPE_UINT8', [1, 2]],
    ],
  );
  assert.deepEqual(((m.parameters[0] as PbMessage).value[0] as PbMessage).string_value, ['v']);
  assert.deepEqual(m.flag, [true]);
  assert.throws(() => parsePbtxt('name: "x" input [ { name: "a" }'), /unexpected end of input|expected/);
  assert.throws(() => parsePbtxt('a { b: 1 }}'), /unexpected '}'|expected a field name/);
  // Our writer's output parses.
  const cfg = parsePbtxt(
    tritonConfig({
      name: 'm',
      maxBatchSize: 4,
      maxQueueDelayUs: 50,
      inputs: [{ name: 'images', dtype: 'uint8', dims: [8, 8, 3] }],
      outputs: [{ name: 'embedding', dtype: 'float32', dims: [10] }],
    }),
  );
  assert.deepEqual(cfg.platform, ['onnxruntime_onnx']);
});

test('--format triton: model repository layout, config.pbtxt is well-formed and matches the model', async () => {
  const { model, checkpoint } = tinyCheckpoint('YCbCr', 9);
  model.dispose();
  const repo = path.join(tmp, 'triton_repo');
  const head = randomHead(2 * 6, 3, 3, 4);
  const r = await exportModel({
    checkpoint,
    outDir: path.join(repo, 'tiny'),
    head,
    format: 'triton',
    maxBatchSize: 16,
  });
  const cfg = parsePbtxt(fs.readFileSync(path.join(repo, 'tiny', 'config.pbtxt'), 'utf8'));
  assert.deepEqual(cfg.name, ['tiny']);
  assert.deepEqual(cfg.platform, ['onnxruntime_onnx']);
  assert.deepEqual(cfg.max_batch_size, [16]);
  assert.ok(((cfg.dynamic_batching[0] as PbMessage).max_queue_delay_microseconds[0] as number) >= 0);
  const inputs = cfg.input as PbMessage[];
  const outputs = cfg.output as PbMessage[];
  assert.deepEqual(
    inputs.map((i) => [i.name[0], i.data_type[0], i.dims]),
    [['images', 'TYPE_UINT8', [8, 8, 3]]],
  );
  assert.deepEqual(
    outputs.map((o) => [o.name[0], o.data_type[0], o.dims]),
    [
      ['probabilities', 'TYPE_FP32', [3]],
      ['logits', 'TYPE_FP32', [3]],
      ['embedding', 'TYPE_FP32', [10]],
    ],
  );
  assert.deepEqual(outputs[0].label_filename, ['labels.txt']);
  assert.deepEqual(
    fs
      .readFileSync(path.join(repo, 'tiny', 'labels.txt'), 'utf8')
      .trim()
      .split('\n'),
    ['c0', 'c1', 'c2'],
  );
  // The model's own inputs/outputs agree with the config (batch axis dynamic, the rest as dims).
  const onnxFile = path.join(repo, 'tiny', '1', 'model.onnx');
  const loaded = loadOnnxModel(onnxFile, { sha256: r.manifest.files['1/model.onnx'].sha256 });
  const dimsOf = (vi: {
    type?: {
      tensorType?: { shape?: { dim?: { dimValue?: unknown; dimParam?: string | null }[] | null } | null } | null;
    } | null;
  }) => vi.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : toNumber(d.dimValue)));
  assert.deepEqual(
    loaded.model.graph!.input!.map((i) => [i.name, dimsOf(i)]),
    [['images', ['N', 8, 8, 3]]],
  );
  assert.deepEqual(
    loaded.model.graph!.output!.map((o) => [o.name, dimsOf(o)]),
    outputs.map((o) => [o.name[0], ['N', ...(o.dims as number[])]]),
  );
  const out = await ortRun(loaded.bytes, { images: new ort.Tensor('uint8', images(2, 8, 1), [2, 8, 8, 3]) });
  assert.equal(out.probabilities.length, 6);
  assert.ok(Math.abs(out.probabilities[0] + out.probabilities[1] + out.probabilities[2] - 1) < 1e-5);
});

test('cmc export command: checkpoint file -> models/<name> with --json; bad input is a clear error', async () => {
  const { model, checkpoint } = tinyCheckpoint('Lab', 10);
  model.dispose();
  const ckpt = path.join(tmp, 'run', 'current.ckpt');
  writeCheckpoint(ckpt, checkpoint);
  const headFile = path.join(tmp, 'head.json');
  fs.writeFileSync(headFile, JSON.stringify(headToJson(randomHead(2 * 6, 2, 3, 5))));
  const logs: string[] = [];
  const log = console.log;
  const err = console.error;
  console.log = (...a: unknown[]) => void logs.push(a.join(' '));
  console.error = () => {};
  try {
    const program = new Command('cmc').exitOverride();
    addExportCommand(program);
    await program.parseAsync([
      'node',
      'cmc',
      'export',
      '--checkpoint',
      ckpt,
      '--head',
      headFile,
      '--out',
      path.join(tmp, 'models'),
      '--version',
      '3',
      '--json',
    ]);
  } finally {
    console.log = log;
    console.error = err;
  }
  const res = JSON.parse(logs[0]) as {
    out_dir: string;
    manifest: { name: string; version: string; layer: number; classNames: string[] };
  };
  assert.equal(res.out_dir, path.resolve(tmp, 'models', 'tiny'));
  assert.equal(res.manifest.name, 'tiny');
  assert.equal(res.manifest.version, '3');
  assert.equal(res.manifest.layer, 3);
  assert.deepEqual(res.manifest.classNames, ['c0', 'c1']);
  for (const f of ['encoder.onnx', 'head.onnx', 'classifier.onnx', 'manifest.json'])
    assert.ok(fs.existsSync(path.join(res.out_dir, f)), f);
  const program = new Command('cmc').exitOverride();
  addExportCommand(program);
  await assert.rejects(
    program.parseAsync(['node', 'cmc', 'export', '--checkpoint', path.join(tmp, 'nope.ckpt')]),
    /cannot read checkpoint/,
  );
});
