/**
 * Open Inference Protocol (KServe v2) inference, independent of the transport (REST in routes/v2.ts,
 * gRPC in grpc/server.ts): validate a request into images + requested outputs, run the graphs, and
 * return flat FP32 output tensors.
 *
 *   const r = parseInferRequest(json, m, maxImages, binary);   // binary: the bytes after the JSON header
 *   const outs = await runInfer(m, r.images, r.outputs);       // [{ name, datatype: 'FP32', shape, data }]
 *
 * The one input is UINT8 "images" [N, size, size, 3] (already resized and cropped RGB), given as JSON
 * numbers (`data`) or, with Triton's binary tensor data extension, as `parameters.binary_data_size`
 * raw bytes after the JSON header (triton-inference-server/server docs/protocol/extension_binary_data.md).
 */
import { finiteOutputs } from '../image_runner.ts';
import { badRequest, tooLarge } from '../errors.ts';
import type { Graph, ModelVersion } from '../repository.ts';

export interface InferRequest {
  id?: string;
  images: Uint8Array[];
  outputs: string[];
  /** Per requested output: return it as binary data after the JSON header. */
  binary: Map<string, boolean>;
}

export interface OutputTensor {
  name: string;
  datatype: 'FP32';
  shape: number[];
  data: Float32Array;
}

/** Outputs returned when the request names none. */
export function defaultOutputs(m: ModelVersion): string[] {
  return m.classifier ? ['embedding', 'probabilities'] : ['embedding'];
}

function graphsOf(m: ModelVersion): Graph[] {
  return m.classifier ? [m.encoder, m.classifier] : [m.encoder];
}

