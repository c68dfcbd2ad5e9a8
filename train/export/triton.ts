/**
 * The Triton model configuration (config.pbtxt) that `cmc export --triton` writes beside the ONNX files, and a
 * small protobuf text-format parser that reads it back (tests check what Triton would read).
 */
import type { TensorDesc } from '../../core/formats/manifest.ts';

export interface TritonOptions {
  name: string;
  maxBatchSize: number;
  /** Dynamic batching queue delay (microseconds). */
  maxQueueDelayUs: number;
  /** Per-example dims (without the batch axis, as Triton wants with max_batch_size > 0). */
  inputs: { name: string; dtype: TensorDesc['dtype']; dims: number[] }[];
  outputs: { name: string; dtype: TensorDesc['dtype']; dims: number[]; labelFilename?: string }[];
  /** Instances per GPU (KIND_GPU) or CPU (KIND_CPU) ; default one, KIND_AUTO omitted. */
  instanceCount?: number;
}

const TRITON_TYPE: Record<TensorDesc['dtype'], string> = { uint8: 'TYPE_UINT8', float32: 'TYPE_FP32' };

function quote(s: string): string {
  return JSON.stringify(s);
}

/** config.pbtxt for Triton's onnxruntime backend (protobuf text format of ModelConfig). */
export function tritonConfig(o: TritonOptions): string {
  const tensor = (t: { name: string; dtype: TensorDesc['dtype']; dims: number[]; labelFilename?: string }) =>
    [
      '  {',
      `    name: ${quote(t.name)}`,
      `    data_type: ${TRITON_TYPE[t.dtype]}`,
      `    dims: [ ${t.dims.join(', ')} ]`,
      ...(t.labelFilename ? [`    label_filename: ${quote(t.labelFilename)}`] : []),
      '  }',
    ].join('\n');
  const lines = [
    `name: ${quote(o.name)}`,
    'platform: "onnxruntime_onnx"',
    `max_batch_size: ${o.maxBatchSize}`,
    'dynamic_batching {',
    `  max_queue_delay_microseconds: ${o.maxQueueDelayUs}`,
    '}',
    'input [',
    o.inputs.map(tensor).join(',\n'),
    ']',
    'output [',
    o.outputs.map(tensor).join(',\n'),
    ']',
  ];
  if (o.instanceCount) lines.push('instance_group [', '  {', `    count: ${o.instanceCount}`, '  }', ']');
  return lines.join('\n') + '\n';
}

/** A parsed text-format message: each field name maps to the list of its values (repeated or not). */
export interface PbMessage {
  [field: string]: PbValue[];
}
export type PbValue = string | number | boolean | PbMessage;

/**
 * A small parser for protobuf text format as Triton's config.pbtxt uses it: `field: scalar`,
 * `field { ... }`, `field: { ... }`, lists `field: [ a, b ]` / `field [ {..}, {..} ]`, '#' comments,
 * quoted strings, numbers, enum identifiers (kept as strings) and true/false.
 */
export function parsePbtxt(text: string): PbMessage {
  const tokens: string[] = [];
  const re = /\s+|#[^\n]*|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([{}[\]:,;])|([^\s{}[\]:,;"'#]+)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    m = re.exec(text);
    if (!m) throw new Error(`pbtxt: unexpected character ${JSON.stringify(text[pos])} at offset ${pos}`);
    pos = re.lastIndex;
    const tok = m[1] ?? m[2] ?? m[3];
    if (tok !== undefined) tokens.push(tok);
  }
  let i = 0;
  const peek = () => tokens[i];
  const next = () => {
    if (i >= tokens.length) throw new Error('pbtxt: unexpected end of input');
    return tokens[i++];
  };
  const expect = (t: string) => {
    const got = next();
    if (got !== t) throw new Error(`pbtxt: expected '${t}' but found '${got}'`);
  };
  const scalar = (t: string): PbValue => {
    if (t.startsWith('"') || t.startsWith("'"))
      return JSON.parse(t.startsWith("'") ? `"${t.slice(1, -1).replace(/"/g, '\\"')}"` : t) as string;
    if (t === 'true') return true;
    if (t === 'false') return false;
    if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return Number(t);
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(t)) return t;
    throw new Error(`pbtxt: bad value '${t}'`);
  };
  const value = (): PbValue => {
    if (peek() === '{') {
      next();
      const msg = body('}');
      expect('}');
      return msg;
    }
    return scalar(next());
  };
  const body = (end: string | undefined): PbMessage => {
    const msg: PbMessage = {};
    while (i < tokens.length && peek() !== end) {
      const name = next();
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`pbtxt: expected a field name, found '${name}'`);
      if (peek() === ':') next();
      const vals = (msg[name] ??= []);
      if (peek() === '[') {
        next();
        while (peek() !== ']') {
          vals.push(value());
          if (peek() === ',') next();
          else if (peek() !== ']') throw new Error(`pbtxt: expected ',' or ']' in list ${name}, found '${peek()}'`);
        }
        expect(']');
      } else {
        vals.push(value());
      }
      if (peek() === ',' || peek() === ';') next();
    }
    return msg;
  };
  const root = body(undefined);
  if (i !== tokens.length) throw new Error(`pbtxt: unexpected '${tokens[i]}'`);
  return root;
}
