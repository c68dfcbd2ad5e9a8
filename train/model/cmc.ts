/**
 * The CMC model: one encoder per view (upstream's L and ab, or any declared views), each built from the
 * CmcSpec by build_tfjs.ts. The input is the normalised Lab (or YCbCr) image, NHWC [B, H, W, 3], or the
 * spec's declared input layout (core/preprocess/views.ts, [B, H, W, C]); each view takes its channels.
 *
 *   const model = new CmcModel(getCmcSpec('alexnet_small', { imageSize: 32, featDim: 128 }), 42);
 *   const { views: [l, ab] } = model.forward(x, { training: true });   // [B, 128] each, unit rows
 *   const grads = tf.variableGrads(() => loss(...), model.trainableVariables());
 *
 * Parameter names are `${view.name}.${state_dict name}`, e.g. 'L.conv_block_1.0.weight',
 * 'ab.fc8.0.bias' (upstream's l_to_ab / ab_to_l). Checkpoints store every parameter and BN buffer.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CmcSpec } from '../../core/network/layers.ts';
import { paramShapes } from '../../core/network/shapes.ts';
import { Rng } from '../../core/util/rng.ts';
import { encoderForward, initEncoderParams, type ForwardOptions, type ParamMap } from './build_tfjs.ts';

export type NamedArrays = Record<string, { shape: number[]; data: Float32Array }>;

export class CmcModel {
  readonly spec: CmcSpec;
  /** Every parameter and buffer, keyed `${view}.${name}`. */
  readonly params: Map<string, tf.Variable> = new Map();
  /** Per view, keyed by the state_dict name within the encoder (same Variable objects as `params`). */
  readonly viewParams: ParamMap[] = [];
  private disposed = false;

  /** Initialise both encoders from one Rng(seed), view by view, in paramShapes order. */
  constructor(spec: CmcSpec, seed: number) {
    this.spec = spec;
    const rng = new Rng(seed);
    for (const view of spec.views) {
      if (view.channels.length !== view.encoder.inChannels) {
        throw new Error(
          `view ${view.name}: ${view.channels.length} channels but encoder takes ${view.encoder.inChannels}`,
        );
      }
      const p = initEncoderParams(view.encoder, rng);
      this.viewParams.push(p);
      for (const [k, v] of p) this.params.set(`${view.name}.${k}`, v);
    }
  }

  /**
   * x: [B, H, W, C] with every channel named by the views. Returns each view's output of block
   * `opts.layer` (default the L2-normalised embedding [B, featDim]), in spec.views order. The caller
   * owns (disposes) the returned tensors. In training mode each call updates the BN running stats.
   */
  forward(x: tf.Tensor4D, opts: ForwardOptions): { views: tf.Tensor[] } {
    this.checkAlive();
    const views = this.spec.views.map((view, i) => {
      const xv = tf.tidy(() => sliceChannels(x, view.channels));
      try {
        return encoderForward(view.encoder, this.viewParams[i], xv, opts);
      } finally {
        xv.dispose();
      }
    });
    return { views };
  }

  /** Trainable parameters in a fixed order (view by view, paramShapes order). */
  trainableVariables(): tf.Variable[] {
    return [...this.params.values()].filter((v) => v.trainable);
  }

  /** Number of trainable scalars. */
  numParams(): number {
    return this.trainableVariables().reduce((a, v) => a + v.size, 0);
  }

  /** Copy of every parameter and BN buffer (tfjs layout), for checkpoints. */
  toNamedArrays(): NamedArrays {
    this.checkAlive();
    const out: NamedArrays = {};
    for (const [k, v] of this.params) out[k] = { shape: v.shape.slice(), data: new Float32Array(v.dataSync()) };
    return out;
  }

  /** toNamedArrays with asynchronous reads (WebGPU has no synchronous readback in Node). */
  async snapshot(): Promise<NamedArrays> {
    this.checkAlive();
    const out: NamedArrays = {};
    for (const [k, v] of this.params)
      out[k] = { shape: v.shape.slice(), data: Float32Array.from((await v.data()) as Float32Array) };
    return out;
  }

  /**
   * Assign values saved by toNamedArrays. Every parameter and buffer must be present with the same shape
   * (unless `strict: false`, which skips missing ones); unknown names throw.
   */
  loadNamedArrays(arrays: NamedArrays, opts: { strict?: boolean } = {}): void {
    this.checkAlive();
    const strict = opts.strict ?? true;
    for (const k of Object.keys(arrays))
      if (!this.params.has(k)) throw new Error(`checkpoint has unknown parameter ${k}`);
    for (const [k, v] of this.params) {
      const a = arrays[k];
      if (!a) {
        if (strict) throw new Error(`checkpoint lacks parameter ${k}`);
        continue;
      }
      if (a.shape.join() !== v.shape.join())
        throw new Error(`${k}: checkpoint shape [${a.shape}] but model [${v.shape}]`);
      if (a.data.length !== v.size) throw new Error(`${k}: ${a.data.length} values for shape [${a.shape}]`);
      tf.tidy(() => v.assign(tf.tensor(a.data, v.shape, 'float32')));
    }
  }

  /** Names and shapes of every parameter/buffer, as `params` (without allocating). */
  static paramNames(spec: CmcSpec): { name: string; shape: number[]; kind: 'param' | 'buffer' }[] {
    return spec.views.flatMap((view) =>
      paramShapes(view.encoder).map((p) => ({ name: `${view.name}.${p.name}`, shape: p.shape, kind: p.kind })),
    );
  }

  dispose(): void {
    if (this.disposed) return;
    for (const v of this.params.values()) v.dispose();
    this.disposed = true;
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('CmcModel used after dispose()');
  }
}

/** x[..., channels] for a NHWC tensor: a slice when the channels are contiguous, else a gather. */
export function sliceChannels(x: tf.Tensor4D, channels: number[]): tf.Tensor4D {
  const c0 = channels[0];
  const contiguous = channels.every((c, i) => c === c0 + i);
  if (contiguous) return tf.slice(x, [0, 0, 0, c0], [-1, -1, -1, channels.length]);
  return tf.gather(x, channels, 3) as tf.Tensor4D;
}
