/**
 * SGD with momentum and coupled weight decay, PyTorch semantics (torch.optim.SGD, no dampening, no
 * Nesterov), on tf.Variables:
 *
 *   g = grad + wd·p;   buf = g on the first step, else buf = μ·buf + g;   p ← p − lr·buf
 *
 * (With μ = 0 there is no buffer and p ← p − lr·g.) Weight decay applies to every parameter given, as in
 * upstream (BN and biases included). Parameters without a gradient in a step are skipped, buffers untouched.
 *
 *   const opt = new SGD(model.trainableVariables, { lr: 0.03, momentum: 0.9, weightDecay: 1e-4 });
 *   const { grads } = tf.variableGrads(lossFn);  opt.step(grads);  tf.dispose(grads);
 *   opt.lr = stepLr(0.03, epoch, [120, 160, 200], 0.1);
 */
import * as tf from '@tensorflow/tfjs-core';
import { SgdStep, useFused } from '../kernels/fused.ts';
import type { SgdStepAttrs } from '../kernels/wasm/SgdStep.ts';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
}

export interface SGDState {
  lr: number;
  momentum: number;
  weightDecay: number;
  /** Momentum buffer per variable name (only for variables that have had a step). */
  buffers: Record<string, { shape: number[]; data: Float32Array }>;
}

export class SGD {
  /** Learning rate used by the next step (set it at the start of each epoch). */
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  private readonly params: tf.Variable[];
  private readonly byName = new Map<string, tf.Variable>();
  private readonly buffers = new Map<string, tf.Tensor>();

  constructor(params: tf.Variable[], opts: SGDOptions) {
    const momentum = opts.momentum ?? 0;
    const weightDecay = opts.weightDecay ?? 0;
    if (!(opts.lr >= 0)) throw new RangeError(`SGD: lr must be >= 0, got ${opts.lr}`);
    if (!(momentum >= 0)) throw new RangeError(`SGD: momentum must be >= 0, got ${momentum}`);
    if (!(weightDecay >= 0)) throw new RangeError(`SGD: weightDecay must be >= 0, got ${weightDecay}`);
    this.lr = opts.lr;
    this.momentum = momentum;
    this.weightDecay = weightDecay;
    this.params = params.slice();
    for (const p of this.params) {
      if (this.byName.has(p.name)) throw new Error(`SGD: variable '${p.name}' given twice`);
      this.byName.set(p.name, p);
    }
  }

  /**
   * One update. `grads` is either the map of tf.variableGrads (keyed by variable name; names not among the
   * parameters are an error) or an array aligned with the constructor's parameter list (null = no grad).
   * The caller still owns (and disposes) the gradients.
   */
  step(grads: tf.NamedTensorMap | Array<tf.Tensor | null | undefined>): void {
    const pairs: [tf.Variable, tf.Tensor][] = [];
    if (Array.isArray(grads)) {
      if (grads.length !== this.params.length)
        throw new RangeError(`SGD.step: ${grads.length} gradients for ${this.params.length} parameters`);
      grads.forEach((g, i) => {
        if (g) pairs.push([this.params[i], g]);
      });
    } else {
      for (const [name, g] of Object.entries(grads)) {
        const p = this.byName.get(name);
        if (!p) throw new Error(`SGD.step: gradient for unknown variable '${name}'`);
        if (g) pairs.push([p, g]);
      }
    }
    for (const [p, grad] of pairs) {
      if (!shapesEqual(p.shape, grad.shape)) {
        throw new RangeError(`SGD.step: gradient shape [${grad.shape}] does not match '${p.name}' [${p.shape}]`);
      }
    }
    if (pairs.length && useFused(SgdStep) && pairs.every(([p, g]) => p.dtype === 'float32' && g.dtype === 'float32'))
      this.fusedStep(pairs);
    else this.composedStep(pairs);
  }

