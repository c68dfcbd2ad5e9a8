/**
 * Interpreter #3 of the network description: the ONNX graph that emit.ts builds from the spec, rewritten as a
 * TensorFlow GraphDef that @tensorflow/tfjs-converter's loadGraphModel runs (a tfjs "graph model"). The ONNX
 * graph stays the single home of the network's semantics (preprocessing, folded batch norm, adaptive pooling,
 * head); this module only changes the operator vocabulary and the layout.
 *
 * Layout: ONNX convolutions and pools are NCHW, TensorFlow's (and every tfjs backend's) are NHWC. A tensor the
 * ONNX graph holds as NCHW [N, C, H, W] is kept here as NHWC [N, H, W, C] ("nhwc" layout): the ONNX
 * Transpose(0, 3, 1, 2) that enters NCHW becomes no node at all, axes of Slice / Gather / Concat / ReduceSum
 * are remapped (1 -> 3, 2 -> 1, 3 -> 2), per-channel constants [C, 1, 1] become [C], and a Flatten of an nhwc
 * map transposes back to NCHW first so the flattened order stays PyTorch's (skipped when C or H*W is 1).
 *
 * Operators (only TFJS_OPS, each in tfjs-converter 4.22's op list; test/export/tfjs.test.ts checks that):
 *   Conv (group 1)          -> Conv2D (HWIO filter; pads VALID or EXPLICIT) [+ BiasAdd]
 *   Gemm (alpha = beta = 1) -> MatMul (weight stored [in, out]) [+ BiasAdd]
 *   MatMul [.., k] x [k, m] -> MatMul (rank 2) or a 1x1 Conv2D (rank 4 NHWC: the colour matrices)
 *   MaxPool                 -> [PadV2 with -inf, as ONNX's ignored pad cells] + MaxPool VALID (floor mode)
 *   AveragePool (no pads)   -> AvgPool VALID;  GlobalAveragePool -> Mean over H, W (keep dims)
 *   Add/Sub/Mul/Div/Pow/Greater/Where/Relu/Sqrt/Softmax/Cast -> AddV2/Sub/Mul/RealDiv/Pow/Greater/SelectV2/...
 *   Slice / Gather / Concat / ReduceSum / Pad (edge, width 1 = SYMMETRIC) -> Slice / GatherV2 / ConcatV2 / Sum / MirrorPad
 *   Flatten -> [Transpose] + Reshape;  graph outputs -> Identity nodes named as the ONNX outputs.
 * Anything else is refused with the node's name, so a new layer kind cannot silently export wrong.
 *
 * The uint8 input stays DT_UINT8 in the graph (tfjs-converter feeds it as an int32 tensor: tfjs has no uint8
 * dtype, and tf.browser.fromPixels gives int32); Cast then makes it float as in the ONNX graph.
 *
 * One file above ~500 lines on purpose: onnxToTfGraph is one pass over the ONNX nodes whose cases share the
 * table of translated values (name -> TF tensor, layout, shape, element type) and of constants; split by
 * operator, each part would take that whole state and none would read alone. It emits its own vocabulary
 * (TfNode), not through onnx_graph.ts's GraphBuilder, which builds ONNX nodes.
 */
import {
  DataType,
  toNumber,
  type IAttributeProto,
  type IGraphProto,
  type ITensorProto,
  type IValueInfoProto,
} from '../../core/onnx/onnx_proto.ts';

/** TensorFlow operators this translator emits; all are in tfjs-converter 4.22's op list (checked by a test). */
export const TFJS_OPS: ReadonlySet<string> = new Set([
  'Placeholder',
  'Const',
  'Identity',
  'Cast',
  'Conv2D',
  'BiasAdd',
  'MatMul',
  'MaxPool',
  'AvgPool',
  'Mean',
  'Sum',
  'AddV2',
  'Sub',
  'Mul',
  'RealDiv',
  'Pow',
  'Greater',
  'SelectV2',
  'Relu',
  'Sqrt',
  'Softmax',
  'Reshape',
  'Transpose',
  'Slice',
  'GatherV2',
  'ConcatV2',
  'PadV2',
  'MirrorPad',
]);

