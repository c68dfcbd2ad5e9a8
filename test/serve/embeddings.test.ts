/**
 * POST /v1/embeddings, called through the official `openai` npm client (baseURL on 127.0.0.1): one or
 * many images as data URIs or plain base64, float and base64 encodings, equal to /v1/embed on the same
 * bytes; errors in OpenAI's { error: { message, type, param, code } } shape, surfaced by the client.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { startServer, type RunningServer } from '../../serve/main.ts';
import { openApiDocument } from '../../serve/openapi.ts';
import { request, testImage, TINY_EMBED, writeTinyRepository } from './fixture.ts';

let models: string;
let s: RunningServer;
let client: OpenAI;
let jpeg: Buffer, png: Buffer;

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
  });
  client = new OpenAI({ apiKey: 'unused', baseURL: `${s.url}/v1`, maxRetries: 0 });
  [jpeg, png] = await Promise.all([testImage('jpeg', 60, 45, 1), testImage('png', 41, 70, 2)]);
});

after(async () => {
  await s.close();
  fs.rmSync(path.dirname(models), { recursive: true, force: true });
});

const dataUri = (b: Buffer, type: string) => `data:${type};base64,${b.toString('base64')}`;
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) =>
  a.length === b.length && Array.from(a).every((x, i) => Math.abs(x - b[i]) <= tol);

async function embedReference(images: Buffer[], model = 'tiny'): Promise<number[][]> {
  const r = await request(`${s.url}/v1/embed?model=${model}`, {
    method: 'POST',
    body: JSON.stringify({ images: images.map((b) => b.toString('base64')) }),
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(r.status, 200, r.text);
  return r.json.embeddings;
}

test('openai client: data URIs and plain base64, default (base64) and float encodings, equal to /v1/embed', async () => {
  const want = await embedReference([jpeg, png]);
  // The client asks for base64 by default and decodes the float32 bytes itself.
  const a = await client.embeddings.create({
    model: 'tiny',
    input: [dataUri(jpeg, 'image/jpeg'), png.toString('base64')],
  });
  assert.equal(a.object, 'list');
  assert.equal(a.model, 'tiny:1');
  assert.deepEqual(
    a.data.map((d) => [d.object, d.index, d.embedding.length]),
    [
      ['embedding', 0, TINY_EMBED],
      ['embedding', 1, TINY_EMBED],
    ],
  );
  assert.ok(
    close(a.data[0].embedding, want[0]) && close(a.data[1].embedding, want[1]),
    'embeddings equal to /v1/embed',
  );
  assert.deepEqual(a.usage, { prompt_tokens: 2, total_tokens: 2 });
  const f = await client.embeddings.create({
    model: 'tiny:1',
    input: dataUri(png, 'image/png'),
    encoding_format: 'float',
  });
  assert.equal(f.data.length, 1);
  assert.ok(close(f.data[0].embedding, want[1]));
  // base64 asked explicitly: the client hands back the string; it holds the same float32 values.
  const b = await client.embeddings.create({
    model: 'tiny',
    input: [png.toString('base64')],
    encoding_format: 'base64',
  });
  const bytes = Buffer.from(b.data[0].embedding as unknown as string, 'base64');
  const floats = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
  assert.ok(close(floats, want[1], 0), 'base64 carries the exact float32 values');
  const other = await client.embeddings.create({ model: 'multi:1', input: png.toString('base64') });
  assert.ok(close(other.data[0].embedding, (await embedReference([png], 'multi&version=1'))[0]));
});

async function openAiError(body: Record<string, unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await client.embeddings.create(body as never);
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${String(e)}`);
    return e;
  }
  assert.fail(`no error for ${JSON.stringify(body).slice(0, 100)}`);
}

test('openai client: bad requests surface as APIError with status, type, param and code', async () => {
  const url = await openAiError({ model: 'tiny', input: ['https://example.com/cat.jpg'] });
  assert.equal(url.status, 400);
  assert.equal(url.code, 'url_not_supported');
  assert.equal(url.param, 'input');
  assert.equal(url.type, 'invalid_request_error');
  assert.match(url.message, /does not fetch URLs/);
  const unknown = await openAiError({ model: 'nosuch', input: [png.toString('base64')] });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.code, 'model_not_found');
  assert.equal(unknown.param, 'model');
  const tokens = await openAiError({ model: 'tiny', input: [1, 2, 3] });
  assert.equal(tokens.status, 400);
  assert.match(tokens.message, /token ids/);
  const many = await openAiError({ model: 'tiny', input: Array(5).fill(png.toString('base64')) });
  assert.equal(many.status, 413);
  assert.equal(many.code, 'too_many_images');
  const notImage = await openAiError({
    model: 'tiny',
    input: [png.toString('base64'), Buffer.from('not an image').toString('base64')],
  });
  assert.equal(notImage.status, 422);
  assert.match(notImage.message, /input\[1\]: cannot read the image/);
  const dims = await openAiError({ model: 'tiny', input: png.toString('base64'), dimensions: 3 });
  assert.equal(dims.status, 400);
  assert.equal(dims.param, 'dimensions');
});

test("raw HTTP bodies (float and base64, and an error) fit the OpenAPI document's schemas for /v1/embeddings", async () => {
  const doc = openApiDocument() as { components: { schemas: Record<string, object> } };
  const ajv = new Ajv({ strict: false });
  ajv.addSchema({ $id: 'doc', components: doc.components });
  const ok = ajv.getSchema('doc#/components/schemas/EmbeddingsResponse')!;
  const err = ajv.getSchema('doc#/components/schemas/OpenAIError')!;
  for (const encoding_format of ['float', 'base64']) {
    const r = await request(`${s.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', input: [png.toString('base64')], encoding_format }),
    });
    assert.equal(r.status, 200, r.text);
    assert.ok(ok(r.json), ajv.errorsText(ok.errors));
  }
  const bad = await request(`${s.url}/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input: 'http://x/y.png' }),
  });
  assert.equal(bad.status, 400);
  assert.ok(err(bad.json), ajv.errorsText(err.errors));
});
