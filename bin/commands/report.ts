import { Command, InvalidArgumentError, Option } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { buildReport, PLOT_FILES, type MetricChoice } from '../../train/results/report.ts';
import { loadResults } from '../../train/results/results.ts';
import { int } from '../options.ts';

const HELP = `
Input: files directly in <results> (train/results/eval_protocol.sh writes them; the format is documented at
the top of train/results/report.ts). <method> is a label such as cmc, random, supervised; _epoch<E> marks an
intermediate checkpoint of that method (epoch E), drawn against SGD steps:

  probe_<method>[_epoch<E>]_layer<L>.json   cmc probe --json --layer L ...
  knn_<method>[_epoch<E>].json              cmc knn --json ...
  encoder_<method>[_epoch<E>].json          epoch / SGD steps / training time of the evaluated checkpoint
  wd_<method>[_epoch<E>]_layer<L>.json      the probe's weight-decay selection on the held-out split
  supervised[_<label>].json                 cmc supervised --json ...
  <folder>/metrics.jsonl                    a training run (or --run <dir>): kNN per epoch against SGD steps

  e.g. probe_cmc_layer5.json, probe_cmc_epoch10_layer5.json, probe_random_layer5.json, knn_cmc_epoch10.json

Seeds: a method named <method>_seed<S> is seed S of <method> (eval_protocol.sh --name cmc_seed1 writes
probe_cmc_seed1_layer<L>.json; supervised_seed<S>.json for the baseline). Two or more seeds of a method
are one row of mean ± sample std per layer (n shown) and one line with ±1 std error bars in the plot.

A method named random* (or with encoder 'random') is the random-init baseline; one whose checkpoint was
written by cmc supervised (or named supervised*) is the supervised encoder; the rest are CMC.

Output: the markdown report (stdout, or --out), and accuracy_per_layer.svg and accuracy_vs_steps.svg in
--plots (default <results>/plots).

  cmc report results/imagenette --out results/imagenette/REPORT.md
  cmc report results/cifar --run runs/cifar_cmc --metric last
`;

/** `cmc report`: tables and plots of evaluation results (linear probes per layer, kNN, supervised baseline). */
export function addReportCommand(program: Command): void {
  program
    .command('report')
    .description(
      'summarise a results folder (probe / knn / supervised JSONs, run folders) as a markdown table and SVG plots',
    )
    .argument('<results>', 'results folder')
    .option('--out <file>', 'write the markdown here (default: stdout)')
    .option('--plots <dir>', "folder for the SVG plots, or 'none' (default: <results>/plots)")
    .option(
      '--run <dir>',
      'a training run folder (metrics.jsonl) to draw kNN against SGD steps; repeatable',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .addOption(
      new Option(
        '--metric <which>',
        "probe number: 'auto' = best epoch if chosen on the held-out split, else last epoch; 'last'; 'best' (upstream's, may have been chosen on the test split)",
      )
        .choices(['auto', 'last', 'best'])
        .default('auto'),
    )
    .option(
      '--method <name>',
      'method drawn against SGD steps (default: the CMC method trained in a --run folder, else cmc, else the first CMC method)',
    )
    .option(
      '--layer <n>',
      'probe layer drawn against SGD steps (default: the one with the most intermediate checkpoints)',
      (v: string) => {
        const n = int(v);
        if (n < 1) throw new InvalidArgumentError('expected a layer >= 1');
        return n;
      },
    )
    .option('--title <text>', 'report title (default: the results folder name)')
    .addHelpText('after', HELP)
    .action(
      (
        dir: string,
        o: {
          out?: string;
          plots?: string;
          run: string[];
          metric: MetricChoice;
          method?: string;
          layer?: number;
          title?: string;
        },
      ) => {
        const res = loadResults(dir, { runs: o.run });
        const plotDir = o.plots === 'none' ? null : (o.plots ?? path.join(dir, 'plots'));
        // Image links relative to the markdown file (only when it is written to a file next to the plots).
        const plotLinks =
          plotDir && o.out
            ? Object.fromEntries(
                PLOT_FILES.map((f) => [
                  f,
                  path
                    .relative(path.dirname(path.resolve(o.out!)), path.resolve(plotDir, f))
                    .split(path.sep)
                    .join('/'),
                ]),
              )
            : undefined;
        const r = buildReport(res, { metric: o.metric, method: o.method, layer: o.layer, title: o.title, plotLinks });
        const written: string[] = [];
        if (plotDir) {
          fs.mkdirSync(plotDir, { recursive: true });
          for (const [f, svg] of Object.entries(r.plots)) {
            fs.writeFileSync(path.join(plotDir, f), svg);
            written.push(path.join(plotDir, f));
          }
        }
        if (o.out) {
          fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
          fs.writeFileSync(o.out, r.markdown);
          written.unshift(o.out);
        } else {
          process.stdout.write(r.markdown);
        }
        for (const n of r.notes) console.error(`[report] note: ${n}`);
        for (const w of written) console.error(`[report] wrote ${w}`);
      },
    );
}
