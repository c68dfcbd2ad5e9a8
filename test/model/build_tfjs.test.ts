/** The tfjs interpreter (build_tfjs.ts): forward shapes, PyTorch semantics of each layer kind, tidiness. */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import {
  encoderFeatures,
  encoderForward,
  initEncoderParams,
  layerForward,
  type ParamMap,
} from '../../train/model/build_tfjs.ts';
import type { EncoderSpec, LayerSpec } from '../../core/network/layers.ts';
import { alexnetSmall, resnet } from '../../core/network/networks.ts';
import { inferShapes, paramShapes } from '../../core/network/shapes.ts';
import { Rng } from '../../core/util/rng.ts';

before(async () => {
  await initBackend('cpu', { quiet: true });
});

function randn(rng: Rng, shape: number[]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.normal()),
    shape,
  );
}

function tiny(inChannels: number, imageSize: number, layers: LayerSpec[]): EncoderSpec {
  return { arch: 'tiny', inChannels, imageSize, blocks: [{ name: 'b', layers }] };
}

function rowNorms(t: tf.Tensor): number[] {
  const n = tf.tidy(() => tf.sqrt(tf.sum(tf.square(t), -1)));
  const out = Array.from(n.dataSync());
  n.dispose();
  return out;
}

function disposeAll(p: ParamMap) {
  for (const v of p.values()) v.dispose();
}

test('alexnet_small 32 px, B=2: every block has the inferred shape; embedding is unit-norm [2, 128]', () => {
  const spec = alexnetSmall(2, 32);
  const params = initEncoderParams(spec, new Rng(1));
  const x = randn(new Rng(2), [2, 32, 32, 2]) as tf.Tensor4D;
  const shapes = inferShapes(spec);
  tf.tidy(() => {
    let h: tf.Tensor = x;
    spec.blocks.forEach((block, i) => {
      for (const layer of block.layers) h = layerForward(layer, params, h, false);
      assert.deepEqual(h.shape, [2, ...shapes[i + 1].shape], `block ${i + 1}`);
    });
  });
  const f5 = encoderFeatures(spec, params, x, 5);
  assert.deepEqual(f5.shape, [2, 3, 3, 128]);
  f5.dispose();
  const emb = encoderForward(spec, params, x, { training: true });
  assert.deepEqual(emb.shape, [2, 128]);
  for (const n of rowNorms(emb)) assert.ok(Math.abs(n - 1) < 1e-5, `norm ${n}`);
  emb.dispose();
  x.dispose();
  disposeAll(params);
});

test('resnet18v1_small 32 px, B=2: shapes and unit-norm embedding', () => {
  const spec = resnet(18, 'v1', 1, { imageSize: 32, smallStem: true });
  const params = initEncoderParams(spec, new Rng(3));
  const x = randn(new Rng(4), [2, 32, 32, 1]) as tf.Tensor4D;
  const emb = encoderForward(spec, params, x, { training: true });
  assert.deepEqual(emb.shape, [2, 128]);
  for (const n of rowNorms(emb)) assert.ok(Math.abs(n - 1) < 1e-5, `norm ${n}`);
  const stage4 = encoderFeatures(spec, params, x, 5);
  assert.deepEqual(stage4.shape, [2, 4, 4, 256]);
  assert.ok(tf.tidy(() => tf.min(stage4).dataSync()[0]) >= 0); // residual output is ReLU'd
  // block 6 is the global average of block 5
  const pooled = tf.tidy(() => layerForward({ kind: 'global_avgpool' }, params, stage4, false));
  assert.deepEqual(pooled.shape, [2, 256]);
  tf.dispose([emb, pooled, stage4, x]);
  disposeAll(params);
});

test('layer <= 0 returns a copy of the input; a layer past the last block throws', () => {
  const spec = alexnetSmall(1, 32);
  const params = initEncoderParams(spec, new Rng(5));
  const x = randn(new Rng(6), [1, 32, 32, 1]) as tf.Tensor4D;
  const y = encoderForward(spec, params, x, { training: false, layer: 0 });
  assert.notEqual(y, x);
  assert.deepEqual(Array.from(y.dataSync()), Array.from(x.dataSync()));
  assert.throws(() => encoderForward(spec, params, x, { training: false, layer: 9 }), /8 blocks/);
  assert.throws(
    () => encoderForward(spec, params, tf.zeros([1, 32, 32, 2]) as tf.Tensor4D, { training: false }),
    /expected/,
  );
  tf.dispose([x, y]);
  disposeAll(params);
});

