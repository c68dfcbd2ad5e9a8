/**
 * The export manifest (models/<name>/manifest.json) and the same facts as ONNX metadata_props: the contract
 * between the exporter and its readers (the server, the browser app). Portable: no node imports.
 *
 * manifest.json:
 *   {
 *     "format": "cmc-export", "formatVersion": 1,
 *     "name": "demo", "version": "1",
 *     "arch": "alexnet_small", "featDim": 128,
 *     "input": { "name": "images", "size": 32, "layout": "NHWC", "dtype": "uint8", "shape": [-1, 32, 32, 3] },
 *     "view": "Lab",                 // colour space computed inside the graph (core/preprocess/color.ts)
 *     "views": ["L", "ab"],          // exported views, in embedding / features order
 *     "inputViews": ["L", "ab"],     // views computed from RGB inside the graph (core/preprocess/views.ts)
 *     "layer": 6,                    // block whose flattened outputs (L then ab) are `features`
 *     "featuresDim": 4096, "embeddingDim": 256,
 *     "pool": [5, 5] | null,         // adaptive pooling of the layer's map (views concatenated along channels)
 *     "poolType": "max" | "avg" | null, //   before the flatten, as the head's probe trained (null: none)
 *     "classNames": [...],           // the head's classes (or the training set's when there is no head)
 *     "trainConfig": {...},          // the checkpoint's training config
 *     "probeConfig": {...} | null,   // the head file's probe config
 *     "metrics": { "train": [...], "probe": {...} | null },
 *     "opset": 17, "irVersion": 8,
 *     "files": { "encoder.onnx": { "sha256": "...", "bytes": 123, "inputs": [...], "outputs": [...] }, ...,
 *                // with --format tfjs (train/export/tfjs.ts), beside the ONNX files:
 *                "tfjs/encoder/model.json": { ..., "format": "tfjs-graph-model", "quantization"?: "float16" },
 *                "tfjs/encoder/group1-shard1of1.bin": { ..., "format": "tfjs-weights", "inputs": [], "outputs": [] } }
 *   }
 */
import type { PoolType } from '../network/pooling.ts';
import type { ColorView } from '../preprocess/color.ts';

export const MANIFEST_FORMAT = 'cmc-export';

export interface TensorDesc {
  name: string;
  dtype: 'uint8' | 'float32';
  /** -1 = dynamic (the batch). */
  shape: number[];
}

export interface ManifestFile {
  sha256: string;
  bytes: number;
  /** 'encoder' (images -> embedding, features), 'head' (features -> logits), 'classifier' (images -> probabilities). */
  role: 'encoder' | 'head' | 'classifier';
  /** Absent: an ONNX model. tfjs: a graph model's model.json, or one of its weight shards. */
  format?: 'onnx' | 'tfjs-graph-model' | 'tfjs-weights';
  /** tfjs files whose float32 weights are stored as float16. */
  quantization?: 'float16';
  inputs: TensorDesc[];
  outputs: TensorDesc[];
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: 1;
  name: string;
  version: string;
  arch: string;
  featDim: number;
  input: { name: string; size: number; layout: 'NHWC'; dtype: 'uint8'; shape: number[] };
  view: ColorView;
  /** Exported views in `embedding` / `features` order (absent in manifests written before N views). */
  views?: string[];
  /** The views the graph computes from the RGB input (core/preprocess/views.ts), in channel order. */
  inputViews?: string[];
  layer: number;
  featuresDim: number;
  /** Adaptive pooling target [h, w] applied to the layer's map before the flatten (null/absent: none). */
  pool?: [number, number] | null;
  poolType?: PoolType | null;
  embeddingDim: number;
  classNames: string[];
  trainConfig: Record<string, unknown> | null;
  probeConfig: Record<string, unknown> | null;
  metrics: { train: unknown[]; probe: Record<string, unknown> | null };
  opset: number;
  irVersion: number;
  producer: string;
  files: Record<string, ManifestFile>;
}

/** The facts written as metadata_props into every ONNX file (JSON strings for structured values). */
export function manifestMetadata(m: Omit<Manifest, 'files'>, role: ManifestFile['role']): Record<string, string> {
  return {
    'cmc.format': `${MANIFEST_FORMAT}/${m.formatVersion}`,
    'cmc.role': role,
    'cmc.name': m.name,
    'cmc.version': m.version,
    'cmc.arch': m.arch,
    'cmc.feat_dim': String(m.featDim),
    'cmc.input': JSON.stringify(m.input),
    'cmc.input_size': String(m.input.size),
    'cmc.input_layout': m.input.layout,
    'cmc.input_dtype': m.input.dtype,
    'cmc.view': m.view,
    'cmc.views': JSON.stringify(m.views ?? null),
    'cmc.input_views': JSON.stringify(m.inputViews ?? null),
    'cmc.layer': String(m.layer),
    'cmc.features_dim': String(m.featuresDim),
    'cmc.pool': JSON.stringify(m.pool ?? null),
    'cmc.pool_type': JSON.stringify(m.poolType ?? null),
    'cmc.embedding_dim': String(m.embeddingDim),
    'cmc.class_names': JSON.stringify(m.classNames),
    'cmc.train_config': JSON.stringify(m.trainConfig),
    'cmc.probe_config': JSON.stringify(m.probeConfig),
    'cmc.metrics': JSON.stringify(m.metrics),
    'cmc.opset': String(m.opset),
  };
}

/** Basic checks of a parsed manifest.json; returns it typed. */
export function parseManifest(obj: unknown, where = 'manifest.json'): Manifest {
  const m = obj as Partial<Manifest>;
  if (!m || typeof m !== 'object' || m.format !== MANIFEST_FORMAT)
    throw new Error(`${where}: not a cmc export manifest (format must be "${MANIFEST_FORMAT}")`);
  if (m.formatVersion !== 1) throw new Error(`${where}: unsupported manifest formatVersion ${String(m.formatVersion)}`);
  for (const k of ['name', 'version', 'view', 'arch'] as const)
    if (typeof m[k] !== 'string') throw new Error(`${where}: missing ${k}`);
  if (!m.input || m.input.layout !== 'NHWC' || m.input.dtype !== 'uint8' || !(m.input.size > 0))
    throw new Error(`${where}: bad input description`);
  if (!m.files || typeof m.files !== 'object') throw new Error(`${where}: missing files`);
  return m as Manifest;
}
