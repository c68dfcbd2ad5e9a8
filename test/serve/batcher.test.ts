import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher } from '../../serve/batcher.ts';
import { OverloadedError, QueueTimeoutError } from '../../serve/errors.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function recorder(delayMs = 0) {
  const sizes: number[] = [];
  const run = async (xs: number[]) => {
    sizes.push(xs.length);
    if (delayMs) await sleep(delayMs);
    return xs.map((x) => x * 10);
  };
  return { sizes, run };
}

test('batcher gathers concurrent submissions into one batch and keeps order', async () => {
  const r = recorder();
  const b = new Batcher({ maxBatch: 32, maxDelayMs: 20, maxQueue: 100, timeoutMs: 1000, run: r.run });
  const outs = await Promise.all([b.submit([1, 2]), b.submit([3]), b.submit([4, 5, 6])]);
  assert.deepEqual(outs, [[10, 20], [30], [40, 50, 60]]);
  assert.deepEqual(r.sizes, [6]);
});

test('batcher splits at max_batch and runs a full batch without waiting for the delay', async () => {
  const r = recorder();
  const b = new Batcher({ maxBatch: 4, maxDelayMs: 10000, maxQueue: 100, timeoutMs: 0, run: r.run });
  const t0 = performance.now();
  const out = await b.submit([1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(out, [10, 20, 30, 40, 50, 60, 70, 80]);
  assert.deepEqual(r.sizes, [4, 4]);
  assert.ok(performance.now() - t0 < 1000);
});

test('batcher: a full queue is an OverloadedError (all or nothing), then recovers', async () => {
  const r = recorder(30);
  const b = new Batcher({ maxBatch: 2, maxDelayMs: 0, maxQueue: 3, timeoutMs: 0, run: r.run });
  const first = b.submit([1, 2]); // runs at once
  const second = b.submit([3, 4, 5]); // queued (3 of 3)
  await assert.rejects(
    b.submit([6]),
    (e) => e instanceof OverloadedError && e.status === 429 && e.headers['Retry-After'] === '1',
  );
  assert.deepEqual(await first, [10, 20]);
  assert.deepEqual(await second, [30, 40, 50]);
  assert.deepEqual(await b.submit([7]), [70]);
});

test('batcher: an item still queued after timeout_ms fails with QueueTimeoutError and leaves the queue', async () => {
  const r = recorder(80);
  const b = new Batcher({ maxBatch: 1, maxDelayMs: 0, maxQueue: 10, timeoutMs: 20, run: r.run });
  const a = b.submit([1]); // runs 80 ms
  const c = b.submit([2]); // waits behind it, times out at 20 ms
  await assert.rejects(c, (e) => e instanceof QueueTimeoutError && e.status === 503);
  assert.equal(b.depth, 0);
  assert.deepEqual(await a, [10]);
  await b.drain();
  assert.deepEqual(r.sizes, [1]);
});

test('batcher: a failing run rejects every request of the batch; the next batch works', async () => {
  let fail = true;
  const b = new Batcher<number, number>({
    maxBatch: 8,
    maxDelayMs: 5,
    maxQueue: 10,
    timeoutMs: 0,
    run: async (xs) => {
      if (fail) throw new Error('boom');
      return xs;
    },
  });
  const rs = await Promise.allSettled([b.submit([1]), b.submit([2])]);
  assert.ok(rs.every((x) => x.status === 'rejected'));
  fail = false;
  assert.deepEqual(await b.submit([3]), [3]);
});

test('batcher: close() drains queued work and refuses new work', async () => {
  const r = recorder(10);
  const b = new Batcher({ maxBatch: 2, maxDelayMs: 5, maxQueue: 10, timeoutMs: 0, run: r.run });
  const p = b.submit([1, 2, 3]);
  await b.close();
  assert.deepEqual(await p, [10, 20, 30]);
  await assert.rejects(b.submit([4]), (e: { status?: number }) => e.status === 503);
});

test('batcher.reserve: reserved places count as queued until submitted or released', async () => {
  const r = recorder();
  const b = new Batcher({ maxBatch: 4, maxDelayMs: 0, maxQueue: 3, timeoutMs: 0, run: r.run });
  const places = b.reserve(2);
  assert.equal(b.depth, 2);
  assert.throws(() => b.reserve(2), OverloadedError);
  await assert.rejects(b.submit([1, 2]), OverloadedError);
  assert.deepEqual(await places.submit([7, 8]), [70, 80]);
  assert.equal(b.depth, 0);
  await assert.rejects(places.submit([1]), /already used/);
  const other = b.reserve(3);
  other.release();
  other.release();
  assert.equal(b.depth, 0);
  assert.deepEqual(await b.submit([1, 2, 3]), [10, 20, 30]);
});

test('batcher with expectMore: a lone submission runs at once; while more are on their way it waits for the delay', async () => {
  const r = recorder();
  let more = false;
  const b = new Batcher({
    maxBatch: 32,
    maxDelayMs: 10000,
    maxQueue: 100,
    timeoutMs: 0,
    run: r.run,
    expectMore: () => more,
  });
  const t0 = performance.now();
  assert.deepEqual(await b.submit([1]), [10]);
  assert.ok(performance.now() - t0 < 1000, 'no 10 s wait for company that is not coming');
  more = true;
  const waiting = b.submit([2]);
  await new Promise((res) => setTimeout(res, 30));
  assert.equal(b.depth, 1, 'waits while another submission is on its way');
  more = false;
  assert.deepEqual(await Promise.all([waiting, b.submit([3])]), [[20], [30]]);
  assert.deepEqual(r.sizes, [1, 2]);
});

test('batcher.reserveWithin: a full queue makes callers wait (newest admitted first), then 429 after the wait', async () => {
  const r = recorder();
  const b = new Batcher({ maxBatch: 4, maxDelayMs: 0, maxQueue: 2, timeoutMs: 0, run: r.run });
  const first = b.reserve(2);
  const order: string[] = [];
  const older = b.reserveWithin(1, 5000).then((p) => (order.push('older'), p));
  const newer = b.reserveWithin(1, 5000).then((p) => (order.push('newer'), p));
  const late = b.reserveWithin(2, 30);
  await assert.rejects(late, OverloadedError);
  first.release();
  const [po, pn] = await Promise.all([older, newer]);
  assert.deepEqual(order, ['newer', 'older']);
  assert.deepEqual(await Promise.all([po.submit([1]), pn.submit([2])]), [[10], [20]]);
  const hold = b.reserve(1);
  const big = b.reserveWithin(3, 1000);
  let bigDone = false;
  void big.then(() => (bigDone = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(bigDone, false, 'more than the whole queue waits while the queue holds anything');
  hold.release();
  const pb = await big;
  assert.equal(pb.size, 3, 'and is admitted alone once the queue is empty');
  assert.deepEqual(await pb.submit([1, 2, 3]), [10, 20, 30]);
});

test('batcher.reserveWithin: a request may be admitted only within its wait, and is refused at its hold time', async () => {
  const r = recorder();
  const b = new Batcher({ maxBatch: 4, maxDelayMs: 0, maxQueue: 1, timeoutMs: 0, run: r.run });
  const first = b.reserve(1);
  const t0 = performance.now();
  const stale = b.reserveWithin(1, 20, 150);
  await new Promise((res) => setTimeout(res, 60));
  first.release(); // a place frees after the waiter's 20 ms window: it is not admitted...
  const fresh = await b.reserveWithin(1, 20, 150); // ...a newcomer takes the place at once
  assert.equal(fresh.size, 1);
  await assert.rejects(stale, OverloadedError);
  const held = performance.now() - t0;
  assert.ok(held >= 145, `the refusal came after the hold time (${held.toFixed(0)} ms)`);
  fresh.release();
  const first2 = b.reserve(1);
  const quick = b.reserveWithin(1, 0, 0);
  await assert.rejects(quick, OverloadedError, 'no wait and no hold: refused at once');
  first2.release();
});
