/**
 * `cmc report`: one results folder (its format and reading: ./results.ts) as a markdown table and SVG plots
 * (train/log/plot.ts).
 *
 * The number per probe (`--metric`): 'auto' (default) is the test accuracy at the best epoch when that epoch
 * was chosen on a held-out part of train (selected_on 'held_out', or 'val' in older files), else after the
 * last epoch, so no number is chosen on the test split; 'last' always the last epoch; 'best' the best epoch
 * even when it was picked on the test split (upstream `LinearProbing.py`'s protocol, optimistic).
 */
import path from 'node:path';
import { lineChart, type Series } from '../log/plot.ts';
import { formatDuration } from '../log/progress.ts';
import { groupSeeds, meanStd, pctMeanStd } from './seeds.ts';
import { encoderPathOf, isNum, type Evaluated, type ProbeJson, type Results } from './results.ts';

// ------------------------------------------------------------------------------------------------------
// Summaries

export type MetricChoice = 'auto' | 'last' | 'best';

export function kindOf(ev: Evaluated): 'cmc' | 'supervised' | 'random' {
  if (ev.encoder?.objective === 'random' || /^random/.test(ev.method) || encoderPathOf(ev) === 'random')
    return 'random';
  if (ev.encoder?.objective === 'supervised' || /^supervised/.test(ev.method)) return 'supervised';
  return 'cmc';
}

/** The test accuracy a probe reports under `metric` (see the module comment), and which epoch that is. */
export function probeScore(
  p: ProbeJson,
  metric: MetricChoice,
): { top1: number; top5: number; epoch: number; which: 'best' | 'last' } {
  const which =
    metric === 'best' || (metric === 'auto' && (p.selected_on === 'held_out' || p.selected_on === 'val'))
      ? 'best'
      : 'last';
  const e = p[which];
  return { top1: e.top1, top5: e.top5, epoch: e.epoch, which };
}

const ALEXNET_LAYERS: Record<number, string> = {
  1: 'conv1',
  2: 'conv2',
  3: 'conv3',
  4: 'conv4',
  5: 'conv5',
  6: 'fc6',
  7: 'fc7',
  8: 'emb',
};
const RESNET_LAYERS: Record<number, string> = {
  1: 'conv1',
  2: 'layer1',
  3: 'layer2',
  4: 'layer3',
  5: 'layer4',
  6: 'pool',
  7: 'emb',
};

/** The layer names of an architecture's family (AlexNet or ResNet), or undefined. */
function layerNames(arch?: string): Record<number, string> | undefined {
  return arch?.startsWith('alexnet') ? ALEXNET_LAYERS : arch?.startsWith('resnet') ? RESNET_LAYERS : undefined;
}

/** A short name of probe layer `l` for an architecture ('conv5', 'fc7', ...), or 'L<l>'. */
export function layerName(l: number, arch?: string): string {
  const n = layerNames(arch)?.[l];
  return n ? `${l} ${n}` : `L${l}`;
}

/**
 * The layer a protocol reports: the probe with the best held-out top-1 (the chosen weight decay's, on the part
 * of train held out; ties: the earlier layer), with its test score. Null when no probe has held-out figures.
 * Unlike "best layer", nothing here is chosen on the test split.
 */
export function heldOutLayer(
  ev: Evaluated,
  metric: MetricChoice = 'auto',
): { layer: number; heldOut: number; top1: number; top5: number } | null {
  let best: { layer: number; heldOut: number; top1: number; top5: number } | null = null;
  for (const l of [...ev.probes.keys()].sort((a, b) => a - b)) {
    const w = ev.wd.get(l);
    const c = w?.candidates.find((c) => c.weight_decay === w.chosen);
    if (!c || !isNum(c.val_top1)) continue;
    if (!best || c.val_top1 > best.heldOut) {
      const s = probeScore(ev.probes.get(l)!.json, metric);
      best = { layer: l, heldOut: c.val_top1, top1: s.top1, top5: s.top5 };
    }
  }
  return best;
}

const pct = (x: number | undefined) => (isNum(x) ? (100 * x).toFixed(2) : '—');
const int = (x: number | undefined) => (isNum(x) ? Math.round(x).toLocaleString('en') : '—');

