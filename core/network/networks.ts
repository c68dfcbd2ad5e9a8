/**
 * Concrete CMC encoders as plain data (see layers.ts): upstream's AlexNet halves and ResNets, plus our
 * small-image variants. Parameter names are upstream's PyTorch state_dict prefixes, so an upstream checkpoint
 * maps one to one (after stripping `encoder.module.l_to_ab.` / `encoder.module.ab_to_l.`).
 *
 *   const spec = cmcSpec('alexnet_small', { imageSize: 32, featDim: 128 });
 *   spec.views.map((v) => v.encoder.blocks.length); // [8, 8]
 *
 * Portable: no tfjs and no node imports.
 */
import type { BatchNormSpec, CmcSpec, Conv2dSpec, EncoderSpec, LayerSpec, LinearSpec, MaxPoolSpec } from './layers.ts';
import { isDefaultViews, layoutViews, parseViews } from '../preprocess/views.ts';

/** PyTorch BatchNorm defaults. */
const BN_EPS = 1e-5;
const BN_MOMENTUM = 0.1;

function conv(
  name: string,
  filters: number,
  kernel: number,
  stride: number,
  pad: number,
  init: Conv2dSpec['init'] = 'kaiming_uniform',
): Conv2dSpec {
  return { kind: 'conv2d', name, filters, kernel, stride, pad, bias: false, init };
}

function bn(name: string): BatchNormSpec {
  return { kind: 'batchnorm', name, eps: BN_EPS, momentum: BN_MOMENTUM };
}

function linear(name: string, units: number): LinearSpec {
  return { kind: 'linear', name, units, bias: true, init: 'pytorch' };
}

function maxpool(size: number, stride: number, pad = 0): MaxPoolSpec {
  return { kind: 'maxpool', size, stride, pad };
}

const relu: LayerSpec = { kind: 'relu' };

/** Upstream's conv_block_i = Sequential(conv, bn, relu[, maxpool]); indices 0, 1 name the conv and BN. */
function convBlock(i: number, filters: number, kernel: number, stride: number, pad: number, pool: boolean) {
  const name = `conv_block_${i}`;
  const layers: LayerSpec[] = [conv(`${name}.0`, filters, kernel, stride, pad), bn(`${name}.1`), relu];
  if (pool) layers.push(maxpool(3, 2));
  return { name, layers };
}

/** fc6/fc7 = Sequential(Linear, BatchNorm1d, ReLU); fc6 flattens the conv map first (NCHW order). */
function fcBlocks(featDim: number, width = 2048) {
  return [
    { name: 'fc6', layers: [{ kind: 'flatten' } as LayerSpec, linear('fc6.0', width), bn('fc6.1'), relu] },
    { name: 'fc7', layers: [linear('fc7.0', width), bn('fc7.1'), relu] },
    { name: 'fc8', layers: [linear('fc8.0', featDim), { kind: 'l2norm' } as LayerSpec] },
  ];
}

/**
 * Upstream's AlexNet half (HobbitLong/CMC `models/alexnet.py`, `alexnet_half`) at 224x224: five conv
 * blocks without conv bias (48, 128, 192, 192, 128 channels; 11x11/4 p2, 5x5 p2, 3x3 p1 x3; maxpool 3/2
 * after blocks 1, 2, 5), then fc6 4608->2048, fc7 2048->2048 (Linear+BN1d+ReLU), fc8 2048->featDim and
 * L2 normalisation. No dropout. 14,840,976 params for 1 input channel, 14,846,784 for 2.
 */
export function alexnetHalf(inChannels: number, featDim = 128): EncoderSpec {
  return {
    arch: 'alexnet',
    inChannels,
    imageSize: 224,
    blocks: [
      convBlock(1, 48, 11, 4, 2, true),
      convBlock(2, 128, 5, 1, 2, true),
      convBlock(3, 192, 3, 1, 1, false),
      convBlock(4, 192, 3, 1, 1, false),
      convBlock(5, 128, 3, 1, 1, true),
      ...fcBlocks(featDim),
    ],
  };
}

