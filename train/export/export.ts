/**
 * `cmc export`: a training checkpoint (and optionally a linear-probe head) -> ONNX files + manifest.json.
 *
 *   await exportModel({ checkpoint: 'runs/demo/current.ckpt', outDir: 'models/demo', name: 'demo', version: '1' });
 *   // models/demo/encoder.onnx  images uint8 [N,H,W,3] -> embedding [N, 2*featDim], features [N, F]
 *   // models/demo/manifest.json
 *   await exportModel({ ..., head: 'probe/head.json' });
 *   // + head.onnx (features -> logits) and classifier.onnx (images -> probabilities, logits, embedding)
 *   await exportModel({ ..., head: 'probe/head.json', format: 'tfjs', quantize: 'float16' });
 *   // the ONNX files above + tfjs graph models tfjs/encoder/ and tfjs/classifier/ (model.json + shards)
 *   await addTfjsExport({ modelDir: 'models/demo' });   // the tfjs models of an existing ONNX export
 *   await exportModel({ ..., format: 'triton', outDir: 'triton_repo/demo' });
 *   // triton_repo/demo/config.pbtxt, triton_repo/demo/1/model.onnx (+ manifest.json, labels.txt)
 *
 * For the Triton layout outDir is the model folder inside the repository; its base name is the Triton
 * model name. The model is classifier.onnx when a head is given, else encoder.onnx.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  assertFinite,
  checkpointModel,
  readModelCheckpoint,
  type Checkpoint,
  type ModelCheckpoint,
} from '../../core/formats/checkpoint.ts';
import { writeFileAtomic } from '../../core/util/atomic_write.ts';
import { checksumOnce, portableConfig } from './provenance.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { subsetSpec } from '../../core/network/input.ts';
import { specInput } from '../../core/preprocess/views.ts';
import {
  buildClassifierGraph,
  buildEncoderGraph,
  buildHeadGraph,
  featuresDim,
  INPUT_NAME,
  type HeadParams,
} from './emit.ts';
import { parseHead, readHeadFile, type LinearHead } from '../../core/formats/head.ts';
import {
  MANIFEST_FORMAT,
  manifestMetadata,
  parseManifest,
  type Manifest,
  type ManifestFile,
  type TensorDesc,
} from '../../core/formats/manifest.ts';
import { tritonConfig } from './triton.ts';
import {
  encodeModel,
  IR_VERSION,
  loadOnnxModel,
  makeModel,
  OPSET,
  PRODUCER_NAME,
  PRODUCER_VERSION,
  sha256,
  validateModel,
  type IGraphProto,
} from '../../core/onnx/onnx_proto.ts';
import { onnxToTfGraph } from './tfjs_graph.ts';
import { tfjsModelFiles, writeTfjsModel, type TfjsQuantization } from './tfjs.ts';

export type ExportFormat = 'onnx' | 'tfjs' | 'triton';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['onnx', 'tfjs', 'triton'];
/** The roles exported as tfjs graph models (the classifier also gives the embedding). */
const TFJS_ROLES: readonly ManifestFile['role'][] = ['encoder', 'classifier'];

export interface ExportOptions {
  /** A checkpoint file (cmc train's current.ckpt) or one already read (header.config/spec + 'model/...' tensors). */
  checkpoint: string | Checkpoint<object>;
  /** A head JSON file (core/formats/head.ts) or a parsed head. */
  head?: string | LinearHead;
  /** The model folder, e.g. models/<name> (Triton: <repository>/<name>). */
  outDir: string;
  /** Default: the base name of outDir. */
  name?: string;
  /** Default '1'. */
  version?: string;
  format?: ExportFormat;
  /**
   * Block whose flattened outputs form `features`; default the head's layer, else defaultLayer(spec). With a
   * head trained on adaptively pooled features (its `pool`), `features` are that pooled map, flattened.
   */
  layer?: number;
  /**
   * Export only these views' encoders, in this order (e.g. ['L']); default the head's `views` when it has
   * them, else every view. The graph computes only the inputs those views read.
   */
  views?: string[];
  /** tfjs only: store float32 weights as float16 (tensorflowjs_converter's --quantize_float16). */
  quantize?: TfjsQuantization;
  /** Triton max_batch_size (default 64). */
  maxBatchSize?: number;
  log?: (line: string) => void;
}

export interface ExportResult {
  outDir: string;
  manifest: Manifest;
  manifestPath: string;
  /** Absolute paths of the ONNX files written (and config.pbtxt for Triton). */
  files: string[];
}

