/**
 * Test fixtures for the server: a tiny model repository written with the exporter's ONNX builders (no
 * checkpoint, no training), test images made with sharp, and small HTTP helpers.
 *
 * The tiny graphs have the exported models' interface: input `images` uint8 [N, S, S, 3];
 *   encoder.onnx     → embedding [N, E] (L2-normalised), features [N, 3*(S/8)^2]
 *   classifier.onnx  → probabilities [N, C] (softmax), logits [N, C], embedding [N, E]
 * computed as Cast → /255 → NCHW → 8x8 average pool → flatten (features) → MatMul (→ LpNorm | + bias).
 *
 *   const dir = writeTinyRepository();            // <tmp>/models/{tiny, multi/1, multi/2}
 *   const s = await startServer({ models: dir, port: 0, quiet: true, provider: 'cpu' });
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import {
  DataType,
  encodeModel,
  floatTensor,
  makeModel,
  makeNode,
  sha256,
  valueInfo,
  type IGraphProto,
  type INodeProto,
  type ITensorProto,
} from '../../core/onnx/onnx_proto.ts';
import { MANIFEST_FORMAT } from '../../core/formats/manifest.ts';
import { Rng } from '../../core/util/rng.ts';

export const TINY_SIZE = 32;
export const TINY_EMBED = 16;
export const TINY_CLASSES = ['circle', 'square', 'triangle', 'star'];

function randn(rng: Rng, n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.range(-1, 1) + rng.range(-1, 1) + rng.range(-1, 1)) * scale;
  return a;
}

function trunk(size: number): { nodes: INodeProto[]; inits: ITensorProto[]; feats: number } {
  const k = 8;
  const feats = 3 * (size / k) ** 2;
  return {
    feats,
    nodes: [
      makeNode('Cast', ['images'], ['x_f'], 'cast', { to: DataType.FLOAT }),
      makeNode('Div', ['x_f', 'c255'], ['x_n'], 'scale'),
      makeNode('Transpose', ['x_n'], ['x_nchw'], 'nchw', { perm: [0, 3, 1, 2] }),
      makeNode('AveragePool', ['x_nchw'], ['pooled'], 'pool', { kernel_shape: [k, k], strides: [k, k] }),
      makeNode('Flatten', ['pooled'], ['features'], 'flatten', { axis: 1 }),
    ],
    inits: [floatTensor('c255', [], [255])],
  };
}

function encoderGraph(size: number, w: Float32Array): IGraphProto {
  const t = trunk(size);
  return {
    name: 'tiny_encoder',
    node: [
      ...t.nodes,
      makeNode('MatMul', ['features', 'w_emb'], ['emb_raw'], 'proj'),
      makeNode('LpNormalization', ['emb_raw'], ['embedding'], 'l2', { axis: 1, p: 2 }),
    ],
    initializer: [...t.inits, floatTensor('w_emb', [t.feats, TINY_EMBED], w)],
    input: [valueInfo('images', DataType.UINT8, ['N', size, size, 3])],
    output: [
      valueInfo('embedding', DataType.FLOAT, ['N', TINY_EMBED]),
      valueInfo('features', DataType.FLOAT, ['N', t.feats]),
    ],
  };
}

function classifierGraph(size: number, w: Float32Array, wc: Float32Array, bc: Float32Array): IGraphProto {
  const t = trunk(size);
  const c = bc.length;
  return {
    name: 'tiny_classifier',
    node: [
      ...t.nodes,
      makeNode('MatMul', ['features', 'w_emb'], ['emb_raw'], 'proj'),
      makeNode('LpNormalization', ['emb_raw'], ['embedding'], 'l2', { axis: 1, p: 2 }),
      makeNode('MatMul', ['features', 'w_cls'], ['mm'], 'head'),
      makeNode('Add', ['mm', 'b_cls'], ['logits'], 'bias'),
      makeNode('Softmax', ['logits'], ['probabilities'], 'softmax', { axis: 1 }),
    ],
    initializer: [
      ...t.inits,
      floatTensor('w_emb', [t.feats, TINY_EMBED], w),
      floatTensor('w_cls', [t.feats, c], wc),
      floatTensor('b_cls', [c], bc),
    ],
    input: [valueInfo('images', DataType.UINT8, ['N', size, size, 3])],
    output: [
      valueInfo('probabilities', DataType.FLOAT, ['N', c]),
      valueInfo('logits', DataType.FLOAT, ['N', c]),
      valueInfo('embedding', DataType.FLOAT, ['N', TINY_EMBED]),
    ],
  };
}

/** Write one model version folder (encoder.onnx, optional classifier.onnx, manifest.json); `nanWeight` poisons a weight. */
export function writeTinyModel(
  dir: string,
  o: { name: string; version: string; classifier: boolean; seed: number; size?: number; nanWeight?: boolean },
): void {
  const size = o.size ?? TINY_SIZE;
  const rng = new Rng(o.seed);
  const feats = 3 * (size / 8) ** 2;
  const w = randn(rng, feats * TINY_EMBED, 1);
  if (o.nanWeight) w[0] = NaN; // a broken model: every embedding (and, through it, every output) is NaN
  fs.mkdirSync(dir, { recursive: true });
  const files: Record<string, unknown> = {};
  const put = (file: string, bytes: Uint8Array, role: string, outputs: [string, number][]) => {
    fs.writeFileSync(path.join(dir, file), bytes);
    files[file] = {
      sha256: sha256(bytes),
      bytes: bytes.length,
      role,
      inputs: [{ name: 'images', dtype: 'uint8', shape: [-1, size, size, 3] }],
      outputs: outputs.map(([name, d]) => ({ name, dtype: 'float32', shape: [-1, d] })),
    };
  };
  put('encoder.onnx', encodeModel(makeModel({ graph: encoderGraph(size, w) })), 'encoder', [
    ['embedding', TINY_EMBED],
    ['features', feats],
  ]);
  if (o.classifier) {
    const c = TINY_CLASSES.length;
    const wc = randn(rng, feats * c, 3);
    if (o.nanWeight) wc[0] = NaN;
    const g = classifierGraph(size, w, wc, randn(rng, c, 0.1));
    put('classifier.onnx', encodeModel(makeModel({ graph: g })), 'classifier', [
      ['probabilities', c],
      ['logits', c],
      ['embedding', TINY_EMBED],
    ]);
  }
  const manifest = {
    format: MANIFEST_FORMAT,
    formatVersion: 1,
    name: o.name,
    version: o.version,
    arch: 'tiny_test',
    featDim: TINY_EMBED,
    input: { name: 'images', size, layout: 'NHWC', dtype: 'uint8', shape: [-1, size, size, 3] },
    view: 'Lab',
    layer: 1,
    featuresDim: feats,
    embeddingDim: TINY_EMBED,
    classNames: TINY_CLASSES,
    trainConfig: null,
    probeConfig: null,
    metrics: { train: [], probe: null },
    opset: 17,
    irVersion: 8,
    producer: 'test/serve/fixture.ts',
    files,
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

/**
 * <tmp>/models with: tiny (one version "1", encoder + classifier), multi/1 and multi/2 (encoder only,
 * different weights), and broken/ (a corrupt encoder, skipped with a warning at load).
 */
export function writeTinyRepository(root = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-serve-test-'))): string {
  const models = path.join(root, 'models');
  writeTinyModel(path.join(models, 'tiny'), { name: 'tiny', version: '1', classifier: true, seed: 1 });
  writeTinyModel(path.join(models, 'multi', '1'), { name: 'multi', version: '1', classifier: false, seed: 2 });
  writeTinyModel(path.join(models, 'multi', '2'), { name: 'multi', version: '2', classifier: false, seed: 3 });
  const broken = path.join(models, 'broken');
  writeTinyModel(broken, { name: 'broken', version: '1', classifier: false, seed: 4 });
  fs.writeFileSync(path.join(broken, 'encoder.onnx'), Buffer.from('not an onnx model'));
  return models;
}

// -----------------------------------------------------------------------------------------------------
// Images

/** A structured RGB test image (gradients + a shape) of w x h, seeded. */
export function testPixels(w: number, h: number, seed: number): Buffer {
  const rng = new Rng(seed);
  const px = Buffer.alloc(w * h * 3);
  const cx = rng.range(0.2, 0.8) * w,
    cy = rng.range(0.2, 0.8) * h,
    r = rng.range(0.1, 0.4) * Math.min(w, h);
  const c0 = [rng.int(256), rng.int(256), rng.int(256)],
    c1 = [rng.int(256), rng.int(256), rng.int(256)];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r;
      const i = (y * w + x) * 3;
      for (let c = 0; c < 3; c++)
        px[i + c] = inside ? c1[c] : Math.round((c0[c] * x) / w + ((255 - c0[c]) * y) / h) & 255;
    }
  }
  return px;
}

