// The heartbeat until the first step finishes (train/trainer/first_step.ts): the decision, and the worker
// thread that prints while the main thread is held by a step.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstStepHeartbeat, firstStepNotice, HEARTBEAT_SEC } from '../../train/trainer/first_step.ts';

test('a heartbeat line only once ~10 s have passed without a finished step', () => {
  const what = 'alexnet, batch 128 at 224 px on wasm';
  assert.equal(HEARTBEAT_SEC, 10);
  assert.equal(firstStepNotice(0, 0, what), null);
  assert.equal(firstStepNotice(9.9, 0, what), null, 'too early');
  assert.equal(firstStepNotice(10, 0, what), `[cmc] still on the first step after 10 s (${what})`);
  assert.equal(firstStepNotice(30.4, 0, what), `[cmc] still on the first step after 30 s (${what})`);
  assert.equal(firstStepNotice(30, 1, what), null, 'a step has finished');
  assert.equal(firstStepNotice(NaN, 0, what), null);
  assert.equal(firstStepNotice(1, 0, what, 0.5), `[cmc] still on the first step after 1 s (${what})`);
});

test('the heartbeat prints while the main thread is blocked, stops at the first step, and keeps nothing alive', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-heartbeat-'));
  const file = path.join(dir, 'stderr.txt');
  const fd = fs.openSync(file, 'w');
  try {
    const beat = firstStepHeartbeat('x', { fd, periodMs: 300 });
    // A synchronous "step": the main thread's event loop does not turn (as on wasm, native, cpu) until a line
    // has been written or 20 s have passed.
    const end = Date.now() + 20_000;
    while (Date.now() < end && !fs.readFileSync(file, 'utf8').includes('\n'));
    const during = fs.readFileSync(file, 'utf8');
    assert.match(during, /^\[cmc\] still on the first step after \d+ s \(x\)$/m, 'lines written during the block');
    beat.step();
    // The worker is unref'd, so nothing else keeps this test's event loop turning until its exit event.
    const alive = setInterval(() => {}, 1000);
    await beat.exited.finally(() => clearInterval(alive));
    const after = fs.readFileSync(file, 'utf8');
    assert.equal(after.split('\n').length, during.split('\n').length, 'no line after the first step');
    beat.stop(); // idempotent
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the heartbeat's worker is unref'd: a process that ends before its first step does not wait for it", () => {
  const module = new URL('../../train/trainer/first_step.ts', import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(module)}); m.firstStepHeartbeat('x', { periodMs: 600000 });`;
  // With a 10-minute period, a worker that kept the process alive would run into the timeout.
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.error, undefined);
  assert.equal(r.status, 0, r.stderr);
});
