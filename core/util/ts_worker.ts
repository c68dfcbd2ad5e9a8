/**
 * Worker threads that run TypeScript: `new Worker('./x.ts')` fails ("Unknown file extension .ts") under
 * every launcher, so a tiny bootstrap registers tsx inside the worker and then imports the module. The
 * parent's own tsx flags are dropped from execArgv (the bootstrap registers tsx itself).
 *
 *   const w = spawnTsWorker(new URL('../../train/data/worker.ts', import.meta.url), { workerData: init });
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function spawnTsWorker(module: URL, opts: Omit<WorkerOptions, 'eval' | 'execArgv'> = {}): Worker {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const code =
    `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(module.href)}); })` +
    `.catch((e) => { setImmediate(() => { throw e; }); });`;
  return new Worker(code, { ...opts, eval: true, execArgv: workerExecArgv() });
}

function workerExecArgv(): string[] {
  const out: string[] = [];
  const a = process.execArgv;
  for (let k = 0; k < a.length; k++) {
    const f = a[k];
    if (
      (f === '--import' || f === '--require' || f === '-r' || f === '--loader' || f === '--experimental-loader') &&
      /tsx/.test(a[k + 1] ?? '')
    ) {
      k++;
      continue;
    }
    if (/^--(import|require|loader|experimental-loader)=.*tsx/.test(f)) continue;
    out.push(f);
  }
  return out;
}
