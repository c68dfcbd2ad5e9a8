/**
 * `cmc import-torch` (train/interop/torch_checkpoint.ts) on hand-made checkpoints in the PyTorch trainer's
 * layout: the layout change (conv [out, in, kh, kw] -> [kh, kw, in, out], linear [out, in] -> [in, out]) and
 * the refusals — a file that is not one of the trainer's, another version, another architecture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeSafetensors, importTorchCheckpoint, type Safetensors } from '../../train/interop/torch_checkpoint.ts';
import { paramShapes } from '../../core/network/shapes.ts';
import type { CmcSpec } from '../../core/network/layers.ts';
import { tinySpec } from '../helpers/tiny_spec.ts';

/** A checkpoint as torch_ddp/cmc_ddp/train.py save() writes it, with value = position in PyTorch order. */
function torchCheckpoint(spec: CmcSpec, meta: Record<string, unknown> = {}): Safetensors {
  const tensors: Safetensors['tensors'] = {};
  for (const view of spec.views) {
    for (const p of paramShapes(view.encoder)) {
      const s = p.shape;
      const shape =
        p.layer.kind === 'conv2d' && s.length === 4
          ? [s[3], s[2], s[0], s[1]]
          : p.layer.kind === 'linear' && s.length === 2
            ? [s[1], s[0]]
            : s;
      const n = shape.reduce((a, b) => a * b, 1);
      tensors[`model/${view.name}.${p.name}`] = { shape, data: Float32Array.from({ length: n }, (_, i) => i) };
    }
  }
  tensors['memory/0'] = { shape: [4, spec.featDim], data: new Float32Array(4 * spec.featDim).fill(0.25) };
  const m = {
    format: 'cmc-torch-checkpoint',
    version: 1,
    spec,
    config: { view: 'Lab', model: spec.arch },
    epoch: 2,
    step: 6,
    z: [1, 2],
    n_data: 4,
    class_names: ['a', 'b'],
    metrics: [],
    ...meta,
  };
  return { tensors, metadata: Object.fromEntries(Object.entries(m).map(([k, v]) => [k, JSON.stringify(v)])) };
}

function withFile<T>(bytes: Buffer, fn: (file: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-import-'));
  try {
    const file = path.join(dir, 'current.safetensors');
    fs.writeFileSync(file, bytes);
    return fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('import-torch converts PyTorch layouts to tfjs layouts and keeps the header the tools read', () => {
  const spec = tinySpec() as CmcSpec;
  const ck = withFile(encodeSafetensors(torchCheckpoint(spec)), (f) => importTorchCheckpoint(f));
  const h = ck.header;
  assert.equal(h.format, 'cmc-train-checkpoint');
  assert.deepEqual(h.spec, spec);
  assert.deepEqual(h.classNames, ['a', 'b']);
  // conv c1.0 of view ab: PyTorch [8, 2, 3, 3] -> tfjs [3, 3, 2, 8]; element (o, i, y, x) lands at [y, x, i, o]
  const conv = ck.tensors['model/ab.c1.0.weight'];
  assert.deepEqual(conv.shape, [3, 3, 2, 8]);
  const [o, i, y, x] = [5, 1, 2, 0];
  assert.equal(conv.data[((y * 3 + x) * 2 + i) * 8 + o], ((o * 2 + i) * 3 + y) * 3 + x);
  // linear fc.0: PyTorch [16, in] -> tfjs [in, 16]
  const fc = ck.tensors['model/L.fc.0.weight'];
  const fin = fc.shape[0];
  assert.deepEqual(fc.shape, [fin, 16]);
  assert.equal(fc.data[7 * 16 + 3], 3 * fin + 7);
  assert.deepEqual(ck.tensors['model/L.c1.1.running_var'].shape, [8]);
  assert.ok(ck.tensors['memory/0']);
});

test('import-torch refuses a file that is not a checkpoint of the PyTorch trainer', () => {
  withFile(Buffer.from('PK\u0003\u0004 a torch.save zip'), (f) =>
    assert.throws(() => importTorchCheckpoint(f), /is not a checkpoint of the PyTorch trainer \(torch_ddp\/\)/),
  );
  const other = torchCheckpoint(tinySpec() as CmcSpec, { format: 'pytorch-lightning' });
  withFile(encodeSafetensors(other), (f) =>
    assert.throws(() => importTorchCheckpoint(f), /its format is "pytorch-lightning", expected 'cmc-torch-checkpoint'/),
  );
});

test('import-torch refuses another version', () => {
  const ck = torchCheckpoint(tinySpec() as CmcSpec, { version: 2 });
  withFile(encodeSafetensors(ck), (f) =>
    assert.throws(() => importTorchCheckpoint(f), /version 2; this cmc reads version 1/),
  );
});

test('import-torch refuses a checkpoint of another architecture, naming the tensor', () => {
  const spec = tinySpec() as CmcSpec;
  // weights of a wider conv than the description says
  const wide = torchCheckpoint(spec);
  wide.tensors['model/L.c1.0.weight'] = { shape: [16, 1, 3, 3], data: new Float32Array(144) };
  withFile(encodeSafetensors(wide), (f) =>
    assert.throws(
      () => importTorchCheckpoint(f),
      /tensor L\.c1\.0\.weight has shape \[16,1,3,3\] but the network description needs \[8,1,3,3\] \(PyTorch layout\)/,
    ),
  );
  // a tensor missing, and one the description does not name
  const missing = torchCheckpoint(spec);
  delete missing.tensors['model/ab.fc.0.bias'];
  withFile(encodeSafetensors(missing), (f) =>
    assert.throws(() => importTorchCheckpoint(f), /lacks the tensor ab\.fc\.0\.bias .*another architecture/),
  );
  const extra = torchCheckpoint(spec);
  extra.tensors['model/L.layer4.0.conv1.weight'] = { shape: [1], data: new Float32Array(1) };
  withFile(encodeSafetensors(extra), (f) =>
    assert.throws(() => importTorchCheckpoint(f), /does not name, e\.g\. L\.layer4\.0\.conv1\.weight/),
  );
  // --model names another architecture
  withFile(encodeSafetensors(torchCheckpoint(spec)), (f) =>
    assert.throws(() => importTorchCheckpoint(f, { expectArch: 'resnet50v1' }), /holds a tiny network, not resnet50v1/),
  );
});