/** tensorflow.DataType names as the GraphDef JSON spells them. */
export type TfDtype = 'DT_FLOAT' | 'DT_INT32' | 'DT_UINT8' | 'DT_BOOL';

/** An AttrValue in protobuf's JSON mapping (int64 as strings, bytes as base64), as model.json holds it. */
export type TfAttr =
  | { type: TfDtype }
  | { i: string }
  | { f: number }
  | { b: boolean }
  | { s: string }
  | { list: { i: string[] } }
  | { shape: { dim: { size: string }[] } }
  | { tensor: { dtype: TfDtype; tensorShape: { dim?: { size: string }[] } } };

export interface TfNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, TfAttr>;
}

/** A Const node's value: stored in the weight shards (as tensorflowjs_converter stores every constant). */
export interface TfWeight {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

export interface TfTensorInfo {
  name: string;
  dtype: TfDtype;
  tensorShape: { dim: { size: string }[] };
}

export interface TfGraph {
  nodes: TfNode[];
  weights: TfWeight[];
  /** Keyed by the ONNX graph's input / output names (signature keys); `name` is `${node}:0`. */
  signature: { inputs: Record<string, TfTensorInfo>; outputs: Record<string, TfTensorInfo> };
}

type Layout = 'plain' | 'nhwc';
type Elem = 'float' | 'uint8' | 'bool';

/** What the translator knows of an ONNX tensor: where it lives in the TF graph, its ONNX shape and layout. */
interface Value {
  /** TF tensor reference (node name; outputs other than 0 are not used). */
  tf: string;
  /** ONNX (logical) shape; -1 = the batch. */
  shape: number[];
  layout: Layout;
  elem: Elem;
}

interface Constant {
  dims: number[];
  dataType: number;
  values: number[] | Float32Array;
}

export class TfjsExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TfjsExportError';
  }
}

const dimsJson = (shape: number[]) => ({ dim: shape.map((d) => ({ size: String(d) })) });
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const ints = (v: number[]): TfAttr => ({ list: { i: v.map(String) } });

/** ONNX NCHW axis -> NHWC axis for 4-D tensors kept in nhwc layout. */
const NHWC_AXIS = [0, 3, 1, 2];

function floatsOf(t: ITensorProto): Float32Array {
  if (t.rawData && t.rawData.length) {
    const raw = t.rawData;
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  return Float32Array.from(t.floatData ?? []);
}

function int64sOf(t: ITensorProto): number[] {
  if (t.rawData && t.rawData.length) {
    const raw = t.rawData;
    return Array.from(new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)), Number);
  }
  return (t.int64Data ?? []).map(toNumber);
}

function attrMap(list: IAttributeProto[] | null | undefined): Map<string, IAttributeProto> {
  return new Map((list ?? []).map((a) => [a.name ?? '', a]));
}

function broadcast(a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    out.push(x === 1 ? y : y === 1 ? x : x === -1 || y === -1 ? -1 : x === y ? x : NaN);
  }
  if (out.some(Number.isNaN)) throw new TfjsExportError(`shapes [${a}] and [${b}] do not broadcast`);
  return out;
}

const ELEMWISE: Record<string, string> = {
  Add: 'AddV2',
  Sub: 'Sub',
  Mul: 'Mul',
  Div: 'RealDiv',
  Pow: 'Pow',
  Greater: 'Greater',
};
const UNARY: Record<string, string> = { Relu: 'Relu', Sqrt: 'Sqrt' };

