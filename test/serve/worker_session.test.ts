/**
 * The inference worker (serve/worker_session.ts): the same outputs as a session on the event loop, the loop
 * free while a batch runs there, errors named, and a released session refusing work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSession } from '../../serve/providers.ts';
import { runBatch, runInline } from '../../serve/repository.ts';
import { WorkerSession } from '../../serve/worker_session.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The shipped encoder: uint8 [N, 64, 64, 3] → embedding, features (real work, so that a batch takes time).
const ENCODER = path.join(ROOT, 'models/imagenette64/encoder.onnx');

function images(n: number, seed: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) =>
    Uint8Array.from({ length: 64 * 64 * 3 }, (_, k) => (k * 7 + i * 31 + seed) % 256),
  );
}

test('a batch in the worker gives the outputs of the same batch on the event loop, and does not hold the loop', async () => {
  const bytes = new Uint8Array(fs.readFileSync(ENCODER));
  const { session } = await createSession(bytes, 'cpu', { spinning: false });
  const { session: worker, provider } = await WorkerSession.create(bytes, 'cpu', { spinning: false });
  assert.equal(provider, 'cpu');
  try {
    const names = ['embedding', 'features'];
    const xs = images(32, 5);
    const inline = await runBatch((d, dims) => runInline(session, 'images', d, dims, names), names, xs, 64);
    // The loop's longest stall while the worker runs the same batch a few times.
    let worst = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
    }, 1);
    let off: Awaited<ReturnType<typeof runBatch>> = [];
    const t0 = performance.now();
    for (let r = 0; r < 3; r++) off = await runBatch((d, dims) => worker.run('images', d, dims, names), names, xs, 64);
    const took = (performance.now() - t0) / 3;
    clearInterval(tick);
    assert.equal(off.length, 32);
    for (let i = 0; i < 32; i++)
      for (const n of names) assert.deepEqual(Array.from(off[i][n]), Array.from(inline[i][n]), `image ${i} ${n}`);
    // A run on the loop would stall it for the whole batch; in the worker, ticks keep coming.
    assert.ok(worst < took / 2, `the loop stalled ${worst.toFixed(1)} ms while a batch took ${took.toFixed(1)} ms`);
    await assert.rejects(worker.run('nope', new Uint8Array(64 * 64 * 3), [1, 64, 64, 3], names), /nope|input/i);
  } finally {
    await session.release();
    await worker.release();
  }
  await assert.rejects(worker.run('images', new Uint8Array(64 * 64 * 3), [1, 64, 64, 3], ['embedding']), /exited/);
});
