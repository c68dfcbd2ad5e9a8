/**
 * The OIP gRPC service through a @grpc/grpc-js client: health, server and model metadata, ModelReady,
 * ModelInfer with raw_input_contents and with contents.uint_contents (equal to the REST /v2 outputs),
 * errors as gRPC status codes, the bearer token, per-method metrics.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { request, TINY_EMBED, TINY_SIZE, writeTinyRepository } from './fixture.ts';
import { grpcClient, grpcCode, type GrpcClient } from './grpc_client.ts';

let models: string;
let s: RunningServer;
let c: GrpcClient;
const PER = TINY_SIZE * TINY_SIZE * 3;
const pixels = (n: number) => Buffer.from(Uint8Array.from({ length: n * PER }, (_, i) => (i * 13 + (i >> 4)) & 255));
const shape = (n: number) => [n, TINY_SIZE, TINY_SIZE, 3];

before(async () => {
  models = writeTinyRepository();
  s = await startServer({
    models,
    port: 0,
    grpc_port: 0,
    provider: 'cpu',
    default_model: 'tiny',
    quiet: true,
    threads: 1,
    max_images: 4,
  });
  c = grpcClient(`127.0.0.1:${s.grpcPort}`);
});

after(async () => {
  c.close();
  await s.close();
  fs.rmSync(path.dirname(models), { recursive: true, force: true });
});

const floats = (b: Buffer) => Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));

test('gRPC health, server metadata, model metadata and ModelReady', async () => {
  assert.deepEqual(await c.call('ServerLive', {}), { live: true });
  assert.deepEqual(await c.call('ServerReady', {}), { ready: true });
  assert.deepEqual(await c.call('ServerMetadata', {}), {
    name: 'cmc-serve',
    version: '0.1.0',
    extensions: ['binary_tensor_data'],
  });
  const meta = await c.call('ModelMetadata', { name: 'multi', version: '1' });
  assert.deepEqual(meta.versions, ['1', '2']);
  assert.deepEqual(meta.inputs, [{ name: 'images', datatype: 'UINT8', shape: [-1, TINY_SIZE, TINY_SIZE, 3] }]);
  assert.deepEqual(
    meta.outputs.find((o: { name: string }) => o.name === 'embedding'),
    { name: 'embedding', datatype: 'FP32', shape: [-1, TINY_EMBED] },
  );
  assert.deepEqual(await c.call('ModelReady', { name: 'tiny' }), { ready: true });
  assert.equal((await grpcCode(c.call('ModelReady', { name: 'nosuch' }))).code, status.NOT_FOUND);
});

test('gRPC ModelInfer: raw_input_contents and uint_contents give the REST outputs, as raw FP32', async () => {
  const px = pixels(3);
  const rest = await request(`${s.url}/v2/models/tiny/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [{ name: 'images', datatype: 'UINT8', shape: shape(3), data: Array.from(px) }],
      outputs: [{ name: 'embedding' }, { name: 'probabilities' }],
    }),
  });
  assert.equal(rest.status, 200, rest.text);
  const raw = await c.call('ModelInfer', {
    model_name: 'tiny',
    id: 'g1',
    inputs: [{ name: 'images', datatype: 'UINT8', shape: shape(3) }],
    outputs: [{ name: 'embedding' }, { name: 'probabilities' }],
    raw_input_contents: [px],
  });
  assert.equal(raw.model_name, 'tiny');
  assert.equal(raw.model_version, '1');
  assert.equal(raw.id, 'g1');
  assert.deepEqual(
    raw.outputs.map((o: { name: string; datatype: string; shape: number[] }) => [o.name, o.datatype, o.shape]),
    rest.json.outputs.map((o: { name: string; datatype: string; shape: number[] }) => [o.name, o.datatype, o.shape]),
  );
  assert.deepEqual(floats(raw.raw_output_contents[0]), rest.json.outputs[0].data);
  assert.deepEqual(floats(raw.raw_output_contents[1]), rest.json.outputs[1].data);
  const typed = await c.call('ModelInfer', {
    model_name: 'tiny',
    model_version: '1',
    inputs: [{ name: 'images', datatype: 'UINT8', shape: shape(3), contents: { uint_contents: Array.from(px) } }],
    outputs: [{ name: 'embedding' }],
  });
  assert.deepEqual(floats(typed.raw_output_contents[0]), rest.json.outputs[0].data);
  const m = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(m, /cmc_inference_requests_total\{model="tiny:1",route="grpc\/ModelInfer",outcome="success"\} 2/);
});

test('gRPC errors map to status codes with clear details; the bearer token is required when set', async () => {
  const px = pixels(1);
  const infer = (over: Record<string, unknown>) =>
    c.call('ModelInfer', {
      model_name: 'tiny',
      inputs: [{ name: 'images', datatype: 'UINT8', shape: shape(1) }],
      raw_input_contents: [px],
      ...over,
    });
  const cases: [string, Promise<unknown>, status, RegExp][] = [
    [
      'short raw tensor',
      infer({ raw_input_contents: [px.subarray(1)] }),
      status.INVALID_ARGUMENT,
      /raw_input_contents\[0\] holds 3071 bytes; shape \[1, 32, 32, 3\] of UINT8 needs 3072/,
    ],
    [
      'long raw tensor',
      infer({ raw_input_contents: [Buffer.concat([px, px])] }),
      status.INVALID_ARGUMENT,
      /needs 3072/,
    ],
    ['unknown model', infer({ model_name: 'nosuch' }), status.NOT_FOUND, /not found/],
    ['unknown version', infer({ model_name: 'multi', model_version: '9' }), status.NOT_FOUND, /no version/],
    [
      'FP32 input',
      infer({ inputs: [{ name: 'images', datatype: 'FP32', shape: shape(1) }] }),
      status.INVALID_ARGUMENT,
      /UINT8/,
    ],
    [
      'too many images',
      infer({ inputs: [{ name: 'images', datatype: 'UINT8', shape: shape(5) }], raw_input_contents: [pixels(5)] }),
      status.RESOURCE_EXHAUSTED,
      /limit is 4/,
    ],
    ['raw count mismatch', infer({ raw_input_contents: [px, px] }), status.INVALID_ARGUMENT, /2 entries for 1 inputs/],
    ['no inputs', infer({ inputs: [], raw_input_contents: [] }), status.INVALID_ARGUMENT, /exactly one tensor/],
    ['unknown output', infer({ outputs: [{ name: 'secret' }] }), status.INVALID_ARGUMENT, /unknown output/],
  ];
  for (const [name, p, want, details] of cases) {
    const r = await grpcCode(p);
    assert.equal(r.code, want, `${name}: ${r.code} ${r.details}`);
    assert.match(r.details, details, name);
  }
  const t = await startServer({
    models,
    port: 0,
    grpc_port: 0,
    provider: 'cpu',
    quiet: true,
    auth_token: 's3cret',
    max_body_mb: 0.01,
  });
  const tc = grpcClient(`127.0.0.1:${t.grpcPort}`);
  try {
    assert.equal((await grpcCode(tc.call('ModelMetadata', { name: 'tiny' }))).code, status.UNAUTHENTICATED);
    assert.equal(
      (await grpcCode(tc.call('ModelMetadata', { name: 'tiny' }, { authorization: 'Bearer nope' }))).code,
      status.UNAUTHENTICATED,
    );
    assert.deepEqual(await tc.call('ServerLive', {}), { live: true }, 'health stays open');
    assert.equal((await tc.call('ModelMetadata', { name: 'tiny' }, { authorization: 'Bearer s3cret' })).name, 'tiny');
    // A message over --max_body_mb (10 KB here) is refused by grpc-js before it reaches the handler.
    const big = await grpcCode(
      tc.call(
        'ModelInfer',
        {
          model_name: 'tiny',
          inputs: [{ name: 'images', datatype: 'UINT8', shape: shape(4) }],
          raw_input_contents: [pixels(4)],
        },
        { authorization: 'Bearer s3cret' },
      ),
    );
    assert.equal(big.code, status.RESOURCE_EXHAUSTED, big.details);
  } finally {
    tc.close();
    await t.close();
  }
});