test('initialisation: PyTorch defaults drawn from the seeded Rng, reproducible', () => {
  const spec = alexnetSmall(1, 32);
  const a = initEncoderParams(spec, new Rng(7));
  const b = initEncoderParams(spec, new Rng(7));
  const w = a.get('conv_block_2.0.weight')!.dataSync();
  assert.deepEqual(Array.from(w.slice(0, 50)), Array.from(b.get('conv_block_2.0.weight')!.dataSync().slice(0, 50)));
  // kaiming_uniform(a=sqrt 5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 48*5*5; variance bound^2/3
  const bound = 1 / Math.sqrt(48 * 25);
  let max = 0;
  let ss = 0;
  for (const v of w) {
    max = Math.max(max, Math.abs(v));
    ss += v * v;
  }
  assert.ok(max <= bound && max > 0.99 * bound);
  assert.ok(Math.abs(ss / w.length / ((bound * bound) / 3) - 1) < 0.02);
  const fb = a.get('fc6.0.bias')!.dataSync();
  assert.ok(Math.max(...Array.from(fb, Math.abs)) <= 1 / Math.sqrt(1152));
  assert.ok(a.get('fc6.0.weight')!.trainable && !a.get('fc6.1.running_mean')!.trainable);
  assert.deepEqual(Array.from(a.get('conv_block_1.1.weight')!.dataSync()), new Array(48).fill(1));
  assert.deepEqual(Array.from(a.get('conv_block_1.1.bias')!.dataSync()), new Array(48).fill(0));
  assert.deepEqual(Array.from(a.get('conv_block_1.1.running_var')!.dataSync()), new Array(48).fill(1));
  // ResNet convs: N(0, sqrt(2 / (k*k*out)))
  const r = initEncoderParams(resnet(18, 'v1', 1, { imageSize: 32, smallStem: true }), new Rng(8));
  const rw = r.get('layer3.0.conv2.weight')!.dataSync(); // 3x3, 128 out (base 32 * 4)
  const std = Math.sqrt(Array.from(rw).reduce((s, v) => s + v * v, 0) / rw.length);
  assert.ok(Math.abs(std / Math.sqrt(2 / (9 * 128)) - 1) < 0.02, `std ${std}`);
  disposeAll(a);
  disposeAll(b);
  disposeAll(r);
});

test('BatchNorm2d: training uses biased batch var and updates running stats (momentum 0.1, unbiased var); eval uses them', () => {
  const bn: LayerSpec = { kind: 'batchnorm', name: 'bn', eps: 1e-5, momentum: 0.1 };
  const spec = tiny(3, 2, [bn]);
  const params = initEncoderParams(spec, new Rng(0));
  params.get('bn.weight')!.assign(tf.tensor([1, 2, 0.5]));
  params.get('bn.bias')!.assign(tf.tensor([0, 1, -1]));
  const rng = new Rng(9);
  const xs = Array.from({ length: 2 * 2 * 2 * 3 }, () => rng.normal() * 3 + 1);
  const x = tf.tensor4d(xs, [2, 2, 2, 3]);
  const y = encoderForward(spec, params, x, { training: true }).dataSync();
  const gamma = [1, 2, 0.5];
  const beta = [0, 1, -1];
  const n = 8;
  for (let c = 0; c < 3; c++) {
    const vals = xs.filter((_, i) => i % 3 === c);
    const mean = vals.reduce((a, b) => a + b, 0) / n;
    const biased = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    const unbiased = (biased * n) / (n - 1);
    vals.forEach((v, k) => {
      const expect = (gamma[c] * (v - mean)) / Math.sqrt(biased + 1e-5) + beta[c];
      assert.ok(Math.abs(y[k * 3 + c] - expect) < 1e-4, `y c${c} k${k}: ${y[k * 3 + c]} vs ${expect}`);
    });
    const rm = params.get('bn.running_mean')!.dataSync()[c];
    const rv = params.get('bn.running_var')!.dataSync()[c];
    assert.ok(Math.abs(rm - 0.1 * mean) < 1e-5, `running_mean ${rm} vs ${0.1 * mean}`);
    assert.ok(Math.abs(rv - (0.9 + 0.1 * unbiased)) < 1e-4, `running_var ${rv} vs ${0.9 + 0.1 * unbiased}`);
  }
  // eval: (x - running_mean) / sqrt(running_var + eps) * gamma + beta; running stats unchanged
  const rm = Array.from(params.get('bn.running_mean')!.dataSync());
  const rv = Array.from(params.get('bn.running_var')!.dataSync());
  const ye = encoderFeatures(spec, params, x).dataSync();
  xs.forEach((v, i) => {
    const c = i % 3;
    const expect = (gamma[c] * (v - rm[c])) / Math.sqrt(rv[c] + 1e-5) + beta[c];
    assert.ok(Math.abs(ye[i] - expect) < 1e-4);
  });
  assert.deepEqual(Array.from(params.get('bn.running_mean')!.dataSync()), rm);
  // a second training step compounds: r <- 0.9 r + 0.1 batch
  encoderForward(spec, params, x, { training: true }).dispose();
  const vals0 = xs.filter((_, i) => i % 3 === 0);
  const mean0 = vals0.reduce((a, b) => a + b, 0) / n;
  assert.ok(Math.abs(params.get('bn.running_mean')!.dataSync()[0] - (0.9 * 0.1 * mean0 + 0.1 * mean0)) < 1e-5);
  x.dispose();
  disposeAll(params);
});

