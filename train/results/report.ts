/**
 * `cmc report`: collects evaluation results (linear probes, kNN, the supervised baseline, training runs) from
 * one results folder into a markdown table and SVG plots (train/log/plot.ts). train/results/eval_protocol.sh
 * writes such a folder; any tool that follows the naming below can too.
 *
 * INPUT FORMAT. Files directly in the results folder (sub-folders are ignored, except run folders, below).
 * <method> is a free label ([A-Za-z0-9._-], e.g. `cmc`, `random`, `supervised`, `cmc_lr0.06`); a suffix
 * `_epoch<E>` marks an intermediate checkpoint of that method (epoch E of its training run):
 *
 *   probe_<method>[_epoch<E>]_layer<L>.json   stdout of `cmc probe --json --layer L` (one line):
 *        { encoder, layer: {layer, featureDim, ...} | L, selected_on: 'held_out'|'test'|'last'
 *          ('val' in files written before 'held_out'), best: {epoch, top1, top5, val_top1?, ...}, last: {...},
 *          epochs: [...], n_train, n_held_out (n_val before), n_test, seconds }
 *   knn_<method>[_epoch<E>].json               stdout of `cmc knn --json`: { encoder, layer, k, T, top1, top5, n, seconds }
 *   encoder_<method>[_epoch<E>].json           what was evaluated (eval_protocol.sh writes it):
 *        { encoder: <checkpoint path> | 'random', objective: 'cmc'|'supervised'|'random', arch, image_size,
 *          epoch, step, train_seconds, epochs_planned }
 *   wd_<method>[_epoch<E>]_layer<L>.json       the probe's weight-decay selection (eval_protocol.sh):
 *        { layer, val_split, chosen, candidates: [{ weight_decay, val_top1, test_top1, best_epoch, seconds }] }
 *   supervised[_<label>].json                  stdout of `cmc supervised --json`:
 *        { run_dir, checkpoint, test_top1, test_top5, metrics: [{epoch, step, epoch_sec, test_top1?, ...}] }
 *   <any folder>/metrics.jsonl                 a training run folder (or give --run <dir>): its kNN records
 *        ({epoch, step, knn_top1, knn_source}) are drawn against SGD steps.
 *
 * SEEDS. A method label ending in `_seed<S>` is seed S of the method before it (train/results/seeds.ts):
 * `probe_cmc_seed0_layer5.json`, `probe_cmc_seed1_layer5.json`, ... (eval_protocol.sh `--name cmc_seed<S>`),
 * `supervised_seed<S>.json`. Two or more seeds of a method make one table row of mean ± sample std per layer
 * (the seeds listed, n shown where a seed lacks a number) and one line with ±1 std error bars on the per-layer
 * plot; a single seed, or a label without the suffix, is reported as it is.
 *
 * Accuracies in the files are fractions; the report prints percentages. Which encoder a method is: 'random'
 * when its name starts with `random` or its encoder is 'random'; 'supervised' when its encoder checkpoint says
 * objective 'supervised' or its name starts with `supervised`; else CMC. SGD steps and epochs of a method come
 * from encoder_<...>.json, else from the header of the checkpoint its JSONs name (when it is still there), else
 * from a run folder's metrics.jsonl with the checkpoint's run name and epoch; random init is 0 steps.
 *
 * The number per probe (`--metric`): 'auto' (default) is the test accuracy at the best epoch when that epoch
 * was chosen on a held-out part of train (selected_on 'held_out', or 'val' in older files), else after the last epoch, so no number is
 * chosen on the test split; 'last' always the last epoch; 'best' the best epoch even when it was picked on
 * the test split (upstream `LinearProbing.py`'s protocol, optimistic).
 */
import fs from 'node:fs';
import path from 'node:path';
import { lineChart, type Series } from '../log/plot.ts';
import { formatDuration } from '../log/progress.ts';
import { readCheckpointHeader } from '../../core/formats/checkpoint.ts';
import { groupSeeds, meanStd, pctMeanStd } from './seeds.ts';

// ------------------------------------------------------------------------------------------------------
// Input records (only the fields the report reads; the files may hold more)

export interface ProbeEpoch {
  epoch: number;
  top1: number;
  top5: number;
  val_top1?: number;
  val_top5?: number;
}

