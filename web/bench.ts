/**
 * cmcDemo.api.benchBatch(n): n random images through the worker while the main thread records the largest
 * gap between its own MessageChannel ticks: a main thread busy with inference would show a gap as long as
 * the batch.
 *
 * An unmeasured batch of the same n goes first: the first large batch after a load makes V8 tier up the
 * runtime's hot wasm functions (TurboFan on its background threads, measured ~240 ms of CPU for tfjs-wasm
 * and over a second for onnxruntime-web): one-off work of the browser, not of the page, that on a 2-core
 * machine holds the page's main thread off a core for more than a frame while it lasts.
 */
import type { RunResult } from './inference.ts';
import type { BenchFigures } from './state.ts';

export async function benchBatch(
  run: (images: Uint8Array, n: number) => Promise<RunResult>,
  size: number,
  n: number,
): Promise<BenchFigures> {
  const images = new Uint8Array(n * size * size * 3);
  for (let i = 0; i < images.length; i++) images[i] = (i * 2654435761) >>> 24;
  await run(images.slice(), n); // the warm-up (see above); run() transfers the buffer it is given
  const r = await tickWhile(() => run(images, n).then((x) => x.ms));
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
  const end = performance.now();
  const ms = end - t0;
  // The stretch since the last tick too: main-thread work on the result (before work() resolves) ends the
  // batch, and no later tick would show it.
  maxGap = Math.max(maxGap, end - last);
  on = false;
  ch.port1.close();
  return { ms: Math.max(ms, inner), maxGapMs: maxGap, ticks };
}
