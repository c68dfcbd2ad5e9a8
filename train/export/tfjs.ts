/**
 * A tfjs graph model on disk, as tensorflowjs_converter writes one (tensorflowjs/write_weights.py,
 * tensorflowjs/converters/tf_saved_model_conversion_v2.py):
 *
 *   <dir>/model.json               { "format": "graph-model", "generatedBy", "convertedBy",
 *                                    "signature": { "inputs": {...}, "outputs": {...} },
 *                                    "userDefinedMetadata": { "cmc.role": ..., ... },   // ONNX metadata_props
 *                                    "modelTopology": { "node": [...], "library": {}, "versions": {} },
 *                                    "weightsManifest": [{ "paths": ["group1-shard1of1.bin"],
 *                                                          "weights": [{ "name", "shape", "dtype",
 *                                                                        "quantization"? }] }] }
 *   <dir>/group1-shard1of1.bin     every Const node's value, concatenated in weights order, little endian,
 *                                  split into shards of at most 4 MiB (the converter's default)
 *
 * With `quantize: 'float16'` float32 weights are stored as IEEE half floats with
 * `"quantization": { "dtype": "float16", "original_dtype": "float32" }` (the converter's
 * --quantize_float16); tfjs-core's io.decodeWeights widens them back to float32 at load.
 *
 *   const g = onnxToTfGraph(buildEncoderGraph(spec, params, opts), 'encoder graph');
 *   const files = writeTfjsModel('models/demo/tfjs/encoder', g, { quantize: 'float16', metadata });
 */
import { writeFileAtomic } from '../../core/util/atomic_write.ts';
import fs from 'node:fs';
import path from 'node:path';
import { Float16Array } from '@petamoriken/float16';
import { sha256, PRODUCER_NAME, PRODUCER_VERSION } from '../../core/onnx/onnx_proto.ts';
import type { TfGraph, TfWeight } from './tfjs_graph.ts';

export type TfjsQuantization = 'float16';

/** tensorflowjs_converter's default --weight_shard_size_bytes. */
export const SHARD_BYTES = 4 * 1024 * 1024;
export const MODEL_JSON = 'model.json';

export interface TfjsWeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  quantization?: { dtype: 'float16'; original_dtype: 'float32' };
}

export interface TfjsModelJson {
  format: 'graph-model';
  generatedBy: string;
  convertedBy: string;
  signature: TfGraph['signature'];
  userDefinedMetadata?: Record<string, string>;
  modelTopology: { node: TfGraph['nodes']; library: Record<string, never>; versions: Record<string, never> };
  weightsManifest: { paths: string[]; weights: TfjsWeightEntry[] }[];
}

export interface TfjsFile {
  /** Relative to the model.json's folder. */
  file: string;
  bytes: Uint8Array;
}

function weightBytes(w: TfWeight, quantize: TfjsQuantization | undefined): Uint8Array {
  if (w.dtype === 'float32' && quantize === 'float16') {
    const h = new Float16Array(w.data.length);
    for (let i = 0; i < w.data.length; i++) h[i] = w.data[i];
    return new Uint8Array(h.buffer);
  }
  return new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
}

/** The model.json and weight shard files of a translated graph (not yet written). */
export function tfjsModelFiles(
  g: TfGraph,
  o: { quantize?: TfjsQuantization; metadata?: Record<string, string>; shardBytes?: number } = {},
): TfjsFile[] {
  const parts = g.weights.map((w) => weightBytes(w, o.quantize));
  const total = parts.reduce((s, p) => s + p.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const shardBytes = o.shardBytes ?? SHARD_BYTES;
  const n = Math.max(1, Math.ceil(total / shardBytes));
  const shards: TfjsFile[] = [];
  for (let k = 0; k < n; k++)
    shards.push({
      file: `group1-shard${k + 1}of${n}.bin`,
      bytes: all.slice(k * shardBytes, Math.min(total, (k + 1) * shardBytes)),
    });
  const json: TfjsModelJson = {
    format: 'graph-model',
    generatedBy: `${PRODUCER_NAME} ${PRODUCER_VERSION}`,
    convertedBy: `${PRODUCER_NAME} ${PRODUCER_VERSION} (train/export/tfjs_graph.ts)`,
    signature: g.signature,
    ...(o.metadata ? { userDefinedMetadata: o.metadata } : {}),
    modelTopology: { node: g.nodes, library: {}, versions: {} },
    weightsManifest: [
      {
        paths: shards.map((s) => s.file),
        weights: g.weights.map((w) => ({
          name: w.name,
          shape: w.shape,
          dtype: w.dtype,
          ...(w.dtype === 'float32' && o.quantize === 'float16'
            ? { quantization: { dtype: 'float16' as const, original_dtype: 'float32' as const } }
            : {}),
        })),
      },
    ],
  };
  return [{ file: MODEL_JSON, bytes: new TextEncoder().encode(JSON.stringify(json)) }, ...shards];
}

/** Write the files into `dir` (each atomically); returns them with their sha256. */
export function writeTfjsModel(
  dir: string,
  files: TfjsFile[],
): { file: string; path: string; sha256: string; bytes: number }[] {
  fs.mkdirSync(dir, { recursive: true });
  // Shards of an earlier export with more shards would be left behind and mislead: remove them.
  for (const f of fs.readdirSync(dir))
    if (/^group\d+-shard\d+of\d+\.bin$/.test(f) && !files.some((x) => x.file === f)) fs.rmSync(path.join(dir, f));
  // Shards first, model.json last: a reader never sees a model.json naming shards not yet written.
  const ordered = [...files.filter((f) => f.file !== MODEL_JSON), ...files.filter((f) => f.file === MODEL_JSON)];
  return ordered.map((f) => {
    const full = path.join(dir, f.file);
    writeFileAtomic(full, f.bytes);
    return { file: f.file, path: full, sha256: sha256(f.bytes), bytes: f.bytes.length };
  });
}
