/**
 * Every kernel that training runs, checked against the cpu reference backend on small random shapes:
 * conv forward and both gradients for each (kernel, stride, pad) our networks use, max pooling and its
 * gradient, batch norm in training mode, dense layers, and the ops of the NCE losses and memory bank.
 */
import { it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackends, onBoth, scaledError, seededTensor, unavailableReason } from '../helpers/backends.ts';

type Pad4 = [[number, number], [number, number], [number, number], [number, number]];
const pad4 = (p: number): Pad4 => [
  [0, 0],
  [p, p],
  [p, p],
  [0, 0],
];

// (kernel, stride, pad) of every conv in alexnet, alexnet_small (32/64/96 px) and the ResNets.
const CONVS = [
  { k: 11, s: 4, p: 2, ci: 1, co: 6, hw: 31, why: 'alexnet conv1 (L view)' },
  { k: 11, s: 4, p: 2, ci: 2, co: 6, hw: 27, why: 'alexnet conv1 (ab view)' },
  { k: 5, s: 1, p: 2, ci: 5, co: 7, hw: 9, why: 'alexnet conv2, small conv1 at 32 px' },
  { k: 3, s: 1, p: 1, ci: 6, co: 5, hw: 7, why: 'alexnet conv3-5, resnet 3x3' },
  { k: 5, s: 2, p: 2, ci: 2, co: 4, hw: 16, why: 'alexnet_small conv1 at 64 px' },
  { k: 5, s: 3, p: 2, ci: 1, co: 4, hw: 24, why: 'alexnet_small conv1 at 96 px' },
  { k: 7, s: 2, p: 3, ci: 2, co: 4, hw: 17, why: 'resnet stem' },
  { k: 3, s: 2, p: 1, ci: 17, co: 6, hw: 9, why: 'resnet strided 3x3 (zero-insertion path)' },
  { k: 3, s: 2, p: 1, ci: 3, co: 6, hw: 10, why: 'resnet strided 3x3, few channels (stock path)' },
  { k: 1, s: 2, p: 0, ci: 16, co: 8, hw: 8, why: 'resnet downsample shortcut' },
  { k: 1, s: 1, p: 0, ci: 8, co: 12, hw: 5, why: 'bottleneck 1x1' },
];

const TOL = 2e-5; // float32 accumulation-order differences, relative to the output's scale

