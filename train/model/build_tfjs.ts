/**
 * Interpreter #1 of the network description language: EncoderSpec -> tfjs parameters and forward pass
 * (NHWC). The parameter map is keyed by PyTorch state_dict names (see shapes.ts paramShapes), so seed
 * checkpoints load one to one after transposing to tfjs layout.
 *
 *   const params = initEncoderParams(spec, new Rng(0));
 *   const emb = tf.tidy(() => encoderForward(spec, params, x, { training: true })); // [B, 128], unit rows
 *
 * BatchNorm follows PyTorch: training normalises with the biased batch variance and updates the running
 * statistics (momentum 0.1) with the unbiased one; eval uses the running statistics.
 */
import * as tf from '@tensorflow/tfjs-core';
import { unreachable, type BatchNormSpec, type EncoderSpec, type LayerSpec } from '../../core/network/layers.ts';
import { paramShapes, type ParamShape } from '../../core/network/shapes.ts';
import type { Rng } from '../../core/util/rng.ts';
import { BatchNormTrain, useFused } from '../kernels/fused.ts';

export type ParamMap = Map<string, tf.Variable>;

export interface ForwardOptions {
  /** BatchNorm mode: batch statistics + running-stat update (true) or running statistics (false). */
  training: boolean;
  /**
   * Return the output of block `layer` (1-based, upstream's numbering); default the last block (the
   * L2-normalised embedding); layer <= 0 returns (a copy of) the input.
   */
  layer?: number;
}

/** Initial values of one parameter or buffer, drawn from rng (PyTorch default initialisations). */
export function initialValues(p: ParamShape, rng: Rng): Float32Array {
  const n = p.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  switch (p.role) {
    case 'weight': {
      const layer = p.layer;
      if (layer.kind === 'conv2d' && layer.init === 'he_normal') {
        // ResNet: N(0, sqrt(2 / (k * k * out_channels))).
        const std = Math.sqrt(2 / (layer.kernel * layer.kernel * layer.filters));
        for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
      } else {
        // kaiming_uniform(a = sqrt(5)): bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
        const bound = 1 / Math.sqrt(p.fanIn);
        for (let i = 0; i < n; i++) out[i] = rng.range(-bound, bound);
      }
      return out;
    }
    case 'bias': {
      const bound = 1 / Math.sqrt(p.fanIn);
      for (let i = 0; i < n; i++) out[i] = rng.range(-bound, bound);
      return out;
    }
    case 'gamma':
      return out.fill((p.layer as BatchNormSpec).zeroInit ? 0 : 1);
    case 'beta':
    case 'running_mean':
      return out;
    case 'running_var':
      return out.fill(1);
    default:
      return unreachable(p.role);
  }
}

/**
 * Create every parameter (trainable tf.Variable) and BN buffer (non-trainable tf.Variable), keyed by
 * state_dict name, initialised from rng in paramShapes order. Variables are unnamed (tfjs names must be
 * unique per process and several models may coexist); the map key is the name.
 */
export function initEncoderParams(spec: EncoderSpec, rng: Rng): ParamMap {
  const params: ParamMap = new Map();
  for (const p of paramShapes(spec)) {
    const t = tf.tensor(initialValues(p, rng), p.shape, 'float32');
    params.set(p.name, tf.variable(t, p.kind === 'param'));
    t.dispose();
  }
  return params;
}

function get(params: ParamMap, name: string): tf.Variable {
  const v = params.get(name);
  if (!v) throw new Error(`missing parameter ${name}`);
  return v;
}

/** Training-mode batch norm: y with the batch statistics, which it also returns (biased variance). */
function batchNormTrain(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  eps: number,
): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor } {
  if (useFused(BatchNormTrain) && x.dtype === 'float32') {
    const [y, mean, variance] = tf
      .engine()
      .runKernel(BatchNormTrain, { x, scale: gamma, offset: beta }, { varianceEpsilon: eps }) as tf.Tensor[];
    return { y, mean, variance };
  }
  const { mean, variance } = tf.moments(x, x.rank === 4 ? [0, 1, 2] : [0]);
  return { y: tf.batchNorm(x, mean, variance, beta, gamma, eps), mean, variance };
}