/**
 * The default `features` block: upstream's linear-evaluation default `--layer 6` (fc6 of AlexNet, the
 * pooled vector of a ResNet), or the last block before the embedding for shallower custom nets.
 */
export function defaultLayer(spec: CmcSpec): number {
  const n = Math.min(...spec.views.map((v) => v.encoder.blocks.length));
  return Math.max(1, Math.min(6, n - 1));
}

/** The checkpoint's network, colour view and model parameters, refused when a weight is not finite. */
function exportableModel(checkpoint: string | Checkpoint<object>): ModelCheckpoint {
  const ckpt = typeof checkpoint === 'string' ? readModelCheckpoint(checkpoint) : checkpointModel(checkpoint);
  // A model with NaN/Inf weights exports and serves, answering null embeddings: refuse it here.
  assertFinite(ckpt.model, 'refusing to export this checkpoint');
  return ckpt;
}

/** The views to export: the explicit list, else the head's, else all; a head must read exactly the exported views. */
function exportViews(spec: CmcSpec, explicit: string[] | undefined, headViews: string[] | undefined): string[] {
  const all = spec.views.map((v) => v.name);
  if (explicit && headViews && explicit.join() !== headViews.join()) {
    throw new Error(
      `--export_views ${explicit.join(',')} but the head was trained on the views ${headViews.join(',')}`,
    );
  }
  const views = explicit ?? headViews ?? all;
  for (const v of views)
    if (!all.includes(v)) throw new Error(`the checkpoint has no view '${v}'; its views are ${all.join(', ')}`);
  return views;
}

/**
 * Translate one ONNX graph to a tfjs graph model in <outDir>/tfjs/<role>/ and return the manifest entries
 * of its files (model.json: the graph's inputs and outputs; shards: format tfjs-weights).
 */
function writeTfjsRole(
  outDir: string,
  role: ManifestFile['role'],
  graph: IGraphProto,
  io: { inputs: TensorDesc[]; outputs: TensorDesc[] },
  metadata: Record<string, string>,
  quantize: TfjsQuantization | undefined,
  log: (line: string) => void,
): Record<string, ManifestFile> {
  const tg = onnxToTfGraph(graph, `${role} graph (tfjs)`);
  const rel = `tfjs/${role}`;
  const written = writeTfjsModel(path.join(outDir, rel), tfjsModelFiles(tg, { quantize, metadata }));
  const out: Record<string, ManifestFile> = {};
  // model.json first in the manifest (written last on disk).
  for (const w of [...written].sort((a, b) => Number(b.file === 'model.json') - Number(a.file === 'model.json'))) {
    const isJson = w.file === 'model.json';
    out[`${rel}/${w.file}`] = {
      sha256: w.sha256,
      bytes: w.bytes,
      role,
      format: isJson ? 'tfjs-graph-model' : 'tfjs-weights',
      ...(quantize ? { quantization: quantize } : {}),
      inputs: isJson ? io.inputs : [],
      outputs: isJson ? io.outputs : [],
    };
  }
  const total = written.reduce((s, w) => s + w.bytes, 0);
  log(
    `[export] ${path.join(outDir, rel)} (tfjs graph model, ${(total / 1e6).toFixed(1)} MB${quantize ? `, ${quantize} weights` : ''}, ${tg.nodes.length} nodes)`,
  );
  return out;
}