export const ALEXNET_SMALL_SIZES = [32, 64, 96] as const;

/**
 * Our small-image AlexNet half (not upstream) for 32, 64 or 96 px inputs (CIFAR, STL-10 crops). It is
 * alexnetHalf with the same block names and parameter names, except:
 * - conv_block_1: conv 5x5, stride imageSize/32 (1, 2, 3), pad 2, in->48, then BN, ReLU, maxpool 3/2:
 *   the conv map is always 32x32 and the pool gives 15x15;
 * - conv_block_2 (5x5 p2, 48->128, pool) gives 7x7; blocks 3 and 4 (3x3 p1) keep 7x7; conv_block_5
 *   (3x3 p1, 192->128, pool) gives 3x3;
 * - fc6 is 1152 (128*3*3) -> 2048; fc7 and fc8 are as upstream.
 */
export function alexnetSmall(inChannels: number, imageSize: number, featDim = 128): EncoderSpec {
  if (!(ALEXNET_SMALL_SIZES as readonly number[]).includes(imageSize)) {
    throw new Error(`alexnet_small needs imageSize in {${ALEXNET_SMALL_SIZES.join(', ')}}, got ${imageSize}`);
  }
  return {
    arch: 'alexnet_small',
    inChannels,
    imageSize,
    blocks: [
      convBlock(1, 48, 5, imageSize / 32, 2, true),
      convBlock(2, 128, 5, 1, 2, true),
      convBlock(3, 192, 3, 1, 1, false),
      convBlock(4, 192, 3, 1, 1, false),
      convBlock(5, 128, 3, 1, 1, true),
      ...fcBlocks(featDim),
    ],
  };
}

/**
 * alexnet_small at half the conv width (24, 64, 96, 96, 64 channels) with 512-wide fc6/fc7 (ours): about
 * 4x fewer FLOPs and 1/9 of the parameters (0.86M per view at 64 px, 6.9 MB for the pair in float32), so a
 * trained model fits in git and trains several times more SGD steps per hour on a CPU. Block names and
 * probe layers are alexnet_small's.
 */
export function alexnetMini(inChannels: number, imageSize: number, featDim = 128): EncoderSpec {
  const small = alexnetSmall(inChannels, imageSize, featDim);
  const widths = [24, 64, 96, 96, 64];
  return {
    ...small,
    arch: 'alexnet_mini',
    blocks: [
      convBlock(1, widths[0], 5, imageSize / 32, 2, true),
      convBlock(2, widths[1], 5, 1, 2, true),
      convBlock(3, widths[2], 3, 1, 1, false),
      convBlock(4, widths[3], 3, 1, 1, false),
      convBlock(5, widths[4], 3, 1, 1, true),
      ...fcBlocks(featDim, 512),
    ],
  };
}

export type ResNetDepth = 18 | 50 | 101;
export type ResNetWidth = 'v1' | 'v2' | 'v3';
export const RESNET_DEPTHS: readonly ResNetDepth[] = [18, 50, 101];
export const RESNET_WIDTHS: readonly ResNetWidth[] = ['v1', 'v2', 'v3'];
/** Width multipliers of upstream's MyResNetsCMC: v1 = 0.5, v2 = 1, v3 = 2 (per half). */
export const RESNET_WIDTH_MULT: Record<ResNetWidth, number> = { v1: 0.5, v2: 1, v3: 2 };
const RESNET_STAGES: Record<ResNetDepth, { bottleneck: boolean; blocks: [number, number, number, number] }> = {
  18: { bottleneck: false, blocks: [2, 2, 2, 2] },
  50: { bottleneck: true, blocks: [3, 4, 6, 3] },
  101: { bottleneck: true, blocks: [3, 4, 23, 3] },
};
/** The ResNet embedding is always 128-d: MyResNetsCMC ignores --feat_dim. */
export const RESNET_FEAT_DIM = 128;