export interface ProbeJson {
  encoder?: string;
  layer: number | { layer: number; featureDim?: number };
  /** 'val' in files written before the probe called it 'held_out'. */
  selected_on?: 'held_out' | 'val' | 'test' | 'last';
  best: ProbeEpoch;
  last: ProbeEpoch;
  epochs?: ProbeEpoch[] | number;
  n_train?: number;
  n_held_out?: number;
  n_val?: number;
  n_test?: number;
  seconds?: number;
}

export interface KnnJson {
  encoder?: string;
  layer?: number | { layer: number };
  k?: number;
  T?: number;
  top1: number;
  top5?: number;
  seconds?: number;
}

export interface EncoderInfo {
  encoder: string;
  objective: 'cmc' | 'supervised' | 'random';
  arch?: string;
  image_size?: number;
  epoch: number;
  step: number;
  train_seconds?: number;
  epochs_planned?: number;
}

export interface WdSelection {
  layer: number;
  val_split?: number;
  chosen: number;
  candidates: { weight_decay: number; val_top1: number; test_top1?: number; best_epoch?: number; seconds?: number }[];
}

export interface SupervisedJson {
  run_dir?: string;
  checkpoint?: string;
  test_top1?: number;
  test_top5?: number;
  metrics: { epoch: number; step: number; epoch_sec?: number; test_top1?: number; test_top5?: number }[];
}

export interface RunRecord {
  epoch: number;
  step: number;
  knn_top1?: number;
  knn_source?: 'memory' | 'recompute';
  epoch_sec?: number;
}

/** Everything evaluated for one encoder: a method's final checkpoint (epoch null) or an intermediate one. */
export interface Evaluated {
  method: string;
  epoch: number | null;
  probes: Map<number, { file: string; json: ProbeJson }>;
  knn?: { file: string; json: KnnJson };
  encoder?: EncoderInfo;
  wd: Map<number, WdSelection>;
}

export interface Results {
  dir: string;
  /** Keyed by `<method>` or `<method>_epoch<E>`. */
  evaluated: Map<string, Evaluated>;
  supervised: { label: string; file: string; json: SupervisedJson }[];
  runs: { name: string; dir: string; records: RunRecord[] }[];
  /** Problems that did not stop the report (skipped files, unknown steps, missing layers). */
  notes: string[];
}

// ------------------------------------------------------------------------------------------------------
// Loading

const RE = {
  probe: /^probe_(.+?)(?:_epoch(\d+))?_layer(\d+)\.json$/,
  wd: /^wd_(.+?)(?:_epoch(\d+))?_layer(\d+)\.json$/,
  knn: /^knn_(.+?)(?:_epoch(\d+))?\.json$/,
  encoder: /^encoder_(.+?)(?:_epoch(\d+))?\.json$/,
  supervised: /^supervised(?:_(.+))?\.json$/,
};

export const NAMING_HELP =
  'probe_<method>[_epoch<E>]_layer<L>.json (cmc probe --json), knn_<method>[_epoch<E>].json (cmc knn --json), ' +
  'encoder_<method>[_epoch<E>].json, wd_<method>[_epoch<E>]_layer<L>.json (train/results/eval_protocol.sh), ' +
  'supervised[_<label>].json (cmc supervised --json), run folders holding metrics.jsonl';

function key(method: string, epoch: number | null): string {
  return epoch === null ? method : `${method}_epoch${epoch}`;
}

