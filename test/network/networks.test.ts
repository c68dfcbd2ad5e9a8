/** Architecture specs: parameter counts and block shapes against upstream (test/fixtures/arch.json). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { alexnetHalf, alexnetMini, alexnetSmall, cmcSpec, resnet } from '../../core/network/networks.ts';
import { ARCHS, getCmcSpec } from '../../core/network/registry.ts';
import { countParams, inferShapes, paramShapes } from '../../core/network/shapes.ts';
import type { EncoderSpec } from '../../core/network/layers.ts';

interface SeedArch {
  [layer: string]: unknown;
  params_L_half: number;
  params_ab_half: number;
}
const ARCH = JSON.parse(fs.readFileSync(new URL('../fixtures/arch.json', import.meta.url), 'utf8')) as Record<
  string,
  SeedArch
>;

/** Seed NCHW shape (batch dropped) -> our per-example shape ([H, W, C] or [C]). */
function seedToOurs(nchw: number[]): number[] {
  const s = nchw.slice(1);
  return s.length === 3 ? [s[1], s[2], s[0]] : s;
}

function checkAgainstSeed(key: string, l: EncoderSpec, ab: EncoderSpec) {
  const seed = ARCH[key];
  assert.ok(seed, `fixture has ${key}`);
  for (const [view, enc] of [
    ['L', l],
    ['ab', ab],
  ] as const) {
    const ours = inferShapes(enc, 224);
    for (const b of ours) {
      const rec = seed[String(b.index)] as Record<string, number[]> | undefined;
      assert.ok(rec, `${key} fixture has layer ${b.index}`);
      assert.deepEqual(b.shape, seedToOurs(rec[view]), `${key} ${view} block ${b.index} (${b.name})`);
    }
  }
  assert.equal(countParams(l), seed.params_L_half, `${key} L params`);
  assert.equal(countParams(ab), seed.params_ab_half, `${key} ab params`);
}

test('alexnet halves: 14,840,976 (L) and 14,846,784 (ab) params, seed block shapes at 224', () => {
  assert.equal(countParams(alexnetHalf(1)), 14_840_976);
  assert.equal(countParams(alexnetHalf(2)), 14_846_784);
  checkAgainstSeed('alexnet', alexnetHalf(1), alexnetHalf(2));
});

test('resnet50 v1/v2/v3 and resnet18v1 match upstream counts and shapes', () => {
  const expected: Record<string, [number, number, number]> = {
    // exact per-half counts [L, ab], and the L half in millions to two decimals (6.03 M, 23.76 M, 94.37 M)
    v1: [6_027_456, 6_030_592, 6.03],
    v2: [23_764_032, 23_767_168, 23.76],
    v3: [94_374_720, 94_377_856, 94.37],
  };
  for (const w of ['v1', 'v2', 'v3'] as const) {
    const l = resnet(50, w, 1, { imageSize: 224 });
    const ab = resnet(50, w, 2, { imageSize: 224 });
    const [nl, nab, millions] = expected[w];
    assert.equal(countParams(l), nl);
    assert.equal(countParams(ab), nab);
    assert.equal(Math.round(nl / 1e4) / 100, millions);
    checkAgainstSeed(`resnet50${w}`, l, ab);
  }
  checkAgainstSeed('resnet18v1', resnet(18, 'v1', 1, { imageSize: 224 }), resnet(18, 'v1', 2, { imageSize: 224 }));
});

test('resnet totals are about 12 M / 47.5 M / 188.7 M for the pair', () => {
  const totals = (['v1', 'v2', 'v3'] as const).map((w) => {
    const s = getCmcSpec(`resnet50${w}`, { imageSize: 224, featDim: 128 });
    return s.views.reduce((a, v) => a + countParams(v.encoder), 0) / 1e6;
  });
  assert.deepEqual(
    totals.map((t) => Math.round(t * 10) / 10),
    [12.1, 47.5, 188.8],
  );
});

test('alexnet_small block shapes at 32, 64 and 96 px', () => {
  for (const size of [32, 64, 96]) {
    const shapes = inferShapes(alexnetSmall(2, size)).map((b) => b.shape);
    assert.deepEqual(shapes, [
      [size, size, 2],
      [15, 15, 48],
      [7, 7, 128],
      [7, 7, 192],
      [7, 7, 192],
      [3, 3, 128],
      [2048],
      [2048],
      [128],
    ]);
    // conv1 map is 32x32 whatever the size (stride = size / 32)
    const conv1 = alexnetSmall(1, size).blocks[0].layers[0];
    assert.ok(conv1.kind === 'conv2d' && conv1.stride === size / 32 && conv1.kernel === 5 && conv1.pad === 2);
  }
  assert.equal(countParams(alexnetSmall(1, 32)), 7_758_480);
  assert.equal(countParams(alexnetSmall(2, 32)), 7_759_680);
  assert.throws(() => alexnetSmall(1, 48), /imageSize/);
});

test('alexnet_mini is alexnet_small at half conv width with 512-wide fc (hand-counted parameters)', () => {
  const shapes = inferShapes(alexnetMini(2, 64)).map((b) => b.shape);
  assert.deepEqual(shapes, [
    [64, 64, 2],
    [15, 15, 24],
    [7, 7, 64],
    [7, 7, 96],
    [7, 7, 96],
    [3, 3, 64],
    [512],
    [512],
    [128],
  ]);
  // conv 600 + 38400 + 55296 + 82944 + 55296, BN 2 x (24+64+96+96+64+512+512), fc 576*512+512, 512*512+512, 512*128+128
  assert.equal(countParams(alexnetMini(1, 64)), 859_016);
  assert.equal(countParams(alexnetMini(2, 64)), 859_616);
  assert.deepEqual(
    alexnetMini(1, 32).blocks.map((b) => b.name),
    alexnetSmall(1, 32).blocks.map((b) => b.name),
  );
  assert.throws(() => alexnetMini(1, 48), /imageSize/);
});