/** Which graphs to run for the requested outputs: one graph when one has them all. */
export function planGraphs(m: ModelVersion, outputs: string[]): Map<Graph, string[]> {
  const graphs = m.classifier ? [m.classifier, m.encoder] : [m.encoder];
  const has = (g: Graph, n: string) => g.outputs.some((o) => o.name === n);
  const plan = new Map<Graph, string[]>();
  const all = graphs.find((g) => outputs.every((n) => has(g, n)));
  if (all) {
    plan.set(all, outputs);
    return plan;
  }
  for (const n of outputs) {
    const g = graphs.find((x) => has(x, n))!;
    plan.set(g, [...(plan.get(g) ?? []), n]);
  }
  return plan;
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

function boolParam(params: unknown, key: string, where: string): boolean | undefined {
  if (params === undefined) return undefined;
  if (!isObject(params)) throw badRequest(`${where}.parameters must be an object`, 'invalid_request');
  const v = params[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`${where}.parameters.${key} must be a boolean`, 'invalid_request');
  return v;
}

/**
 * Validate an inference request: one UINT8 input [N, size, size, 3], integer data 0..255 or exactly
 * N*size*size*3 binary bytes. `binary` is what followed the JSON header (empty without the extension);
 * every byte of it must belong to an input.
 */
export function parseInferRequest(
  body: unknown,
  m: ModelVersion,
  maxImages: number,
  binary: Uint8Array = new Uint8Array(0),
): InferRequest {
  if (!isObject(body)) throw badRequest('inference request must be a JSON object', 'invalid_request');
  const o = body;
  if (o.id !== undefined && typeof o.id !== 'string') throw badRequest('"id" must be a string', 'invalid_request');
  const binaryAll = boolParam(o.parameters, 'binary_data_output', 'request') ?? false;
  if (!Array.isArray(o.inputs) || o.inputs.length !== 1)
    throw badRequest('"inputs" must be an array holding exactly one tensor', 'invalid_request');
  const t = o.inputs[0];
  if (!isObject(t)) throw badRequest('inputs[0] must be a tensor object', 'invalid_request');
  const want = m.encoder.input;
  if (t.name !== want.name) throw badRequest(`inputs[0].name must be ${JSON.stringify(want.name)}`, 'invalid_input');
  if (t.datatype !== 'UINT8')
    throw badRequest(
      `inputs[0].datatype must be "UINT8", got ${JSON.stringify(t.datatype)?.slice(0, 40)}`,
      'invalid_input',
    );
  const shape = t.shape;
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw badRequest(`inputs[0].shape must be [N, ${m.size}, ${m.size}, 3]`, 'invalid_input');
  }
  const [n, h, w, c] = shape as number[];
  if (h !== m.size || w !== m.size || c !== 3 || n < 1)
    throw badRequest(
      `inputs[0].shape must be [N, ${m.size}, ${m.size}, 3] with N >= 1, got [${shape.join(', ')}]`,
      'invalid_input',
    );
  if (n > maxImages) throw tooLarge(`${n} images in one request; the limit is ${maxImages}`, 'too_many_images');
  const per = h * w * c;
  let flat: Uint8Array;
  if (t.parameters !== undefined && !isObject(t.parameters))
    throw badRequest('inputs[0].parameters must be an object', 'invalid_request');
  const size = (t.parameters as Record<string, unknown> | undefined)?.binary_data_size;
  if (size !== undefined) {
    if (!Number.isInteger(size) || (size as number) < 0)
      throw badRequest('inputs[0].parameters.binary_data_size must be a non-negative integer', 'invalid_input');
    if (t.data !== undefined)
      throw badRequest('inputs[0] has both "data" and binary_data_size; send one', 'invalid_input');
    if (size !== n * per)
      throw badRequest(
        `inputs[0].parameters.binary_data_size is ${size}; shape [${shape.join(', ')}] of UINT8 needs ${n * per} bytes`,
        'invalid_input',
      );
    if (binary.length < n * per)
      throw badRequest(
        `binary data truncated: inputs declare ${n * per} bytes, ${binary.length} follow the JSON header`,
        'invalid_input',
      );
    if (binary.length > n * per)
      throw badRequest(
        `${binary.length} bytes of binary data follow the JSON header, but inputs declare ${n * per}`,
        'invalid_input',
      );
    flat = binary;
  } else {
    if (binary.length > 0)
      throw badRequest(
        `${binary.length} bytes of binary data follow the JSON header, but no input declares binary_data_size`,
        'invalid_input',
      );
    flat = new Uint8Array(n * per);
    let k = 0;
    const walk = (v: unknown, depth: number): void => {
      if (Array.isArray(v)) {
        if (depth > 4) throw badRequest('inputs[0].data is nested too deeply', 'invalid_input');
        for (const x of v) walk(x, depth + 1);
        return;
      }
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255)
        throw badRequest(`inputs[0].data[${k}] is not an integer in [0, 255]`, 'invalid_input');
      if (k >= flat.length)
        throw badRequest(`inputs[0].data holds more than the ${flat.length} values of its shape`, 'invalid_input');
      flat[k++] = v;
    };
    if (!Array.isArray(t.data))
      throw badRequest('inputs[0].data must be an array of numbers (or use binary_data_size)', 'invalid_input');
    walk(t.data, 0);
    if (k !== flat.length)
      throw badRequest(
        `inputs[0].data holds ${k} values; shape [${shape.join(', ')}] needs ${flat.length}`,
        'invalid_input',
      );
  }
  const available = new Set(graphsOf(m).flatMap((g) => g.outputs.map((x) => x.name)));
  let outputs = defaultOutputs(m).filter((x) => available.has(x));
  const binaryOut = new Map<string, boolean>();
  if (o.outputs !== undefined) {
    if (!Array.isArray(o.outputs) || o.outputs.length === 0)
      throw badRequest('"outputs" must be a non-empty array of { name }', 'invalid_request');
    outputs = o.outputs.map((x, i) => {
      const name = (x as { name?: unknown })?.name;
      if (typeof name !== 'string') throw badRequest(`outputs[${i}].name must be a string`, 'invalid_request');
      if (!available.has(name))
        throw badRequest(
          `unknown output ${JSON.stringify(name.slice(0, 64))} (available: ${[...available].join(', ')})`,
          'invalid_output',
        );
      binaryOut.set(
        name,
        boolParam((x as { parameters?: unknown }).parameters, 'binary_data', `outputs[${i}]`) ?? binaryAll,
      );
      return name;
    });
    outputs = [...new Set(outputs)];
  }
  for (const name of outputs) if (!binaryOut.has(name)) binaryOut.set(name, binaryAll);
  const images = Array.from({ length: n }, (_, i) => flat.subarray(i * per, (i + 1) * per));
  return { id: o.id as string | undefined, images, outputs, binary: binaryOut };
}

/** Run the graphs the outputs need (through their batchers); FP32 tensors [N, width] in request order. */
export async function runInfer(m: ModelVersion, images: Uint8Array[], outputs: string[]): Promise<OutputTensor[]> {
  const results = new Map<string, Float32Array[]>();
  for (const [graph, names] of planGraphs(m, outputs)) {
    const outs = finiteOutputs(m, await graph.batcher.submit(images), names);
    for (const name of names)
      results.set(
        name,
        outs.map((o) => o[name]),
      );
  }
  return outputs.map((name) => {
    const rows = results.get(name)!;
    const w = rows[0]?.length ?? 0;
    const data = new Float32Array(rows.length * w);
    rows.forEach((r, i) => data.set(r, i * w));
    return { name, datatype: 'FP32', shape: [rows.length, w], data };
  });
}

/** float32 values as little-endian bytes (the binary extension's and gRPC raw contents' layout). */
export function float32Bytes(v: Float32Array): Buffer {
  const b = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i], i * 4);
  return b;
}