/** A JSON file's single value; for a file holding log lines and then the JSON, its last JSON line. */
function readJson(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8').trim();
  if (text === '') throw new Error('empty file');
  try {
    return JSON.parse(text);
  } catch (e) {
    const lines = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('{'));
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        return JSON.parse(lines[i]);
      } catch {
        // try the previous line
      }
    }
    throw new Error(`not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function checkProbe(j: unknown): string | null {
  const p = j as ProbeJson;
  if (!p || typeof p !== 'object') return 'not an object';
  if (!p.best || !isNum(p.best.top1)) return 'no best.top1';
  if (!p.last || !isNum(p.last.top1)) return 'no last.top1';
  return null;
}

/** Reads the JSON header of a checkpoint only (not its tensors); null when the file is not there. */
export function checkpointInfo(file: string): EncoderInfo | null {
  const h = readCheckpointHeader<{
    objective?: string;
    epoch?: number;
    step?: number;
    spec?: { arch?: string; imageSize?: number };
    config?: { model?: string; image_size?: number; epochs?: number };
    metrics?: { epoch: number; epoch_sec?: number }[];
  }>(file);
  if (!h || !isNum(h.epoch) || !isNum(h.step)) return null;
  const secs = (h.metrics ?? [])
    .filter((m) => m.epoch >= 1 && m.epoch <= h.epoch! && isNum(m.epoch_sec))
    .map((m) => m.epoch_sec!);
  return {
    encoder: file,
    objective: h.objective === 'supervised' ? 'supervised' : 'cmc',
    arch: h.spec?.arch ?? h.config?.model,
    image_size: h.spec?.imageSize ?? h.config?.image_size,
    epoch: h.epoch,
    step: h.step,
    train_seconds: secs.length ? secs.reduce((a, b) => a + b, 0) : undefined,
    epochs_planned: h.config?.epochs,
  };
}

export function readRun(dir: string): { name: string; dir: string; records: RunRecord[] } {
  const file = dir.endsWith('.jsonl') ? dir : path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(file)) throw new Error(`run folder ${dir}: no metrics.jsonl there`);
  const records: RunRecord[] = [];
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((l, i) => {
      if (!l.trim()) return;
      try {
        records.push(JSON.parse(l));
      } catch {
        throw new Error(`${file}:${i + 1}: not valid JSON`);
      }
    });
  return { name: path.basename(path.dirname(path.resolve(file))), dir: path.dirname(file), records };
}

export function loadResults(dir: string, opts: { runs?: string[] } = {}): Results {
  if (!fs.existsSync(dir)) throw new Error(`results folder ${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder`);
  const res: Results = { dir, evaluated: new Map(), supervised: [], runs: [], notes: [] };
  const get = (method: string, epoch: number | null) => {
    const k = key(method, epoch);
    if (!res.evaluated.has(k)) res.evaluated.set(k, { method, epoch, probes: new Map(), wd: new Map() });
    return res.evaluated.get(k)!;
  };
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  const runDirs: string[] = [];
  for (const e of entries) {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (fs.existsSync(path.join(file, 'metrics.jsonl'))) runDirs.push(file);
      continue;
    }
    if (!e.name.endsWith('.json')) continue;
    const kind = (Object.keys(RE) as (keyof typeof RE)[]).find((k) => RE[k].test(e.name));
    if (!kind) continue;
    let j: unknown;
    try {
      j = readJson(file);
    } catch (err) {
      res.notes.push(`skipped ${e.name}: ${(err as Error).message}`);
      continue;
    }
    const m = RE[kind].exec(e.name)!;
    const epoch = m[2] !== undefined && kind !== 'supervised' ? Number(m[2]) : null;
    if (kind === 'probe') {
      const bad = checkProbe(j);
      if (bad) {
        res.notes.push(`skipped ${e.name}: not a \`cmc probe --json\` result (${bad})`);
        continue;
      }
      const layer = Number(m[3]);
      const p = j as ProbeJson;
      const inFile = typeof p.layer === 'number' ? p.layer : p.layer?.layer;
      if (isNum(inFile) && inFile !== layer)
        res.notes.push(
          `${e.name}: the file name says layer ${layer} but its JSON says layer ${inFile}; using ${layer}`,
        );
      get(m[1], epoch).probes.set(layer, { file: e.name, json: p });
    } else if (kind === 'knn') {
      if (!isNum((j as KnnJson)?.top1)) {
        res.notes.push(`skipped ${e.name}: not a \`cmc knn --json\` result (no top1)`);
        continue;
      }
      get(m[1], epoch).knn = { file: e.name, json: j as KnnJson };
    } else if (kind === 'encoder') {
      const info = j as EncoderInfo;
      if (!isNum(info?.step) || !isNum(info?.epoch)) {
        res.notes.push(`skipped ${e.name}: no epoch/step`);
        continue;
      }
      get(m[1], epoch).encoder = info;
    } else if (kind === 'wd') {
      const w = j as WdSelection;
      if (!Array.isArray(w?.candidates) || !isNum(w.chosen)) {
        res.notes.push(`skipped ${e.name}: no candidates/chosen`);
        continue;
      }
      get(m[1], epoch).wd.set(Number(m[3]), w);
    } else {
      const s = j as SupervisedJson;
      if (!Array.isArray(s?.metrics)) {
        res.notes.push(`skipped ${e.name}: not a \`cmc supervised --json\` result (no metrics)`);
        continue;
      }
      res.supervised.push({ label: m[1] ?? 'supervised', file: e.name, json: s });
    }
  }
  for (const r of [...runDirs, ...(opts.runs ?? [])]) res.runs.push(readRun(r));
  if (res.evaluated.size === 0 && res.supervised.length === 0 && res.runs.length === 0) {
    throw new Error(
      `${dir}: no result files found. Expected ${NAMING_HELP}` + (res.notes.length ? `; ${res.notes.join('; ')}` : ''),
    );
  }

  // Fill in what each evaluated encoder is (steps, epoch), and flag missing pieces.
  for (const ev of res.evaluated.values()) {
    if (!ev.encoder) ev.encoder = inferEncoder(ev, res.runs) ?? undefined;
    if (!ev.encoder)
      res.notes.push(
        `${key(ev.method, ev.epoch)}: SGD steps unknown (no encoder_${key(ev.method, ev.epoch)}.json, its checkpoint is not readable here and no run folder matches)`,
      );
  }
  const allLayers = [
    ...new Set([...res.evaluated.values()].filter((e) => e.epoch === null).flatMap((e) => [...e.probes.keys()])),
  ].sort((a, b) => a - b);
  for (const ev of res.evaluated.values()) {
    if (ev.epoch !== null) continue;
    const missing = allLayers.filter((l) => !ev.probes.has(l));
    if (missing.length && ev.probes.size)
      res.notes.push(
        `${ev.method}: no probe for layer${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (missing ${missing.map((l) => `probe_${ev.method}_layer${l}.json`).join(', ')})`,
      );
    if (!ev.probes.size && !ev.knn) res.notes.push(`${ev.method}: no probe or kNN result`);
  }
  return res;
}

