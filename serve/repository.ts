/**
 * The model repository: every exported model folder under --models, loaded once at start-up (one
 * onnxruntime session per graph per model version, each behind its own dynamic batcher).
 *
 * Layouts (both may be mixed):
 *   models/<name>/manifest.json             one version, the manifest's "version"
 *   models/<name>/<version>/manifest.json   several versions (Triton-style); the folder name is the version
 * Graphs: encoder.onnx (images → embedding, features) and, when present, classifier.onnx
 * (images → probabilities, logits, embedding). head.onnx (features → logits) is not served.
 *
 * Names and versions are checked against NAME_RE and only ever looked up in the in-memory table, so a
 * request can never reach a path outside --models.
 */
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { parseManifest, type Manifest } from '../core/formats/manifest.ts';
import { loadOnnxModel, toNumber, type IValueInfoProto } from '../core/onnx/onnx_proto.ts';
import { Batcher } from './batcher.ts';
import { ApiError, badRequest, notFound } from './errors.ts';
import type { InferenceFlow } from './flow.ts';
import { WorkerSession } from './worker_session.ts';
import type { Metrics } from './metrics.ts';
import { MAX_MANIFEST_BYTES, MAX_ONNX_BYTES, openModelFile, readModelFile } from './model_files.ts';
import { createSession, type Logger, type Provider } from './providers.ts';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function validName(s: string): boolean {
  return NAME_RE.test(s) && !s.includes('..');
}

export type GraphRole = 'encoder' | 'classifier';

export interface TensorInfo {
  name: string;
  datatype: 'UINT8' | 'FP32';
  /** -1 = dynamic (the batch axis). */
  shape: number[];
}

/** Per-image outputs of one graph, by output name (views into the batch's output tensors). */
export type ImageOutputs = Record<string, Float32Array>;

export interface Graph {
  role: GraphRole;
  file: string;
  /** On the event loop: runs a lone image (nothing else in flight), where a thread hop would only add time. */
  session: ort.InferenceSession;
  /** The same graph in a worker thread (WorkerSession): every other batch, so that a run does not hold the loop. */
  worker?: WorkerSession;
  provider: Provider;
  input: TensorInfo;
  outputs: TensorInfo[];
  batcher: Batcher<Uint8Array, ImageOutputs>;
}

export interface ModelVersion {
  name: string;
  version: string;
  dir: string;
  manifest: Manifest;
  /** Input side (square). */
  size: number;
  classNames: string[];
  encoder: Graph;
  classifier?: Graph;
}

export interface RepositoryOptions {
  root: string;
  provider: Provider;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  timeoutMs: number;
  /** onnxruntime intra-op threads per session (0 = its default). */
  threads?: number;
  /** Let onnxruntime's idle threads busy-wait (its default); off in the server, see sessionOptions. */
  spinning?: boolean;
  /** Run every batch on the event loop (no inference worker thread; --inline_inference). */
  inlineInference?: boolean;
  defaultModel?: string;
  metrics?: Metrics;
  /** Requests on their way to the batchers: batches wait for --max_delay_ms only while some are. */
  flow?: InferenceFlow;
  log?: Logger;
}

export interface LoadFailure {
  dir: string;
  error: string;
}

/**
 * Why --models gave no model, and what it should hold: the start-up error when the repository is empty
 * (the server refuses to start without --allow_empty rather than answer 503 to everything).
 */
export function emptyRepositoryMessage(root: string, failures: readonly LoadFailure[]): string {
  const layout = `a model repository: ${path.join(root, '<name>', 'manifest.json')} (or <name>/<version>/manifest.json) beside the ONNX files the manifest lists, as cmc export writes them`;
  let why: string;
  if (!fs.existsSync(root)) why = `${root} does not exist; --models takes ${layout}`;
  else if (fs.existsSync(path.join(root, 'manifest.json')))
    why = `${root} is one model (it holds manifest.json), not a repository of models: pass its parent, --models ${path.dirname(root)}`;
  else {
    why = `no model loaded from ${root}; --models takes ${layout}`;
    if (failures.length > 0) {
      const f = failures[0];
      why += `. ${failures.length} model folder${failures.length > 1 ? 's' : ''} failed to load, e.g. ${f.dir}: ${f.error}`;
    }
  }
  return why;
}

function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

export class Repository {
  /** name → version → model, versions sorted ascending. */
  private models = new Map<string, Map<string, ModelVersion>>();
  readonly failures: LoadFailure[] = [];
  private closed = false;

  private constructor(readonly opts: RepositoryOptions) {}

  static async load(opts: RepositoryOptions): Promise<Repository> {
    const repo = new Repository(opts);
    await repo.scan();
    return repo;
  }

  get ready(): boolean {
    return !this.closed && this.models.size > 0;
  }

  names(): string[] {
    return [...this.models.keys()].sort();
  }

  versions(name: string): ModelVersion[] {
    return [...(this.models.get(name)?.values() ?? [])].sort((a, b) => compareVersions(a.version, b.version));
  }

  all(): ModelVersion[] {
    return this.names().flatMap((n) => this.versions(n));
  }