test('BatchNorm1d after flatten: statistics over the batch axis, n = B', () => {
  const spec = tiny(3, 1, [{ kind: 'flatten' }, { kind: 'batchnorm', name: 'bn', eps: 1e-5, momentum: 0.1 }]);
  const params = initEncoderParams(spec, new Rng(0));
  const xs = [1, 2, 3, 4, 6, 8, 0, 0, 1, 3, -2, 4];
  const x = tf.tensor4d(xs, [4, 1, 1, 3]);
  const y = encoderForward(spec, params, x, { training: true });
  assert.deepEqual(y.shape, [4, 3]);
  const yd = y.dataSync();
  for (let c = 0; c < 3; c++) {
    const vals = [0, 1, 2, 3].map((b) => xs[b * 3 + c]);
    const mean = vals.reduce((a, b) => a + b, 0) / 4;
    const biased = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / 4;
    vals.forEach((v, b) => assert.ok(Math.abs(yd[b * 3 + c] - (v - mean) / Math.sqrt(biased + 1e-5)) < 1e-4));
    assert.ok(Math.abs(params.get('bn.running_var')!.dataSync()[c] - (0.9 + (0.1 * biased * 4) / 3)) < 1e-4);
  }
  tf.dispose([x, y]);
  disposeAll(params);
});

test('flatten is NCHW order, so a Linear after it uses PyTorch weight rows', () => {
  // x[0, h, w, c] = 100c + 10h + w, H=2, W=3, C=2
  const H = 2,
    W = 3,
    C = 2;
  const xs: number[] = [];
  for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) for (let c = 0; c < C; c++) xs.push(100 * c + 10 * h + w);
  const x = tf.tensor4d(xs, [1, H, W, C]);
  const flat = encoderFeatures(tiny(C, 2, [{ kind: 'flatten' }]), new Map(), x).dataSync();
  assert.deepEqual(Array.from(flat), [0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112]);
  // Linear 12 -> 1 with weight row k = k: y = sum_k k * flat[k]
  const spec = tiny(C, 2, [{ kind: 'flatten' }, { kind: 'linear', name: 'fc', units: 1, bias: true, init: 'pytorch' }]);
  const params: ParamMap = new Map<string, tf.Variable>([
    [
      'fc.weight',
      tf.variable(
        tf.tensor2d(
          Array.from({ length: 12 }, (_, k) => k),
          [12, 1],
        ),
      ),
    ],
    ['fc.bias', tf.variable(tf.tensor1d([0.5]))],
  ]);
  const y = encoderFeatures(spec, params, x).dataSync()[0];
  const expect = [0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112].reduce((s, v, k) => s + k * v, 0.5);
  assert.equal(y, expect);
  x.dispose();
  disposeAll(params);
});

test('conv2d: symmetric explicit padding, stride and [kh, kw, in, out] weights = PyTorch cross-correlation', () => {
  const conv: LayerSpec = {
    kind: 'conv2d',
    name: 'c',
    filters: 1,
    kernel: 3,
    stride: 2,
    pad: 1,
    bias: true,
    init: 'kaiming_uniform',
  };
  const spec = tiny(1, 4, [conv]);
  const xs = Array.from({ length: 16 }, (_, i) => i + 1); // 4x4
  const ws = [1, 2, 3, 4, 5, 6, 7, 8, 9]; // [kh, kw]
  const params: ParamMap = new Map<string, tf.Variable>([
    ['c.weight', tf.variable(tf.tensor4d(ws, [3, 3, 1, 1]))],
    ['c.bias', tf.variable(tf.tensor1d([-1]))],
  ]);
  assert.deepEqual(
    paramShapes(spec).map((p) => [p.name, p.shape]),
    [
      ['c.weight', [3, 3, 1, 1]],
      ['c.bias', [1]],
    ],
  );
  const x = tf.tensor4d(xs, [1, 4, 4, 1]);
  const y = encoderFeatures(spec, params, x);
  assert.deepEqual(y.shape, [1, 2, 2, 1]); // floor((4 + 2 - 3) / 2) + 1 = 2
  const at = (h: number, w: number) => (h < 0 || w < 0 || h >= 4 || w >= 4 ? 0 : xs[h * 4 + w]);
  const expect: number[] = [];
  for (let oh = 0; oh < 2; oh++)
    for (let ow = 0; ow < 2; ow++) {
      let s = -1;
      for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) s += ws[i * 3 + j] * at(oh * 2 - 1 + i, ow * 2 - 1 + j);
      expect.push(s);
    }
  assert.deepEqual(Array.from(y.dataSync()), expect);
  tf.dispose([x, y]);
  disposeAll(params);
});

