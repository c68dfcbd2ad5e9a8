/**
 * ONNX ModelProto encoding and decoding with the maintained protobuf schema of the `onnx-proto` package
 * (protobufjs static code generated from onnx.proto v1.10, IR version 8), plus small builders and the
 * validating loader used before a model is handed to onnxruntime.
 *
 *   const bytes = encodeModel(makeModel({ graph, metadata: { 'cmc.view': 'Lab' } }));
 *   const { model, bytes: b } = loadOnnxModel('models/demo/encoder.onnx'); // throws a clear error if corrupt
 *
 * We export ai.onnx opset 17 with ir_version 8. Float tensors are stored as raw little-endian bytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type ModelProto = import('onnx-proto').onnx.ModelProto;
export type IModelProto = import('onnx-proto').onnx.IModelProto;
export type IGraphProto = import('onnx-proto').onnx.IGraphProto;
export type INodeProto = import('onnx-proto').onnx.INodeProto;
export type ITensorProto = import('onnx-proto').onnx.ITensorProto;
export type IValueInfoProto = import('onnx-proto').onnx.IValueInfoProto;
export type IAttributeProto = import('onnx-proto').onnx.IAttributeProto;

/** The opset (default domain ai.onnx) and IR version of every exported model. */
export const OPSET = 17;
export const IR_VERSION = 8;
export const PRODUCER_NAME = 'cmc-ts';
export const PRODUCER_VERSION = '0.1.0';

export const DataType = onnx.TensorProto.DataType;
const AttrType = onnx.AttributeProto.AttributeType;

/** Bytes per element of the tensor types we use (raw_data sizes). */
const ELEM_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.DOUBLE]: 8,
  [DataType.FLOAT16]: 2,
};

/** protobufjs decodes int64 fields as Long objects (or numbers); this gives a JS number. */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'toNumber' in v && typeof (v as { toNumber: unknown }).toNumber === 'function') {
    return (v as { toNumber(): number }).toNumber();
  }
  if (typeof v === 'string') return Number(v);
  return Number(v);
}

// ---------------------------------------------------------------------------------------------------------
// Builders

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A float32 initializer (raw little-endian data; the copy keeps the model independent of `data`). */
export function floatTensor(name: string, dims: number[], data: Float32Array | number[]): ITensorProto {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  const n = dims.reduce((a, b) => a * b, 1);
  if (f.length !== n) throw new Error(`tensor ${name}: ${f.length} values for dims [${dims.join(', ')}]`);
  return { name, dims, dataType: DataType.FLOAT, rawData: bytesOf(f).slice() };
}

/** An int64 initializer (shapes, axes, slice bounds, gather indices). */
export function int64Tensor(name: string, dims: number[], values: number[]): ITensorProto {
  const b = new BigInt64Array(values.map((v) => BigInt(v)));
  return { name, dims, dataType: DataType.INT64, rawData: bytesOf(b).slice() };
}

export type AttrValue = number | number[] | string | { float: number } | { floats: number[] };

/**
 * Node attributes: an integer `number` is INT, a non-integer `number` FLOAT, `number[]` INTS, `string`
 * STRING; `{ float: 1 }` / `{ floats: [...] }` force FLOAT(S) for integral values.
 */
export function attributes(attrs: Record<string, AttrValue>): IAttributeProto[] {
  return Object.entries(attrs).map(([name, v]) => {
    if (typeof v === 'string') return { name, type: AttrType.STRING, s: new TextEncoder().encode(v) };
    if (Array.isArray(v)) return { name, type: AttrType.INTS, ints: v };
    if (typeof v === 'number')
      return Number.isInteger(v) ? { name, type: AttrType.INT, i: v } : { name, type: AttrType.FLOAT, f: v };
    if ('float' in v) return { name, type: AttrType.FLOAT, f: v.float };
    return { name, type: AttrType.FLOATS, floats: v.floats };
  });
}

export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attrs: Record<string, AttrValue> = {},
): INodeProto {
  return { opType, input: inputs, output: outputs, name, attribute: attributes(attrs), domain: '' };
}

/** A graph input/output: `dims` entries are sizes or symbolic names ('N' for the batch). */
export function valueInfo(name: string, elemType: number, dims: (number | string)[]): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface MakeModelOptions {
  graph: IGraphProto;
  /** Stored as ModelProto.metadata_props (string to string). */
  metadata?: Record<string, string>;
  docString?: string;
}

export function makeModel(o: MakeModelOptions): IModelProto {
  return {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: PRODUCER_NAME,
    producerVersion: PRODUCER_VERSION,
    docString: o.docString ?? '',
    graph: o.graph,
    metadataProps: Object.entries(o.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
}

export function encodeModel(m: IModelProto): Uint8Array {
  return onnx.ModelProto.encode(m).finish();
}

/** Decode bytes (throws protobufjs' error on malformed input; loadOnnxModel wraps it). */
export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function metadataOf(m: IModelProto): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of m.metadataProps ?? []) if (p.key) out[p.key] = p.value ?? '';
  return out;
}

export function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

// ---------------------------------------------------------------------------------------------------------
// Validation and loading

export class OnnxModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxModelError';
  }
}

