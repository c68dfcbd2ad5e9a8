/**
 * A heartbeat until the first training step finishes: the first step of a large network can take minutes
 * (kernel compilation, the first batch's decoding), and without it `cmc train` would print nothing after its
 * header. Every ~10 s one line says the run is still on its first step; the first step stops it. The timer
 * never keeps the process alive. A synchronous backend (cpu) blocks the event loop during a step, so the
 * line comes only on backends that yield while they compute.
 */

export const HEARTBEAT_SEC = 10;

/** The heartbeat line due `elapsedSec` into the run, or null (a step has finished, or it is too early). */
export function firstStepNotice(elapsedSec: number, stepsDone: number, what: string): string | null {
  if (stepsDone > 0 || !(elapsedSec >= HEARTBEAT_SEC)) return null;
  return `[cmc] still on the first step after ${Math.round(elapsedSec)} s (${what})`;
}

export interface FirstStepHeartbeat {
  /** A step finished: no more lines. */
  step(): void;
  /** The run ended (or failed) before its first step finished. */
  stop(): void;
}

/** Starts the heartbeat; `what` names the work ("alexnet, batch 128 at 224 px on wasm"). */
export function firstStepHeartbeat(what: string, log: (line: string) => void): FirstStepHeartbeat {
  const t0 = performance.now();
  let steps = 0;
  const timer = setInterval(() => {
    const line = firstStepNotice((performance.now() - t0) / 1000, steps, what);
    if (line) log(line);
  }, HEARTBEAT_SEC * 1000);
  timer.unref();
  const stop = () => clearInterval(timer);
  return {
    step: () => {
      steps++;
      stop();
    },
    stop,
  };
}
