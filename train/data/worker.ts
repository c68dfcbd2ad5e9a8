/**
 * Loader worker thread (started by loader.ts through a tsx bootstrap): reopens the source from its spec
 * and builds the batches it is sent, one at a time, transferring the results back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { sourceFromSpec } from './sources.ts';
import { buildBatch, type FromWorker, type ToWorker, type WorkerInit } from './loader.ts';

const port = parentPort;
if (!port) throw new Error('train/data/worker.ts must run in a worker thread');
const init = workerData as WorkerInit;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const source = sourceFromSpec(init.spec, (message) => post({ type: 'warn', message }));

let chain: Promise<void> = Promise.resolve();
port.on('message', (m: ToWorker) => {
  if (m.type !== 'batch') return;
  chain = chain.then(async () => {
    try {
      const r = await buildBatch(source, m.indices, init.transform, init.seed, m.epoch);
      post({ type: 'batch', id: m.id, x: r.x, label: r.label }, [
        r.x.buffer as ArrayBuffer,
        r.label.buffer as ArrayBuffer,
      ]);
    } catch (e) {
      const err = e as Error;
      post({ type: 'error', id: m.id, message: err.message, stack: err.stack });
    }
  });
});
post({ type: 'ready' });
