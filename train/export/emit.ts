/**
 * Interpreter #2 of the network description language (core/network/layers.ts): NetworkSpec -> ONNX nodes.
 *
 * Layout inside the graph is NCHW (ONNX Conv/MaxPool/GlobalAveragePool are NCHW), so:
 * - conv weights go from tfjs [kh, kw, in, out] to ONNX [out, in, kh, kw]; linear weights from tfjs
 *   [in, out] to Gemm B [out, in] with transB = 1 (PyTorch's layout);
 * - batch norm is folded, in eval form (running statistics), into the conv/linear right before it
 *   (W' = W * s, b' = s * (b - mean) + beta with s = gamma / sqrt(var + eps), computed in float64);
 *   a batch norm not preceded by a conv/linear becomes Mul + Add;
 * - MaxPool pads are ignored cells in ONNX (= PyTorch's -inf padding), floor mode (ceil_mode 0);
 * - Flatten of an NCHW map is PyTorch's flatten order directly;
 * - L2 norm is x / sqrt(ReduceSum(x * x, axes = [1], keepdims = 1)) (no LpNormalization: it is not in
 *   onnxruntime-web's WebGPU operator list); no epsilon, as upstream's Normalize(2) (`models/alexnet.py`) and build_tfjs.ts;
 * - residual is Add + Relu.
 *
 * The preprocessing runs inside the graph too: `images` uint8 [N, H, W, 3] (NHWC, RGB) -> Cast -> *1/255
 * -> colour conversion (Lab: sRGB linearisation with Where/Pow, the XYZ matrix with the white point
 * folded in as a MatMul, f(t) with Where and Pow(1/3), L/a/b as a MatMul + Add; or YCbCr: a MatMul + Add)
 * -> (x - mean) / std -> Transpose to NCHW, exactly the formulas and constants of
 * core/preprocess/color.ts, in float32 instead of float64 (differences ~1e-6 after normalisation).
 * A spec with a declared `input` layout (more views: L, ab, Y, CbCr, DbDr, grad) computes each of them
 * from RGB instead (emit_preprocess.ts). Each view then takes its channels (Slice, or Gather when not contiguous).
 *
 * Adaptive pooling of the `features` map (a linear-probe head trained on pooled features) (train/eval/linear_probe.ts) is emit_pool.ts;
 * the graph is built with onnx_graph.ts's GraphBuilder and checked against WEBGPU_OPS.
 *
 *   const g = buildEncoderGraph(spec, params, { view: 'Lab', layer: 5 });   // outputs embedding, features
 *   const p = buildEncoderGraph(spec, params, { view: 'Lab', layer: 3, pool: [5, 5], poolType: 'max' });
 */
import { unreachable, type CmcSpec, type EncoderSpec, type LayerSpec } from '../../core/network/layers.ts';
import { inferShapes, layerOutputShape, type Shape } from '../../core/network/shapes.ts';
import type { PoolType } from '../../core/network/pooling.ts';
import type { ColorView } from '../../core/preprocess/color.ts';
import { emitChannels, emitLayoutInput } from './emit_preprocess.ts';
import { specInput } from '../../core/preprocess/views.ts';
import { DataType, valueInfo, type IGraphProto } from '../../core/onnx/onnx_proto.ts';
import { checkOps, GraphBuilder } from './onnx_graph.ts';
import { emitAdaptivePool2d } from './emit_pool.ts';

/** One parameter or buffer in tfjs layout (as CmcModel.toNamedArrays / checkpoint tensors). */
export interface ParamArray {
  shape: number[];
  data: Float32Array;
}
/** Parameters keyed `${view}.${state_dict name}`, e.g. 'L.conv_block_1.0.weight'. */
export type ParamArrays = Record<string, ParamArray>;

// ---------------------------------------------------------------------------------------------------------
// Encoder layers

type Lookup = (name: string) => ParamArray;

interface Affine {
  /** Per output channel: y = scale * (W x) + shift. */
  scale: Float64Array;
  shift: Float64Array;
  hasBias: boolean;
}