function methodOrder(a: Evaluated, b: Evaluated): number {
  const rank = { cmc: 0, supervised: 1, random: 2 };
  return rank[kindOf(a)] - rank[kindOf(b)] || a.method.localeCompare(b.method);
}

export interface ReportOptions {
  metric?: MetricChoice;
  /** Method whose intermediate checkpoints and runs go on the steps plot (default: 'cmc', else the first CMC method). */
  method?: string;
  /** Probe layer on the steps plot (default: the layer with the most intermediate probes, ties: the best). */
  layer?: number;
  title?: string;
  /** Image links in the markdown: plot file name -> path relative to the markdown file (omit: no links). */
  plotLinks?: Record<string, string>;
}

/** The plots buildReport can draw (when their data is there). */
export const PLOT_FILES = ['accuracy_per_layer.svg', 'accuracy_vs_steps.svg'];

export interface Report {
  markdown: string;
  /** File name -> SVG text. */
  plots: Record<string, string>;
  notes: string[];
}

export function buildReport(res: Results, o: ReportOptions = {}): Report {
  const metric = o.metric ?? 'auto';
  const notes = [...res.notes];
  const finals = [...res.evaluated.values()].filter((e) => e.epoch === null).sort(methodOrder);
  const inter = [...res.evaluated.values()].filter((e) => e.epoch !== null);
  const layers = [...new Set(finals.flatMap((e) => [...e.probes.keys()]))].sort((a, b) => a - b);
  // Column names follow the architecture when every encoder has the same family (AlexNet's layer 4 is conv4,
  // ResNet's is layer3); a mixed table names columns by number, and each row's cells by its own architecture.
  const families = new Set(finals.filter((e) => e.encoder?.arch).map((e) => layerNames(e.encoder!.arch)));
  const arch = families.size > 1 ? undefined : finals.map((e) => e.encoder?.arch).find(Boolean);
  const archOf = (e: Evaluated | undefined) => e?.encoder?.arch ?? arch;
  const title = o.title ?? path.basename(path.resolve(res.dir));
  const md: string[] = [`# Results: ${title}`, ''];

  // --- main table
  const whichUsed = new Set<string>();
  let seedRows = false;
  if (finals.length || res.supervised.length) {
    md.push('## Linear probe and kNN, test split', '');
    md.push(
      "Cells are top-1 / top-5 (%) of the linear probe on each layer's frozen features; " +
        metricSentence(metric) +
        '.',
      '',
    );
    const head = [
      'method',
      ...layers.map((l) => layerName(l, arch)),
      'best layer (top-1)',
      'layer chosen on held-out (top-1)',
      'kNN top-1',
      'SGD steps',
      'epochs',
      'train time',
      'eval time',
    ];
    md.push(`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
    const cell = (xs: string[]) => `| ${xs.join(' | ')} |`;
    for (const g of groupSeeds(finals, (e) => e.method)) {
      for (const ev of g.members)
        for (const p of ev.probes.values())
          whichUsed.add(`${probeScore(p.json, metric).which}/${p.json.selected_on ?? '?'}`);
      const kind = kindOf(g.members[0]);
      const what = kind === 'cmc' ? '' : kind === 'random' ? 'random init' : 'supervised encoder';
      if (!g.seeds.length) {
        const ev = g.members[0];
        const cells = layers.map((l) => {
          const p = ev.probes.get(l);
          if (!p) return '—';
          const s = probeScore(p.json, metric);
          return `${pct(s.top1)} / ${pct(s.top5)}`;
        });
        const scored = [...ev.probes.entries()].map(([l, p]) => ({ l, s: probeScore(p.json, metric) }));
        const best = scored.length ? scored.reduce((a, b) => (b.s.top1 > a.s.top1 ? b : a)) : null;
        const held = heldOutLayer(ev, metric);
        const evalSec = evalSeconds(ev);
        md.push(
          cell([
            what ? `${ev.method} (${what})` : ev.method,
            ...cells,
            best ? `${layerName(best.l, archOf(ev))} (${pct(best.s.top1)})` : '—',
            held ? `${layerName(held.layer, archOf(ev))} (${pct(held.top1)})` : '—',
            ev.knn ? pct(ev.knn.json.top1) : '—',
            int(ev.encoder?.step),
            int(ev.encoder?.epoch),
            isNum(ev.encoder?.train_seconds) ? formatDuration(ev.encoder!.train_seconds!) : '—',
            evalSec > 0 ? formatDuration(evalSec) : '—',
          ]),
        );
        continue;
      }
      // Several seeds of one method: mean ± sample std over the seeds that have each number.
      const n = g.members.length;
      const at = (l: number) => {
        const scores = g.members.map((e) => e.probes.get(l)).map((p) => p && probeScore(p.json, metric));
        return { top1: meanStd(scores.map((s) => s?.top1)), top5: meanStd(scores.map((s) => s?.top5)) };
      };
      // The best layer among those every seed has (else among those most seeds have): no partial means.
      const byLayer = layers.map((l) => ({ l, s: at(l).top1 }));
      const most = Math.max(0, ...byLayer.map((b) => b.s.n));
      const best = byLayer
        .filter((b) => b.s.n > 0 && b.s.n === most)
        .reduce<{ l: number; s: ReturnType<typeof meanStd> } | null>(
          (a, b) => (!a || b.s.mean > a.s.mean ? b : a),
          null,
        );
      // Each seed's own held-out choice, then mean ± std of those test scores (the layer may differ by seed).
      const helds = g.members.map((e) => heldOutLayer(e, metric));
      const tally = [...new Set(helds.filter((h) => h).map((h) => h!.layer))]
        .sort((a, b) => a - b)
        .map((l) => `${layerName(l, archOf(g.members[0]))} ×${helds.filter((h) => h?.layer === l).length}`)
        .join(', ');
      const mean = (xs: (number | undefined)[]) => meanStd(xs).mean;
      const trainSec = mean(g.members.map((e) => e.encoder?.train_seconds));
      const evalSec = mean(g.members.map(evalSeconds));
      md.push(
        cell([
          `${g.method} (${what ? `${what}, ` : ''}mean ± std of ${n} seeds: ${g.seeds.join(', ')})`,
          ...layers.map((l) => {
            const s = at(l);
            return s.top1.n ? `${pctMeanStd(s.top1, n)} / ${pctMeanStd(s.top5)}` : '—';
          }),
          best ? `${layerName(best.l, archOf(g.members[0]))} (${pctMeanStd(best.s, n)})` : '—',
          tally ? `${tally} (${pctMeanStd(meanStd(helds.map((h) => h?.top1)), n)})` : '—',
          pctMeanStd(meanStd(g.members.map((e) => e.knn?.json.top1)), n),
          int(mean(g.members.map((e) => e.encoder?.step))),
          int(mean(g.members.map((e) => e.encoder?.epoch))),
          isNum(trainSec) ? formatDuration(trainSec) : '—',
          evalSec > 0 ? formatDuration(evalSec) : '—',
        ]),
      );
      seedRows = true;
    }
    for (const g of groupSeeds(res.supervised, (s) => (s.label === 'supervised' ? s.label : `supervised_${s.label}`))) {
      const end = g.members.map((s) => {
        const last = s.json.metrics[s.json.metrics.length - 1];
        return {
          last,
          secs: s.json.metrics.map((m) => m.epoch_sec ?? 0).reduce((a, b) => a + b, 0),
          top1: s.json.test_top1 ?? last?.test_top1,
          top5: s.json.test_top5 ?? last?.test_top5,
        };
      });
      const one = end.length === 1 ? end[0] : null;
      const secs = meanStd(end.map((e) => e.secs)).mean;
      md.push(
        cell([
          one
            ? `${g.members[0].label} (end-to-end classifier)`
            : `${g.method} (end-to-end classifier, mean ± std of ${end.length} seeds: ${g.seeds.join(', ')})`,
          ...layers.map(() => ''),
          one
            ? `${pct(one.top1)} / ${pct(one.top5)}`
            : `${pctMeanStd(meanStd(end.map((e) => e.top1)), end.length)} / ${pctMeanStd(meanStd(end.map((e) => e.top5)))}`,
          '—',
          '—',
          int(meanStd(end.map((e) => e.last?.step)).mean),
          int(meanStd(end.map((e) => e.last?.epoch)).mean),
          secs > 0 ? formatDuration(secs) : '—',
          '—',
        ]),
      );
      if (!one) seedRows = true;
    }
    md.push('');
    if ([...whichUsed].some((w) => w === 'best/test')) {
      md.push(
        '**Note:** some numbers are the best epoch chosen on the test split (`--metric best` on probes whose epoch was not chosen on held-out images): optimistic, as upstream `LinearProbing.py` does.',
        '',
      );
    }
    if (seedRows)
      md.push(
        'Rows over several seeds (inputs named `<method>_seed<S>`) are the mean ± sample standard deviation over the seeds named; a cell that fewer seeds have says its n. Their SGD steps, epochs and times are means.',
        '',
      );
    md.push(
      "kNN: weighted kNN (`cmc knn`, default k 200, T 0.07, on the embeddings). SGD steps / epochs / train time: of the encoder's training run up to the evaluated checkpoint. Eval time: probes + kNN + weight-decay selection.",
      '',
    );
  }

  // --- weight-decay selection
  const withWd = finals.filter((e) => e.wd.size);
  if (withWd.length) {
    md.push('## Weight decay of the probes (chosen on a held-out part of train)', '');
    md.push('| method | layer | held-out top-1 (%) per weight decay | chosen |', '|---|---|---|---:|');
    for (const ev of withWd) {
      for (const [l, w] of [...ev.wd.entries()].sort((a, b) => a[0] - b[0])) {
        const c = w.candidates.length
          ? w.candidates.map((c) => `${c.weight_decay}: ${pct(c.val_top1)}`).join(', ')
          : '— (a single value, not selected)';
        md.push(`| ${ev.method} | ${layerName(l, archOf(ev))} | ${c} | ${w.chosen} |`);
      }
    }
    const vs = [
      ...new Set(
        withWd
          .flatMap((e) => [...e.wd.values()].filter((w) => w.candidates.length).map((w) => w.val_split))
          .filter(isNum),
      ),
    ];
    md.push('', `Held-out fraction of train: ${vs.join(', ') || '?'}.`, '');
  }

  // --- intermediate checkpoints
  const plots: Record<string, string> = {};
  // Default: the CMC method trained in a given run folder (its kNN curve is the one drawn), else `cmc`, else the first.
  const runNames = new Set(res.runs.map((r) => r.name));
  const ofRun = finals.find(
    (e) => kindOf(e) === 'cmc' && runNames.has(path.basename(path.dirname(encoderPathOf(e) ?? ''))),
  );
  const method =
    o.method ??
    (ofRun ?? finals.find((e) => e.method === 'cmc') ?? finals.find((e) => kindOf(e) === 'cmc'))?.method ??
    inter.find((e) => kindOf(e) === 'cmc')?.method;
  const series = method
    ? [...inter.filter((e) => e.method === method), ...finals.filter((e) => e.method === method)]
    : [];
  if (series.length > 1 || inter.length) {
    const rows = series.slice().sort((a, b) => (a.encoder?.step ?? Infinity) - (b.encoder?.step ?? Infinity));
    const ls = [...new Set(rows.flatMap((e) => [...e.probes.keys()]))].sort((a, b) => a - b);
    md.push(`## ${method}: accuracy against SGD steps`, '');
    const h = ['checkpoint', 'epoch', 'SGD steps', 'kNN top-1', ...ls.map((l) => `probe ${layerName(l, arch)} top-1`)];
    md.push(`| ${h.join(' | ')} |`, `|${h.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
    for (const e of rows) {
      md.push(
        `| ${[
          e.epoch === null ? `${e.method} (final)` : `${e.method} epoch ${e.epoch}`,
          int(e.encoder?.epoch ?? e.epoch ?? undefined),
          int(e.encoder?.step),
          e.knn ? pct(e.knn.json.top1) : '—',
          ...ls.map((l) => (e.probes.has(l) ? pct(probeScore(e.probes.get(l)!.json, metric).top1) : '—')),
        ].join(' | ')} |`,
      );
    }
    md.push('');
  }

  // --- plots
  if (layers.length) {
    const shade = new Map<string, number>(); // the n-th method of a kind gets the kind's n-th colour
    const colorOfMethod = new Map<string, string>();
    // One line per method; over several seeds, the mean per layer with ±1 sample std as error bars.
    const s: Series[] = groupSeeds(
      finals.filter((e) => e.probes.size),
      (e) => e.method,
    ).map((g) => {
      const e = g.members[0];
      const n = shade.get(kindOf(e)) ?? 0;
      shade.set(kindOf(e), n + 1);
      colorOfMethod.set(g.method, colorOf(e, n));
      const kind = kindOf(e) === 'cmc' ? '' : kindOf(e) === 'random' ? ' (random init)' : ' (supervised encoder)';
      const stats = layers
        .map((l) => ({
          l,
          s: meanStd(g.members.map((m) => m.probes.get(l)).map((p) => p && probeScore(p.json, metric).top1)),
        }))
        .filter((x) => x.s.n > 0);
      return {
        name: g.seeds.length ? `${g.method}${kind}, mean ± std of ${g.seeds.length} seeds` : `${g.method}${kind}`,
        points: stats.map((x) => [x.l, 100 * x.s.mean] as [number, number]),
        ...(g.seeds.length ? { errors: stats.map((x) => 100 * x.s.std) } : {}),
        color: colorOf(e, n),
      };
    });
    for (const g of groupSeeds(res.supervised, (x) => (x.label === 'supervised' ? x.label : `supervised_${x.label}`))) {
      const t = meanStd(
        g.members.map((sup) => sup.json.test_top1 ?? sup.json.metrics[sup.json.metrics.length - 1]?.test_top1),
      );
      const label = g.seeds.length ? g.method : g.members[0].label;
      if (t.n)
        s.push({
          name: g.seeds.length
            ? `${label} (end-to-end), mean ± std of ${g.seeds.length} seeds`
            : `${label} (end-to-end)`,
          points: [
            [layers[0], 100 * t.mean],
            [layers[layers.length - 1], 100 * t.mean],
          ],
          ...(g.seeds.length ? { errors: [100 * t.std, 100 * t.std] } : {}),
          dashed: true,
          markers: false,
          color: colorOfMethod.get(label) ?? '#2ca02c',
        });
    }
    plots['accuracy_per_layer.svg'] = lineChart({
      title: `${title}: linear probe top-1 per layer`,
      xLabel: 'layer',
      yLabel: 'test top-1 (%)',
      series: s,
      xTicks: layers.map((l) => [l, layerName(l, arch).replace(/^\d+ /, '')]),
      xPad: 0.5,
      legend: 'below',
    });
  }
  const steps = stepsPlot(res, { method, layer: o.layer, metric, title, arch, finals, notes });
  if (steps) plots['accuracy_vs_steps.svg'] = steps;
  else if (method)
    notes.push(
      `no accuracy-against-steps plot: no kNN records in run folders and no ${method} results with known SGD steps`,
    );

  if (Object.keys(plots).length && o.plotLinks) {
    md.push('## Plots', '');
    for (const f of Object.keys(plots))
      md.push(`![${f.replace(/\.svg$/, '').replace(/_/g, ' ')}](${o.plotLinks[f] ?? f})`, '');
  }
  if (notes.length) {
    md.push('## Notes', '');
    for (const n of notes) md.push(`- ${n}`);
    md.push('');
  }
  return { markdown: md.join('\n'), plots, notes };
}

/** Seconds spent evaluating one encoder: its probes, kNN and weight-decay selection. */
function evalSeconds(ev: Evaluated): number {
  return (
    [...ev.probes.values()].reduce((a, p) => a + (p.json.seconds ?? 0), 0) +
    (ev.knn?.json.seconds ?? 0) +
    [...ev.wd.values()].reduce((a, w) => a + w.candidates.reduce((b, c) => b + (c.seconds ?? 0), 0), 0)
  );
}

function metricSentence(m: MetricChoice): string {
  if (m === 'last') return 'the accuracy after the last probe epoch';
  if (m === 'best')
    return 'the accuracy at the best probe epoch (chosen on the held-out split when the probe had one, else on the test split, as upstream)';
  return 'the accuracy at the epoch chosen on the held-out part of train when the probe had one (`--val_split`), else after the last epoch; never chosen on the test split';
}

const KIND_COLORS = {
  cmc: ['#1f77b4', '#9467bd', '#17becf', '#8c564b'],
  random: ['#7f7f7f', '#bcbd22'],
  supervised: ['#2ca02c', '#98df8a'],
};

function colorOf(e: Evaluated, n = 0): string {
  const c = KIND_COLORS[kindOf(e)];
  return c[n % c.length];
}

/** kNN and probe top-1 of one CMC method against SGD steps, with the random-init levels as dashed lines. */
function stepsPlot(
  res: Results,
  c: {
    method?: string;
    layer?: number;
    metric: MetricChoice;
    title: string;
    arch?: string;
    finals: Evaluated[];
    notes: string[];
  },
): string | null {
  const series: Series[] = [];
  const evs = c.method ? [...res.evaluated.values()].filter((e) => e.method === c.method) : [];
  const known = evs.filter((e) => isNum(e.encoder?.step));
  // Training-monitor kNN of the runs (epoch 0 = the initial random weights).
  const runPalette = ['#1f77b4', '#17becf', '#9467bd', '#8c564b'];
  let ri = 0;
  for (const r of res.runs) {
    for (const src of ['recompute', 'memory'] as const) {
      const pts = r.records
        .filter((m) => isNum(m.knn_top1) && isNum(m.step) && (m.knn_source ?? 'memory') === src)
        .map((m) => [m.step, 100 * m.knn_top1!] as [number, number]);
      if (pts.length)
        series.push({
          name: `kNN during training, ${r.name} (${src === 'memory' ? 'memory bank' : 'recomputed'})`,
          points: pts,
          dashed: src === 'memory',
          color: runPalette[ri++ % runPalette.length],
        });
    }
  }
  const byStep = (pts: [number, number][]) =>
    [...new Map(pts.map((p) => [p[0], p])).values()].sort((a, b) => a[0] - b[0]);
  const knnPts = byStep(known.filter((e) => e.knn).map((e) => [e.encoder!.step, 100 * e.knn!.json.top1]));
  if (knnPts.length) series.push({ name: `${c.method} kNN (cmc knn)`, points: knnPts, color: '#ff7f0e' });
  // The probe layer: most intermediate probes, ties broken by the final probe's accuracy.
  let layer = c.layer;
  if (layer === undefined) {
    const count = new Map<number, number>();
    for (const e of known) for (const l of e.probes.keys()) count.set(l, (count.get(l) ?? 0) + 1);
    const fin = c.finals.find((e) => e.method === c.method);
    const acc = (l: number) => (fin?.probes.has(l) ? probeScore(fin.probes.get(l)!.json, c.metric).top1 : -1);
    layer = [...count.keys()].sort((a, b) => count.get(b)! - count.get(a)! || acc(b) - acc(a))[0];
  }
  if (layer !== undefined) {
    const pts = byStep(
      known
        .filter((e) => e.probes.has(layer!))
        .map((e) => [e.encoder!.step, 100 * probeScore(e.probes.get(layer!)!.json, c.metric).top1]),
    );
    if (pts.length)
      series.push({ name: `${c.method} linear probe, ${layerName(layer, c.arch)}`, points: pts, color: '#d62728' });
  }
  if (!series.length) return null;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const rnd = c.finals.filter((e) => kindOf(e) === 'random');
  for (const r of rnd) {
    if (layer !== undefined && r.probes.has(layer)) {
      const y = 100 * probeScore(r.probes.get(layer)!.json, c.metric).top1;
      series.push({
        name: `${r.method} init: probe ${layerName(layer, c.arch)}`,
        points: [
          [x0, y],
          [x1, y],
        ],
        dashed: true,
        markers: false,
        color: '#7f7f7f',
      });
    }
    if (r.knn)
      series.push({
        name: `${r.method} init: kNN`,
        points: [
          [x0, 100 * r.knn.json.top1],
          [x1, 100 * r.knn.json.top1],
        ],
        dashed: true,
        markers: false,
        color: '#bcbd22',
      });
  }
  if (!rnd.length)
    c.notes.push(
      'no random-init results (probe_random_layer<L>.json / knn_random.json): the steps plot has no random-init level',
    );
  return lineChart({
    title: `${c.title}: top-1 against SGD steps`,
    xLabel: 'SGD steps of CMC training',
    yLabel: 'test top-1 (%)',
    series,
    legend: 'below',
  });
}
