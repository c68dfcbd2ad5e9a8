/**
 * Export provenance: manifests and model metadata name data sets by name and checksum and never carry a path
 * of the exporting machine; the checksum is the documented `sha256sum` listing; rewriting an old export's
 * provenance leaves its graphs and weights as they were; the shipped model holds no machine path.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../train/engine/backend.ts';
import { CmcModel } from '../../train/model/cmc.ts';
import { Rng } from '../../core/util/rng.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import type { TensorEntry } from '../../core/formats/checkpoint.ts';
import { parseManifest } from '../../core/formats/manifest.ts';
import { decodeModel, encodeModel, metadataOf, sha256 } from '../../core/onnx/onnx_proto.ts';
import { exportModel } from '../../train/export/export.ts';
import { datasetChecksum, portableConfig, refreshProvenance } from '../../train/export/provenance.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';
import { randomizeBatchNorm } from '../helpers/random_model.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
let tmp = '';
before(async () => {
  await initBackend('cpu', { quiet: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-provenance-'));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Every string anywhere in a JSON value. */
function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (v && typeof v === 'object') return Object.values(v).flatMap(strings);
  return [];
}

function dataFolder(): string {
  const d = path.join(tmp, 'my-photos');
  fs.mkdirSync(path.join(d, 'train', 'cat'), { recursive: true });
  fs.mkdirSync(path.join(d, 'val', 'cat'), { recursive: true });
  fs.writeFileSync(path.join(d, 'train', 'cat', 'a.png'), 'not really a png');
  fs.writeFileSync(path.join(d, 'train', 'cat', 'B.png'), 'another');
  fs.writeFileSync(path.join(d, 'val', 'cat', 'c.png'), 'third');
  return d;
}

test("datasetChecksum is the sha256 of sha256sum's listing of the folder, sorted by path", () => {
  const d = dataFolder();
  const expected = execFileSync(
    'bash',
    ['-c', "find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1"],
    { cwd: d, encoding: 'utf8' },
  ).trim();
  assert.equal(datasetChecksum(d), expected);
  fs.writeFileSync(path.join(d, 'val', 'cat', 'c.png'), 'changed');
  assert.notEqual(datasetChecksum(d), expected, 'a changed file changes the checksum');
  assert.equal(datasetChecksum(path.join(tmp, 'no-such-folder')), null);
});

test('portableConfig: data folders by name and checksum, output folders dropped, other paths run-relative', () => {
  const c = portableConfig(
    {
      data_folder: '/home/ann/data/imagenette64-sub/',
      model_path: '/home/ann/runs',
      tb_path: '/home/ann/runs/tb',
      resume: '/home/ann/runs/a/ckpt_epoch_30.ckpt',
      epochs: 70,
      name: 'a',
    },
    (f) => (f.includes('imagenette') ? 'abc' : null),
  );
  assert.deepEqual(c, {
    data: { name: 'imagenette64-sub', sha256: 'abc' },
    resume: 'a/ckpt_epoch_30.ckpt',
    epochs: 70,
    name: 'a',
  });
  assert.deepEqual(
    portableConfig(c, () => 'other'),
    c,
    'a portable config stays as it is',
  );
  assert.equal(portableConfig(null), null);
});

test('portableConfig: extra pre-training folders become a list of {name, sha256}; none leaves no key', () => {
  const sums: Record<string, string> = { 'imagenette64-sub': 'abc', 'imagenette64-extra': 'def' };
  const sum = (f: string) => sums[path.basename(f)] ?? null;
  const c = portableConfig(
    {
      data_folder: '/home/ann/data/imagenette64-sub',
      extra_folder: ['/home/ann/data/imagenette64-extra/', '/mnt/photos'],
      epochs: 70,
    },
    sum,
  );
  assert.deepEqual(c, {
    data: { name: 'imagenette64-sub', sha256: 'abc' },
    extra_data: [
      { name: 'imagenette64-extra', sha256: 'def' },
      { name: 'photos', sha256: null },
    ],
    epochs: 70,
  });
  assert.deepEqual(
    portableConfig(c, () => 'other'),
    c,
    'a portable config stays as it is',
  );
  assert.deepEqual(
    portableConfig({ data_folder: '/d/imagenette64-sub', extra_folder: [], epochs: 1 }, sum),
    { data: { name: 'imagenette64-sub', sha256: 'abc' }, epochs: 1 },
    'a run without extra folders exports as before the option existed',
  );
});

