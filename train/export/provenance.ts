/**
 * What an export says about where its model came from: data sets by name and checksum, runs and checkpoints
 * by run-relative name, never a path of the exporting machine. A manifest travels with the model (to a
 * server, a browser, a model hub), where the trainer's folders mean nothing and would leak its file layout.
 *
 *   portableConfig({ data_folder: '/work/data/imagenette64-sub', resume: '/work/runs/a/ckpt_epoch_30.ckpt' })
 *   // → { data: { name: 'imagenette64-sub', sha256: '…' }, resume: 'a/ckpt_epoch_30.ckpt' }
 *   portableConfig({ data_folder: '…/imagenette64-sub', extra_folder: ['…/imagenette64-extra'] })
 *   // → { data: { name: 'imagenette64-sub', … }, extra_data: [{ name: 'imagenette64-extra', sha256: '…' }] }
 *
 * The data set checksum is the sha256 of `sha256sum`'s listing of every file under the folder, sorted by
 * path, so anyone holding the data can check it:
 *   cd imagenette64-sub && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodeModel, encodeModel, sha256 } from '../../core/onnx/onnx_proto.ts';
import { manifestMetadata, parseManifest, type Manifest } from '../../core/formats/manifest.ts';
import { writeFileAtomic } from '../../core/util/atomic_write.ts';

/** A data set as a manifest records it: the folder's name and its checksum (null: the folder was not there). */
export interface DatasetRef {
  name: string;
  sha256: string | null;
}

/**
 * Config keys that name data folders (training: snake_case flags; probe: camelCase options), and the key
 * their DatasetRef goes to: one folder becomes one DatasetRef, a list (--extra_folder) a list of them.
 */
const DATA_KEYS = new Map([
  ['data_folder', 'data'],
  ['dataFolder', 'data'],
  ['extra_folder', 'extra_data'],
]);
/** Config keys that only say where the trainer wrote its files: meaningless elsewhere, dropped. */
const OUTPUT_KEYS = new Set(['model_path', 'tb_path']);

/** The checksum described at the top of this file, or null when `folder` is not a readable folder. */
export function datasetChecksum(folder: string): string | null {
  let files: string[];
  try {
    files = (fs.readdirSync(folder, { recursive: true }) as string[])
      .filter((f) => fs.statSync(path.join(folder, f)).isFile())
      .map((f) => f.split(path.sep).join('/'))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))); // byte order, as LC_ALL=C sort
  } catch {
    return null;
  }
  const listing = files.map((f) => `${fileSha256(path.join(folder, f))}  ${f}\n`).join('');
  return crypto.createHash('sha256').update(listing).digest('hex');
}

/**
 * datasetChecksum that reads each folder once: a training config and a probe config usually name the same
 * data set, and hashing it is the slow part of an export.
 */
export function checksumOnce(): (folder: string) => string | null {
  const seen = new Map<string, string | null>();
  return (folder) => {
    const key = path.resolve(folder);
    if (!seen.has(key)) seen.set(key, datasetChecksum(folder));
    return seen.get(key)!;
  };
}

function fileSha256(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** The last two segments of an absolute path (run folder + file); other strings unchanged. */
function runRelative(p: string): string {
  return path.isAbsolute(p) ? path.basename(path.dirname(p)) + '/' + path.basename(p) : p;
}

/**
 * A training or probe config without machine paths: data folders become `data: { name, sha256 }` (extra
 * folders `extra_data: [{ name, sha256 }, …]`, left out when there are none), output
 * folders are dropped, any other absolute path keeps its last two segments. A config already portable
 * (its `data` is a DatasetRef) comes back unchanged.
 */
export function portableConfig(
  config: Record<string, unknown> | null | undefined,
  checksum: (folder: string) => string | null = datasetChecksum,
): Record<string, unknown> | null {
  if (!config) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (OUTPUT_KEYS.has(k)) continue;
    const dataKey = DATA_KEYS.get(k);
    const ref = (folder: string): DatasetRef => ({
      name: path.basename(path.resolve(folder)),
      sha256: checksum(folder),
    });
    if (dataKey && typeof v === 'string') out[dataKey] = ref(v);
    else if (dataKey && Array.isArray(v) && v.every((f) => typeof f === 'string')) {
      // No extra folders (every run without --extra_folder): nothing to record, as before the option existed.
      if (v.length) out[dataKey] = v.map(ref);
    } else out[k] = typeof v === 'string' ? runRelative(v) : v;
  }
  return out;
}

/**
 * Rewrite an existing export's provenance (manifest trainConfig / probeConfig and the same facts in every
 * ONNX file's metadata_props and tfjs model.json's userDefinedMetadata) to portableConfig's form. Graphs and
 * weights are untouched: each ONNX file is decoded and re-encoded with new metadata only (the encoder is
 * byte-stable), and the manifest's sha256 / bytes follow. Returns the files rewritten.
 */
export function refreshProvenance(
  modelDir: string,
  checksum: (folder: string) => string | null = checksumOnce(),
): string[] {
  const manifestPath = path.join(modelDir, 'manifest.json');
  const manifest = parseManifest(JSON.parse(fs.readFileSync(manifestPath, 'utf8')), manifestPath);
  const next: Manifest = {
    ...manifest,
    trainConfig: portableConfig(manifest.trainConfig, checksum),
    probeConfig: portableConfig(manifest.probeConfig, checksum),
    files: { ...manifest.files },
  };
  const { files: _files, ...base } = next;
  const written: string[] = [];
  for (const [name, entry] of Object.entries(manifest.files)) {
    const file = path.join(modelDir, name);
    const old = new Uint8Array(fs.readFileSync(file));
    let bytes: Uint8Array;
    if (name.endsWith('.onnx')) {
      const model = decodeModel(old);
      const meta = manifestMetadata(base, entry.role);
      model.metadataProps = (model.metadataProps ?? []).map((p) =>
        p.key !== undefined && p.key !== null && p.key in meta ? { ...p, value: meta[p.key] } : p,
      );
      bytes = encodeModel(model);
    } else if (name.endsWith('model.json')) {
      const json = JSON.parse(Buffer.from(old).toString('utf8'));
      if (!json.userDefinedMetadata) continue;
      json.userDefinedMetadata = {
        ...json.userDefinedMetadata,
        ...pick(manifestMetadata(base, entry.role), json.userDefinedMetadata),
      };
      bytes = Buffer.from(JSON.stringify(json));
    } else continue;
    if (Buffer.compare(Buffer.from(old), Buffer.from(bytes)) === 0) continue;
    writeFileAtomic(file, bytes);
    next.files[name] = { ...entry, sha256: sha256(bytes), bytes: bytes.length };
    written.push(file);
  }
  writeFileAtomic(manifestPath, JSON.stringify(next, null, 2) + '\n');
  written.push(manifestPath);
  return written;
}

/** The entries of `from` whose keys `like` already has (a tfjs model keeps the metadata keys it was given). */
function pick(from: Record<string, string>, like: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(from).filter(([k]) => k in like));
}