export async function testImage(format: 'jpeg' | 'png' | 'webp', w = 48, h = 40, seed = 1): Promise<Buffer> {
  const s = sharp(testPixels(w, h, seed), { raw: { width: w, height: h, channels: 3 } });
  return format === 'jpeg'
    ? s.jpeg({ quality: 90 }).toBuffer()
    : format === 'png'
      ? s.png().toBuffer()
      : s.webp({ quality: 90 }).toBuffer();
}

/** A PNG signature + IHDR chunk declaring `w` x `h` (valid CRC), then a tiny truncated IDAT. */
export function pngHeaderBomb(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x01])),
  ]);
}

// -----------------------------------------------------------------------------------------------------
// HTTP

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export type RequestOptions = Omit<RequestInit, 'body'> & { body?: Buffer | Uint8Array | string };

export async function request(url: string, init: RequestOptions = {}): Promise<Reply> {
  const r = await fetch(url, init as RequestInit);
  const text = await r.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, headers: r.headers, text, json };
}

/** multipart/form-data body with the given files (and text fields). */
export function multipart(
  files: { name?: string; filename?: string; type?: string; data: Buffer }[],
  fields: Record<string, string> = {},
): { body: Buffer; type: string } {
  const boundary = `----cmc${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields))
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  files.forEach((f, i) => {
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${f.name ?? 'images'}"; filename="${f.filename ?? `img${i}`}"\r\nContent-Type: ${f.type ?? 'application/octet-stream'}\r\n\r\n`,
      ),
      f.data,
      Buffer.from('\r\n'),
    );
  });
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