test('small-stem resnets keep stage shapes proportional at 32 px', () => {
  const shapes = inferShapes(resnet(18, 'v1', 1, { imageSize: 32, smallStem: true })).map((b) => b.shape);
  assert.deepEqual(shapes, [
    [32, 32, 1],
    [32, 32, 64],
    [32, 32, 32],
    [16, 16, 64],
    [8, 8, 128],
    [4, 4, 256],
    [256],
    [128],
  ]);
  const s50 = inferShapes(resnet(50, 'v2', 2, { imageSize: 64, smallStem: true })).map((b) => b.shape);
  assert.deepEqual(s50.slice(1), [
    [64, 64, 64],
    [64, 64, 256],
    [32, 32, 512],
    [16, 16, 1024],
    [8, 8, 2048],
    [2048],
    [128],
  ]);
});

test('parameter names and layouts follow the upstream state_dict and tfjs layout', () => {
  const alex = new Map(paramShapes(alexnetHalf(2)).map((p) => [p.name, p]));
  assert.deepEqual(alex.get('conv_block_1.0.weight')?.shape, [11, 11, 2, 48]);
  assert.equal(alex.has('conv_block_1.0.bias'), false);
  assert.deepEqual(alex.get('conv_block_1.1.weight')?.shape, [48]);
  assert.equal(alex.get('conv_block_1.1.running_var')?.kind, 'buffer');
  assert.deepEqual(alex.get('fc6.0.weight')?.shape, [4608, 2048]);
  assert.deepEqual(alex.get('fc6.1.bias')?.shape, [2048]);
  assert.deepEqual(alex.get('fc8.0.weight')?.shape, [2048, 128]);
  assert.deepEqual(alex.get('fc8.0.bias')?.shape, [128]);
  assert.equal(alex.has('fc8.1.weight'), false);

  const r50 = new Map(paramShapes(resnet(50, 'v1', 1, { imageSize: 224 })).map((p) => [p.name, p]));
  assert.deepEqual(r50.get('conv1.weight')?.shape, [7, 7, 1, 64]);
  assert.deepEqual(r50.get('bn1.weight')?.shape, [64]);
  assert.deepEqual(r50.get('layer1.0.conv1.weight')?.shape, [1, 1, 64, 32]);
  assert.deepEqual(r50.get('layer1.0.conv2.weight')?.shape, [3, 3, 32, 32]);
  assert.deepEqual(r50.get('layer1.0.downsample.0.weight')?.shape, [1, 1, 64, 128]);
  assert.deepEqual(r50.get('layer2.0.downsample.0.weight')?.shape, [1, 1, 128, 256]);
  assert.equal(r50.has('layer2.1.downsample.0.weight'), false);
  assert.deepEqual(r50.get('fc.weight')?.shape, [1024, 128]);
  const c1 = r50.get('layer1.0.conv1.weight')?.layer;
  assert.ok(c1?.kind === 'conv2d' && c1.init === 'he_normal');
  // Stride on the 3x3 (v1.5): layer2.0.conv1 is 1x1 stride 1, conv2 3x3 stride 2.
  const l2 = resnet(50, 'v1', 1, { imageSize: 224 }).blocks[2].layers[0];
  assert.ok(l2.kind === 'residual');
  const [b1, , , c2] = l2.body;
  assert.ok(b1.kind === 'conv2d' && b1.stride === 1 && c2.kind === 'conv2d' && c2.stride === 2 && c2.kernel === 3);
  // resnet18 (BasicBlock) names
  const r18 = new Map(paramShapes(resnet(18, 'v2', 1, { imageSize: 224 })).map((p) => [p.name, p]));
  assert.deepEqual(r18.get('layer1.0.conv2.weight')?.shape, [3, 3, 64, 64]);
  assert.equal(r18.has('layer1.0.downsample.0.weight'), false); // 64 -> 64, stride 1: identity
  assert.equal(r18.has('layer1.0.conv3.weight'), false);
});

test('registry: every ARCHS name builds two views; unknown names list the choices', () => {
  assert.equal(ARCHS.length, 21);
  for (const name of ARCHS) {
    const imageSize = name === 'alexnet' || (name.startsWith('resnet') && !name.endsWith('_small')) ? 224 : 32;
    const spec = getCmcSpec(name, { imageSize, featDim: 64 });
    assert.deepEqual(
      spec.views.map((v) => [v.name, v.channels, v.encoder.inChannels]),
      [
        ['L', [0], 1],
        ['ab', [1, 2], 2],
      ],
    );
    const out = inferShapes(spec.views[0].encoder).at(-1)?.shape;
    assert.deepEqual(out, [spec.featDim]);
    // ResNets ignore featDim (MyResNetsCMC), AlexNets honour it.
    assert.equal(spec.featDim, name.startsWith('resnet') ? 128 : 64);
  }
  assert.throws(
    () => getCmcSpec('vgg16', { imageSize: 224, featDim: 128 }),
    /Unknown model 'vgg16'; expected one of: alexnet, alexnet_small, alexnet_mini, resnet18v1/,
  );
  assert.throws(() => cmcSpec('alexnet', { imageSize: 32, featDim: 128 }), /alexnet_small/);
  const y = cmcSpec('resnet50v1', { imageSize: 224, featDim: 128, view: 'YCbCr' });
  assert.deepEqual(
    y.views.map((v) => v.channels),
    [[0], [1, 2]],
  );
});
