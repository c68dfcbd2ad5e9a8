/**
 * The `native` backend (oneDNN through native/, train/kernels/native/): its kernels really run on oneDNN,
 * three training steps match the wasm backend's within kernel tolerance, and a broken or missing addon
 * never crashes: `auto` falls back to wasm with one line saying why and `native` fails with the reason.
 * The kernel-by-kernel checks against `cpu` are training_kernels.test.ts and fd.test.ts, which run on
 * native by default. Tests that need the built addon skip with the reason where it is not built.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../train/engine/backend.ts';
import { loadNativeAddon, NATIVE_FUNCTIONS } from '../../train/kernels/native/addon.ts';
import { BatchNormTrain, setFusedKernels } from '../../train/kernels/fused.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import { MemoryBank } from '../../train/loss/memory_bank.ts';
import { SGD } from '../../train/optim/sgd.ts';
import { CmcStep } from '../../train/trainer/step.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { Rng } from '../../core/util/rng.ts';
import { scaledError, seededTensor, unavailableReason } from '../helpers/backends.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';

describe('native backend on oneDNN', () => {
  let skip: string | null = null;
  before(async () => {
    skip = await unavailableReason('native');
  });

  test('Conv2D, both convolution gradients and BatchMatMul run on oneDNN (one cached primitive each)', async (t) => {
    if (skip) return t.skip(skip);
    await initBackend('native', { quiet: true });
    const addon = (loadNativeAddon() as { addon: import('../../train/kernels/native/addon.ts').NativeAddon }).addon;
    // Shapes no other test uses, so each call must create exactly one new primitive.
    const before = addon.info().cachedPrimitives;
    const outs = tf.tidy(() => {
      const x = seededTensor([3, 13, 11, 5], 1) as tf.Tensor4D;
      const w = seededTensor([3, 3, 5, 7], 2) as tf.Tensor4D;
      const y = tf.conv2d(x, w, 2, 'same');
      const dy = seededTensor(y.shape, 3);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), dy)),
      )([x, w]);
      const m = tf.matMul(
        seededTensor([9, 17], 4) as tf.Tensor2D,
        seededTensor([19, 17], 5) as tf.Tensor2D,
        false,
        true,
      );
      return [y, dx, dw, m].map((o) => tf.keep(o));
    });
    await Promise.all(outs.map((o) => o.data()));
    assert.equal(addon.info().cachedPrimitives - before, 4, 'forward, data, weights and matmul primitives');
    tf.dispose(outs);
  });

  test('batch norm, max pooling and ReLU (each forward and backward) run on oneDNN', async (t) => {
    if (skip) return t.skip(skip);
    await initBackend('native', { quiet: true });
    const addon = (loadNativeAddon() as { addon: import('../../train/kernels/native/addon.ts').NativeAddon }).addon;
    const before = addon.info().cachedPrimitives;
    const grads = tf.tidy(() => {
      // Shapes no other test uses: each kernel creates exactly one new primitive.
      const x = seededTensor([3, 9, 7, 13], 91);
      const gamma = seededTensor([13], 92);
      const beta = seededTensor([13], 93);
      const loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const [y] = tf.engine().runKernel(
          BatchNormTrain,
          { x: a, scale: g, offset: b },
          {
            varianceEpsilon: 1e-5,
          },
        ) as tf.Tensor[];
        return tf.sum(tf.maxPool(tf.relu(y) as tf.Tensor4D, 3, 2, 1));
      };
      return tf
        .grads(loss)([x, gamma, beta])
        .map((g) => tf.keep(g));
    });
    await Promise.all(grads.map((g) => g.data()));
    assert.equal(addon.info().cachedPrimitives - before, 6, 'batch norm x2, max pooling and its gradient, ReLU x2');
    tf.dispose(grads);
  });

  // The native SgdStep (train/kernels/native/SgdStep.ts) against wasm's composed ops, as test/optim/sgd.test.ts
  // holds the wasm kernel to them: four steps, one parameter without a gradient in step 2, a changed lr.
  for (const [mu, wd] of [
    [0.9, 1e-4],
    [0, 1e-2],
    [0.9, 0],
  ]) {
    test(`SGD step (momentum ${mu}, weight decay ${wd}) is bit for bit the composed update on wasm`, async (t) => {
      if (skip) return t.skip(skip);
      const run = async (backend: 'wasm' | 'native', fused: boolean) => {
        await initBackend(backend, { quiet: true });
        setFusedKernels(fused);
        try {
          const shapes = [[3, 3, 2, 5], [5], [17, 9], [1], [1037]];
          const params = shapes.map((s, i) => tf.variable(seededTensor(s, 10 + i), true, `sgd_${backend}_${mu}_${i}`));
          const opt = new SGD(params, { lr: 0.05, momentum: mu, weightDecay: wd });
          for (let k = 0; k < 4; k++) {
            const grads = shapes.map((s, i) => (k === 1 && i === 2 ? null : seededTensor(s, 100 * k + i + 1)));
            if (k === 2) opt.lr = 0.005;
            opt.step(grads);
            tf.dispose(grads.filter((g): g is tf.Tensor => g !== null));
          }
          const st = await opt.snapshot();
          const values = [
            ...params.map((p) => p.dataSync() as Float32Array),
            ...Object.values(st.buffers).map((b) => b.data),
          ];
          opt.dispose();
          tf.dispose(params);
          return values;
        } finally {
          setFusedKernels(true);
        }
      };
      const ref = await run('wasm', false);
      const got = await run('native', true);
      assert.equal(got.length, ref.length);
      got.forEach((v, i) => assert.deepEqual(v, ref[i], `tensor ${i}`));
    });
  }

  test('3 training steps (two conv blocks, B 8, NCE) give the same losses and weights as wasm', async (t) => {
    if (skip) return t.skip(skip);
    // A small two-view network with a stride-1 and a stride-2 conv, so forward, dX, dW and the dense
    // products all run on oneDNN. Not alexnet at a small batch: there batch norm over 8 samples of nearly
    // constant fc features makes a step ill-conditioned (an input change of 2e-5 moves wasm's own weights
    // by ~3e-3 after one step), which would hide kernel errors instead of testing them.
    const spec = tinySpec({ convStride: 1 }) as unknown as CmcSpec;
    for (const v of spec.views) {
      v.encoder.blocks.splice(1, 0, {
        name: 'c2',
        layers: [
          {
            kind: 'conv2d',
            name: 'c2.0',
            filters: 12,
            kernel: 3,
            stride: 2,
            pad: 1,
            bias: false,
            init: 'kaiming_uniform',
          },
          { kind: 'batchnorm', name: 'c2.1', eps: 1e-5, momentum: 0.1 },
          { kind: 'relu' },
        ],
      });
    }
    const run = async (backend: 'wasm' | 'native') => {
      await initBackend(backend, { quiet: true });
      const model = new CmcModel(spec, 3);
      const bank = new MemoryBank({
        nData: 64,
        featDim: spec.featDim,
        K: 16,
        softmax: false,
        rng: new Rng(4),
        log: () => {},
      });
      const sgd = new SGD(model.trainableVariables(), { lr: 0.03, momentum: 0.9, weightDecay: 1e-4 });
      const step = new CmcStep(model, bank, sgd);
      const losses: number[] = [];
      for (let s = 0; s < 3; s++) {
        const x = seededTensor([8, 16, 16, 3], 10 + s) as tf.Tensor4D;
        const y = Int32Array.from({ length: 8 }, (_, i) => (i * 7 + s * 5) % 64);
        losses.push((await step.run(x, y)).loss);
        x.dispose();
      }
      const weights = model.toNamedArrays();
      model.dispose();
      bank.dispose();
      sgd.dispose();
      return { losses, weights };
    };
    const ref = await run('wasm');
    const got = await run('native');
    got.losses.forEach((l, i) =>
      assert.ok(
        Math.abs(l - ref.losses[i]) <= 1e-5 * Math.abs(ref.losses[i]),
        `step ${i}: loss ${l} vs wasm ${ref.losses[i]}`,
      ),
    );
    const names = Object.keys(ref.weights);
    assert.deepEqual(Object.keys(got.weights), names);
    assert.ok(names.includes('L.c2.0.weight'));
    // Per-kernel tolerance is 2e-5 of the output's scale (training_kernels.test.ts); 3 steps carry a few
    // kernels' worth of rounding into the weights (seen: ~1e-6).
    for (const n of names) {
      const e = scaledError(ref.weights[n].data, got.weights[n].data);
      assert.ok(e < 1e-4, `${n}: differs from wasm by ${e.toExponential(2)} of its scale`);
    }
  });
});

describe('native backend: a missing or broken addon', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-native-'));
  const probe = path.join(dir, 'probe.mts');
  // Picks `auto` then `native` in a fresh process (the addon loads once per process), printing the outcome.
  fs.writeFileSync(
    probe,
    `import { initBackend } from ${JSON.stringify(path.join(root, 'train/engine/backend.ts'))};
const auto = await initBackend('auto');
console.log('AUTO=' + auto.name);
try { await initBackend('native', { quiet: true }); console.log('NATIVE=ok'); } catch (e) { console.log('NATIVE=' + e.message); }
`,
  );
  const runProbe = (addonPath: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', probe], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, CMC_NATIVE_ADDON: addonPath, CMC_WASM_THREADS: '1' },
    });
    assert.equal(r.status, 0, `probe crashed:\n${r.stderr}`);
    const autoLine = r.stderr.split('\n').find((l) => l.startsWith('[cmc] backend:')) ?? '';
    return { out: r.stdout, autoLine };
  };
  // Every function the loader requires but info(), doing nothing.
  const STUBS = NATIVE_FUNCTIONS.filter((f) => f !== 'info')
    .map((f) => `${f}() {}`)
    .join(', ');
  const cases: { what: string; file: string; content: string; reason: RegExp }[] = [
    {
      what: 'not a shared library',
      file: 'bogus.node',
      content: 'not an ELF file',
      reason: /failed to load: .*(invalid ELF header|too short)/,
    },
    {
      what: 'missing a function',
      file: 'partial.cjs',
      content: 'module.exports = { info() {}, setThreads() {} };',
      reason: /lacks the function conv2d\(\)/,
    },
    {
      what: 'of another oneDNN major version',
      file: 'v3.cjs',
      content: `module.exports = { ${STUBS}, info: () => ({ version: '3.1.0', builtWith: '2.6.3', isa: 'x', threads: 1, cachedPrimitives: 0 }) };`,
      reason: /built against oneDNN 2\.6\.3 but runs with 3\.1\.0/,
    },
    {
      what: 'that computes wrong results',
      file: 'wrong.cjs',
      content: `module.exports = { ${STUBS}, info: () => ({ version: '2.6.3', builtWith: '2.6.3', isa: 'x', threads: 1, cachedPrimitives: 0 }) };`,
      reason: /does not work: self-check computed conv 0 \(want 70\)/,
    },
  ];
  for (const c of cases) {
    test(`an addon ${c.what}: auto says why and uses wasm; --backend native fails with the reason`, () => {
      const file = path.join(dir, c.file);
      fs.writeFileSync(file, c.content);
      const { out, autoLine } = runProbe(file);
      assert.match(out, /AUTO=wasm/);
      assert.match(autoLine, /^\[cmc\] backend: wasm on .*\(chosen by --backend auto; native unavailable: /);
      assert.match(autoLine, c.reason);
      const native = out.split('\n').find((l) => l.startsWith('NATIVE=')) ?? '';
      assert.match(native, /^NATIVE=The native backend is unavailable: /);
      assert.match(native, c.reason);
    });
  }
  test('no addon at all: the reason says how to build it', () => {
    const { out, autoLine } = runProbe(path.join(dir, 'absent.node'));
    assert.match(out, /AUTO=wasm/);
    assert.match(autoLine, /native unavailable: the oneDNN addon is not built .*libdnnl-dev.*npm run build:native/);
  });
});
