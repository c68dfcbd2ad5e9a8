/**
 * cmcDemo.api.benchBatch(n): n random images through the worker, twice, while the main thread records the
 * largest gap between its own MessageChannel ticks (a main thread busy with inference would show a gap as
 * long as the batch), and as a control the same while a worker only spins as long.
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
  const batch = () => {
    const copy = images.slice(); // run() transfers the buffer it is given
    return tickWhile(() => run(copy, n).then((x) => x.ms));
  };
  const control = (ms: number) =>
    tickWhile(
      () =>
        new Promise<number>((res) => {
          spin.onmessage = () => res(ms);
          spin.postMessage(ms);
        }),
    );
  await run(images.slice(), n); // the warm-up (see above)
  // Batch, control, control, batch: background load that grows or fades over the seconds this takes (V8
  // still compiling onnxruntime-web's 20 MB of wasm, another process) weighs on both sides alike.
  const a1 = await batch();
  const b1 = await control(a1.ms);
  const b2 = await control(a1.ms);
  const a2 = await batch();
  spin.terminate();
  return {
    n,
    ms: (a1.ms + a2.ms) / 2,
    maxGapMs: Math.max(a1.maxGapMs, a2.maxGapMs),
    ticks: a1.ticks + a2.ticks,
    idleMaxGapMs: Math.max(b1.maxGapMs, b2.maxGapMs),
  };
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
