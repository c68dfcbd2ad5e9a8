/**
 * Open Inference Protocol request parsing as pure functions (serve/oip/request.ts), without a server or a
 * session: body bytes → JSON + binary data, JSON → a typed request or the right protocol error, and the
 * plan of which graphs run for the outputs asked for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../serve/errors.ts';
import {
  decodeInferBody,
  defaultOutputs,
  parseInferRequest,
  planGraphs,
  type ModelSignature,
} from '../../serve/oip/request.ts';
import type { TensorInfo } from '../../serve/repository.ts';

const S = 2;
const fp32 = (name: string, width: number): TensorInfo => ({ name, datatype: 'FP32', shape: [-1, width] });
const input: TensorInfo = { name: 'images', datatype: 'UINT8', shape: [-1, S, S, 3] };
const encoder = { role: 'encoder', input, outputs: [fp32('embedding', 4), fp32('features', 6)] };
const classifier = { role: 'classifier', outputs: [fp32('probabilities', 3), fp32('logits', 3), fp32('embedding', 4)] };
const withClassifier: ModelSignature<typeof encoder | typeof classifier> = { size: S, encoder, classifier };
const encoderOnly: ModelSignature<typeof encoder> = { size: S, encoder };

const tensor = (over: Record<string, unknown> = {}) => ({
  name: 'images',
  datatype: 'UINT8',
  shape: [1, S, S, 3],
  data: Array.from({ length: S * S * 3 }, (_, i) => i),
  ...over,
});

function rejects(f: () => unknown, status: number, code: string, message?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.status, status, e.message);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

test('parseInferRequest: JSON data, default outputs, id, binary output flags', () => {
  const r = parseInferRequest({ id: 'a1', inputs: [tensor()] }, withClassifier, 4);
  assert.equal(r.id, 'a1');
  assert.deepEqual(r.outputs, ['embedding', 'probabilities']);
  assert.equal(r.images.length, 1);
  assert.deepEqual([...r.images[0]], [...Array(12).keys()]);
  assert.deepEqual(
    [...r.binary],
    [
      ['embedding', false],
      ['probabilities', false],
    ],
  );
  const b = parseInferRequest(
    {
      inputs: [tensor({ shape: [2, S, S, 3], data: undefined, parameters: { binary_data_size: 24 } })],
      outputs: [
        { name: 'logits', parameters: { binary_data: true } },
        { name: 'features' },
        { name: 'logits', parameters: { binary_data: true } },
      ],
      parameters: { binary_data_output: false },
    },
    withClassifier,
    4,
    new Uint8Array(24).fill(7),
  );
  assert.deepEqual(b.outputs, ['logits', 'features']);
  assert.equal(b.images.length, 2);
  assert.deepEqual([...b.images[1]], new Array(12).fill(7));
  assert.equal(b.binary.get('logits'), true);
  assert.equal(b.binary.get('features'), false);
  assert.deepEqual(defaultOutputs(encoderOnly), ['embedding']);
});

test('parseInferRequest: each malformed request is its protocol error', () => {
  const m = withClassifier;
  rejects(() => parseInferRequest([], m, 4), 400, 'invalid_request', /JSON object/);
  rejects(() => parseInferRequest({ id: 3, inputs: [tensor()] }, m, 4), 400, 'invalid_request', /"id"/);
  rejects(() => parseInferRequest({ inputs: [] }, m, 4), 400, 'invalid_request', /exactly one tensor/);
  rejects(() => parseInferRequest({ inputs: [tensor({ name: 'x' })] }, m, 4), 400, 'invalid_input');
  rejects(() => parseInferRequest({ inputs: [tensor({ datatype: 'FP32' })] }, m, 4), 400, 'invalid_input');
  rejects(() => parseInferRequest({ inputs: [tensor({ shape: [1, 3, S, 3] })] }, m, 4), 400, 'invalid_input');
  rejects(() => parseInferRequest({ inputs: [tensor({ shape: [5, S, S, 3] })] }, m, 4), 413, 'too_many_images');
  rejects(() => parseInferRequest({ inputs: [tensor({ data: [256] })] }, m, 4), 400, 'invalid_input', /\[0, 255\]/);
  rejects(() => parseInferRequest({ inputs: [tensor({ data: [1, 2] })] }, m, 4), 400, 'invalid_input', /holds 2/);
  rejects(
    () => parseInferRequest({ inputs: [tensor({ data: undefined, parameters: { binary_data_size: 12 } })] }, m, 4),
    400,
    'invalid_input',
    /truncated/,
  );
  rejects(
    () => parseInferRequest({ inputs: [tensor()] }, m, 4, new Uint8Array(3)),
    400,
    'invalid_input',
    /no input declares binary_data_size/,
  );
  rejects(
    () => parseInferRequest({ inputs: [tensor()], outputs: [{ name: 'nope' }] }, m, 4),
    400,
    'invalid_output',
    /available: embedding, features, probabilities, logits/,
  );
  rejects(
    () => parseInferRequest({ inputs: [tensor()], outputs: [{ name: 'logits' }] }, encoderOnly, 4),
    400,
    'invalid_output',
  );
  rejects(() => parseInferRequest({ inputs: [tensor()], parameters: 1 }, m, 4), 400, 'invalid_request');
});

test('planGraphs: one graph when one has every output, the classifier first; else output by output', () => {
  const plan = (m: typeof withClassifier, outs: string[]) =>
    [...planGraphs(m, outs)].map(([g, names]) => [g.role, names]);
  assert.deepEqual(plan(withClassifier, ['embedding', 'probabilities']), [
    ['classifier', ['embedding', 'probabilities']],
  ]);
  assert.deepEqual(plan(withClassifier, ['embedding']), [['classifier', ['embedding']]]);
  assert.deepEqual(plan(withClassifier, ['features']), [['encoder', ['features']]]);
  assert.deepEqual(plan(withClassifier, ['logits', 'features', 'embedding']), [
    ['classifier', ['logits', 'embedding']],
    ['encoder', ['features']],
  ]);
  assert.deepEqual(
    [...planGraphs(encoderOnly, ['embedding', 'features'])].map(([g, n]) => [g.role, n]),
    [['encoder', ['embedding', 'features']]],
  );
});

test('decodeInferBody: all JSON, or a JSON header + binary bytes; limits and malformed JSON are errors', () => {
  const json = Buffer.from('{"inputs":[]}');
  assert.deepEqual(decodeInferBody(json, undefined).json, { inputs: [] });
  const withBinary = Buffer.concat([json, Buffer.from([1, 2, 3])]);
  const d = decodeInferBody(withBinary, String(json.length));
  assert.deepEqual(d.json, { inputs: [] });
  assert.deepEqual([...d.binary], [1, 2, 3]);
  rejects(() => decodeInferBody(Buffer.alloc(0), undefined), 400, 'bad_json', /empty/);
  rejects(() => decodeInferBody(Buffer.from('{"a":'), undefined), 400, 'bad_json', /malformed/);
  rejects(() => decodeInferBody(json, undefined, 4), 413, 'payload_too_large', /--max_json_mb/);
  rejects(() => decodeInferBody(withBinary, '99'), 400, 'invalid_header_length');
  rejects(() => decodeInferBody(withBinary, 'x'), 400, 'invalid_header_length');
  rejects(
    () => decodeInferBody(Buffer.from('['.repeat(50) + ']'.repeat(50)), undefined),
    400,
    'bad_json',
    /deeper than/,
  );
});
