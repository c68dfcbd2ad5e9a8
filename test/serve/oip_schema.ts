/**
 * The Open Inference Protocol REST schemas (test/fixtures/oip/open_inference_rest.yaml, vendored from
 * kserve/open-inference-protocol) compiled with ajv, to check the server's /v2 bodies against them:
 *
 *   assertOip('inference_response', body);     // throws with ajv's errors when the body does not fit
 *
 * The spec gives the health and model-ready bodies only in prose (specification/protocol/inference_rest.md:
 * $live_server_response, $ready_server_response, $ready_model_response); they are written out here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { load as loadYaml } from 'js-yaml';

const SPEC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'oip', 'open_inference_rest.yaml');
const ID = 'oip-rest';

const spec = loadYaml(fs.readFileSync(SPEC, 'utf8')) as { components: { schemas: Record<string, unknown> } };
// OpenAPI 3.0 schema objects are JSON schema plus annotations (x-examples): strict mode off for those.
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addSchema({ $id: ID, components: spec.components });

const PROSE: Record<string, object> = {
  live_server_response: { type: 'object', required: ['live'], properties: { live: { type: 'boolean' } } },
  ready_server_response: { type: 'object', required: ['ready'], properties: { ready: { type: 'boolean' } } },
  ready_model_response: { type: 'object', required: ['name', 'ready'], properties: { name: { type: 'string' }, ready: { type: 'boolean' } } },
};

export type OipSchema = keyof typeof PROSE | 'metadata_server_response' | 'metadata_server_error_response' | 'metadata_model_response' | 'metadata_model_error_response' | 'inference_request' | 'inference_response' | 'inference_error_response';

export function oipSchemaNames(): string[] {
  return [...Object.keys(spec.components.schemas), ...Object.keys(PROSE)];
}

/** ajv's error text, or null when `body` fits the named schema. */
export function oipErrors(name: OipSchema, body: unknown): string | null {
  const validate = PROSE[name] ? ajv.compile(PROSE[name]) : ajv.getSchema(`${ID}#/components/schemas/${name}`);
  assert.ok(validate, `no schema ${name}`);
  return validate(body) ? null : ajv.errorsText(validate.errors);
}

export function assertOip(name: OipSchema, body: unknown): void {
  const e = oipErrors(name, body);
  assert.equal(e, null, `${name}: ${e} in ${JSON.stringify(body)?.slice(0, 300)}`);
}

/** An OIP error body: exactly { "error": "<non-empty message>" } that fits the spec's error schema. */
export function assertOipError(body: unknown): void {
  assertOip('inference_error_response', body);
  assertOip('metadata_model_error_response', body);
  assert.deepEqual(Object.keys(body as object), ['error']);
  assert.ok(typeof (body as { error: unknown }).error === 'string' && (body as { error: string }).error.length > 0);
}
