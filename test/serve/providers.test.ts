/** Session options: the server's non-spinning onnxruntime threads. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { createSession, sessionOptions } from '../../serve/providers.ts';
import { DataType, encodeModel, makeModel, makeNode, valueInfo } from '../../core/onnx/onnx_proto.ts';

const castModel = () =>
  encodeModel(
    makeModel({
      graph: {
        name: 'g',
        node: [makeNode('Cast', ['x'], ['y'], 'c', { to: DataType.FLOAT })],
        input: [valueInfo('x', DataType.UINT8, ['N', 2])],
        output: [valueInfo('y', DataType.FLOAT, ['N', 2])],
      },
    }),
  );

test('spinning off sets both thread pools; default leaves onnxruntime alone', () => {
  assert.deepEqual(sessionOptions('cpu', 0, false).extra, {
    session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } },
  });
  assert.equal(sessionOptions('cpu', 2).extra, undefined);
  assert.equal(sessionOptions('cpu', 2).intraOpNumThreads, 2);
});

test('a session without spinning runs (the effect on CPU time is measured by cmc bench serve)', async () => {
  const { session } = await createSession(castModel(), 'cpu', { spinning: false });
  const r = await session.run({ x: new ort.Tensor('uint8', new Uint8Array([3, 4]), [1, 2]) });
  assert.deepEqual(Array.from(r.y.data as Float32Array), [3, 4]);
  await session.release();
});