/** The conv/linear's own bias, then the following BN (eval form) folded in. */
function affineFor(
  out: number,
  layer: { name: string; bias: boolean },
  bn: (LayerSpec & { kind: 'batchnorm' }) | null,
  get: Lookup,
): Affine {
  const scale = new Float64Array(out).fill(1);
  const shift = new Float64Array(out);
  if (layer.bias) {
    const b = get(`${layer.name}.bias`).data;
    for (let o = 0; o < out; o++) shift[o] = b[o];
  }
  if (bn) {
    const gamma = get(`${bn.name}.weight`).data;
    const beta = get(`${bn.name}.bias`).data;
    const mean = get(`${bn.name}.running_mean`).data;
    const variance = get(`${bn.name}.running_var`).data;
    for (let o = 0; o < out; o++) {
      const s = gamma[o] / Math.sqrt(variance[o] + bn.eps);
      scale[o] = s;
      shift[o] = s * (shift[o] - mean[o]) + beta[o];
    }
  }
  return { scale, shift, hasBias: layer.bias || bn !== null };
}

function checkShape(p: ParamArray, shape: number[], name: string): void {
  if (p.shape.join() !== shape.join())
    throw new Error(`${name}: parameter shape [${p.shape}] but the spec needs [${shape}]`);
}

interface EmitState {
  g: GraphBuilder;
  get: Lookup;
  /** View name: parameterised layers are named `${view}.${layer.name}`. */
  view: string;
  /** Name prefix of anonymous layers (relu, pools, ...): the block or residual unit. */
  scope: string;
}

/** Emit one list of layers (a block, a residual body or shortcut); folds BN into a preceding conv/linear. */
function emitLayers(st: EmitState, layers: LayerSpec[], x: string, shape: Shape): { x: string; shape: Shape } {
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const next = layers[i + 1];
    const foldBn = (layer.kind === 'conv2d' || layer.kind === 'linear') && next?.kind === 'batchnorm' ? next : null;
    x = emitLayer(st, layer, x, shape, foldBn);
    shape = layerOutputShape(layer, shape);
    if (foldBn) {
      shape = layerOutputShape(foldBn, shape);
      i++;
    }
  }
  return { x, shape };
}

