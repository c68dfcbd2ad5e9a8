/**
 * Building ONNX graphs for onnxruntime-web's WebGPU execution provider: GraphBuilder collects nodes and
 * initializers under unique names, and checkOps refuses any operator outside WEBGPU_OPS. Every emitter
 * (emit.ts, emit_preprocess.ts, emit_pool.ts) writes through a GraphBuilder.
 */
import {
  OPSET,
  floatTensor,
  int64Tensor,
  makeNode,
  type AttrValue,
  type IGraphProto,
  type INodeProto,
  type ITensorProto,
} from '../../core/onnx/onnx_proto.ts';

/**
 * ai.onnx operators onnxruntime-web's WebGPU execution provider implements at opset 17 (from
 * onnxruntime-web 1.30 docs/webgpu-operators.md). The exporter refuses graphs using anything else.
 */
export const WEBGPU_OPS: ReadonlySet<string> = new Set([
  'Abs',
  'Acos',
  'Acosh',
  'Add',
  'ArgMax',
  'ArgMin',
  'Asin',
  'Asinh',
  'Atan',
  'Atanh',
  'AveragePool',
  'BatchNormalization',
  'Cast',
  'Ceil',
  'Clip',
  'Concat',
  'Conv',
  'ConvTranspose',
  'Cos',
  'Cosh',
  'CumSum',
  'DFT',
  'DepthToSpace',
  'DequantizeLinear',
  'Div',
  'Einsum',
  'Elu',
  'Equal',
  'Erf',
  'Exp',
  'Expand',
  'Flatten',
  'Floor',
  'Gather',
  'GatherElements',
  'GatherND',
  'Gemm',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'Greater',
  'GreaterOrEqual',
  'GridSample',
  'HardSigmoid',
  'HardSwish',
  'If',
  'InstanceNormalization',
  'LayerNormalization',
  'LeakyRelu',
  'Less',
  'LessOrEqual',
  'Log',
  'MatMul',
  'MaxPool',
  'Mul',
  'Neg',
  'Not',
  'Pad',
  'Pow',
  'Range',
  'Reciprocal',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceMax',
  'ReduceMean',
  'ReduceMin',
  'ReduceProd',
  'ReduceSum',
  'ReduceSumSquare',
  'Relu',
  'Reshape',
  'Resize',
  'ScatterND',
  'Shape',
  'Sigmoid',
  'Sin',
  'Sinh',
  'Slice',
  'Softmax',
  'Split',
  'Sqrt',
  'Squeeze',
  'Sub',
  'Tan',
  'Tanh',
  'ThresholdedRelu',
  'Tile',
  'Transpose',
  'Unsqueeze',
  'Where',
]);

/** Throws if a node uses an operator outside WEBGPU_OPS (or a domain other than ai.onnx). */
export function checkOps(graph: IGraphProto, what = 'graph'): void {
  for (const n of graph.node ?? []) {
    const domain = n.domain ?? '';
    if (domain !== '' && domain !== 'ai.onnx') {
      throw new Error(`${what}: node ${n.name} uses domain '${domain}'; only ai.onnx (opset ${OPSET}) is exported`);
    }
    if (!WEBGPU_OPS.has(n.opType ?? '')) {
      throw new Error(
        `${what}: node ${n.name} uses operator '${n.opType}', which onnxruntime-web's WebGPU execution provider ` +
          `does not implement; the exporter only emits operators from its list (${[...WEBGPU_OPS].join(', ')})`,
      );
    }
  }
}

/** Collects nodes and initializers with unique names. */
export class GraphBuilder {
  readonly nodes: INodeProto[] = [];
  readonly initializers: ITensorProto[] = [];
  private readonly used = new Set<string>();

  /** A fresh tensor/node name based on `base`. */
  unique(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_./:-]/g, '_');
    let name = clean;
    for (let k = 1; this.used.has(name); k++) name = `${clean}_${k}`;
    this.used.add(name);
    return name;
  }

  /** Add a node with one output; returns the output name (`out` if given, which must be unused). */
  op(opType: string, inputs: string[], base: string, attrs: Record<string, AttrValue> = {}, out?: string): string {
    const output = out ?? this.unique(`${base}/${opType}`);
    if (out) {
      if (this.used.has(out)) throw new Error(`tensor name ${out} already used`);
      this.used.add(out);
    }
    this.nodes.push(makeNode(opType, inputs, [output], this.unique(`${base}/${opType}_node`), attrs));
    return output;
  }

  constFloat(base: string, dims: number[], data: Float32Array | number[]): string {
    const name = this.unique(base);
    this.initializers.push(floatTensor(name, dims, data));
    return name;
  }

  constInt64(base: string, dims: number[], values: number[]): string {
    const name = this.unique(base);
    this.initializers.push(int64Tensor(name, dims, values));
    return name;
  }
}