export async function exportModel(o: ExportOptions): Promise<ExportResult> {
  const log = o.log ?? (() => {});
  const format = o.format ?? 'onnx';
  if (!EXPORT_FORMATS.includes(format))
    throw new Error(`format must be one of ${EXPORT_FORMATS.join(', ')}, got ${format}`);
  const { spec: fullSpec, view, model: params, header } = exportableModel(o.checkpoint);
  const head =
    o.head === undefined
      ? undefined
      : typeof o.head === 'string'
        ? await readHeadFile(o.head)
        : parseHead({ ...o.head, weight: Array.from(o.head.weight), bias: Array.from(o.head.bias) });
  const views = exportViews(fullSpec, o.views, head?.views);
  const spec = views.join() === fullSpec.views.map((v) => v.name).join() ? fullSpec : subsetSpec(fullSpec, views);
  if (head && o.layer !== undefined && o.layer !== head.layer)
    throw new Error(`--layer ${o.layer} differs from the head's layer ${head.layer}`);
  const layer = head?.layer ?? o.layer ?? defaultLayer(spec);
  const nBlocks = Math.min(...spec.views.map((v) => v.encoder.blocks.length));
  if (!Number.isInteger(layer) || layer < 1 || layer > nBlocks)
    throw new Error(`layer must be a block index in 1..${nBlocks} for ${spec.arch}, got ${layer}`);
  // A head trained on adaptively pooled features: `features` (encoder.onnx output, head.onnx input) are the
  // pooled map, flattened, exactly what the probe trained on.
  const pool = head?.pool ?? null;
  const poolType = head?.poolType ?? 'max';
  const fDim = featuresDim(spec, layer, pool);
  if (head && head.inFeatures !== fDim) {
    const how = pool ? `adaptive ${poolType} pooled to ${pool[0]}x${pool[1]}, flattened` : 'flattened, L then ab';
    throw new Error(
      `the head takes ${head.inFeatures} features but layer ${layer} of ${spec.arch} gives ${fDim} (${how})`,
    );
  }
  const graphOpts = { view, layer, pool, poolType };
  const outDir = path.resolve(o.outDir);
  const name = o.name ?? path.basename(outDir);
  const version = o.version ?? '1';
  const size = spec.imageSize;
  const embeddingDim = spec.featDim * spec.views.length;
  const classNames = head ? head.classNames : (header.classNames ?? []);

  const checksum = checksumOnce();
  const base: Omit<Manifest, 'files'> = {
    format: MANIFEST_FORMAT,
    formatVersion: 1,
    name,
    version,
    arch: spec.arch,
    featDim: spec.featDim,
    input: { name: INPUT_NAME, size, layout: 'NHWC', dtype: 'uint8', shape: [-1, size, size, 3] },
    view,
    views,
    inputViews: specInput(spec, view),
    layer,
    featuresDim: fDim,
    pool,
    poolType: pool ? poolType : null,
    embeddingDim,
    classNames,
    trainConfig: portableConfig(header.config, checksum),
    probeConfig: portableConfig(head?.probe, checksum),
    metrics: { train: header.metrics ?? [], probe: head?.metrics ?? null },
    opset: OPSET,
    irVersion: IR_VERSION,
    producer: `${PRODUCER_NAME} ${PRODUCER_VERSION}`,
  };

  const images: TensorDesc = { name: INPUT_NAME, dtype: 'uint8', shape: [-1, size, size, 3] };
  const f32 = (n: string, dim: number): TensorDesc => ({ name: n, dtype: 'float32', shape: [-1, dim] });
  const headParams: HeadParams | undefined = head && {
    weight: head.weight,
    bias: head.bias,
    inFeatures: head.inFeatures,
    classes: head.classNames.length,
  };

  type Job = {
    file: string;
    role: ManifestFile['role'];
    graph: () => IGraphProto;
    inputs: TensorDesc[];
    outputs: TensorDesc[];
  };
  const encoderJob: Job = {
    file: 'encoder.onnx',
    role: 'encoder',
    graph: () => buildEncoderGraph(spec, params, graphOpts),
    inputs: [images],
    outputs: [f32('embedding', embeddingDim), f32('features', fDim)],
  };
  const jobs: Job[] = [];
  if (format === 'onnx' || format === 'tfjs') {
    jobs.push(encoderJob);
    if (head && headParams) {
      const c = head.classNames.length;
      jobs.push({
        file: 'head.onnx',
        role: 'head',
        graph: () => buildHeadGraph(headParams),
        inputs: [f32('features', fDim)],
        outputs: [f32('logits', c)],
      });
      jobs.push({
        file: 'classifier.onnx',
        role: 'classifier',
        graph: () => buildClassifierGraph(spec, params, graphOpts, headParams),
        inputs: [images],
        outputs: [f32('probabilities', c), f32('logits', c), f32('embedding', embeddingDim)],
      });
    }
  } else if (head && headParams) {
    const c = head.classNames.length;
    jobs.push({
      file: path.join('1', 'model.onnx'),
      role: 'classifier',
      graph: () => buildClassifierGraph(spec, params, graphOpts, headParams),
      inputs: [images],
      outputs: [f32('probabilities', c), f32('logits', c), f32('embedding', embeddingDim)],
    });
  } else {
    jobs.push({ ...encoderJob, file: path.join('1', 'model.onnx') });
  }

  if (o.quantize !== undefined && format !== 'tfjs')
    throw new Error(`quantize (${o.quantize}) applies to the tfjs format only`);
  if (o.quantize !== undefined && o.quantize !== 'float16')
    throw new Error(`quantize must be float16, got ${String(o.quantize)}`);
  const files: Record<string, ManifestFile> = {};
  const written: string[] = [];
  const tfjsJobs: { job: Job; graph: IGraphProto }[] = [];
  for (const job of jobs) {
    const graph = job.graph();
    if (format === 'tfjs' && TFJS_ROLES.includes(job.role)) tfjsJobs.push({ job, graph });
    const model = makeModel({
      graph,
      metadata: manifestMetadata(base, job.role),
      docString: `CMC ${spec.arch} ${job.role} (${view}), exported by ${PRODUCER_NAME}`,
    });
    validateModel(model, job.file);
    const bytes = encodeModel(model);
    const file = path.join(outDir, job.file);
    writeFileAtomic(file, bytes);
    written.push(file);
    files[job.file.split(path.sep).join('/')] = {
      sha256: sha256(bytes),
      bytes: bytes.length,
      role: job.role,
      inputs: job.inputs,
      outputs: job.outputs,
    };
    log(`[export] ${file} (${(bytes.length / 1e6).toFixed(1)} MB, ${graph.node?.length} nodes)`);
  }
  for (const { job, graph } of tfjsJobs) {
    const entries = writeTfjsRole(outDir, job.role, graph, job, manifestMetadata(base, job.role), o.quantize, log);
    Object.assign(files, entries);
    for (const k of Object.keys(entries)) written.push(path.join(outDir, k));
  }

  if (format === 'triton') {
    const job = jobs[0];
    const labels = head ? 'labels.txt' : undefined;
    if (labels && head) writeFileAtomic(path.join(outDir, labels), head.classNames.join('\n') + '\n');
    const cfg = tritonConfig({
      name: path.basename(outDir),
      maxBatchSize: o.maxBatchSize ?? 64,
      maxQueueDelayUs: 100,
      inputs: job.inputs.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.shape.slice(1) })),
      outputs: job.outputs.map((t) => ({
        name: t.name,
        dtype: t.dtype,
        dims: t.shape.slice(1),
        labelFilename: t.name === 'probabilities' ? labels : undefined,
      })),
    });
    const cfgFile = path.join(outDir, 'config.pbtxt');
    writeFileAtomic(cfgFile, cfg);
    written.push(cfgFile);
  }

  const manifest: Manifest = { ...base, files };
  const manifestPath = path.join(outDir, 'manifest.json');
  writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  log(`[export] ${manifestPath}`);
  return { outDir, manifest, manifestPath, files: written };
}