export interface ResNetOptions {
  /**
   * Small-image stem (ours, not upstream) for 32-96 px inputs: conv 3x3 stride 1 pad 1 (64 channels,
   * still named `conv1`/`bn1`) and no maxpool, so a 32 px input reaches stage 4 at 4x4 instead of 1x1.
   */
  smallStem?: boolean;
  imageSize: number;
}

/**
 * Upstream's ResNet half (HobbitLong/CMC `models/resnet.py`): torchvision layout with the stride on the
 * 3x3 conv of the Bottleneck, stem conv 7x7/2 p3 always 64 channels + BN + ReLU + maxpool 3/2 p1, stage
 * widths base, 2base, 4base, 8base with base = int(64*w) (x4 for Bottleneck), 1x1-conv+BN downsample
 * shortcut when stride or width changes, global average pool, Linear -> 128, L2 normalisation.
 * Blocks: 1 = stem(+maxpool), 2..5 = stages layer1..layer4, 6 = pooled vector, 7 = embedding.
 * Convs use he_normal init (N(0, sqrt(2/(k*k*out)))), fc the PyTorch default.
 */
export function resnet(depth: ResNetDepth, width: ResNetWidth, inChannels: number, opts: ResNetOptions): EncoderSpec {
  const cfg = RESNET_STAGES[depth];
  if (!cfg) throw new Error(`resnet depth must be one of ${RESNET_DEPTHS.join(', ')}, got ${depth}`);
  const w = RESNET_WIDTH_MULT[width];
  if (w === undefined) throw new Error(`resnet width must be one of ${RESNET_WIDTHS.join(', ')}, got ${width}`);
  const base = Math.floor(64 * w);
  const expansion = cfg.bottleneck ? 4 : 1;

  const stem: LayerSpec[] = opts.smallStem
    ? [conv('conv1', 64, 3, 1, 1, 'he_normal'), bn('bn1'), relu]
    : [conv('conv1', 64, 7, 2, 3, 'he_normal'), bn('bn1'), relu, maxpool(3, 2, 1)];
  const blocks: EncoderSpec['blocks'] = [{ name: 'stem', layers: stem }];

  let inplanes = 64;
  for (let s = 0; s < 4; s++) {
    const planes = base * 2 ** s;
    const stageStride = s === 0 ? 1 : 2;
    const layers: LayerSpec[] = [];
    for (let b = 0; b < cfg.blocks[s]; b++) {
      const name = `layer${s + 1}.${b}`;
      const stride = b === 0 ? stageStride : 1;
      const out = planes * expansion;
      const body: LayerSpec[] = cfg.bottleneck
        ? [
            conv(`${name}.conv1`, planes, 1, 1, 0, 'he_normal'),
            bn(`${name}.bn1`),
            relu,
            conv(`${name}.conv2`, planes, 3, stride, 1, 'he_normal'),
            bn(`${name}.bn2`),
            relu,
            conv(`${name}.conv3`, out, 1, 1, 0, 'he_normal'),
            bn(`${name}.bn3`),
          ]
        : [
            conv(`${name}.conv1`, planes, 3, stride, 1, 'he_normal'),
            bn(`${name}.bn1`),
            relu,
            conv(`${name}.conv2`, planes, 3, 1, 1, 'he_normal'),
            bn(`${name}.bn2`),
          ];
      const shortcut: LayerSpec[] =
        stride !== 1 || inplanes !== out
          ? [conv(`${name}.downsample.0`, out, 1, stride, 0, 'he_normal'), bn(`${name}.downsample.1`)]
          : [];
      layers.push({ kind: 'residual', name, body, shortcut });
      inplanes = out;
    }
    blocks.push({ name: `layer${s + 1}`, layers });
  }
  blocks.push({ name: 'avgpool', layers: [{ kind: 'global_avgpool' }] });
  blocks.push({ name: 'fc', layers: [linear('fc', RESNET_FEAT_DIM), { kind: 'l2norm' }] });

  return {
    arch: `resnet${depth}${width}${opts.smallStem ? '_small' : ''}`,
    inChannels,
    imageSize: opts.imageSize,
    blocks,
  };
}

