/**
 * The tasks a page's main thread ran, from a Chromium trace (Playwright's browser.startTracing/stopTracing,
 * Chromium only): each top-level task's wall time and its thread time (CPU time on that thread, which a busy
 * machine that deschedules the thread does not inflate). A task is what blocks a page: no input, timer or
 * frame is handled until it ends, so "the main thread is never blocked for more than a frame" is "no task
 * longer than a frame" — the Long Tasks API's definition, with a frame instead of 50 ms.
 *
 *   await browser.startTracing(page, { categories: TASK_CATEGORIES });
 *   ... work ...
 *   const tasks = mainThreadTasks(await browser.stopTracing(), pageUrl, 'start-mark', 'end-mark');
 */

/** The categories that carry the renderer's top-level tasks and the thread names. */
export const TASK_CATEGORIES = ['toplevel', 'disabled-by-default-devtools.timeline', 'blink.user_timing', '__metadata'];

export interface MainThreadTasks {
  /** Top-level tasks seen on the page's main thread. */
  count: number;
  /** The longest task's wall time (ms). */
  maxWallMs: number;
  /** The longest task's thread (CPU) time (ms). */
  maxThreadMs: number;
  /** Wall time of the task with the longest thread time (ms). */
  maxThreadTaskWallMs: number;
}

interface TraceEvent {
  name: string;
  cat?: string;
  ph: string;
  ts?: number;
  pid: number;
  tid: number;
  dur?: number;
  tdur?: number;
  args?: { name?: string; data?: { frames?: { processId?: number; url?: string }[] } };
}

/**
 * The main-thread tasks of the renderer that shows `pageUrl` (matched by prefix against the frames the
 * trace lists), those that start between the page's performance marks `from` and `to` (the tasks outside
 * them include the harness's own: starting the trace costs the renderer a ~10 ms task); throws when the
 * trace has no such renderer, no such marks, or no tasks with thread times.
 */
export function mainThreadTasks(trace: Buffer, pageUrl: string, from: string, to: string): MainThreadTasks {
  const parsed = JSON.parse(trace.toString('utf8')) as { traceEvents?: TraceEvent[] } | TraceEvent[];
  const events = Array.isArray(parsed) ? parsed : (parsed.traceEvents ?? []);
  const pids = new Set<number>();
  for (const e of events) {
    for (const f of e.args?.data?.frames ?? []) {
      if (f.processId !== undefined && f.url?.startsWith(pageUrl)) pids.add(f.processId);
    }
  }
  if (pids.size === 0) throw new Error(`the trace lists no renderer for ${pageUrl}`);
  // The marks name the renderer (other pages of the same site may be open, busy with their own work).
  const mark = (name: string) => {
    const m = events.find((e) => e.name === name && pids.has(e.pid) && e.ts !== undefined);
    if (!m) throw new Error(`the trace has no performance mark ${name} from ${pageUrl}`);
    return m;
  };
  const start = mark(from);
  const t0 = start.ts!,
    t1 = mark(to).ts!;
  const mains = new Set(
    events
      .filter(
        (e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain' && e.pid === start.pid,
      )
      .map((e) => `${e.pid}:${e.tid}`),
  );
  const tasks = events.filter(
    (e) =>
      e.ph === 'X' &&
      (e.name === 'RunTask' || e.name === 'ThreadControllerImpl::RunTask') &&
      mains.has(`${e.pid}:${e.tid}`) &&
      e.ts! >= t0 &&
      e.ts! <= t1,
  );
  const timed = tasks.filter((e) => e.tdur !== undefined);
  if (timed.length === 0)
    throw new Error(`no main-thread tasks with thread times in the trace (${tasks.length} tasks)`);
  const top = timed.reduce((a, b) => (b.tdur! > a.tdur! ? b : a));
  return {
    count: tasks.length,
    maxWallMs: Math.max(...tasks.map((e) => (e.dur ?? 0) / 1000)),
    maxThreadMs: top.tdur! / 1000,
    maxThreadTaskWallMs: (top.dur ?? 0) / 1000,
  };
}
