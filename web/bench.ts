/**
 * cmcDemo.api.benchBatch(n): n random images through the worker while the main thread records the largest
 * gap between its own MessageChannel ticks: a main thread busy with inference would show a gap as long as
 * the batch.
 */
import type { RunResult } from './inference.ts';
import type { BenchFigures } from './state.ts';

export const BENCH_START = 'cmc:bench-start';
export const BENCH_END = 'cmc:bench-end';

export async function benchBatch(
  run: (images: Uint8Array, n: number) => Promise<RunResult>,
  size: number,
  n: number,
): Promise<BenchFigures> {
  const images = new Uint8Array(n * size * size * 3);
  for (let i = 0; i < images.length; i++) images[i] = (i * 2654435761) >>> 24;
  // Marks for a trace (Chromium's blink.user_timing): the tasks between them are the page's while the batch
  // runs (not the control's: starting its worker costs the main thread 10-20 ms).
  performance.mark(BENCH_START);
  const r = await tickWhile(() => run(images, n).then((x) => x.ms));
  performance.mark(BENCH_END);
  // Control: the same ticks while another worker only spins for as long: how late a busy CPU alone makes
  // them (on a loaded machine the page's threads wait for a core), with nothing of ours on the main thread.
  const spin = new Worker(
    URL.createObjectURL(
      new Blob(
        [
          'onmessage = (e) => { const end = performance.now() + e.data; while (performance.now() < end); postMessage(0); };',
        ],
        { type: 'text/javascript' },
      ),
    ),
  );
  const control = await tickWhile(
    () =>
      new Promise<number>((res) => {
        spin.onmessage = () => res(r.ms);
        spin.postMessage(r.ms);
      }),
  );
  spin.terminate();
  return { n, ms: r.ms, maxGapMs: r.maxGapMs, ticks: r.ticks, idleMaxGapMs: control.maxGapMs };
}

/** Runs `work` while a MessageChannel + setTimeout(1) loop on the main thread records its largest gap. */
async function tickWhile(work: () => Promise<number>): Promise<{ ms: number; maxGapMs: number; ticks: number }> {
  const ch = new MessageChannel();
  let last = performance.now();
  let maxGap = 0;
  let ticks = 0;
  let on = true;
  ch.port1.onmessage = () => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
    if (on) setTimeout(() => ch.port2.postMessage(0), 1);
  };
  ch.port2.postMessage(0);
  const t0 = performance.now();
  const inner = await work();
  const ms = performance.now() - t0;
  on = false;
  ch.port1.close();
  return { ms: Math.max(ms, inner), maxGapMs: maxGap, ticks };
}
