/**
 * Triton's binary tensor data extension for the OIP REST API
 * (triton-inference-server/server docs/protocol/extension_binary_data.md):
 *
 *   request   the body is the JSON inference request followed by raw tensor bytes; the header
 *             `Inference-Header-Content-Length` gives the JSON part's length; inputs carrying binary data
 *             have `parameters.binary_data_size` instead of `data`
 *   response  outputs asked for with `parameters.binary_data: true` (or the request's
 *             `parameters.binary_data_output: true`) come back as bytes after the JSON header, each with
 *             `parameters.binary_data_size`; the response then has the same header and
 *             Content-Type application/octet-stream
 */
import { badRequest } from '../errors.ts';
import { float32Bytes, type OutputTensor } from './infer.ts';

export const HEADER_LENGTH = 'inference-header-content-length';
export const BINARY_EXTENSION = 'binary_tensor_data';

/** Split a request body by the Inference-Header-Content-Length header's value (undefined: all JSON). */
export function splitBinaryBody(body: Buffer, headerLength: string | undefined): { json: Buffer; binary: Buffer } {
  if (headerLength === undefined) return { json: body, binary: body.subarray(body.length) };
  if (!/^\d{1,15}$/.test(headerLength.trim()))
    throw badRequest(
      `Inference-Header-Content-Length must be a byte count, got ${JSON.stringify(headerLength.slice(0, 40))}`,
      'invalid_header_length',
    );
  const n = Number(headerLength.trim());
  if (n === 0)
    throw badRequest(
      'Inference-Header-Content-Length is 0: the JSON inference request is missing',
      'invalid_header_length',
    );
  if (n > body.length)
    throw badRequest(
      `Inference-Header-Content-Length is ${n}, more than the body's ${body.length} bytes`,
      'invalid_header_length',
    );
  return { json: body.subarray(0, n), binary: body.subarray(n) };
}

export interface InferResponseHeader {
  model_name: string;
  model_version: string;
  id?: string;
}

/**
 * The response body: plain JSON when no output is binary, else JSON header + raw bytes and the header's
 * length (for the Inference-Header-Content-Length response header).
 */
export function encodeInferResponse(
  head: InferResponseHeader,
  outputs: OutputTensor[],
  binary: Map<string, boolean>,
): { body: Buffer; headerLength?: number } {
  const blobs: Buffer[] = [];
  const json = {
    ...head,
    outputs: outputs.map((o) => {
      if (binary.get(o.name)) {
        const b = float32Bytes(o.data);
        blobs.push(b);
        return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: b.length } };
      }
      return { name: o.name, datatype: o.datatype, shape: o.shape, data: Array.from(o.data) };
    }),
  };
  const text = Buffer.from(JSON.stringify(json));
  if (blobs.length === 0) return { body: text };
  return { body: Buffer.concat([text, ...blobs]), headerLength: text.length };
}