function encoderPathOf(ev: Evaluated): string | undefined {
  return (
    ev.encoder?.encoder ??
    ev.knn?.json.encoder ??
    [...ev.probes.values()].map((p) => p.json.encoder).find((e) => typeof e === 'string')
  );
}

function inferEncoder(ev: Evaluated, runs: Results['runs']): EncoderInfo | null {
  const enc = encoderPathOf(ev);
  if (enc === 'random' || /^random/.test(ev.method))
    return { encoder: 'random', objective: 'random', epoch: 0, step: 0 };
  if (!enc) return null;
  const fromHeader = checkpointInfo(enc);
  if (fromHeader) return fromHeader;
  // The checkpoint is gone: look its epoch up in a run folder of the same name.
  const runName = path.basename(path.dirname(enc));
  const m = /ckpt_epoch_(\d+)\.ckpt$/.exec(enc);
  const epoch = m ? Number(m[1]) : ev.epoch;
  for (const r of runs) {
    if (r.name !== runName) continue;
    const rec =
      epoch !== null
        ? r.records.find((x) => x.epoch === epoch && isNum(x.step))
        : [...r.records].reverse().find((x) => isNum(x.step) && x.epoch > 0);
    if (!rec) continue;
    const secs = r.records
      .filter((x) => x.epoch >= 1 && x.epoch <= rec.epoch && isNum(x.epoch_sec))
      .map((x) => x.epoch_sec!);
    return {
      encoder: enc,
      objective: /^supervised/.test(ev.method) ? 'supervised' : 'cmc',
      epoch: rec.epoch,
      step: rec.step,
      train_seconds: secs.length ? secs.reduce((a, b) => a + b, 0) : undefined,
    };
  }
  return null;
}

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

/** A short name of probe layer `l` for an architecture ('conv5', 'fc7', ...), or 'L<l>'. */
export function layerName(l: number, arch?: string): string {
  const n = arch?.startsWith('alexnet') ? ALEXNET_LAYERS[l] : arch?.startsWith('resnet') ? RESNET_LAYERS[l] : undefined;
  return n ? `${l} ${n}` : `L${l}`;
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
  const arch = finals.map((e) => e.encoder?.arch).find(Boolean);
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
        const evalSec = evalSeconds(ev);
        md.push(
          cell([
            what ? `${ev.method} (${what})` : ev.method,
            ...cells,
            best ? `${layerName(best.l, arch)} (${pct(best.s.top1)})` : '—',
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
          best ? `${layerName(best.l, arch)} (${pctMeanStd(best.s, n)})` : '—',
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
        md.push(`| ${ev.method} | ${layerName(l, arch)} | ${c} | ${w.chosen} |`);
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