export interface CmcSpecOptions {
  imageSize: number;
  /** Embedding size; ResNets ignore it (always 128, as upstream's MyResNetsCMC), see CmcSpec.featDim. */
  featDim: number;
  /**
   * Colour space of the input. The model is the same for both: as upstream, with YCbCr the 'L' view
   * takes Y (channel 0) and the 'ab' view takes CbCr (channels 1, 2); view names stay 'L' and 'ab'.
   */
  view?: 'Lab' | 'YCbCr';
  /**
   * Views from the vocabulary of core/preprocess/views.ts (default ['L', 'ab']). Any list other than the
   * default gives one encoder per view, named after it, and sets `input` to the list (with `view` Lab).
   */
  views?: readonly string[];
}

const RESNET_RE = /^resnet(18|50|101)(v1|v2|v3)(_small)?$/;

/** Build one view's encoder for an architecture name (see registry.ts ARCHS). */
export function encoderSpec(
  arch: string,
  inChannels: number,
  opts: { imageSize: number; featDim: number },
): EncoderSpec {
  if (arch === 'alexnet') {
    if (opts.imageSize !== 224)
      throw new Error(`alexnet is upstream's 224 px network; got imageSize ${opts.imageSize} (use alexnet_small)`);
    return alexnetHalf(inChannels, opts.featDim);
  }
  if (arch === 'alexnet_small') return alexnetSmall(inChannels, opts.imageSize, opts.featDim);
  if (arch === 'alexnet_mini') return alexnetMini(inChannels, opts.imageSize, opts.featDim);
  const m = RESNET_RE.exec(arch);
  if (m) {
    return resnet(Number(m[1]) as ResNetDepth, m[2] as ResNetWidth, inChannels, {
      imageSize: opts.imageSize,
      smallStem: m[3] === '_small',
    });
  }
  throw new Error(`Unknown model '${arch}'`);
}

/**
 * The two-view CMC model: view 'L' (channel 0 of the normalised Lab/YCbCr NHWC input) and view 'ab'
 * (channels 1, 2), each with its own encoder of the same architecture. `featDim` is the actual embedding
 * size (128 for every ResNet whatever opts.featDim).
 */
export function cmcSpec(arch: string, opts: CmcSpecOptions): CmcSpec {
  const view = opts.view ?? 'Lab';
  if (view !== 'Lab' && view !== 'YCbCr') throw new Error(`view must be Lab or YCbCr, got ${String(view)}`);
  if (opts.views && !isDefaultViews(opts.views)) return multiViewSpec(arch, opts, parseViews(opts.views));
  const l = encoderSpec(arch, 1, opts);
  const ab = encoderSpec(arch, 2, opts);
  const last = l.blocks[l.blocks.length - 1].layers.find((x) => x.kind === 'linear') as LinearSpec;
  return {
    arch,
    imageSize: opts.imageSize,
    featDim: last.units,
    views: [
      { name: 'L', channels: [0], encoder: l },
      { name: 'ab', channels: [1, 2], encoder: ab },
    ],
  };
}

/** N views of the vocabulary: one encoder each (inChannels = the view's channels), input = the list. */
function multiViewSpec(arch: string, opts: CmcSpecOptions, views: string[]): CmcSpec {
  if ((opts.view ?? 'Lab') !== 'Lab')
    throw new Error(
      `--view ${opts.view} only applies to the default views L,ab; name the views instead (e.g. --views Y,CbCr)`,
    );
  const specs = layoutViews(views).map(({ def, channels }) => ({
    name: def.name,
    channels,
    encoder: encoderSpec(arch, channels.length, opts),
  }));
  const first = specs[0].encoder;
  const last = first.blocks[first.blocks.length - 1].layers.find((x) => x.kind === 'linear') as LinearSpec;
  return { arch, imageSize: opts.imageSize, featDim: last.units, input: views, views: specs };
}