  graphs(): Graph[] {
    return this.all().flatMap((m) => (m.classifier ? [m.encoder, m.classifier] : [m.encoder]));
  }

  get defaultModel(): string | undefined {
    const d = this.opts.defaultModel;
    if (d && this.models.has(d)) return d;
    return this.names()[0];
  }

  /** The model version a request means: 400 for malformed names, 404 for unknown ones. */
  resolve(name?: string, version?: string): ModelVersion {
    const n = name ?? this.defaultModel;
    if (n === undefined) throw new ApiError(503, 'no_models', 'no model is loaded');
    if (!validName(n))
      throw badRequest(
        `invalid model name ${JSON.stringify(n.slice(0, 64))} (letters, digits, '.', '_', '-')`,
        'invalid_model_name',
      );
    const versions = this.models.get(n);
    if (!versions) throw notFound(`model ${JSON.stringify(n)} not found`, 'model_not_found');
    if (version === undefined || version === '' || version === 'latest') return this.versions(n).at(-1)!;
    if (!validName(version))
      throw badRequest(`invalid model version ${JSON.stringify(version.slice(0, 64))}`, 'invalid_version');
    const m = versions.get(version);
    if (!m)
      throw notFound(
        `model ${JSON.stringify(n)} has no version ${JSON.stringify(version)} (has ${[...versions.keys()].join(', ')})`,
        'version_not_found',
      );
    return m;
  }

  async close(): Promise<void> {
    this.closed = true;
    const graphs = this.graphs();
    await Promise.all(graphs.map((g) => g.batcher.close()));
    await Promise.all(graphs.map((g) => g.session.release().catch(() => {})));
    await Promise.all(graphs.map((g) => g.worker?.release().catch(() => {})));
  }

  private async scan(): Promise<void> {
    const { root, log } = this.opts;
    if (!fs.existsSync(root)) {
      log?.(`[serve] warning: model folder ${root} does not exist`);
      return;
    }
    const dirs: { dir: string; version?: string }[] = [];
    for (const e of fs.readdirSync(root, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!e.isDirectory() || !validName(e.name)) continue;
      const dir = path.join(root, e.name);
      if (fs.existsSync(path.join(dir, 'manifest.json'))) dirs.push({ dir });
      for (const v of fs.readdirSync(dir, { withFileTypes: true })) {
        if (v.isDirectory() && validName(v.name) && fs.existsSync(path.join(dir, v.name, 'manifest.json')))
          dirs.push({ dir: path.join(dir, v.name), version: v.name });
      }
    }
    for (const d of dirs) {
      try {
        const m = await this.loadVersion(d.dir, d.version);
        const versions = this.models.get(m.name) ?? new Map<string, ModelVersion>();
        if (versions.has(m.version)) throw new Error(`duplicate version ${m.version} of model ${m.name}`);
        versions.set(m.version, m);
        this.models.set(m.name, versions);
        log?.(
          `[serve] loaded ${m.name} v${m.version} (${m.size}px, ${m.classifier ? `${m.classNames.length} classes` : 'no classifier'}) on ${m.encoder.provider}`,
        );
      } catch (e) {
        const error = (e as Error).message;
        this.failures.push({ dir: d.dir, error });
        log?.(`[serve] warning: skipping ${d.dir}: ${error}`);
      }
    }
  }

  private async loadVersion(dir: string, folderVersion?: string): Promise<ModelVersion> {
    let raw: unknown;
    try {
      raw = JSON.parse(
        readModelFile(path.join(dir, 'manifest.json'), this.opts.root, MAX_MANIFEST_BYTES).toString('utf8'),
      );
    } catch (e) {
      throw new Error(`manifest.json unreadable: ${(e as Error).message}`, { cause: e });
    }
    const manifest = parseManifest(raw, path.join(dir, 'manifest.json'));
    const name = folderVersion ? path.basename(path.dirname(dir)) : manifest.name;
    const version = folderVersion ?? String(manifest.version);
    if (!validName(name)) throw new Error(`model name ${JSON.stringify(name)} is not a valid name`);
    if (!validName(version)) throw new Error(`model version ${JSON.stringify(version)} is not a valid version`);
    const size = manifest.input.size;
    const encFile = path.join(dir, 'encoder.onnx');
    if (!fs.existsSync(encFile)) throw new Error('encoder.onnx missing');
    const encoder = await this.loadGraph(name, version, 'encoder', encFile, size);
    const clsFile = path.join(dir, 'classifier.onnx');
    const classifier = fs.existsSync(clsFile)
      ? await this.loadGraph(name, version, 'classifier', clsFile, size)
      : undefined;
    if (classifier) {
      const p = classifier.outputs.find((o) => o.name === 'probabilities') ?? classifier.outputs[0];
      const c = p.shape[1];
      if (c > 0 && manifest.classNames.length !== c)
        throw new Error(`classifier has ${c} classes but manifest.classNames lists ${manifest.classNames.length}`);
    }
    return { name, version, dir, manifest, size, classNames: manifest.classNames ?? [], encoder, classifier };
  }

