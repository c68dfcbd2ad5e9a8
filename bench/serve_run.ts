// Runs `cmc bench serve` without the CLI wiring: node --import tsx bench/serve_run.ts [durationS] [size]
import { formatServeBench, runServeBench } from './serve.ts';
const r = await runServeBench({
  durationS: Number(process.argv[2] ?? 5),
  size: Number(process.argv[3] ?? 64),
  log: (l) => console.error(l),
});
console.log(formatServeBench(r));
console.log(JSON.stringify(r));