function batchNorm(layer: BatchNormSpec, params: ParamMap, x: tf.Tensor, training: boolean): tf.Tensor {
  const gamma = get(params, `${layer.name}.weight`);
  const beta = get(params, `${layer.name}.bias`);
  const runMean = get(params, `${layer.name}.running_mean`);
  const runVar = get(params, `${layer.name}.running_var`);
  if (!training) return tf.batchNorm(x, runMean, runVar, beta, gamma, layer.eps);
  const { y, mean, variance } = batchNormTrain(x, gamma, beta, layer.eps);
  // Running statistics (PyTorch): r <- (1 - m) r + m * batch, with the unbiased batch variance. The
  // buffers are not trainable and the loss does not depend on them, so this adds no gradient path.
  const n = x.size / mean.size;
  const m = layer.momentum;
  tf.tidy(() => {
    const unbiased = n > 1 ? tf.mul(variance, n / (n - 1)) : variance;
    runMean.assign(tf.add(tf.mul(runMean, 1 - m), tf.mul(mean, m)));
    runVar.assign(tf.add(tf.mul(runVar, 1 - m), tf.mul(unbiased, m)));
  });
  return y;
}

/** One layer; call inside a tf.tidy (encoderForward does). */
export function layerForward(layer: LayerSpec, params: ParamMap, x: tf.Tensor, training: boolean): tf.Tensor {
  switch (layer.kind) {
    case 'conv2d': {
      const p = layer.pad;
      const pad: [[number, number], [number, number], [number, number], [number, number]] = [
        [0, 0],
        [p, p],
        [p, p],
        [0, 0],
      ];
      const w = get(params, `${layer.name}.weight`) as tf.Tensor4D;
      const y = tf.conv2d(x as tf.Tensor4D, w, layer.stride, p === 0 ? 'valid' : pad);
      return layer.bias ? tf.add(y, get(params, `${layer.name}.bias`)) : y;
    }
    case 'batchnorm':
      return batchNorm(layer, params, x, training);
    case 'relu':
      return tf.relu(x);
    case 'maxpool':
      // A numeric pad makes tfjs skip the padded cells (as -inf padding, = PyTorch); output size is
      // floor((n + 2p - k) / s) + 1 as PyTorch's floor mode.
      return tf.maxPool(x as tf.Tensor4D, layer.size, layer.stride, layer.pad === 0 ? 'valid' : layer.pad);
    case 'global_avgpool':
      return tf.mean(x, [1, 2]);
    case 'flatten':
      // NHWC -> NCHW before flattening, so the next Linear's weight rows are in PyTorch's order.
      return x.rank === 4
        ? tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [x.shape[0], -1])
        : tf.reshape(x, [x.shape[0], -1]);
    case 'linear': {
      const y = tf.matMul(x as tf.Tensor2D, get(params, `${layer.name}.weight`) as tf.Tensor2D);
      return layer.bias ? tf.add(y, get(params, `${layer.name}.bias`)) : y;
    }
    case 'l2norm':
      // Upstream's Normalize(2): x / ||x||, no epsilon.
      return tf.div(x, tf.sqrt(tf.sum(tf.square(x), -1, true)));
    case 'residual': {
      let body = x;
      for (const l of layer.body) body = layerForward(l, params, body, training);
      let shortcut = x;
      for (const l of layer.shortcut) shortcut = layerForward(l, params, shortcut, training);
      return tf.relu(tf.add(body, shortcut));
    }
    default:
      return unreachable(layer);
  }
}

/**
 * Forward x [B, H, W, inChannels] (NHWC) through blocks 1..layer and return that block's output:
 * [B, H', W', C] for conv blocks, [B, C] for vector blocks. Tidy: only the result survives. In training
 * mode the BN running statistics are updated (once per call).
 */
export function encoderForward(spec: EncoderSpec, params: ParamMap, x: tf.Tensor4D, opts: ForwardOptions): tf.Tensor {
  const last = opts.layer ?? spec.blocks.length;
  if (last > spec.blocks.length)
    throw new Error(`${spec.arch} has ${spec.blocks.length} blocks; asked for layer ${last}`);
  if (x.rank !== 4 || x.shape[3] !== spec.inChannels) {
    throw new Error(`${spec.arch}: expected [B, H, W, ${spec.inChannels}] input, got [${x.shape.join(', ')}]`);
  }
  return tf.tidy(() => {
    let h: tf.Tensor = x;
    if (last <= 0) return tf.clone(x);
    for (let b = 0; b < last; b++)
      for (const layer of spec.blocks[b].layers) h = layerForward(layer, params, h, opts.training);
    return h;
  });
}

/** Frozen features of block `layer` (eval-mode BN, running statistics untouched). */
export function encoderFeatures(spec: EncoderSpec, params: ParamMap, x: tf.Tensor4D, layer?: number): tf.Tensor {
  return encoderForward(spec, params, x, { training: false, layer });
}
