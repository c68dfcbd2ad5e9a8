/**
 * The results folder `cmc report` reads (report.ts turns it into a table and plots): evaluation results
 * (linear probes, kNN, the supervised baseline, training runs), read and matched to their encoders.
 * train/results/eval_protocol.sh writes such a folder; any tool that follows the naming below can too.
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
import { readCheckpointHeader } from '../../core/formats/checkpoint.ts';

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

export const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

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

export function encoderPathOf(ev: Evaluated): string | undefined {
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