function emitLayer(
  st: EmitState,
  layer: LayerSpec,
  x: string,
  shape: Shape,
  bn: (LayerSpec & { kind: 'batchnorm' }) | null,
): string {
  const { g, get, view, scope } = st;
  switch (layer.kind) {
    case 'conv2d': {
      const base = `${view}.${layer.name}`;
      const cin = shape[2];
      const k = layer.kernel;
      const cout = layer.filters;
      const w = get(`${layer.name}.weight`);
      checkShape(w, [k, k, cin, cout], `${base}.weight`);
      const a = affineFor(cout, layer, bn, get);
      const wt = new Float32Array(cout * cin * k * k);
      for (let y = 0; y < k; y++) {
        for (let xx = 0; xx < k; xx++) {
          for (let i = 0; i < cin; i++) {
            const src = ((y * k + xx) * cin + i) * cout;
            for (let o = 0; o < cout; o++) wt[((o * cin + i) * k + y) * k + xx] = w.data[src + o] * a.scale[o];
          }
        }
      }
      const inputs = [x, g.constFloat(`${base}.weight`, [cout, cin, k, k], wt)];
      if (a.hasBias) inputs.push(g.constFloat(`${base}.bias`, [cout], Float32Array.from(a.shift)));
      const p = layer.pad;
      return g.op('Conv', inputs, base, {
        kernel_shape: [k, k],
        strides: [layer.stride, layer.stride],
        pads: [p, p, p, p],
        dilations: [1, 1],
        group: 1,
      });
    }
    case 'linear': {
      const base = `${view}.${layer.name}`;
      const fin = shape[0];
      const out = layer.units;
      const w = get(`${layer.name}.weight`);
      checkShape(w, [fin, out], `${base}.weight`);
      const a = affineFor(out, layer, bn, get);
      // Gemm B as [out, in] with transB = 1 (PyTorch's layout).
      const wt = new Float32Array(out * fin);
      for (let i = 0; i < fin; i++) {
        const src = i * out;
        for (let o = 0; o < out; o++) wt[o * fin + i] = w.data[src + o] * a.scale[o];
      }
      const inputs = [x, g.constFloat(`${base}.weight`, [out, fin], wt)];
      if (a.hasBias) inputs.push(g.constFloat(`${base}.bias`, [out], Float32Array.from(a.shift)));
      return g.op('Gemm', inputs, base, { transB: 1, alpha: { float: 1 }, beta: { float: 1 } });
    }
    case 'batchnorm': {
      // Not after a conv/linear: y = s x + (beta - s mean) as Mul + Add (channel axis 1 in NCHW).
      const base = `${view}.${layer.name}`;
      const c = shape[shape.length - 1];
      const s = new Float32Array(c);
      const t = new Float32Array(c);
      const gamma = get(`${layer.name}.weight`).data;
      const beta = get(`${layer.name}.bias`).data;
      const mean = get(`${layer.name}.running_mean`).data;
      const variance = get(`${layer.name}.running_var`).data;
      for (let o = 0; o < c; o++) {
        const sc = gamma[o] / Math.sqrt(variance[o] + layer.eps);
        s[o] = sc;
        t[o] = beta[o] - sc * mean[o];
      }
      const dims = shape.length === 3 ? [c, 1, 1] : [c];
      const y = g.op('Mul', [x, g.constFloat(`${base}.scale`, dims, s)], base);
      return g.op('Add', [y, g.constFloat(`${base}.shift`, dims, t)], base);
    }
    case 'relu':
      return g.op('Relu', [x], `${scope}.relu`);
    case 'maxpool': {
      const p = layer.pad;
      return g.op('MaxPool', [x], `${scope}.maxpool`, {
        kernel_shape: [layer.size, layer.size],
        strides: [layer.stride, layer.stride],
        pads: [p, p, p, p],
        ceil_mode: 0,
      });
    }
    case 'global_avgpool': {
      const y = g.op('GlobalAveragePool', [x], `${scope}.avgpool`);
      return g.op('Flatten', [y], `${scope}.avgpool`, { axis: 1 });
    }
    case 'flatten':
      // NCHW already: ONNX Flatten gives PyTorch's order. A vector stays as it is.
      return shape.length === 1 ? x : g.op('Flatten', [x], `${scope}.flatten`, { axis: 1 });
    case 'l2norm': {
      const base = `${scope}.l2norm`;
      const sq = g.op('Mul', [x, x], base);
      const sum = g.op('ReduceSum', [sq, g.constInt64(`${base}/axes`, [1], [1])], base, { keepdims: 1 });
      return g.op('Div', [x, g.op('Sqrt', [sum], base)], base);
    }
    case 'residual': {
      const unit = `${view}.${layer.name}`;
      const body = emitLayers({ ...st, scope: `${unit}.body` }, layer.body, x, shape);
      const sc = layer.shortcut.length
        ? emitLayers({ ...st, scope: `${unit}.shortcut` }, layer.shortcut, x, shape).x
        : x;
      return g.op('Relu', [g.op('Add', [body.x, sc], unit)], unit);
    }
    default:
      return unreachable(layer);
  }
}

/**
 * Emit one view's encoder on NCHW input `x`; returns each block's output tensor (index b-1 for block b)
 * with its per-example NHWC shape (as shapes.ts).
 */
export function emitEncoder(
  g: GraphBuilder,
  encoder: EncoderSpec,
  get: Lookup,
  x: string,
  view: string,
): { name: string; shape: Shape }[] {
  let shape: Shape = [encoder.imageSize, encoder.imageSize, encoder.inChannels];
  const outs: { name: string; shape: Shape }[] = [];
  for (const block of encoder.blocks) {
    const r = emitLayers({ g, get, view, scope: `${view}.${block.name}` }, block.layers, x, shape);
    x = r.x;
    shape = r.shape;
    outs.push({ name: x, shape });
  }
  return outs;
}

// ---------------------------------------------------------------------------------------------------------
// Whole graphs

export interface EncoderGraphOptions {
  /** Colour space of specs without a declared `input` layout (upstream's two views). */
  view: ColorView;
  /** Block (1-based) whose flattened outputs, L then ab, form the `features` output. */
  layer: number;
  /** Adaptive pooling target [h, w] of the block's map (views concatenated along channels) before the flatten. */
  pool?: [number, number] | null;
  /** Default 'max'. */
  poolType?: PoolType;
}

