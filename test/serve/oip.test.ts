/**
 * Open Inference Protocol (KServe v2) REST conformance: every /v2 response body (health, server and model
 * metadata, model ready, inference, errors) validated against the protocol's schemas (oip_schema.ts), and
 * Triton's binary tensor data extension for inputs and outputs, equal to the JSON path.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { request, TINY_CLASSES, TINY_EMBED, TINY_SIZE, writeTinyRepository } from './fixture.ts';
import { assertOip, assertOipError, oipErrors, type OipSchema } from './oip_schema.ts';

let models: string;
let s: RunningServer;
const PER = TINY_SIZE * TINY_SIZE * 3;
const pixels = (n: number) => Uint8Array.from({ length: n * PER }, (_, i) => (i * 7 + (i >> 5)) & 255);

before(async () => {
  models = writeTinyRepository();
  s = await startServer({
    models,
    port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    max_images: 4,
    max_body_mb: 1,
  });
});

after(async () => {
  await s.close();
  fs.rmSync(path.dirname(models), { recursive: true, force: true });
});

const get = (p: string) => request(`${s.url}${p}`);
const postJson = (p: string, body: unknown) =>
  request(`${s.url}${p}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });

/** POST a JSON header + binary tail; returns the raw response split by its Inference-Header-Content-Length. */
async function postBinary(p: string, head: unknown, tail: Uint8Array, headerLength?: string) {
  const json = Buffer.from(JSON.stringify(head));
  const r = await fetch(`${s.url}${p}`, {
    method: 'POST',
    body: Buffer.concat([json, tail]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': headerLength ?? String(json.length),
    },
  });
  const body = Buffer.from(await r.arrayBuffer());
  const hl = r.headers.get('inference-header-content-length');
  const split = hl === null ? body.length : Number(hl);
  return {
    status: r.status,
    headers: r.headers,
    header: JSON.parse(body.subarray(0, split).toString('utf8')),
    binary: body.subarray(split),
  };
}

const floatsOf = (b: Buffer) => Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));

test("the schemas accept the protocol's example bodies and reject wrong shapes", () => {
  const tensor = { name: 'output0', shape: [3, 2], datatype: 'FP32', data: [1, 1.1, 2, 2.1, 3, 3.1] };
  const good: [OipSchema, unknown][] = [
    [
      'inference_request',
      {
        id: '42',
        inputs: [
          {
            name: 'input0',
            shape: [2, 2],
            datatype: 'UINT32',
            data: [
              [1, 2],
              [3, 4],
            ],
          },
        ],
        outputs: [{ name: 'output0' }],
      },
    ],
    [
      'inference_response',
      { model_name: 'm', id: '42', outputs: [{ ...tensor, parameters: { binary_data_size: 24 } }] },
    ],
    [
      'metadata_model_response',
      {
        name: 'm',
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'x', datatype: 'UINT8', shape: [-1, 3] }],
        outputs: [],
      },
    ],
  ];
  for (const [name, body] of good) assertOip(name, body);
  const bad: [OipSchema, unknown][] = [
    ['inference_response', { outputs: [tensor] }],
    ['inference_response', { model_name: 'm' }],
    ['inference_response', { model_name: 'm', outputs: [{ ...tensor, data: undefined }] }],
    ['inference_response', { model_name: 'm', outputs: [{ ...tensor, data: '1,2' }] }],
    ['inference_response', { model_name: 'm', outputs: [{ ...tensor, data: [{ x: 1 }] }] }],
    ['inference_response', { model_name: 'm', outputs: [{ ...tensor, datatype: 'FLOAT' }] }],
    ['inference_response', { model_name: 'm', outputs: [{ ...tensor, shape: [-1, 2] }] }],
    ['inference_response', { model_name: 'm', outputs: [{ ...tensor, parameters: { binary_data_size: [24] } }] }],
    ['inference_response', { model_name: 'm', id: 42, outputs: [tensor] }],
    ['inference_request', { inputs: [{ name: 'x', shape: [1], datatype: 'FP32' }] }],
    ['metadata_server_response', { name: 'cmc', version: '1' }],
    [
      'metadata_model_response',
      { name: 'm', platform: 'p', inputs: [{ name: 'x', datatype: 'UINT8', shape: [1.5] }], outputs: [] },
    ],
    ['metadata_model_response', { name: 'm', platform: 'p', inputs: [] }],
    ['live_server_response', { live: 'yes' }],
    ['ready_model_response', { ready: true }],
    ['inference_error_response', { error: { code: 'x', message: 'y' } }],
  ];
  for (const [name, body] of bad)
    assert.notEqual(oipErrors(name, body), null, `${name} accepted ${JSON.stringify(body)}`);
});

test('health, server metadata, model metadata and model ready fit the spec; the server lists binary_tensor_data', async () => {
  assertOip('live_server_response', (await get('/v2/health/live')).json);
  assertOip('ready_server_response', (await get('/v2/health/ready')).json);
  const server = (await get('/v2')).json;
  assertOip('metadata_server_response', server);
  assert.deepEqual(server.extensions, ['binary_tensor_data']);
  for (const p of ['/v2/models/tiny', '/v2/models/multi/versions/1', '/v2/models/multi']) {
    const r = await get(p);
    assert.equal(r.status, 200, r.text);
    assertOip('metadata_model_response', r.json);
  }
  for (const p of ['/v2/models/tiny/ready', '/v2/models/multi/versions/2/ready'])
    assertOip('ready_model_response', (await get(p)).json);
});

