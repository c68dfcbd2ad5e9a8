/**
 * Adaptive pooling of the `features` map inside the ONNX graph (a linear-probe head trained on pooled
 * features, train/eval/linear_probe.ts): the views' block outputs, concatenated along channels, pooled with
 * PyTorch's adaptive bins (core/network/pooling.ts). Bins are rectangles, so the pooling is separable (rows,
 * then columns, as train/eval/pooling.ts); along one axis, for each distinct bin size k a MaxPool /
 * AveragePool with kernel k (1 on the other axis), stride 1, gives every window of size k, a Gather takes the
 * windows starting at those bins' starts, and when there are several sizes the groups are Concat-ed and a
 * last Gather restores bin order. Exact for max; for avg the same mean of the same cells.
 */
import { adaptiveBins, type PoolType } from '../../core/network/pooling.ts';
import { DataType, valueInfo, type IGraphProto } from '../../core/onnx/onnx_proto.ts';
import { GraphBuilder } from './onnx_graph.ts';

/** Adaptive pooling of NCHW `x` along one spatial axis (2 = H, 3 = W) from `inSize` to `outSize`. */
function emitAdaptivePoolAxis(
  g: GraphBuilder,
  x: string,
  axis: 2 | 3,
  inSize: number,
  outSize: number,
  type: PoolType,
  base: string,
): string {
  if (inSize === outSize) return x; // every bin is one cell
  const bins = adaptiveBins(inSize, outSize);
  const sizes = [...new Set(bins.map(([s, e]) => e - s))].sort((a, b) => a - b);
  const groups: string[] = [];
  const order: number[] = []; // bin index at each position of the concatenation
  for (const k of sizes) {
    const b = `${base}/k${k}`;
    const pooled =
      k === 1
        ? x
        : g.op(type === 'max' ? 'MaxPool' : 'AveragePool', [x], b, {
            kernel_shape: axis === 2 ? [k, 1] : [1, k],
            strides: [1, 1],
            pads: [0, 0, 0, 0],
            ceil_mode: 0,
            ...(type === 'avg' ? { count_include_pad: 0 } : {}),
          });
    const members = bins.map((bin, i) => ({ i, s: bin[0], k: bin[1] - bin[0] })).filter((m) => m.k === k);
    // Window j of the stride-1 pool covers cells [j, j + k): the bin starting at s is window s.
    const starts = members.map((m) => m.s);
    groups.push(g.op('Gather', [pooled, g.constInt64(`${b}/starts`, [starts.length], starts)], b, { axis }));
    order.push(...members.map((m) => m.i));
  }
  if (groups.length === 1) return groups[0]; // bins of one size: the starts are already in bin order
  const cat = g.op('Concat', groups, base, { axis });
  const perm = new Array<number>(outSize);
  order.forEach((bin, pos) => (perm[bin] = pos));
  return g.op('Gather', [cat, g.constInt64(`${base}/order`, [outSize], perm)], `${base}/order`, { axis });
}

/**
 * AdaptiveMaxPool2d / AdaptiveAvgPool2d of NCHW `x` with spatial size [inH, inW] to `out` (rows, then
 * columns, as train/eval/pooling.ts adaptivePool2d). Returns `x` itself when `out` is the map size.
 */
export function emitAdaptivePool2d(
  g: GraphBuilder,
  x: string,
  inHW: [number, number],
  out: [number, number],
  type: PoolType,
  base = 'adaptive_pool',
): string {
  if (type !== 'max' && type !== 'avg')
    throw new Error(`adaptive pooling type must be max or avg, got ${String(type)}`);
  const rows = emitAdaptivePoolAxis(g, x, 2, inHW[0], out[0], type, `${base}/rows`);
  return emitAdaptivePoolAxis(g, rows, 3, inHW[1], out[1], type, `${base}/cols`);
}

/**
 * A graph NCHW `x` [N, C, inH, inW] -> adaptive pooled `y` [N, C, out[0], out[1]] (for tests; when `out` is
 * the map size the graph is one Identity, which is not in WEBGPU_OPS: the exporter emits nothing then).
 */
export function buildAdaptivePoolGraph(
  c: number,
  inHW: [number, number],
  out: [number, number],
  type: PoolType,
): IGraphProto {
  const g = new GraphBuilder();
  g.unique('x');
  const y = emitAdaptivePool2d(g, 'x', inHW, out, type);
  const yOut = y === 'x' ? g.op('Identity', ['x'], 'y', {}, 'y') : y;
  const graph: IGraphProto = {
    name: 'adaptive_pool',
    node: g.nodes,
    initializer: g.initializers,
    input: [valueInfo('x', DataType.FLOAT, ['N', c, inHW[0], inHW[1]])],
    output: [valueInfo(yOut, DataType.FLOAT, ['N', c, out[0], out[1]])],
  };
  return graph;
}
