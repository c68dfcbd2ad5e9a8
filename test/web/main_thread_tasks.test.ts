/**
 * mainThreadTasks on a synthetic Chromium trace: only the marked page's main thread, only between its marks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mainThreadTasks } from './main_thread_tasks.ts';

const URL_ = 'http://127.0.0.1:1234';
const meta = (pid: number, tid: number, name: string) => ({ ph: 'M', name: 'thread_name', pid, tid, args: { name } });
const task = (pid: number, tid: number, ts: number, durMs: number, cpuMs: number) => ({
  ph: 'X',
  name: 'ThreadControllerImpl::RunTask',
  cat: 'toplevel',
  pid,
  tid,
  ts,
  dur: durMs * 1000,
  tdur: cpuMs * 1000,
});
const mark = (pid: number, name: string, ts: number) => ({
  ph: 'I',
  name,
  cat: 'blink.user_timing',
  pid,
  tid: pid,
  ts,
});

function trace(events: object[]): Buffer {
  const frames = {
    ph: 'I',
    name: 'TracingStartedInBrowser',
    pid: 1,
    tid: 1,
    ts: 0,
    args: {
      data: {
        frames: [
          { processId: 10, url: `${URL_}/?runtime=tfjs` },
          { processId: 20, url: `${URL_}/?runtime=onnxruntime` },
        ],
      },
    },
  };
  return Buffer.from(
    JSON.stringify({
      traceEvents: [
        frames,
        meta(10, 10, 'CrRendererMain'),
        meta(10, 11, 'DedicatedWorker thread'),
        meta(20, 20, 'CrRendererMain'),
        ...events,
      ],
    }),
  );
}

test('the longest task of the marked page main thread, between its marks', () => {
  const r = mainThreadTasks(
    trace([
      mark(10, 'a', 1000),
      task(10, 10, 2000, 5, 2),
      task(10, 10, 9000, 40, 30), // the page blocked: 30 ms of CPU
      task(10, 11, 3000, 500, 500), // its worker: not the main thread
      task(20, 20, 3000, 90, 90), // another page
      task(10, 10, 500, 80, 80), // before the start mark
      mark(10, 'b', 100_000),
      task(10, 10, 200_000, 70, 70), // after the end mark
    ]),
    URL_,
    'a',
    'b',
  );
  assert.deepEqual(r, { count: 2, maxWallMs: 40, maxThreadMs: 30, maxThreadTaskWallMs: 40 });
});

test('descheduled: a long wall time with little CPU', () => {
  const r = mainThreadTasks(trace([mark(10, 'a', 0), task(10, 10, 10, 50, 3), mark(10, 'b', 99_000)]), URL_, 'a', 'b');
  assert.equal(r.maxThreadMs, 3);
  assert.equal(r.maxWallMs, 50);
});

test('no marks or no renderer: a clear error', () => {
  assert.throws(() => mainThreadTasks(trace([task(10, 10, 10, 50, 3)]), URL_, 'a', 'b'), /no performance mark a/);
  assert.throws(() => mainThreadTasks(trace([]), 'http://elsewhere', 'a', 'b'), /no renderer for http:\/\/elsewhere/);
});