export const INPUT_NAME = 'images';

/**
 * Size of the `features` output for a layer: the sum over views of the flattened block output, or with
 * `pool` [h, w] the sum over views of channels * h * w (the maps must then have the same size).
 */
export function featuresDim(spec: CmcSpec, layer: number, pool?: [number, number] | null): number {
  const shapes = spec.views.map((v) => {
    const all = inferShapes(v.encoder);
    if (layer < 1 || layer >= all.length)
      throw new Error(`layer must be in 1..${all.length - 1} for ${spec.arch}, got ${layer}`);
    return all[layer].shape;
  });
  if (pool) {
    poolMapSize(spec, layer, shapes, pool);
    return shapes.reduce((a, s) => a + s[2] * pool[0] * pool[1], 0);
  }
  return shapes.reduce((a, s) => a + s.reduce((p, q) => p * q, 1), 0);
}

/** The common [H, W] of the views' block maps (NHWC shapes), or an error when the layer cannot be pooled. */
function poolMapSize(spec: CmcSpec, layer: number, shapes: Shape[], pool: [number, number]): [number, number] {
  if (!(pool.length === 2 && pool.every((v) => Number.isInteger(v) && v >= 1)))
    throw new Error(`pool must be [h, w] with positive integers, got ${JSON.stringify(pool)}`);
  for (const s of shapes) {
    if (s.length !== 3)
      throw new Error(
        `layer ${layer} of ${spec.arch} gives vectors; it cannot be adaptively pooled (pool ${JSON.stringify(pool)})`,
      );
    if (s[0] !== shapes[0][0] || s[1] !== shapes[0][1])
      throw new Error(`layer ${layer} of ${spec.arch}: the views' maps differ in size; they cannot be pooled together`);
  }
  return [shapes[0][0], shapes[0][1]];
}

function lookup(params: ParamArrays, view: string): Lookup {
  return (name) => {
    const p = params[`${view}.${name}`];
    if (!p) throw new Error(`missing parameter ${view}.${name}`);
    return p;
  };
}

/** Preprocessing + every view encoder; returns the embedding and features tensors (not yet graph outputs). */
function emitCmc(
  g: GraphBuilder,
  spec: CmcSpec,
  params: ParamArrays,
  o: EncoderGraphOptions,
  names: { embedding: string; features?: string },
) {
  const nchw = emitLayoutInput(g, INPUT_NAME, specInput(spec, o.view));
  const embeddings: string[] = [];
  const features: string[] = [];
  const maps: { name: string; shape: Shape }[] = [];
  for (const view of spec.views) {
    if (view.encoder.imageSize !== spec.imageSize)
      throw new Error(`view ${view.name}: encoder image size ${view.encoder.imageSize} != ${spec.imageSize}`);
    const xv = emitChannels(g, nchw, view.channels, `${view.name}/input`);
    const blocks = emitEncoder(g, view.encoder, lookup(params, view.name), xv, view.name);
    if (o.layer < 1 || o.layer > blocks.length)
      throw new Error(`layer must be in 1..${blocks.length} for ${spec.arch}, got ${o.layer}`);
    embeddings.push(blocks[blocks.length - 1].name);
    const b = blocks[o.layer - 1];
    maps.push(b);
    if (!o.pool)
      features.push(b.shape.length === 1 ? b.name : g.op('Flatten', [b.name], `${view.name}/features`, { axis: 1 }));
  }
  const embedding = g.op('Concat', embeddings, 'embedding', { axis: 1 }, names.embedding);
  let feats: string;
  if (o.pool) {
    // As the probe: concatenate the maps along channels, pool, flatten channel-major.
    const hw = poolMapSize(
      spec,
      o.layer,
      maps.map((m) => m.shape),
      o.pool,
    );
    const cat =
      maps.length === 1
        ? maps[0].name
        : g.op(
            'Concat',
            maps.map((m) => m.name),
            'features/maps',
            { axis: 1 },
          );
    const pooled = emitAdaptivePool2d(g, cat, hw, o.pool, o.poolType ?? 'max', 'features/adaptive_pool');
    feats = g.op('Flatten', [pooled], 'features', { axis: 1 }, names.features);
  } else {
    feats = g.op('Concat', features, 'features', { axis: 1 }, names.features);
  }
  return {
    embedding,
    features: feats,
    embeddingDim: spec.featDim * spec.views.length,
    featuresDim: featuresDim(spec, o.layer, o.pool),
  };
}

