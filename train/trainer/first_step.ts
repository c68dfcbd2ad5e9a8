/**
 * A heartbeat until the first training step finishes: the first step of a large network can take minutes
 * (kernel compilation, the first batch's decoding), and without it `cmc train` would print nothing after its
 * header. Every ~10 s one line says the run is still on its first step; the first step stops it.
 *
 * The timer lives in a worker thread that writes to stderr itself: wasm, native and cpu steps run on the main
 * thread and hold its event loop for the whole step, so a main-thread timer would fire only after the step it
 * is meant to report on. The worker sleeps on a shared flag (Atomics.wait) that the first step raises, and
 * never keeps the process alive.
 */
import fs from 'node:fs';
import { isMainThread, workerData } from 'node:worker_threads';
import { spawnTsWorker } from '../../core/util/ts_worker.ts';

export const HEARTBEAT_SEC = 10;

/** The heartbeat line due `elapsedSec` into the run, or null (a step has finished, or it is too early). */
export function firstStepNotice(
  elapsedSec: number,
  stepsDone: number,
  what: string,
  afterSec = HEARTBEAT_SEC,
): string | null {
  if (stepsDone > 0 || !(elapsedSec >= afterSec)) return null;
  return `[cmc] still on the first step after ${Math.round(elapsedSec)} s (${what})`;
}

export interface FirstStepHeartbeat {
  /** A step finished: no more lines. */
  step(): void;
  /** The run ended (or failed) before its first step finished. */
  stop(): void;
}

interface HeartbeatData {
  heartbeat: true;
  what: string;
  flag: SharedArrayBuffer;
  /** Where the lines go: a file descriptor (2 = stderr). */
  fd: number;
  periodMs: number;
}

/** Starts the heartbeat; `what` names the work ("alexnet, batch 128 at 224 px on wasm"). */
export function firstStepHeartbeat(
  what: string,
  o: { fd?: number; periodMs?: number } = {},
): FirstStepHeartbeat & { exited: Promise<void> } {
  const flag = new SharedArrayBuffer(4);
  const data: HeartbeatData = {
    heartbeat: true,
    what,
    flag,
    fd: o.fd ?? 2,
    periodMs: o.periodMs ?? HEARTBEAT_SEC * 1000,
  };
  const worker = spawnTsWorker(new URL(import.meta.url), { workerData: data });
  worker.unref();
  const exited = new Promise<void>((res) => worker.once('exit', () => res()));
  // step() runs every training step; only the first one has anything to do.
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    const f = new Int32Array(flag);
    Atomics.store(f, 0, 1);
    Atomics.notify(f, 0);
  };
  return { step: stop, stop, exited };
}

/** The worker's side: sleep on the flag, print a line at each period that passes without a step. */
function runHeartbeat(d: HeartbeatData): void {
  const f = new Int32Array(d.flag);
  const t0 = performance.now();
  while (Atomics.wait(f, 0, 0, d.periodMs) === 'timed-out') {
    const line = firstStepNotice((performance.now() - t0) / 1000, 0, d.what, d.periodMs / 1000);
    if (line) fs.writeSync(d.fd, line + '\n');
  }
}

if (!isMainThread && (workerData as HeartbeatData | undefined)?.heartbeat === true)
  runHeartbeat(workerData as HeartbeatData);