describeBackends('training kernels', (name) => {
  let skip: string | null = null;
  before(async () => {
    skip = await unavailableReason(name);
  });

  for (const c of CONVS) {
    it(`conv2d k${c.k} s${c.s} p${c.p} ci${c.ci}: forward, dW, dX (${c.why})`, async (t) => {
      if (skip) return t.skip(skip);
      const { ref, got } = await onBoth(name, () => {
        const x = seededTensor([2, c.hw, c.hw, c.ci], 11 + c.k) as tf.Tensor4D;
        const w = seededTensor([c.k, c.k, c.ci, c.co], 7 + c.s) as tf.Tensor4D;
        const y = tf.conv2d(x, w, c.s, pad4(c.p));
        const dy = seededTensor(y.shape, 3);
        const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
          strides: c.s,
          pad: pad4(c.p),
          dataFormat: 'NHWC',
          filterShape: w.shape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor;
        const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, {
          strides: c.s,
          pad: pad4(c.p),
          dataFormat: 'NHWC',
          inputShape: x.shape,
        } as unknown as tf.NamedAttrMap) as tf.Tensor;
        return [y, dw, dx];
      });
      ['forward', 'dW', 'dX'].forEach((what, i) => {
        const e = scaledError(ref[i], got[i]);
        assert.ok(e < TOL, `${what}: scaled error ${e.toExponential(2)} >= ${TOL}`);
      });
    });
  }

  it('conv2d gradients through tf.grads (the autodiff path training uses)', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const x = seededTensor([2, 12, 12, 3], 5) as tf.Tensor4D;
      const w = seededTensor([5, 5, 3, 4], 6) as tf.Tensor4D;
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, pad4(2)), seededTensor([2, 6, 6, 4], 9))),
      );
      return g([x, w]);
    });
    for (let i = 0; i < 2; i++) assert.ok(scaledError(ref[i], got[i]) < TOL);
  });

  for (const [size, stride, pad] of [
    [3, 2, 0],
    [3, 2, 1],
  ] as const) {
    it(`maxpool ${size}/${stride} pad ${pad}: forward and gradient`, async (t) => {
      if (skip) return t.skip(skip);
      const { ref, got } = await onBoth(name, () => {
        const x = seededTensor([2, 13, 13, 4], 21);
        const f = (a: tf.Tensor) => {
          const padded = pad ? tf.pad(a, pad4(pad), -1e30) : a; // -inf padding as PyTorch
          return tf.maxPool(padded as tf.Tensor4D, size, stride, 'valid');
        };
        const y = f(x);
        const dy = seededTensor(y.shape, 22);
        const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), dy)))(x);
        return [y, dx];
      });
      for (let i = 0; i < 2; i++) assert.ok(scaledError(ref[i], got[i]) < TOL, `output ${i}`);
    });
  }

  // After a ReLU many windows hold only zeros: the first of equal maxima (row-major) must get dy, as on cpu
  // and in PyTorch. Numeric padding as the models pass it (build_tfjs.ts), windows partly in the padding.
  for (const [size, stride, pad] of [
    [3, 2, 1],
    [3, 2, 0],
    [2, 2, 0],
  ] as const) {
    it(`maxpool ${size}/${stride} pad ${pad} after ReLU (ties): gradient`, async (t) => {
      if (skip) return t.skip(skip);
      const { ref, got } = await onBoth(name, () => {
        const x = tf.sub(seededTensor([3, 11, 12, 20], 23), 0.4);
        const dy0 = tf.maxPool(tf.relu(x) as tf.Tensor4D, size, stride, pad);
        const dy = seededTensor(dy0.shape, 24);
        const f = (a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(tf.relu(a) as tf.Tensor4D, size, stride, pad), dy));
        return [dy0, tf.grad(f)(x)];
      });
      // Overlapping windows add into one dx in another order; a misrouted dy would be off by O(1).
      for (let i = 0; i < 2; i++)
        assert.ok(scaledError(ref[i], got[i]) < TOL, `output ${i}: ${scaledError(ref[i], got[i])}`);
    });
  }

  it('batch norm (training mode statistics) forward and gradients', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const x = seededTensor([4, 5, 5, 6], 31, 3);
      const gamma = seededTensor([6], 32);
      const beta = seededTensor([6], 33);
      const w = seededTensor([4, 5, 5, 6], 34);
      const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.sum(tf.mul(tf.relu(tf.batchNorm(a, mean, variance, b, g, 1e-5)), w));
      };
      const y = f(x, gamma, beta);
      const gr = tf.grads(f)([x, gamma, beta]);
      return [y, ...gr];
    });
    for (let i = 0; i < 4; i++)
      assert.ok(scaledError(ref[i], got[i]) < 1e-4, `output ${i}: ${scaledError(ref[i], got[i])}`);
  });

  it('batch norm over a batch of vectors (fc layers), forward and gradients', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const x = seededTensor([16, 7], 35, 2);
      const gamma = seededTensor([7], 36);
      const beta = seededTensor([7], 37);
      const w = seededTensor([16, 7], 38);
      const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0]);
        return tf.sum(tf.mul(tf.relu(tf.batchNorm(a, mean, variance, b, g, 1e-5)), w));
      };
      return [f(x, gamma, beta), ...tf.grads(f)([x, gamma, beta])];
    });
    for (let i = 0; i < 4; i++)
      assert.ok(scaledError(ref[i], got[i]) < 1e-4, `output ${i}: ${scaledError(ref[i], got[i])}`);
  });

  it('mean gradient (our Mean grad rule) over leading, inner and all axes, with and without keepDims', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const x = seededTensor([3, 5, 4, 6], 81, 2);
      const cases: [number[] | null, boolean][] = [
        [[0, 1, 2], false],
        [[0, 1, 2], true],
        [[1], false],
        [[3], true],
        [null, false],
        [[0, 2], false],
      ];
      return cases.map(([axes, keep], i) =>
        tf.grad((a: tf.Tensor) => {
          const m = tf.mean(a, axes ?? undefined, keep);
          return tf.sum(tf.mul(m, seededTensor(m.shape, 90 + i)));
        })(x),
      );
    });
    for (let i = 0; i < ref.length; i++)
      assert.ok(scaledError(ref[i], got[i]) < TOL, `case ${i}: ${scaledError(ref[i], got[i])}`);
  });

  it('identity (clone, same-dtype cast) shares data safely: values survive disposing the source', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const x = seededTensor([4, 9, 9, 6], 91);
      const xi = tf.tensor1d([3, -1, 7, 0], 'int32');
      const a = tf.clone(x);
      const b = tf.cast(x, 'float32');
      const c = tf.cast(tf.clone(xi), 'float32');
      const v = tf.variable(tf.clone(x), true, `identity-test-${name}-${Math.random()}`);
      const before = tf.clone(v);
      v.assign(tf.add(v, 1));
      x.dispose();
      xi.dispose();
      const d = tf.cast(tf.cast(tf.tensor1d([1.5, -2.5, 3]), 'int32'), 'int32'); // a real cast, then a same-dtype one
      const out = [tf.add(a, 0), tf.mul(b, 2), c, before, tf.clone(v), tf.cast(d, 'float32')];
      v.dispose();
      return out;
    });
    for (let i = 0; i < ref.length; i++)
      assert.ok(scaledError(ref[i], got[i]) === 0, `output ${i}: ${scaledError(ref[i], got[i])}`);
  });

  it('dense layer (matMul + bias) forward and gradients', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const x = seededTensor([8, 37], 41);
      const w = seededTensor([37, 19], 42);
      const b = seededTensor([19], 43);
      const f = (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.square(tf.add(tf.matMul(a as tf.Tensor2D, ww as tf.Tensor2D), bb)));
      return [f(x, w, b), ...tf.grads(f)([x, w, b])];
    });
    for (let i = 0; i < 4; i++) assert.ok(scaledError(ref[i], got[i]) < TOL, `output ${i}`);
  });

  // Shapes chosen so that both identities of the wasm kernel (transpose operands / transpose result) run.
  for (const [shapeA, shapeB] of [
    [
      [6, 40],
      [40, 300],
    ],
    [
      [300, 40],
      [40, 6],
    ],
    [
      [3, 5, 7],
      [3, 7, 4],
    ],
  ] as const) {
    it(`matMul with every transpose combination: [${shapeA}]·[${shapeB}]`, async (t) => {
      if (skip) return t.skip(skip);
      const { ref, got } = await onBoth(name, () => {
        const a = seededTensor([...shapeA], 61);
        const b = seededTensor([...shapeB], 62);
        const r = a.rank;
        const perm = [...Array(r).keys()];
        [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
        const aT = tf.transpose(a, perm);
        const bT = tf.transpose(b, perm);
        return [
          tf.matMul(a, b),
          tf.matMul(aT, b, true, false),
          tf.matMul(a, bT, false, true),
          tf.matMul(aT, bT, true, true),
        ];
      });
      for (let i = 0; i < 4; i++)
        assert.ok(scaledError(ref[i], got[i]) < TOL, `variant ${i}: ${scaledError(ref[i], got[i])}`);
    });
  }

  it('sum and mean over leading axes (batch-norm statistics) and over other axes', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const x = seededTensor([4, 9, 9, 6], 71, 2);
      return [
        tf.sum(x, [0, 1, 2]),
        tf.mean(x, [0, 1, 2]),
        tf.sum(x, [0, 1, 2], true),
        tf.mean(x, [0, 1], true),
        tf.sum(x, [1, 2]),
        tf.mean(x, 3),
        tf.sum(x),
      ];
    });
    for (let i = 0; i < ref.length; i++)
      assert.ok(scaledError(ref[i], got[i]) < TOL, `reduction ${i}: ${scaledError(ref[i], got[i])}`);
  });

  it('slice (channel, strided and long runs) and gather (flat scores, rows, inner axis, int32) are exact', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const x = seededTensor([3, 9, 8, 5], 81);
      const wide = seededTensor([4, 200], 82);
      const flat = seededTensor([6 * 70], 83);
      const idx = tf.tensor1d([0, 69, 140, 419, 5, 5, 333], 'int32');
      const rows = seededTensor([30, 100], 84);
      const ints = tf.cast(tf.mul(seededTensor([5, 4, 3], 85), 100), 'int32');
      return [
        tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, 1]), // one channel of NHWC (cmc.ts sliceChannels)
        tf.slice(x, [0, 0, 0, 1], [-1, -1, -1, 2]),
        tf.slice(x, [1, 2, 3, 1], [2, 4, 3, 3]),
        tf.slice(wide, [1, 10], [3, 150]), // runs long enough for one copy each
        tf.slice(wide, [0, 7], [4, 1]), // one column
        tf.slice(tf.reshape(x, [27, 8, 5]), [2, 1, 4], [20, 6, 1]),
        tf.slice(tf.reshape(x, [3, 9, 2, 4, 5]), [0, 1, 0, 1, 2], [3, 3, 2, 2, 2]), // rank 5
        tf.gather(flat, idx), // the memory bank's picked scores
        tf.gather(rows, tf.tensor1d([29, 0, 7, 7], 'int32')), // whole rows (long runs)
        tf.gather(x, tf.tensor1d([4, 0, 4], 'int32'), 3), // innermost axis
        tf.gather(
          x,
          tf.tensor2d(
            [
              [1, 8],
              [0, 3],
              [2, 2],
            ],
            [3, 2],
            'int32',
          ),
          1,
          1,
        ), // batchDims 1
        tf.cast(tf.gather(ints, tf.tensor1d([3, 1], 'int32'), 1), 'float32'),
        tf.cast(tf.slice(ints, [0, 1, 1], [-1, 2, 1]), 'float32'),
      ];
    });
    for (let i = 0; i < ref.length; i++)
      assert.ok(scaledError(ref[i], got[i]) === 0, `output ${i}: ${scaledError(ref[i], got[i])}`);
  });

  it('add, sub, mul and div with broadcasting (bias, row scale, scalar, both sides, rank 1-4) and square are exact', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const m = seededTensor([32, 47], 91);
      const col = tf.add(seededTensor([32, 1], 92), 2); // away from 0: divisors
      const bias = seededTensor([47], 93);
      const map = seededTensor([2, 5, 6, 7], 94);
      const chan = tf.add(seededTensor([7], 95), 2);
      const s = tf.scalar(0.07);
      const out: tf.Tensor[] = [];
      for (const op of [tf.add, tf.sub, tf.mul, tf.div]) {
        out.push(
          op(m, m), // same shape
          op(m, bias), // a bias over rows
          op(m, col), // one value per row (L2 norm, max shift)
          op(col, bias), // both sides broadcast: [32,1] with [47]
          op(s, m), // scalar on the left
          op(m, s),
          op(map, chan), // NHWC channel-wise
          op(tf.slice(map, [0, 0, 0, 0], [1, 5, 1, 7]), map), // broadcast inside a rank-4 map
          op(chan, s), // rank 1
        );
      }
      out.push(tf.cast(tf.add(tf.cast(m, 'int32'), tf.scalar(3, 'int32')), 'float32')); // int32 to the wasm kernel
      out.push(tf.square(m), tf.square(map), tf.square(s));
      return out;
    });
    for (let i = 0; i < ref.length; i++)
      assert.ok(scaledError(ref[i], got[i]) === 0, `output ${i}: ${scaledError(ref[i], got[i])}`);
  });

  it('scatterND (the bank gradient: coordinates with repeats; whole rows) adds in order, exactly', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const coords = tf.tensor2d([0, 3, 2, 9, 0, 3, 1, 0, 2, 9, 0, 3, 2, 1], [7, 2], 'int32');
      const rows = tf.tensor2d([4, 0, 4, 2], [4, 1], 'int32');
      return [
        tf.scatterND(coords, seededTensor([7], 96), [3, 10]),
        tf.scatterND(rows, seededTensor([4, 6], 97), [5, 6]),
        tf.scatterND(tf.tensor2d([1, 1, 0], [3, 1], 'int32'), seededTensor([3], 98), [4]),
      ];
    });
    for (let i = 0; i < ref.length; i++)
      assert.ok(scaledError(ref[i], got[i]) === 0, `output ${i}: ${scaledError(ref[i], got[i])}`);
  });

  it('ops of the losses and memory bank: gather, batched dot, exp/log, logSumExp, L2 norm, scatter', async (t) => {
    if (skip) return t.skip(skip);
    const { ref, got } = await onBoth(name, () => {
      const bank = seededTensor([50, 16], 51);
      const emb = seededTensor([4, 16], 52);
      const idx = tf.tensor2d(
        [
          [1, 7, 7, 49, 0],
          [3, 3, 2, 8, 9],
          [10, 20, 30, 40, 45],
          [5, 4, 3, 2, 1],
        ],
        [4, 5],
        'int32',
      );
      const f = (e: tf.Tensor) => {
        const unit = tf.div(e, tf.norm(e, 2, 1, true));
        const rows = tf.reshape(tf.gather(bank, tf.reshape(idx, [-1])), [4, 5, 16]);
        const s = tf.squeeze(tf.matMul(rows, tf.expandDims(unit, 2)), [2]);
        const nce = tf.log(tf.div(tf.exp(tf.div(s, 0.07)), tf.add(tf.exp(tf.div(s, 0.07)), 0.5)));
        const ce = tf.sub(tf.logSumExp(tf.div(s, 0.07), 1), tf.squeeze(tf.slice(tf.div(s, 0.07), [0, 0], [4, 1]), [1]));
        return [tf.sum(nce), tf.sum(ce)];
      };
      const loss = (e: tf.Tensor) => {
        const [a, b] = f(e);
        return tf.add(a, tf.mul(b, 0.3)); // unequal weights: the two sums nearly cancel otherwise
      };
      // A fresh tensor: tfjs's cpu TensorScatterUpdate writes into its input's buffer (shares values).
      const scattered = tf.tensorScatterUpdate(
        seededTensor([50, 16], 51),
        tf.tensor2d([[3], [9]], [2, 1], 'int32'),
        tf.ones([2, 16]),
      );
      return [...f(emb), tf.grad(loss)(emb), scattered];
    });
    for (let i = 0; i < 4; i++)
      assert.ok(scaledError(ref[i], got[i]) < 1e-4, `output ${i}: ${scaledError(ref[i], got[i])}`);
  });
});