test('JSON inference fits inference_response; every /v2 error is the spec error object', async () => {
  const data = Array.from(pixels(2));
  const ok = await postJson('/v2/models/tiny/infer', {
    id: 'r1',
    inputs: [{ name: 'images', datatype: 'UINT8', shape: [2, TINY_SIZE, TINY_SIZE, 3], data }],
  });
  assert.equal(ok.status, 200, ok.text);
  assertOip('inference_response', ok.json);
  assert.equal(ok.json.id, 'r1');
  const errors: [string, Promise<{ status: number; json: unknown }>, number][] = [
    ['unknown model meta', get('/v2/models/nosuch'), 404],
    ['unknown model ready', get('/v2/models/nosuch/ready'), 404],
    ['unknown version', get('/v2/models/multi/versions/9'), 404],
    ['bad name', get('/v2/models/..%2Fx'), 400],
    ['unknown route', get('/v2/nothing/here'), 404],
    ['unknown model infer', postJson('/v2/models/nosuch/infer', { inputs: [] }), 404],
    [
      'bad tensor',
      postJson('/v2/models/tiny/infer', { inputs: [{ name: 'images', datatype: 'FP32', shape: [1], data: [1] }] }),
      400,
    ],
    [
      'too many',
      postJson('/v2/models/tiny/infer', {
        inputs: [{ name: 'images', datatype: 'UINT8', shape: [5, TINY_SIZE, TINY_SIZE, 3], data: [] }],
      }),
      413,
    ],
    [
      'text/plain',
      request(`${s.url}/v2/models/tiny/infer`, {
        method: 'POST',
        body: 'x',
        headers: { 'content-type': 'text/plain' },
      }),
      415,
    ],
  ];
  for (const [name, p, status] of errors) {
    const r = await p;
    assert.equal(r.status, status, `${name}: ${JSON.stringify(r.json)}`);
    assertOipError(r.json);
  }
});

test('binary tensor data: binary input and binary outputs equal the JSON path', async () => {
  const px = pixels(2);
  const shape = [2, TINY_SIZE, TINY_SIZE, 3];
  const json = await postJson('/v2/models/tiny/infer', {
    inputs: [{ name: 'images', datatype: 'UINT8', shape, data: Array.from(px) }],
    outputs: [{ name: 'embedding' }, { name: 'logits' }],
  });
  assert.equal(json.status, 200, json.text);
  // Binary in, JSON out: the header alone is a plain inference_response.
  const a = await postBinary(
    '/v2/models/tiny/infer',
    {
      inputs: [{ name: 'images', datatype: 'UINT8', shape, parameters: { binary_data_size: px.length } }],
      outputs: [{ name: 'embedding' }, { name: 'logits' }],
    },
    px,
  );
  assert.equal(a.status, 200, JSON.stringify(a.header));
  assert.equal(a.headers.get('inference-header-content-length'), null);
  assertOip('inference_response', a.header);
  assert.deepEqual(a.header.outputs, json.json.outputs);
  // Binary out for one output (per-output parameter), JSON for the other.
  const b = await postBinary(
    '/v2/models/tiny/infer',
    {
      inputs: [{ name: 'images', datatype: 'UINT8', shape, parameters: { binary_data_size: px.length } }],
      outputs: [{ name: 'embedding', parameters: { binary_data: true } }, { name: 'logits' }],
    },
    px,
  );
  assert.equal(b.status, 200);
  assert.equal(b.headers.get('content-type'), 'application/octet-stream');
  const [emb, logits] = b.header.outputs;
  assert.deepEqual(
    [emb.name, emb.datatype, emb.shape, emb.parameters, emb.data],
    ['embedding', 'FP32', [2, TINY_EMBED], { binary_data_size: 2 * TINY_EMBED * 4 }, undefined],
  );
  assert.deepEqual(logits, json.json.outputs[1]);
  assert.equal(b.binary.length, 2 * TINY_EMBED * 4);
  assert.deepEqual(
    floatsOf(b.binary),
    json.json.outputs[0].data.map((x: number) => Math.fround(x)),
  );
  // binary_data_output for all outputs, JSON input.
  const c = await postBinary(
    '/v2/models/tiny/infer',
    {
      parameters: { binary_data_output: true },
      inputs: [{ name: 'images', datatype: 'UINT8', shape, data: Array.from(px) }],
      outputs: [{ name: 'embedding' }, { name: 'logits' }],
    },
    new Uint8Array(0),
  );
  assert.equal(c.status, 200);
  assert.deepEqual(
    c.header.outputs.map((o: { parameters: unknown }) => o.parameters),
    [{ binary_data_size: 2 * TINY_EMBED * 4 }, { binary_data_size: 2 * TINY_CLASSES.length * 4 }],
  );
  assert.deepEqual(
    floatsOf(c.binary),
    [...json.json.outputs[0].data, ...json.json.outputs[1].data].map((x: number) => Math.fround(x)),
  );
});
