/**
 * Open Inference Protocol (KServe v2) inference requests, parsed without running anything: pure functions
 * from the request (the REST body's JSON + binary bytes, or gRPC's message turned into that shape) to a
 * typed request or a protocol error (ApiError, 4xx), and the plan of which graphs to run.
 *
 *   const { json, binary } = decodeInferBody(body, req.headers['inference-header-content-length'], maxJsonBytes);
 *   const r = parseInferRequest(json, m, maxImages, binary);   // images, outputs, binary flags, id
 *   planGraphs(m, r.outputs);                                  // Map<graph, output names>
 *
 * The one input is UINT8 "images" [N, size, size, 3] (already resized and cropped RGB), given as JSON
 * numbers (`data`) or, with Triton's binary tensor data extension, as `parameters.binary_data_size`
 * raw bytes after the JSON header (triton-inference-server/server docs/protocol/extension_binary_data.md).
 */
import { badRequest, tooLarge } from '../errors.ts';
import { scanJson } from '../inputs.ts';
import type { TensorInfo } from '../repository.ts';
import { splitBinaryBody } from './binary.ts';

/** What parsing needs of a graph: its outputs (a repository Graph has them, and a session). */
export interface GraphSignature {
  outputs: TensorInfo[];
}

/** What parsing needs of a model version: its input side and graphs (a repository ModelVersion fits). */
export interface ModelSignature<G extends GraphSignature = GraphSignature> {
  size: number;
  encoder: G & { input: TensorInfo };
  classifier?: G;
}

export interface InferRequest {
  id?: string;
  images: Uint8Array[];
  outputs: string[];
  /** Per requested output: return it as binary data after the JSON header. */
  binary: Map<string, boolean>;
}

/**
 * An inference body's bytes → its JSON and the binary tensor data after it. Without
 * Inference-Header-Content-Length (headerLength undefined) the whole body is JSON; either way the JSON is
 * held to maxJsonBytes and JSON_LIMITS (serve/inputs.ts) before JSON.parse.
 */
export function decodeInferBody(
  body: Buffer,
  headerLength: string | undefined,
  maxJsonBytes = Infinity,
): { json: unknown; binary: Buffer } {
  const { json, binary } = splitBinaryBody(body, headerLength);
  if (json.length === 0) throw badRequest('empty JSON body', 'bad_json');
  if (json.length > maxJsonBytes)
    throw tooLarge(`JSON header of ${json.length} bytes exceeds the limit of ${maxJsonBytes} (--max_json_mb)`);
  scanJson(json);
  try {
    return { json: JSON.parse(json.toString('utf8')), binary };
  } catch (e) {
    throw badRequest(`malformed JSON inference request: ${(e as Error).message.slice(0, 120)}`, 'bad_json');
  }
}

/** Outputs returned when the request names none. */
export function defaultOutputs(m: ModelSignature): string[] {
  return m.classifier ? ['embedding', 'probabilities'] : ['embedding'];
}

function graphsOf<G extends GraphSignature>(m: ModelSignature<G>): G[] {
  return m.classifier ? [m.encoder, m.classifier] : [m.encoder];
}

/**
 * Which graphs to run for the requested outputs: one graph when one has them all (the classifier first:
 * it also gives the embedding), else each output from the first graph that has it.
 */
export function planGraphs<G extends GraphSignature>(m: ModelSignature<G>, outputs: string[]): Map<G, string[]> {
  const graphs = m.classifier ? [m.classifier, m.encoder] : [m.encoder];
  const has = (g: G, n: string) => g.outputs.some((o) => o.name === n);
  const plan = new Map<G, string[]>();
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
  m: ModelSignature,
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
