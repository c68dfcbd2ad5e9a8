/**
 * JSON Schemas for the Open Inference Protocol's REST bodies, written for this project from the protocol's
 * field rules (kserve/open-inference-protocol specification/protocol/inference_rest.md: which fields each
 * object has, which are optional, their JSON types), compiled with ajv to check the server's /v2 bodies:
 *
 *   assertOip('inference_response', body);     // throws with ajv's errors when the body does not fit
 *
 * Objects stay open (extra members allowed): the protocol lets servers add fields (this one adds model
 * metadata `parameters`, Triton's binary_data_size). Where the protocol names a closed set or a range
 * (tensor data types, non-negative tensor shapes, -1 only for variable metadata dimensions, scalar
 * parameter values) the schemas enforce it. Request inputs follow the core protocol (data required), not
 * Triton's binary tensor data extension.
 */
import assert from 'node:assert/strict';
import { Ajv, type AnySchema } from 'ajv';

/** The protocol's tensor element types. */
const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
];

const ref = (name: string) => ({ $ref: name });
const str = { type: 'string' };
const strings = { type: 'array', items: str };
const listOf = (name: string) => ({ type: 'array', items: ref(name) });
const errorBody = { type: 'object', required: ['error'], properties: { error: str } };

/** Shared pieces, referenced by name from the bodies below. */
const PARTS: Record<string, AnySchema> = {
  // Key/value pairs whose values are JSON scalars.
  parameters: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
  datatype: { enum: DATATYPES },
  // Row-major flat or nested arrays of scalars.
  tensor_data: { type: 'array', items: { anyOf: [{ type: ['number', 'string', 'boolean'] }, ref('tensor_data')] } },
  // A tensor's signature: -1 marks a variable dimension.
  metadata_tensor: {
    type: 'object',
    required: ['name', 'datatype', 'shape'],
    properties: {
      name: str,
      datatype: ref('datatype'),
      shape: { type: 'array', items: { type: 'integer', minimum: -1 } },
    },
  },
  // A concrete tensor (request input, response output): every dimension known, data present.
  tensor: {
    type: 'object',
    required: ['name', 'shape', 'datatype', 'data'],
    properties: {
      name: str,
      shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
      datatype: ref('datatype'),
      parameters: ref('parameters'),
      data: ref('tensor_data'),
    },
  },
  request_output: { type: 'object', required: ['name'], properties: { name: str, parameters: ref('parameters') } },
};

const BODIES = {
  live_server_response: { type: 'object', required: ['live'], properties: { live: { type: 'boolean' } } },
  ready_server_response: { type: 'object', required: ['ready'], properties: { ready: { type: 'boolean' } } },
  ready_model_response: {
    type: 'object',
    required: ['name', 'ready'],
    properties: { name: str, ready: { type: 'boolean' } },
  },
  metadata_server_response: {
    type: 'object',
    required: ['name', 'version', 'extensions'],
    properties: { name: str, version: str, extensions: strings },
  },
  metadata_server_error_response: errorBody,
  metadata_model_response: {
    type: 'object',
    required: ['name', 'platform', 'inputs', 'outputs'],
    properties: {
      name: str,
      versions: strings,
      platform: str,
      inputs: listOf('metadata_tensor'),
      outputs: listOf('metadata_tensor'),
    },
  },
  metadata_model_error_response: errorBody,
  inference_request: {
    type: 'object',
    required: ['inputs'],
    properties: { id: str, parameters: ref('parameters'), inputs: listOf('tensor'), outputs: listOf('request_output') },
  },
  inference_response: {
    type: 'object',
    required: ['model_name', 'outputs'],
    properties: {
      model_name: str,
      model_version: str,
      id: str,
      parameters: ref('parameters'),
      outputs: listOf('tensor'),
    },
  },
  inference_error_response: errorBody,
} satisfies Record<string, AnySchema>;

export type OipSchema = keyof typeof BODIES;

const ajv = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true });
for (const [name, schema] of Object.entries({ ...PARTS, ...BODIES })) ajv.addSchema(schema, name);

/** ajv's error text, or null when `body` fits the named schema. */
export function oipErrors(name: OipSchema, body: unknown): string | null {
  const validate = ajv.getSchema(name);
  assert.ok(validate, `no schema ${name}`);
  return validate(body) ? null : ajv.errorsText(validate.errors);
}

export function assertOip(name: OipSchema, body: unknown): void {
  const e = oipErrors(name, body);
  assert.equal(e, null, `${name}: ${e} in ${JSON.stringify(body)?.slice(0, 300)}`);
}

/** An OIP error body: exactly { "error": "<non-empty message>" } that fits the protocol's error schema. */
export function assertOipError(body: unknown): void {
  assertOip('inference_error_response', body);
  assertOip('metadata_model_error_response', body);
  assert.deepEqual(Object.keys(body as object), ['error']);
  assert.ok(typeof (body as { error: unknown }).error === 'string' && (body as { error: string }).error.length > 0);
}