  /** All parameters in one kernel (train/kernels/wasm/SgdStep.ts), bit for bit composedStep. */
  private fusedStep(pairs: [tf.Variable, tf.Tensor][]): void {
    const mu = this.momentum;
    const inputs: tf.NamedTensorMap = {};
    const hasBuffer = pairs.map(([p, g], i) => {
      inputs[`p${i}`] = p;
      inputs[`g${i}`] = g;
      const b = this.buffers.get(p.name);
      if (b && mu !== 0) inputs[`b${i}`] = b;
      return b !== undefined;
    });
    const attrs: SgdStepAttrs = {
      n: pairs.length,
      lr: this.lr,
      momentum: mu,
      weightDecay: this.weightDecay,
      hasBuffer,
    };
    const out = tf.engine().runKernel(SgdStep, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    pairs.forEach(([p], i) => {
      p.assign(out[i]);
      out[i].dispose();
      if (mu !== 0) {
        this.buffers.get(p.name)?.dispose();
        this.buffers.set(p.name, tf.keep(out[pairs.length + i]));
      }
    });
  }

  /** One parameter at a time with tfjs ops: the reference, and the path of backends without SgdStep. */
  private composedStep(pairs: [tf.Variable, tf.Tensor][]): void {
    const lr = this.lr,
      mu = this.momentum,
      wd = this.weightDecay;
    for (const [p, grad] of pairs) {
      tf.tidy(() => {
        let g: tf.Tensor = grad;
        if (wd !== 0) g = tf.add(g, tf.mul(p, tf.scalar(wd)));
        if (mu !== 0) {
          const old = this.buffers.get(p.name);
          // PyTorch clones the first gradient into the buffer (no μ·0 term).
          const buf = old ? tf.add(tf.mul(old, tf.scalar(mu)), g) : g === grad ? tf.clone(g) : g;
          tf.keep(buf);
          if (old) old.dispose();
          this.buffers.set(p.name, buf);
          g = buf;
        }
        p.assign(tf.sub(p, tf.mul(g, tf.scalar(lr))));
      });
    }
  }

  state(): SGDState {
    const buffers: SGDState['buffers'] = {};
    for (const [name, b] of this.buffers)
      buffers[name] = { shape: b.shape.slice(), data: Float32Array.from(b.dataSync() as Float32Array) };
    return { lr: this.lr, momentum: this.momentum, weightDecay: this.weightDecay, buffers };
  }

  /** Restore lr and momentum buffers (momentum and weight decay are configuration and must match). */
  loadState(s: SGDState): void {
    if (
      Math.fround(s.momentum) !== Math.fround(this.momentum) ||
      Math.fround(s.weightDecay) !== Math.fround(this.weightDecay)
    ) {
      throw new Error(
        `SGD.loadState: checkpoint has momentum ${s.momentum}, weight decay ${s.weightDecay}; ` +
          `this optimiser has ${this.momentum}, ${this.weightDecay}`,
      );
    }
    for (const [name, b] of Object.entries(s.buffers)) {
      const p = this.byName.get(name);
      if (!p) throw new Error(`SGD.loadState: buffer for unknown variable '${name}'`);
      if (!shapesEqual(p.shape, b.shape))
        throw new Error(`SGD.loadState: buffer '${name}' has shape [${b.shape}], variable has [${p.shape}]`);
    }
    this.disposeBuffers();
    for (const [name, b] of Object.entries(s.buffers))
      this.buffers.set(name, tf.keep(tf.tensor(Float32Array.from(b.data), b.shape, 'float32')));
    this.lr = s.lr;
  }

  /** Frees the momentum buffers (the parameters belong to the caller). */
  /** state() with asynchronous reads (WebGPU has no synchronous readback in Node). */
  async snapshot(): Promise<SGDState> {
    const buffers: SGDState['buffers'] = {};
    for (const [name, b] of this.buffers)
      buffers[name] = { shape: b.shape.slice(), data: Float32Array.from((await b.data()) as Float32Array) };
    return { lr: this.lr, momentum: this.momentum, weightDecay: this.weightDecay, buffers };
  }

  dispose(): void {
    this.disposeBuffers();
  }

  private disposeBuffers(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}

function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
