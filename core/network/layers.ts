/**
 * The network description language: every encoder is described once, as plain data, and interpreted by
 * the tfjs builder (train/model/build_tfjs.ts), the ONNX exporter and the PyTorch bench reference
 * (bench/torch_train_step.py reads the same JSON). No tfjs or node imports here: web/ and serve/ use it too.
 *
 * Conventions: tensors are NHWC in tfjs; `name` is the PyTorch state_dict prefix of the layer's
 * parameters (e.g. "conv_block_1.0"), so seed checkpoints map one to one. Weights are stored in tfjs
 * layout (conv: [kh, kw, in, out]; linear: [in, out]).
 */

/** conv2d without bias unless `bias` (upstream's AlexNet convs have none). Padding is symmetric. */
export interface Conv2dSpec {
  kind: 'conv2d';
  name: string;
  filters: number;
  kernel: number;
  stride: number;
  pad: number;
  bias: boolean;
  /** Initialisation: 'kaiming_uniform' (PyTorch default, a=sqrt(5)) or 'he_normal' (ResNet: N(0, sqrt(2/(k*k*out)))). */
  init: 'kaiming_uniform' | 'he_normal';
}

/** Batch norm over the channel axis (BatchNorm2d after conv, BatchNorm1d after linear). */
export interface BatchNormSpec {
  kind: 'batchnorm';
  name: string;
  /** PyTorch defaults: eps 1e-5, momentum 0.1 (running = (1-m)*running + m*batch, unbiased batch var). */
  eps: number;
  momentum: number;
  /** Zero-initialised gamma (used for the last BN of residual branches when asked); default false. */
  zeroInit?: boolean;
}

export interface ReluSpec {
  kind: 'relu';
}

/** Max pooling, square window, symmetric padding (-inf padding, as PyTorch). */
export interface MaxPoolSpec {
  kind: 'maxpool';
  size: number;
  stride: number;
  pad: number;
}

/** Global average pooling over H and W, output [B, C] (the ResNet head; equals AvgPool 7x7 at 224). */
export interface GlobalAvgPoolSpec {
  kind: 'global_avgpool';
}

/** NHWC [B,H,W,C] to [B, C*H*W] in PyTorch's NCHW flatten order, so fc weights match upstream's. */
export interface FlattenSpec {
  kind: 'flatten';
}

export interface LinearSpec {
  kind: 'linear';
  name: string;
  units: number;
  bias: boolean;
  /** 'pytorch' = kaiming_uniform(a=sqrt(5)) weights and U(+-1/sqrt(fan_in)) bias. */
  init: 'pytorch';
}

/** x / ||x||_2 over the last axis, no epsilon (upstream's Normalize(2)). */
export interface L2NormSpec {
  kind: 'l2norm';
}

/** out = relu(body(x) + shortcut(x)); an empty shortcut is the identity. */
export interface ResidualSpec {
  kind: 'residual';
  name: string;
  body: LayerSpec[];
  shortcut: LayerSpec[];
}

export type LayerSpec =
  | Conv2dSpec
  | BatchNormSpec
  | ReluSpec
  | MaxPoolSpec
  | GlobalAvgPoolSpec
  | FlattenSpec
  | LinearSpec
  | L2NormSpec
  | ResidualSpec;

export type LayerKind = LayerSpec['kind'];

/**
 * One view's encoder: a list of numbered blocks. `forward(x, layer)` returns the output of block `layer`
 * (1-based, as upstream's `layer` argument); the last block ends with the L2-normalised embedding.
 */
export interface EncoderSpec {
  /** e.g. "alexnet", "alexnet_small", "resnet50v1". */
  arch: string;
  inChannels: number;
  imageSize: number;
  blocks: { name: string; layers: LayerSpec[] }[];
}

/** The CMC model: one encoder per view, same architecture, different input channels. */
export interface CmcSpec {
  arch: string;
  imageSize: number;
  featDim: number;
  /**
   * The model input as a list of named views (core/preprocess/views.ts), concatenated along channels;
   * `views[i].channels` index into it. Absent (every two-view model, old checkpoints): the 3 channels of
   * the config's `--view` colour space (Lab or YCbCr).
   */
  input?: string[];
  views: { name: string; channels: number[]; encoder: EncoderSpec }[];
}

/** Exhaustiveness guard for interpreters: adding a layer kind breaks the build until each handles it. */
export function unreachable(x: never): never {
  throw new Error(`unhandled layer spec: ${JSON.stringify(x)}`);
}