/** Number of elements of an initializer, checking that its stored data matches its dims. */
function checkInitializer(t: ITensorProto, where: string): void {
  const dims = (t.dims ?? []).map(toNumber);
  if (dims.some((d) => !Number.isInteger(d) || d < 0))
    throw new OnnxModelError(`${where}: initializer ${t.name} has bad dims [${dims}]`);
  const n = dims.reduce((a, b) => a * b, 1);
  const dt = t.dataType ?? 0;
  const raw = t.rawData;
  if (raw && raw.length > 0) {
    const eb = ELEM_BYTES[dt];
    if (eb === undefined) return;
    if (raw.length !== n * eb) {
      throw new OnnxModelError(
        `${where}: initializer ${t.name} holds ${raw.length} bytes but dims [${dims.join(', ')}] need ${n * eb} (truncated or corrupt)`,
      );
    }
    return;
  }
  const stored =
    dt === DataType.FLOAT
      ? (t.floatData?.length ?? 0)
      : dt === DataType.INT64
        ? (t.int64Data?.length ?? 0)
        : dt === DataType.DOUBLE
          ? (t.doubleData?.length ?? 0)
          : (t.int32Data?.length ?? 0);
  if ((t.externalData?.length ?? 0) > 0) return;
  if (stored !== n)
    throw new OnnxModelError(
      `${where}: initializer ${t.name} holds ${stored} values but dims [${dims.join(', ')}] need ${n}`,
    );
}

/**
 * Structural checks onnxruntime would otherwise report less clearly: IR version and ai.onnx opset
 * present, a graph with inputs, outputs and nodes, every node input defined before use (topological
 * order), every graph output produced, initializer data sizes consistent with their dims.
 */
export function validateModel(m: IModelProto, where = 'model'): void {
  const ir = toNumber(m.irVersion ?? 0);
  if (!(ir >= 3)) throw new OnnxModelError(`${where}: missing or invalid ir_version (${ir}); not an ONNX model?`);
  const opset = (m.opsetImport ?? []).find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  if (!opset) throw new OnnxModelError(`${where}: no ai.onnx opset_import`);
  const g = m.graph;
  if (!g) throw new OnnxModelError(`${where}: no graph (truncated or not an ONNX model)`);
  if (!g.input?.length) throw new OnnxModelError(`${where}: graph has no inputs`);
  if (!g.output?.length) throw new OnnxModelError(`${where}: graph has no outputs`);
  if (!g.node?.length) throw new OnnxModelError(`${where}: graph has no nodes`);
  const defined = new Set<string>(['']);
  for (const i of g.input) defined.add(i.name ?? '');
  for (const t of g.initializer ?? []) {
    checkInitializer(t, where);
    defined.add(t.name ?? '');
  }
  g.node.forEach((n, k) => {
    if (!n.opType) throw new OnnxModelError(`${where}: node #${k} has no op_type`);
    for (const i of n.input ?? []) {
      if (!defined.has(i))
        throw new OnnxModelError(
          `${where}: node ${n.name || `#${k}`} (${n.opType}) reads '${i}', which is not defined before it`,
        );
    }
    for (const o of n.output ?? []) defined.add(o);
  });
  for (const o of g.output) {
    if (!defined.has(o.name ?? ''))
      throw new OnnxModelError(`${where}: graph output '${o.name}' is not produced by any node`);
  }
}

export interface LoadedOnnxModel {
  path: string;
  bytes: Uint8Array;
  model: ModelProto;
  metadata: Record<string, string>;
  sha256: string;
}

/**
 * Read, decode and validate an ONNX file before giving its bytes to onnxruntime. When a manifest.json
 * next to it lists the file (our export layout), its sha256 must match too. Errors name the file and say
 * what is wrong (unreadable, empty, truncated or corrupt protobuf, bad graph, checksum mismatch).
 */
export function loadOnnxModel(file: string, opts: { sha256?: string; checkManifest?: boolean } = {}): LoadedOnnxModel {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    throw new OnnxModelError(`cannot read ONNX model ${file}: ${(e as Error).message}`);
  }
  if (bytes.length === 0) throw new OnnxModelError(`${file} is empty, not an ONNX model`);
  const digest = sha256(bytes);
  let expected = opts.sha256;
  if (!expected && opts.checkManifest !== false) {
    const mf = path.join(path.dirname(file), 'manifest.json');
    if (fs.existsSync(mf)) {
      try {
        const man = JSON.parse(fs.readFileSync(mf, 'utf8')) as { files?: Record<string, { sha256?: string }> };
        expected = man.files?.[path.basename(file)]?.sha256;
      } catch {
        // An unreadable manifest is the manifest reader's problem; the model is still validated below.
      }
    }
  }
  if (expected && expected !== digest) {
    throw new OnnxModelError(
      `${file}: sha256 ${digest} does not match the expected ${expected} (file corrupt, truncated or replaced)`,
    );
  }
  let model: ModelProto;
  try {
    model = decodeModel(bytes);
  } catch (e) {
    throw new OnnxModelError(
      `${file} is not a valid ONNX model: protobuf decoding failed (${(e as Error).message}); the file is truncated or corrupt`,
    );
  }
  validateModel(model, file);
  return { path: file, bytes, model, metadata: metadataOf(model), sha256: digest };
}