test('export writes no machine path; refreshProvenance rewrites an old export and leaves graphs and weights alone', async () => {
  const data = dataFolder();
  const spec = tinySpec() as unknown as CmcSpec;
  const model = new CmcModel(spec, 3);
  const tensors: Record<string, TensorEntry> = {};
  for (const [k, t] of Object.entries(randomizeBatchNorm(model, new Rng(4)))) tensors[`model/${k}`] = t;
  model.dispose();
  const runDir = path.join(tmp, 'runs', 'tiny');
  const header = {
    format: 'cmc-train-checkpoint',
    config: { model: 'spec.json', image_size: 16, data_folder: data, model_path: path.dirname(runDir), name: 'tiny' },
    spec,
    classNames: ['cat'],
    metrics: [],
  };
  const dir = path.join(tmp, 'export');
  const r = await exportModel({ checkpoint: { header, tensors }, outDir: dir });
  const absolute = (v: unknown) => strings(v).filter((s) => path.isAbsolute(s) || s.includes(tmp));
  const man = JSON.parse(fs.readFileSync(r.manifestPath, 'utf8'));
  assert.deepEqual(absolute(man), []);
  assert.deepEqual(man.trainConfig.data, { name: 'my-photos', sha256: datasetChecksum(data) });
  const meta = metadataOf(decodeModel(new Uint8Array(fs.readFileSync(path.join(dir, 'encoder.onnx')))));
  assert.deepEqual(JSON.parse(meta['cmc.train_config']), man.trainConfig);

  // An export from before: the same files with the raw config in the manifest and the metadata.
  const old = { ...structuredClone(man), trainConfig: header.config };
  const enc = decodeModel(new Uint8Array(fs.readFileSync(path.join(dir, 'encoder.onnx'))));
  for (const p of enc.metadataProps) if (p.key === 'cmc.train_config') p.value = JSON.stringify(header.config);
  const oldBytes = encodeModel(enc);
  fs.writeFileSync(path.join(dir, 'encoder.onnx'), oldBytes);
  old.files['encoder.onnx'] = { ...old.files['encoder.onnx'], sha256: sha256(oldBytes), bytes: oldBytes.length };
  fs.writeFileSync(r.manifestPath, JSON.stringify(old, null, 2) + '\n');
  assert.ok(absolute(JSON.parse(fs.readFileSync(r.manifestPath, 'utf8'))).length > 0);

  refreshProvenance(dir);
  const after = parseManifest(JSON.parse(fs.readFileSync(r.manifestPath, 'utf8')));
  assert.deepEqual(absolute(after), []);
  assert.deepEqual(after, man, 'the refreshed manifest is the one a fresh export writes');
  const bytes = new Uint8Array(fs.readFileSync(path.join(dir, 'encoder.onnx')));
  assert.equal(sha256(bytes), after.files['encoder.onnx'].sha256);
  const m = decodeModel(bytes);
  assert.equal(
    sha256(encodeModel({ ...m.toJSON(), metadataProps: [] } as never)),
    sha256(encodeModel({ ...decodeModel(oldBytes).toJSON(), metadataProps: [] } as never)),
    'graph and weights unchanged',
  );
  const before = fs.readFileSync(r.manifestPath);
  refreshProvenance(dir);
  assert.deepEqual(fs.readFileSync(r.manifestPath), before, 'a second refresh changes nothing');
});

test('the shipped model records no path of the machine it was trained on', () => {
  const dir = path.join(ROOT, 'models', 'imagenette64');
  const man = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  assert.deepEqual(
    strings(man).filter((s) => path.isAbsolute(s)),
    [],
  );
  assert.equal(man.trainConfig.data.name, 'imagenette64-sub');
  assert.match(man.trainConfig.data.sha256, /^[0-9a-f]{64}$/);
  for (const [f, e] of Object.entries(man.files as Record<string, { sha256: string }>)) {
    const bytes = new Uint8Array(fs.readFileSync(path.join(dir, f)));
    assert.equal(sha256(bytes), e.sha256, `${f}: manifest sha256`);
    if (f.endsWith('.onnx'))
      assert.deepEqual(
        strings(metadataOf(decodeModel(bytes))).filter((s) => s.includes('/work/')),
        [],
        f,
      );
  }
});