  private async loadGraph(name: string, version: string, role: GraphRole, file: string, size: number): Promise<Graph> {
    const { provider, threads, spinning, log, metrics, flow } = this.opts;
    fs.closeSync(openModelFile(file, this.opts.root, MAX_ONNX_BYTES).fd); // a regular file inside the repository
    const loaded = loadOnnxModel(file); // validates structure and the manifest's sha256
    const g = loaded.model.graph!;
    const dims = (v: IValueInfoProto): number[] =>
      (v.type?.tensorType?.shape?.dim ?? []).map((d) =>
        d.dimValue !== undefined && d.dimValue !== null && toNumber(d.dimValue) > 0 ? toNumber(d.dimValue) : -1,
      );
    const inits = new Set((g.initializer ?? []).map((t) => t.name));
    const inputs = (g.input ?? []).filter((i) => !inits.has(i.name ?? ''));
    if (inputs.length !== 1) throw new Error(`${path.basename(file)}: expected one input, found ${inputs.length}`);
    const input: TensorInfo = { name: inputs[0].name ?? 'images', datatype: 'UINT8', shape: [-1, size, size, 3] };
    const inShape = dims(inputs[0]);
    if (
      inShape.length !== 4 ||
      inShape[3] !== 3 ||
      (inShape[1] > 0 && inShape[1] !== size) ||
      (inShape[2] > 0 && inShape[2] !== size)
    ) {
      throw new Error(`${path.basename(file)}: input shape [${inShape}] is not [N, ${size}, ${size}, 3]`);
    }
    const outputs: TensorInfo[] = (g.output ?? []).map((o) => ({
      name: o.name ?? '',
      datatype: 'FP32',
      shape: [-1, ...dims(o).slice(1)],
    }));
    const what = `${name} v${version} ${role}`;
    const { session, provider: used } = await createSession(loaded.bytes, provider, { threads, spinning, log, what });
    // The worker's session is created on the provider the main one ended up on (no second fallback message).
    const worker = this.opts.inlineInference
      ? undefined
      : (await WorkerSession.create(loaded.bytes, used, { threads, spinning, what })).session;
    const labels = { model: `${name}:${version}`, graph: role };
    const outNames = outputs.map((o) => o.name);
    const batcher: Batcher<Uint8Array, ImageOutputs> = new Batcher<Uint8Array, ImageOutputs>({
      name: what,
      maxBatch: this.opts.maxBatch,
      maxDelayMs: this.opts.maxDelayMs,
      maxQueue: this.opts.maxQueue,
      timeoutMs: this.opts.timeoutMs,
      // A lone image (nothing queued, decoding or on its way) runs here: the loop has nothing else to do, and
      // the hop to the worker would add ~0.4 ms. Everything else runs in the worker.
      run: (items) =>
        runBatch(
          worker && !(items.length === 1 && batcher.depth === 0 && !flow?.expectMore)
            ? (data, dims) => worker.run(input.name, data, dims, outNames)
            : (data, dims) => runInline(session, input.name, data, dims, outNames),
          outNames,
          items,
          size,
        ),
      ...(flow ? { onSubmit: () => flow.submitted(), expectMore: () => flow.expectMore } : {}),
      onBatch: (n, s, waits) => {
        for (const w of waits) metrics?.queueDuration.observe(labels, w);
        metrics?.batchSize.observe(labels, n);
        metrics?.inference.observe(labels, s);
        metrics?.images.inc(labels, n);
      },
    });
    metrics?.queueDepth.set(labels, () => batcher.depth);
    return { role, file, session, worker, provider: used, input, outputs, batcher };
  }
}

/** Runs one batch tensor ([n, size, size, 3] uint8) and gives each requested output's data. */
export type BatchRunner = (data: Uint8Array, dims: number[]) => Promise<Record<string, Float32Array>>;

/** One onnxruntime run on the event loop (see WorkerSession for why the server mostly avoids it). */
export async function runInline(
  session: ort.InferenceSession,
  inputName: string,
  data: Uint8Array,
  dims: number[],
  outputNames: string[],
): Promise<Record<string, Float32Array>> {
  const out = await session.run({ [inputName]: new ort.Tensor('uint8', data, dims) }, outputNames);
  return Object.fromEntries(outputNames.map((n) => [n, out[n].data as Float32Array]));
}

/** One run over a batch of uint8 HWC images; per-image views of every output. */
export async function runBatch(
  run: BatchRunner,
  outputNames: string[],
  items: Uint8Array[],
  size: number,
): Promise<ImageOutputs[]> {
  const per = size * size * 3;
  const data = new Uint8Array(items.length * per);
  items.forEach((x, i) => {
    if (x.length !== per) throw new Error(`image ${i} has ${x.length} values, expected ${per}`);
    data.set(x, i * per);
  });
  const out = await run(data, [items.length, size, size, 3]);
  return items.map((_, i) => {
    const r: ImageOutputs = {};
    for (const n of outputNames) {
      const d = out[n];
      const w = d.length / items.length;
      r[n] = d.subarray(i * w, (i + 1) * w);
    }
    return r;
  });
}
