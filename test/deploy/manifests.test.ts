/**
 * deploy/: the KServe manifests against the schemas of the resources they use — Kubernetes' own types
 * (ObjectMeta, Container: the ServingRuntime's containers and the container part of each InferenceService's
 * model) with kubernetes-models (Kubernetes' published OpenAPI); the KServe fields with excerpts of KServe's
 * published schemas (deploy/schemas/: the ServingRuntime CRD and the v1beta1 OpenAPI definitions, provenance
 * inside), checked strictly (unknown fields are errors, as `kubectl apply --validate=strict`); that each InferenceService
 * names a runtime that serves its model format; and that `cmc export --format triton` writes the repository
 * layout the Triton InferenceService points at.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { Container } from 'kubernetes-models/v1/Container';
import { ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta';
import { exportModel } from '../../train/export/export.ts';
import { initBackend } from '../../train/engine/backend.ts';
import { randomModelCheckpoint } from '../helpers/random_model.ts';

const deploy = fileURLToPath(new URL('../../deploy/', import.meta.url));
type Doc = { apiVersion: string; kind: string; metadata: Record<string, unknown>; spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

function manifests(): { file: string; doc: Doc }[] {
  const dir = path.join(deploy, 'kserve');
  return fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).flatMap((f) =>
    parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8')).map((d) => {
      assert.equal(d.errors.length, 0, `${f}: ${d.errors.map((e) => e.message).join('; ')}`);
      return { file: f, doc: d.toJS() as Doc };
    }));
}

/** The CRD schema with additionalProperties: false on every object that lists its properties (strict field validation). */
function strict(schema: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Record<string, Record<string, unknown>>).map(([p, s]) => [p, strict(s)]))
      : k === 'items' || (k === 'additionalProperties' && typeof v === 'object') ? strict(v as Record<string, unknown>) : v;
  }
  if (schema.properties && schema.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

const K8S_TYPED_RUNTIME_FIELDS = new Set(['containers', 'affinity', 'imagePullSecrets', 'volumes', 'workerSpec', 'annotations', 'builtInAdapter']);

function checkServingRuntime(file: string, doc: Doc): void {
  const { $comment: _, ...schema } = JSON.parse(fs.readFileSync(path.join(deploy, 'schemas', 'servingruntime-v1alpha1-spec.json'), 'utf8'));
  const validate = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(strict(schema));
  const { containers, ...kserveFields } = doc.spec;
  for (const k of Object.keys(kserveFields)) assert.ok(!K8S_TYPED_RUNTIME_FIELDS.has(k), `${file}: ${k} is not checked by this test yet`);
  assert.ok(validate(kserveFields), `${file}: ${JSON.stringify(validate.errors)}`);
  assert.ok(Array.isArray(containers) && containers.length > 0, `${file}: a ServingRuntime needs containers`);
  for (const c of containers) new Container(c).validate();
}

/** KServe's own fields of ModelSpec; the rest of it is an inlined Kubernetes Container. */
const MODEL_KSERVE_FIELDS = ['modelFormat', 'runtime', 'runtimeVersion', 'protocolVersion', 'storageUri', 'storage'];

function checkInferenceService(file: string, doc: Doc, runtimes: Map<string, Doc>): void {
  assert.deepEqual(Object.keys(doc.spec), ['predictor'], `${file}: spec fields this test does not check`);
  const { $comment: _, ...swagger } = JSON.parse(fs.readFileSync(path.join(deploy, 'schemas', 'inferenceservice-v1beta1-predictor.json'), 'utf8'));
  const defs = Object.fromEntries(Object.entries(swagger.definitions as Record<string, Record<string, unknown>>).map(([k, v]) => [k, strict(v)]));
  const validate = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile({ definitions: defs, $ref: '#/definitions/v1beta1.PredictorSpec' });
  assert.ok(validate({ ...doc.spec.predictor }), `${file}: ${JSON.stringify(validate.errors)}`);
  const { model } = doc.spec.predictor;
  const container = Object.fromEntries(Object.entries(model).filter(([k]) => !MODEL_KSERVE_FIELDS.includes(k)));
  new Container({ name: 'kserve-container', ...container }).validate();
  assert.match(model.storageUri, /^(s3|gs|pvc|https?):\/\//, `${file}: storageUri`);
  assert.equal(model.protocolVersion, 'v2', `${file}: both runtimes speak the v2 (Open Inference) protocol`);
  if (model.runtime === 'kserve-tritonserver') {
    // KServe's Triton runtime lists onnx among its supportedModelFormats (config/runtimes/kserve-tritonserver.yaml)
    assert.equal(model.modelFormat.name, 'onnx', `${file}: cmc export --format triton writes ONNX models`);
  } else {
    const rt = runtimes.get(model.runtime);
    assert.ok(rt, `${file}: runtime ${model.runtime} is not defined in deploy/kserve/`);
    assert.ok(rt.spec.supportedModelFormats.some((f: { name: string }) => f.name === model.modelFormat.name), `${file}: ${model.runtime} does not serve ${model.modelFormat.name}`);
  }
}

test('deploy/kserve manifests validate against the Kubernetes and KServe schemas they use', () => {
  const docs = manifests();
  const runtimes = new Map(docs.filter((d) => d.doc.kind === 'ServingRuntime').map((d) => [d.doc.metadata.name as string, d.doc]));
  assert.deepEqual(docs.map((d) => d.doc.kind).sort(), ['InferenceService', 'InferenceService', 'ServingRuntime']);
  for (const { file, doc } of docs) {
    new ObjectMeta(doc.metadata).validate();
    if (doc.kind === 'ServingRuntime') {
      assert.equal(doc.apiVersion, 'serving.kserve.io/v1alpha1');
      checkServingRuntime(file, doc);
    } else {
      assert.equal(doc.apiVersion, 'serving.kserve.io/v1beta1');
      checkInferenceService(file, doc, runtimes);
    }
  }
});

test('wrong fields in the manifests are caught (the checks can fail)', () => {
  const doc = manifests().find((d) => d.doc.kind === 'ServingRuntime')!;
  const bad = structuredClone(doc.doc);
  bad.spec.supportedModelFormats[0].priority = 0;
  assert.throws(() => checkServingRuntime(doc.file, bad), /must be >= 1/);
  const typoRt = structuredClone(doc.doc);
  typoRt.spec.multiModels = false;
  assert.throws(() => checkServingRuntime(doc.file, typoRt), /must NOT have additional properties/);
  const port = structuredClone(doc.doc);
  port.spec.containers[0].ports[0].containerPort = '8080';
  assert.throws(() => checkServingRuntime(doc.file, port), /containerPort must be integer/);
  const docs = manifests();
  const runtimes = new Map(docs.filter((d) => d.doc.kind === 'ServingRuntime').map((d) => [d.doc.metadata.name as string, d.doc]));
  const isvc = docs.find((d) => d.doc.kind === 'InferenceService')!;
  const noFormat = structuredClone(isvc.doc);
  delete noFormat.spec.predictor.model.modelFormat;
  assert.throws(() => checkInferenceService(isvc.file, noFormat, runtimes), /must have required property 'modelFormat'/);
  const replicas = structuredClone(isvc.doc);
  replicas.spec.predictor.minReplicas = '1';
  assert.throws(() => checkInferenceService(isvc.file, replicas, runtimes), /minReplicas.*must be integer/);
  const quantity = structuredClone(isvc.doc);
  quantity.spec.predictor.model.resources = { limits: { memory: 'lots' } };
  assert.throws(() => checkInferenceService(isvc.file, quantity, runtimes), /memory must match format "quantity"/);
  const typo = structuredClone(isvc.doc);
  typo.spec.predictor.model.storageURI = typo.spec.predictor.model.storageUri;
  assert.throws(() => checkInferenceService(isvc.file, typo, runtimes), /must NOT have additional properties/);
});

test('cmc export --format triton writes the repository layout the Triton InferenceService serves', async () => {
  await initBackend('cpu');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-deploy-'));
  try {
    const { model: m, checkpoint } = randomModelCheckpoint('alexnet_mini', 32, 1);
    m.dispose();
    await exportModel({ checkpoint, outDir: path.join(dir, 'repo', 'cmc_tiny'), format: 'triton' });
    const model = path.join(dir, 'repo', 'cmc_tiny');
    assert.ok(fs.statSync(path.join(model, '1', 'model.onnx')).size > 0);
    const cfg = fs.readFileSync(path.join(model, 'config.pbtxt'), 'utf8');
    assert.match(cfg, /name: "cmc_tiny"/);
    assert.match(cfg, /platform: "onnxruntime_onnx"/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