/** Translate an ONNX graph built by emit.ts into a TF GraphDef with its weights. */
export function onnxToTfGraph(graph: IGraphProto, what = 'graph'): TfGraph {
  const nodes: TfNode[] = [];
  const weights: TfWeight[] = [];
  const used = new Set<string>();
  const values = new Map<string, Value>();
  const consts = new Map<string, Constant>();
  /** Const nodes already made, keyed by ONNX initializer name + variant. */
  const constNodes = new Map<string, string>();

  const unique = (base: string): string => {
    const clean = base.replace(/[^A-Za-z0-9_./-]/g, '_').replace(/^[^A-Za-z0-9.]+/, '') || 'node';
    let name = clean;
    for (let k = 1; used.has(name); k++) name = `${clean}_${k}`;
    used.add(name);
    return name;
  };
  const add = (op: string, base: string, input: string[], attr: Record<string, TfAttr> = {}): string => {
    if (!TFJS_OPS.has(op))
      throw new TfjsExportError(
        `${what}: operator ${op} is not in the tfjs export's list (${[...TFJS_OPS].join(', ')})`,
      );
    const name = unique(base);
    nodes.push({ name, op, input, attr });
    return name;
  };
  const constNode = (base: string, shape: number[], data: Float32Array | Int32Array): string => {
    const dtype: TfDtype = data instanceof Int32Array ? 'DT_INT32' : 'DT_FLOAT';
    const name = add('Const', base, [], {
      value: { tensor: { dtype, tensorShape: dimsJson(shape) } },
      dtype: { type: dtype },
    });
    weights.push({ name, shape, dtype: dtype === 'DT_INT32' ? 'int32' : 'float32', data });
    return name;
  };
  const intConst = (base: string, v: number[], scalar = false) =>
    constNode(base, scalar ? [] : [v.length], Int32Array.from(v));

  for (const t of graph.initializer ?? []) {
    const dims = (t.dims ?? []).map(toNumber);
    const dt = t.dataType ?? 0;
    if (dt === DataType.FLOAT) consts.set(t.name ?? '', { dims, dataType: dt, values: floatsOf(t) });
    else if (dt === DataType.INT64) consts.set(t.name ?? '', { dims, dataType: dt, values: int64sOf(t) });
    else
      throw new TfjsExportError(
        `${what}: initializer ${t.name} has data type ${dt}; only float32 and int64 constants are translated`,
      );
  }
  const constOf = (name: string, node: string): Constant => {
    const c = consts.get(name);
    if (!c) throw new TfjsExportError(`${what}: node ${node} needs '${name}' to be a constant (initializer)`);
    return c;
  };
  const intsOf = (name: string, node: string): number[] => Array.from(constOf(name, node).values, Number);

  /** A float initializer as a TF Const, reshaped for the layout of the tensor it combines with. */
  const floatOperand = (name: string, partner: Value, node: string): Value => {
    const c = constOf(name, node);
    if (c.dataType !== DataType.FLOAT)
      throw new TfjsExportError(`${what}: node ${node}: constant ${name} is not float32`);
    let shape = c.dims;
    if (partner.layout === 'nhwc' && shape.length > 1) {
      // Per-channel [C, 1, 1] against NCHW: along the last axis in NHWC.
      if (shape.length === 3 && shape[1] === 1 && shape[2] === 1) shape = [shape[0]];
      else
        throw new TfjsExportError(
          `${what}: node ${node}: constant ${name} of shape [${c.dims}] cannot be re-laid out for an NHWC tensor`,
        );
    }
    const key = `${name}|${shape.join('x')}`;
    let tf = constNodes.get(key);
    if (!tf) {
      tf = constNode(name, shape, c.values instanceof Float32Array ? c.values : Float32Array.from(c.values));
      constNodes.set(key, tf);
    }
    return { tf, shape: c.dims, layout: 'plain', elem: 'float' };
  };

  const valueOf = (name: string, node: string): Value => {
    const v = values.get(name);
    if (!v)
      throw new TfjsExportError(
        `${what}: node ${node} reads '${name}', which is neither a graph input nor computed before it`,
      );
    return v;
  };
  const axisOf = (v: Value, axis: number): number => {
    const a = axis < 0 ? axis + v.shape.length : axis;
    return v.layout === 'nhwc' ? NHWC_AXIS[a] : a;
  };

  for (const inp of graph.input ?? []) {
    if (consts.has(inp.name ?? '')) continue;
    const tt = (inp as IValueInfoProto).type?.tensorType;
    const shape = (tt?.shape?.dim ?? []).map((d) =>
      d.dimValue !== undefined && d.dimValue !== null && toNumber(d.dimValue) > 0 ? toNumber(d.dimValue) : -1,
    );
    const elem: Elem =
      tt?.elemType === DataType.UINT8
        ? 'uint8'
        : tt?.elemType === DataType.FLOAT
          ? 'float'
          : (() => {
              throw new TfjsExportError(
                `${what}: input ${inp.name} has element type ${tt?.elemType}; only uint8 and float32 inputs are translated`,
              );
            })();
    const dtype: TfDtype = elem === 'uint8' ? 'DT_UINT8' : 'DT_FLOAT';
    const tf = add('Placeholder', inp.name ?? 'input', [], {
      dtype: { type: dtype },
      shape: { shape: dimsJson(shape) },
    });
    values.set(inp.name ?? '', { tf, shape, layout: 'plain', elem });
  }

  for (const n of graph.node ?? []) {
    const op = n.opType ?? '';
    const nodeName = n.name || op;
    const ins = n.input ?? [];
    const a = attrMap(n.attribute);
    const int = (k: string, d: number) => (a.has(k) ? toNumber(a.get(k)!.i) : d);
    const intList = (k: string, d: number[]) => (a.has(k) ? (a.get(k)!.ints ?? []).map(toNumber) : d);
    const refuse = (why: string): never => {
      throw new TfjsExportError(`${what}: node ${nodeName} (${op}) cannot be exported to tfjs: ${why}`);
    };
    const out = n.output?.[0] ?? '';
    const set = (v: Value) => values.set(out, v);
    const operand = (name: string, partner: Value): Value =>
      consts.has(name) ? floatOperand(name, partner, nodeName) : valueOf(name, nodeName);

    if (op in ELEMWISE) {
      const [l, r] = ins;
      const partner = consts.has(l) ? valueOf(r, nodeName) : valueOf(l, nodeName);
      const x = operand(l, partner);
      const y = operand(r, partner);
      if (!consts.has(l) && !consts.has(r) && x.layout !== y.layout) refuse('operands in different layouts');
      const shape = broadcast(x.shape, y.shape);
      set({
        tf: add(ELEMWISE[op], nodeName, [x.tf, y.tf]),
        shape,
        layout: partner.layout,
        elem: op === 'Greater' ? 'bool' : 'float',
      });
    } else if (op in UNARY) {
      const x = valueOf(ins[0], nodeName);
      set({ ...x, tf: add(UNARY[op], nodeName, [x.tf]) });
    } else if (op === 'Where') {
      const c = valueOf(ins[0], nodeName);
      const x = operand(ins[1], c);
      const y = operand(ins[2], c);
      if ([1, 2].some((k) => !consts.has(ins[k]) && valueOf(ins[k], nodeName).layout !== c.layout))
        refuse('operands in different layouts');
      set({
        tf: add('SelectV2', nodeName, [c.tf, x.tf, y.tf]),
        shape: broadcast(broadcast(c.shape, x.shape), y.shape),
        layout: c.layout,
        elem: 'float',
      });
    } else if (op === 'Cast') {
      const x = valueOf(ins[0], nodeName);
      if (int('to', 0) !== DataType.FLOAT) refuse('only casts to float32 are translated');
      const src: TfDtype = x.elem === 'uint8' ? 'DT_UINT8' : x.elem === 'bool' ? 'DT_BOOL' : 'DT_FLOAT';
      set({
        ...x,
        elem: 'float',
        tf: add('Cast', nodeName, [x.tf], { SrcT: { type: src }, DstT: { type: 'DT_FLOAT' }, Truncate: { b: false } }),
      });
    } else if (op === 'Transpose') {
      const x = valueOf(ins[0], nodeName);
      const perm = intList('perm', []);
      if (x.layout === 'plain' && x.shape.length === 4 && perm.join() === '0,3,1,2') {
        // Into NCHW: the data stays NHWC here (no node).
        set({ ...x, shape: [x.shape[0], x.shape[3], x.shape[1], x.shape[2]], layout: 'nhwc' });
      } else if (x.layout === 'plain') {
        set({
          ...x,
          shape: perm.map((p) => x.shape[p]),
          tf: add('Transpose', nodeName, [x.tf, intConst(`${nodeName}/perm`, perm)]),
        });
      } else {
        refuse(`transpose [${perm}] of an NCHW tensor`);
      }
    } else if (op === 'MatMul') {
      const x = valueOf(ins[0], nodeName);
      const w = constOf(ins[1], nodeName);
      if (x.layout !== 'plain' || w.dims.length !== 2 || x.shape[x.shape.length - 1] !== w.dims[0])
        refuse(`input [${x.shape}] x constant [${w.dims}]`);
      const [k, m] = w.dims;
      const data = Float32Array.from(w.values);
      let tf: string;
      if (x.shape.length === 2)
        tf = add('MatMul', nodeName, [x.tf, constNode(`${nodeName}/weight`, [k, m], data)], {
          transpose_a: { b: false },
          transpose_b: { b: false },
        });
      else if (x.shape.length === 4) {
        // A matrix on the channel axis of an NHWC image (colour conversion): a 1x1 convolution.
        tf = add('Conv2D', nodeName, [x.tf, constNode(`${nodeName}/weight`, [1, 1, k, m], data)], {
          strides: ints([1, 1, 1, 1]),
          padding: { s: b64('VALID') },
          data_format: { s: b64('NHWC') },
          dilations: ints([1, 1, 1, 1]),
        });
      } else return refuse(`rank-${x.shape.length} input`);
      set({ ...x, tf, shape: [...x.shape.slice(0, -1), m] });
    } else if (op === 'Conv') {
      const x = valueOf(ins[0], nodeName);
      if (x.layout !== 'nhwc') refuse('input is not an NCHW image');
      const w = constOf(ins[1], nodeName);
      const [o, i, kh, kw] = w.dims;
      if (int('group', 1) !== 1) refuse('grouped convolution');
      if (intList('dilations', [1, 1]).some((d) => d !== 1)) refuse('dilated convolution');
      if (i !== x.shape[1]) refuse(`weight takes ${i} channels, input has ${x.shape[1]}`);
      const [sh, sw] = intList('strides', [1, 1]);
      const [pt, pl, pb, pr] = intList('pads', [0, 0, 0, 0]);
      // ONNX [O, I, kh, kw] -> TF HWIO [kh, kw, I, O].
      const src = w.values;
      const hwio = new Float32Array(src.length);
      for (let oo = 0; oo < o; oo++)
        for (let ii = 0; ii < i; ii++)
          for (let y = 0; y < kh; y++)
            for (let xx = 0; xx < kw; xx++) {
              hwio[((y * kw + xx) * i + ii) * o + oo] = src[((oo * i + ii) * kh + y) * kw + xx];
            }
      const pads = [pt, pl, pb, pr];
      const attr: Record<string, TfAttr> = {
        strides: ints([1, sh, sw, 1]),
        data_format: { s: b64('NHWC') },
        dilations: ints([1, 1, 1, 1]),
        ...(pads.every((p) => p === 0)
          ? { padding: { s: b64('VALID') } }
          : { padding: { s: b64('EXPLICIT') }, explicit_paddings: ints([0, 0, pt, pb, pl, pr, 0, 0]) }),
      };
      let tf = add('Conv2D', nodeName, [x.tf, constNode(`${nodeName}/filter`, [kh, kw, i, o], hwio)], attr);
      if (ins[2])
        tf = add(
          'BiasAdd',
          `${nodeName}/bias_add`,
          [tf, constNode(`${nodeName}/bias`, [o], Float32Array.from(constOf(ins[2], nodeName).values))],
          { data_format: { s: b64('NHWC') } },
        );
      const [, , h, wd] = x.shape;
      set({
        tf,
        shape: [x.shape[0], o, Math.floor((h + pt + pb - kh) / sh) + 1, Math.floor((wd + pl + pr - kw) / sw) + 1],
        layout: 'nhwc',
        elem: 'float',
      });
    } else if (op === 'Gemm') {
      const x = valueOf(ins[0], nodeName);
      if (x.shape.length !== 2) refuse(`rank-${x.shape.length} input`);
      if (int('transA', 0) !== 0) refuse('transA');
      for (const k of ['alpha', 'beta']) if (a.has(k) && a.get(k)!.f !== 1) refuse(`${k} != 1`);
      const w = constOf(ins[1], nodeName);
      const transB = int('transB', 0) === 1;
      const [r, c] = w.dims;
      const fin = transB ? c : r;
      const out = transB ? r : c;
      if (fin !== x.shape[1]) refuse(`weight takes ${fin} features, input has ${x.shape[1]}`);
      const data = new Float32Array(fin * out);
      for (let p = 0; p < fin; p++)
        for (let q = 0; q < out; q++) data[p * out + q] = transB ? w.values[q * fin + p] : w.values[p * out + q];
      let tf = add('MatMul', nodeName, [x.tf, constNode(`${nodeName}/weight`, [fin, out], data)], {
        transpose_a: { b: false },
        transpose_b: { b: false },
      });
      if (ins[2])
        tf = add(
          'BiasAdd',
          `${nodeName}/bias_add`,
          [tf, constNode(`${nodeName}/bias`, [out], Float32Array.from(constOf(ins[2], nodeName).values))],
          { data_format: { s: b64('NHWC') } },
        );
      set({ tf, shape: [x.shape[0], out], layout: 'plain', elem: 'float' });
    } else if (op === 'MaxPool' || op === 'AveragePool') {
      const x = valueOf(ins[0], nodeName);
      if (x.layout !== 'nhwc') refuse('input is not an NCHW image');
      if (int('ceil_mode', 0) !== 0) refuse('ceil_mode 1');
      if (a.has('dilations') && intList('dilations', []).some((d) => d !== 1)) refuse('dilated pooling');
      const [kh, kw] = intList('kernel_shape', []);
      const [sh, sw] = intList('strides', [1, 1]);
      const [pt, pl, pb, pr] = intList('pads', [0, 0, 0, 0]);
      let tf = x.tf;
      if (pt || pl || pb || pr) {
        // ONNX MaxPool ignores padded cells: pad with -inf (PyTorch's padding), then pool without pads.
        if (op === 'AveragePool') refuse('padded average pooling');
        tf = add('PadV2', `${nodeName}/pad`, [
          tf,
          constNode(`${nodeName}/paddings`, [4, 2], Int32Array.from([0, 0, pt, pb, pl, pr, 0, 0])),
          constNode(`${nodeName}/neg_inf`, [], Float32Array.of(-Infinity)),
        ]);
      }
      tf = add(op === 'MaxPool' ? 'MaxPool' : 'AvgPool', nodeName, [tf], {
        ksize: ints([1, kh, kw, 1]),
        strides: ints([1, sh, sw, 1]),
        padding: { s: b64('VALID') },
        data_format: { s: b64('NHWC') },
      });
      const [, c, h, wd] = x.shape;
      set({
        tf,
        shape: [x.shape[0], c, Math.floor((h + pt + pb - kh) / sh) + 1, Math.floor((wd + pl + pr - kw) / sw) + 1],
        layout: 'nhwc',
        elem: 'float',
      });
    } else if (op === 'GlobalAveragePool') {
      const x = valueOf(ins[0], nodeName);
      if (x.layout !== 'nhwc') refuse('input is not an NCHW image');
      set({
        ...x,
        tf: add('Mean', nodeName, [x.tf, intConst(`${nodeName}/axes`, [1, 2])], {
          keep_dims: { b: true },
          Tidx: { type: 'DT_INT32' },
        }),
        shape: [x.shape[0], x.shape[1], 1, 1],
      });
    } else if (op === 'Flatten') {
      const x = valueOf(ins[0], nodeName);
      if (int('axis', 1) !== 1) refuse('axis != 1');
      const rest = x.shape.slice(1).reduce((p, q) => p * q, 1);
      if (x.shape.length === 2) {
        set(x);
      } else {
        let tf = x.tf;
        // PyTorch's NCHW flatten order; the same as NHWC's when C or H*W is 1.
        if (x.layout === 'nhwc' && x.shape[1] !== 1 && x.shape[2] * x.shape[3] !== 1)
          tf = add('Transpose', `${nodeName}/to_nchw`, [tf, intConst(`${nodeName}/perm`, [0, 3, 1, 2])]);
        set({
          tf: add('Reshape', nodeName, [tf, intConst(`${nodeName}/shape`, [-1, rest])]),
          shape: [x.shape[0], rest],
          layout: 'plain',
          elem: x.elem,
        });
      }
    } else if (op === 'Concat') {
      const xs = ins.map((i) => valueOf(i, nodeName));
      if (xs.some((v) => v.layout !== xs[0].layout || v.shape.length !== xs[0].shape.length))
        refuse('inputs in different layouts');
      const axis = int('axis', 0);
      const ax = axis < 0 ? axis + xs[0].shape.length : axis;
      const shape = xs[0].shape.slice();
      shape[ax] = xs.reduce((s, v) => s + v.shape[ax], 0);
      const tf =
        xs.length === 1
          ? xs[0].tf
          : add(
              'ConcatV2',
              nodeName,
              [...xs.map((v) => v.tf), intConst(`${nodeName}/axis`, [axisOf(xs[0], ax)], true)],
              { N: { i: String(xs.length) } },
            );
      set({ ...xs[0], tf, shape });
    } else if (op === 'Slice') {
      const x = valueOf(ins[0], nodeName);
      const starts = intsOf(ins[1], nodeName);
      const ends = intsOf(ins[2], nodeName);
      const axes = ins[3] ? intsOf(ins[3], nodeName) : starts.map((_, k) => k);
      if (ins[4] && intsOf(ins[4], nodeName).some((s) => s !== 1)) refuse('steps other than 1');
      const shape = x.shape.slice();
      const begin = x.shape.map(() => 0);
      const size = x.shape.map(() => -1);
      axes.forEach((ax0, k) => {
        const ax = ax0 < 0 ? ax0 + x.shape.length : ax0;
        const d = x.shape[ax];
        if (d < 0) refuse('slice along the batch axis');
        const s = Math.max(0, Math.min(d, starts[k] < 0 ? starts[k] + d : starts[k]));
        const e = Math.max(s, Math.min(d, ends[k] < 0 ? ends[k] + d : ends[k]));
        const t = axisOf(x, ax);
        begin[t] = s;
        size[t] = e - s;
        shape[ax] = e - s;
      });
      set({
        ...x,
        shape,
        tf: add('Slice', nodeName, [x.tf, intConst(`${nodeName}/begin`, begin), intConst(`${nodeName}/size`, size)], {
          Index: { type: 'DT_INT32' },
        }),
      });
    } else if (op === 'Gather') {
      const x = valueOf(ins[0], nodeName);
      const idx = constOf(ins[1], nodeName);
      if (idx.dims.length !== 1) refuse('indices are not a vector');
      const axis = int('axis', 0);
      const ax = axis < 0 ? axis + x.shape.length : axis;
      const shape = x.shape.slice();
      shape[ax] = idx.dims[0];
      const tf = add(
        'GatherV2',
        nodeName,
        [
          x.tf,
          intConst(`${nodeName}/indices`, Array.from(idx.values, Number)),
          intConst(`${nodeName}/axis`, [axisOf(x, ax)], true),
        ],
        { batch_dims: { i: '0' } },
      );
      set({ ...x, tf, shape });
    } else if (op === 'Pad') {
      const x = valueOf(ins[0], nodeName);
      const pads = intsOf(ins[1], nodeName);
      const r = x.shape.length;
      const mode = a.has('mode') ? new TextDecoder().decode(a.get('mode')!.s ?? new Uint8Array()) : 'constant';
      const phys = Array.from({ length: r }, () => [0, 0]);
      const shape = x.shape.slice();
      for (let k = 0; k < r; k++) {
        phys[axisOf(x, k)] = [pads[k], pads[k + r]];
        if (shape[k] >= 0) shape[k] += pads[k] + pads[k + r];
      }
      const paddings = constNode(`${nodeName}/paddings`, [r, 2], Int32Array.from(phys.flat()));
      let tf: string;
      if (mode === 'edge') {
        // Replicated borders: for a width of 1, TF's SYMMETRIC mode repeats exactly the edge cell.
        if (pads.some((p) => p > 1)) refuse('edge padding wider than 1');
        tf = add('MirrorPad', nodeName, [x.tf, paddings], { mode: { s: b64('SYMMETRIC') } });
      } else if (mode === 'reflect') {
        tf = add('MirrorPad', nodeName, [x.tf, paddings], { mode: { s: b64('REFLECT') } });
      } else if (mode === 'constant') {
        const v = ins[2] ? Number(constOf(ins[2], nodeName).values[0]) : 0;
        tf = add('PadV2', nodeName, [x.tf, paddings, constNode(`${nodeName}/value`, [], Float32Array.of(v))]);
      } else return refuse(`mode ${mode}`);
      set({ ...x, tf, shape });
    } else if (op === 'ReduceSum') {
      const x = valueOf(ins[0], nodeName);
      const axes = ins[1] ? intsOf(ins[1], nodeName) : intList('axes', []);
      if (axes.length === 0) refuse('reduction over all axes');
      const keep = int('keepdims', 1) === 1;
      if (!keep && x.layout === 'nhwc') refuse('dropping axes of an NCHW tensor');
      const norm = axes.map((ax) => (ax < 0 ? ax + x.shape.length : ax));
      const shape = keep
        ? x.shape.map((d, k) => (norm.includes(k) ? 1 : d))
        : x.shape.filter((_, k) => !norm.includes(k));
      set({
        ...x,
        shape,
        tf: add(
          'Sum',
          nodeName,
          [
            x.tf,
            intConst(
              `${nodeName}/axes`,
              norm.map((ax) => axisOf(x, ax)),
            ),
          ],
          { keep_dims: { b: keep }, Tidx: { type: 'DT_INT32' } },
        ),
      });
    } else if (op === 'Softmax') {
      const x = valueOf(ins[0], nodeName);
      const axis = int('axis', -1);
      if (x.layout !== 'plain' || (axis !== -1 && axis !== x.shape.length - 1))
        refuse('softmax over an axis other than the last');
      set({ ...x, tf: add('Softmax', nodeName, [x.tf]) });
    } else {
      refuse(
        `operator ${op} has no translation (translated: Add, Sub, Mul, Div, Pow, Greater, Where, Relu, Sqrt, Cast, Transpose, MatMul, Conv, Gemm, MaxPool, AveragePool, GlobalAveragePool, Flatten, Concat, Slice, Gather, Pad, ReduceSum, Softmax)`,
      );
    }
    if ((n.output ?? []).length > 1) refuse('more than one output');
  }

  const signature: TfGraph['signature'] = { inputs: {}, outputs: {} };
  for (const inp of graph.input ?? []) {
    const v = values.get(inp.name ?? '');
    if (!v) continue;
    signature.inputs[inp.name ?? ''] = {
      name: `${v.tf}:0`,
      dtype: v.elem === 'uint8' ? 'DT_UINT8' : 'DT_FLOAT',
      tensorShape: dimsJson(v.shape),
    };
  }
  for (const o of graph.output ?? []) {
    const name = o.name ?? '';
    const v = valueOf(name, `output ${name}`);
    if (v.layout !== 'plain')
      throw new TfjsExportError(`${what}: output ${name} is an NCHW image; only plain outputs are translated`);
    if (used.has(name)) throw new TfjsExportError(`${what}: output name ${name} collides with a node name`);
    const tf = add('Identity', name, [v.tf], { T: { type: 'DT_FLOAT' } });
    signature.outputs[name] = { name: `${tf}:0`, dtype: 'DT_FLOAT', tensorShape: dimsJson(v.shape) };
  }
  return { nodes, weights, signature };
}