// -----------------------------------------------------------------------------------------------------
// A real export (train/export) of a random-weight model

/**
 * Export a randomly initialised CMC model with the real exporter (train/export/export.ts): encoder.onnx,
 * and with `classes` a random linear head too (head.onnx, classifier.onnx). Returns the model folder.
 *
 *   const dir = await exportRandomModel(path.join(tmp, 'models', 'small'), { arch: 'alexnet_small', size: 32, classes: ['a', 'b'] });
 */
export async function exportRandomModel(
  outDir: string,
  o: {
    arch?: string;
    size?: number;
    featDim?: number;
    classes?: string[];
    seed?: number;
    name?: string;
    version?: string;
  } = {},
): Promise<string> {
  const [{ getCmcSpec }, { paramShapes }, { initialValues }, { exportModel, defaultLayer }, { featuresDim }] =
    await Promise.all([
      import('../../core/network/registry.ts'),
      import('../../core/network/shapes.ts'),
      import('../../train/model/build_tfjs.ts'),
      import('../../train/export/export.ts'),
      import('../../train/export/emit.ts'),
    ]);
  const arch = o.arch ?? 'alexnet_small';
  const size = o.size ?? 32;
  const featDim = o.featDim ?? 128;
  const spec = getCmcSpec(arch, { imageSize: size, featDim, view: 'Lab' });
  const rng = new Rng(o.seed ?? 1);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const v of spec.views)
    for (const p of paramShapes(v.encoder))
      tensors[`model/${v.name}.${p.name}`] = { shape: p.shape, data: initialValues(p, rng) };
  const header = {
    config: { model: arch, image_size: size, feat_dim: featDim, view: 'Lab' },
    classNames: o.classes ?? [],
  };
  let head;
  if (o.classes) {
    const layer = defaultLayer(spec);
    const f = featuresDim(spec, layer);
    const c = o.classes.length;
    const weight = new Float32Array(f * c);
    for (let i = 0; i < weight.length; i++) weight[i] = rng.range(-1, 1) * 0.05;
    head = {
      format: 'cmc-linear-head' as const,
      version: 1 as const,
      layer,
      features: 'flatten' as const,
      classNames: o.classes,
      inFeatures: f,
      weight,
      bias: new Float32Array(c),
    };
  }
  await exportModel({ checkpoint: { header, tensors }, head, outDir, name: o.name, version: o.version });
  return outDir;
}
