import { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { lineChart, type Series } from '../../train/log/plot.ts';

/**
 * `cmc plot`: training curves of one or more runs (their metrics.jsonl) as SVG files, by default in the first
 * run's folder (plots/), so that nothing lands in the current folder unasked.
 */
export function addPlotCommand(program: Command): void {
  program
    .command('plot')
    .description('draw training curves (loss, kNN top-1 per epoch) of runs as SVG')
    .argument('<runs...>', 'run folders (holding metrics.jsonl) or metrics.jsonl files')
    .option('--out <dir>', 'output folder (default: plots/ in the first run folder)')
    .option('--x <axis>', 'x axis: epoch or step', 'step')
    .action((runs: string[], o: { out?: string; x: 'epoch' | 'step' }) => {
      const out = o.out ?? path.join(runs[0].endsWith('.jsonl') ? path.dirname(runs[0]) : runs[0], 'plots');
      const loss: Series[] = [];
      const knn: Series[] = [];
      for (const r of runs) {
        const file = r.endsWith('.jsonl') ? r : path.join(r, 'metrics.jsonl');
        const rows = fs
          .readFileSync(file, 'utf8')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l));
        const name = path.basename(path.dirname(path.resolve(file)));
        loss.push({ name, points: rows.map((m) => [m[o.x], m.loss]) });
        // One series per feature source: recomputed kNN and memory-bank kNN are different measurements.
        for (const src of ['recompute', 'memory']) {
          const k = rows
            .filter((m) => typeof m.knn_top1 === 'number' && (m.knn_source ?? 'memory') === src)
            .map((m) => [m[o.x], 100 * m.knn_top1] as [number, number]);
          if (k.length)
            knn.push({
              name: `${name} (${src === 'memory' ? 'memory bank' : 'recomputed'})`,
              points: k,
              dashed: src === 'memory',
            });
        }
      }
      fs.mkdirSync(out, { recursive: true });
      const xl = o.x === 'step' ? 'SGD steps' : 'epoch';
      const written = [path.join(out, 'loss.svg')];
      fs.writeFileSync(
        written[0],
        lineChart({
          title: 'training loss (mean per epoch)',
          xLabel: xl,
          yLabel: 'loss',
          series: loss,
          legend: 'below',
        }),
      );
      if (knn.length) {
        written.push(path.join(out, 'knn.svg'));
        fs.writeFileSync(
          written[1],
          lineChart({
            title: 'weighted kNN top-1 on the test split',
            xLabel: xl,
            yLabel: 'top-1 (%)',
            series: knn,
            legend: 'below',
          }),
        );
      }
      console.log(written.join('\n'));
    });
}