test('maxpool with padding ignores the padded cells (-inf padding, as PyTorch), floor output size', () => {
  // all-negative input: zero padding would give 0 on the border windows
  const xs = [
    -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15, -16, -17, -18, -19, -20, -21, -22, -23, -24, -25,
  ];
  const x = tf.tensor4d(xs, [1, 5, 5, 1]);
  const y = encoderFeatures(tiny(1, 5, [{ kind: 'maxpool', size: 3, stride: 2, pad: 1 }]), new Map(), x);
  assert.deepEqual(y.shape, [1, 3, 3, 1]); // floor((5 + 2 - 3) / 2) + 1
  // window (oh, ow) covers rows 2oh-1..2oh+1 within [0, 4]; max = value at the smallest row/col index
  const expect: number[] = [];
  for (let oh = 0; oh < 3; oh++)
    for (let ow = 0; ow < 3; ow++) {
      const h = Math.max(0, 2 * oh - 1);
      const w = Math.max(0, 2 * ow - 1);
      expect.push(xs[h * 5 + w]);
    }
  assert.deepEqual(Array.from(y.dataSync()), expect);
  // same as explicit -inf padding + valid pooling
  const ref = tf.tidy(() =>
    tf.maxPool(
      tf.pad(
        x,
        [
          [0, 0],
          [1, 1],
          [1, 1],
          [0, 0],
        ],
        -Infinity,
      ) as tf.Tensor4D,
      3,
      2,
      'valid',
    ),
  );
  assert.deepEqual(Array.from(ref.dataSync()), expect);
  // unpadded 3/2 pooling on 55 gives 27 (seed conv_block_1)
  const big = encoderFeatures(
    tiny(1, 55, [{ kind: 'maxpool', size: 3, stride: 2, pad: 0 }]),
    new Map(),
    tf.zeros([1, 55, 55, 1]) as tf.Tensor4D,
  );
  assert.deepEqual(big.shape, [1, 27, 27, 1]);
  tf.dispose([x, y, ref, big]);
});

test('residual: relu(body + shortcut), identity shortcut when empty', () => {
  const spec = tiny(2, 2, [
    {
      kind: 'residual',
      name: 'r',
      body: [
        { kind: 'conv2d', name: 'r.conv1', filters: 2, kernel: 1, stride: 1, pad: 0, bias: false, init: 'he_normal' },
      ],
      shortcut: [],
    },
  ]);
  const params: ParamMap = new Map<string, tf.Variable>([
    ['r.conv1.weight', tf.variable(tf.tensor4d([2, 0, 0, -3], [1, 1, 2, 2]))],
  ]);
  const x = tf.tensor4d([1, 1, -2, 0.5, 3, -1, 0, 2], [1, 2, 2, 2]);
  const y = encoderFeatures(spec, params, x).dataSync();
  // body: [2a, -3b]; out = relu([3a, -2b])
  const xs = [1, 1, -2, 0.5, 3, -1, 0, 2];
  const expect = xs.map((v, i) => Math.max(0, i % 2 === 0 ? 3 * v : -2 * v));
  assert.deepEqual(Array.from(y), expect);
  x.dispose();
  disposeAll(params);
});

test('no tensor leaks: forward (train and eval) inside tf.tidy; outputs and gradients are the only survivors', () => {
  for (const [spec, B] of [
    [alexnetSmall(2, 32), 2],
    [resnet(18, 'v1', 2, { imageSize: 32, smallStem: true }), 1],
  ] as const) {
    const params = initEncoderParams(spec, new Rng(10));
    const x = randn(new Rng(11), [B, 32, 32, 2]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      encoderForward(spec, params, x, { training: true });
      encoderForward(spec, params, x, { training: false, layer: 3 });
    });
    assert.equal(tf.memory().numTensors, before, `${spec.arch} tidy`);
    const y = encoderForward(spec, params, x, { training: false });
    assert.equal(tf.memory().numTensors, before + 1, `${spec.arch} one output`);
    y.dispose();
    if (spec.arch === 'alexnet_small') {
      // gradients (of the head only, to keep the cpu backward cheap): the value and the grads survive
      const vars = ['fc8.0.weight', 'fc8.0.bias', 'fc7.1.weight'].map((n) => params.get(n)!);
      const { value, grads } = tf.variableGrads(
        () => tf.sum(encoderForward(spec, params, x, { training: true })) as tf.Scalar,
        vars,
      );
      assert.equal(tf.memory().numTensors, before + 1 + vars.length);
      tf.dispose([value, ...Object.values(grads)]);
    }
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
    disposeAll(params);
  }
});
