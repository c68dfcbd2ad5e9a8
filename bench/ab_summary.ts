// Summarise bench/ab_train_step.sh output (JSON lines of `cmc bench train-step`): medians per configuration.
import fs from 'node:fs';
const rows = fs
  .readFileSync(process.argv[2], 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l));
const med = (a: number[]) => {
  const s = a.slice().sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const groups = new Map<string, { ms: number[]; t113: number[]; t2: number[] }>();
for (const r of rows) {
  const key = `${r.arch} ${r.image_size}px B=${r.batch_size}, wasm ${r.threads} thread(s)`;
  const g = groups.get(key) ?? { ms: [], t113: [], t2: [] };
  g.ms.push(...r.ms_per_step_all);
  const tv = r.torch?.version as string | undefined;
  if (typeof r.torch?.ms_per_step === 'number') (tv?.startsWith('1.') ? g.t113 : g.t2).push(r.torch.ms_per_step);
  groups.set(key, g);
}
console.log('| config | wasm ms/step | img/s | torch 1.13 ms | ratio | torch 2.x ms | ratio |');
console.log('|---|---|---|---|---|---|---|');
for (const [k, g] of groups) {
  const ms = med(g.ms);
  const b = Number(/B=(\d+)/.exec(k)![1]);
  const f = (a: number[]) => (a.length ? `${med(a).toFixed(0)} | ${(ms / med(a)).toFixed(2)}` : '– | –');
  console.log(`| ${k} | ${ms.toFixed(0)} | ${((b * 1000) / ms).toFixed(1)} | ${f(g.t113)} | ${f(g.t2)} |`);
}