export interface AddTfjsOptions {
  /** A model folder written by `cmc export` (manifest.json, encoder.onnx, classifier.onnx when a head was given). */
  modelDir: string;
  quantize?: TfjsQuantization;
  log?: (line: string) => void;
}

/**
 * Add tfjs graph models to an existing ONNX export without its checkpoint: each ONNX graph (checked against
 * the manifest's sha256) is translated as `--format tfjs` would, and manifest.json gains their entries; the
 * ONNX files and every other manifest field stay as they are. Earlier tfjs entries are replaced.
 */
export async function addTfjsExport(o: AddTfjsOptions): Promise<ExportResult> {
  const log = o.log ?? (() => {});
  const outDir = path.resolve(o.modelDir);
  const manifestPath = path.join(outDir, 'manifest.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read ${manifestPath}: ${(e as Error).message}`, { cause: e });
  }
  const manifest = parseManifest(raw, manifestPath);
  if (o.quantize !== undefined && o.quantize !== 'float16')
    throw new Error(`quantize must be float16, got ${String(o.quantize)}`);
  const files: Record<string, ManifestFile> = {};
  for (const [k, f] of Object.entries(manifest.files)) if (!k.startsWith('tfjs/')) files[k] = f;
  const written: string[] = [];
  for (const role of TFJS_ROLES) {
    const onnxFile = `${role}.onnx`;
    const entry = manifest.files[onnxFile];
    if (!entry) continue;
    const loaded = loadOnnxModel(path.join(outDir, onnxFile), { sha256: entry.sha256 });
    const entries = writeTfjsRole(
      outDir,
      role,
      loaded.model.graph as IGraphProto,
      entry,
      loaded.metadata,
      o.quantize,
      log,
    );
    Object.assign(files, entries);
    for (const k of Object.keys(entries)) written.push(path.join(outDir, k));
  }
  if (written.length === 0)
    throw new Error(`${outDir}: the manifest lists neither encoder.onnx nor classifier.onnx; nothing to translate`);
  const next: Manifest = { ...manifest, files };
  writeFileAtomic(manifestPath, JSON.stringify(next, null, 2) + '\n');
  log(`[export] ${manifestPath}`);
  return { outDir, manifest: next, manifestPath, files: written };
}