function imagesInput(spec: CmcSpec) {
  return valueInfo(INPUT_NAME, DataType.UINT8, ['N', spec.imageSize, spec.imageSize, 3]);
}

/** images uint8 [N, H, W, 3] -> embedding [N, views*featDim], features [N, F]. */
export function buildEncoderGraph(spec: CmcSpec, params: ParamArrays, o: EncoderGraphOptions): IGraphProto {
  const g = new GraphBuilder();
  g.unique(INPUT_NAME);
  const r = emitCmc(g, spec, params, o, { embedding: 'embedding', features: 'features' });
  const graph: IGraphProto = {
    name: `cmc_${spec.arch}_encoder`,
    node: g.nodes,
    initializer: g.initializers,
    input: [imagesInput(spec)],
    output: [
      valueInfo('embedding', DataType.FLOAT, ['N', r.embeddingDim]),
      valueInfo('features', DataType.FLOAT, ['N', r.featuresDim]),
    ],
  };
  checkOps(graph, 'encoder graph');
  return graph;
}

export interface HeadParams {
  /** Row-major [inFeatures, classes]. */
  weight: Float32Array;
  bias: Float32Array;
  inFeatures: number;
  classes: number;
}

function emitHead(g: GraphBuilder, x: string, h: HeadParams, out: string): string {
  if (h.weight.length !== h.inFeatures * h.classes)
    throw new Error(`head weight holds ${h.weight.length} values, expected ${h.inFeatures}x${h.classes}`);
  const w = g.constFloat('head.weight', [h.inFeatures, h.classes], h.weight);
  const b = g.constFloat('head.bias', [h.classes], h.bias);
  return g.op('Gemm', [x, w, b], 'head', { transB: 0, alpha: { float: 1 }, beta: { float: 1 } }, out);
}

/** features [N, F] -> logits [N, C] (one Gemm). */
export function buildHeadGraph(h: HeadParams): IGraphProto {
  const g = new GraphBuilder();
  g.unique('features');
  emitHead(g, 'features', h, 'logits');
  const graph: IGraphProto = {
    name: 'cmc_linear_head',
    node: g.nodes,
    initializer: g.initializers,
    input: [valueInfo('features', DataType.FLOAT, ['N', h.inFeatures])],
    output: [valueInfo('logits', DataType.FLOAT, ['N', h.classes])],
  };
  checkOps(graph, 'head graph');
  return graph;
}

/** images uint8 [N, H, W, 3] -> probabilities [N, C] (Softmax), logits [N, C], embedding [N, views*featDim]. */
export function buildClassifierGraph(
  spec: CmcSpec,
  params: ParamArrays,
  o: EncoderGraphOptions,
  h: HeadParams,
): IGraphProto {
  const g = new GraphBuilder();
  g.unique(INPUT_NAME);
  const r = emitCmc(g, spec, params, o, { embedding: 'embedding' });
  if (r.featuresDim !== h.inFeatures)
    throw new Error(
      `the head takes ${h.inFeatures} features but layer ${o.layer} of ${spec.arch} gives ${r.featuresDim}`,
    );
  const logits = emitHead(g, r.features, h, 'logits');
  g.op('Softmax', [logits], 'probabilities', { axis: 1 }, 'probabilities');
  const graph: IGraphProto = {
    name: `cmc_${spec.arch}_classifier`,
    node: g.nodes,
    initializer: g.initializers,
    input: [imagesInput(spec)],
    output: [
      valueInfo('probabilities', DataType.FLOAT, ['N', h.classes]),
      valueInfo('logits', DataType.FLOAT, ['N', h.classes]),
      valueInfo('embedding', DataType.FLOAT, ['N', r.embeddingDim]),
    ],
  };
  checkOps(graph, 'classifier graph');
  return graph;
}
