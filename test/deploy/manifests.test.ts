/**
 * deploy/: the KServe manifests against the schemas of the resources they use — Kubernetes' own types
 * (ObjectMeta, Container, ResourceRequirements, EnvVar) with kubernetes-models (Kubernetes' published OpenAPI),
 * the ServingRuntime's KServe fields with an excerpt of KServe's CRD (deploy/schemas/, provenance inside),
 * checked strictly (unknown fields are errors, as `kubectl apply --validate=strict`); that each InferenceService
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
import { EnvVar } from 'kubernetes-models/v1/EnvVar';
import { ResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
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

function checkInferenceService(file: string, doc: Doc, runtimes: Map<string, Doc>): void {
  const { model, minReplicas, maxReplicas, ...rest } = doc.spec.predictor;
  assert.deepEqual(Object.keys(rest), [], `${file}: predictor fields this test does not check: ${Object.keys(rest)}`);
  assert.ok(Number.isInteger(minReplicas) && Number.isInteger(maxReplicas) && minReplicas <= maxReplicas, `${file}: replicas`);
  const { modelFormat, runtime, protocolVersion, storageUri, resources, env, ...more } = model;
  assert.deepEqual(Object.keys(more), [], `${file}: model fields this test does not check: ${Object.keys(more)}`);
  if (resources) new ResourceRequirements(resources).validate();
  for (const e of env ?? []) new EnvVar(e).validate();
  assert.equal(typeof storageUri, 'string');
  assert.match(storageUri, /^(s3|gs|pvc|https?):\/\//, `${file}: storageUri`);
  assert.equal(protocolVersion, 'v2', `${file}: both runtimes speak the v2 (Open Inference) protocol`);
  if (runtime === 'kserve-tritonserver') {
    // KServe's Triton runtime lists onnx among its supportedModelFormats (config/runtimes/kserve-tritonserver.yaml)
    assert.equal(modelFormat.name, 'onnx', `${file}: cmc export --format triton writes ONNX models`);
  } else {
    const rt = runtimes.get(runtime);
    assert.ok(rt, `${file}: runtime ${runtime} is not defined in deploy/kserve/`);
    assert.ok(rt.spec.supportedModelFormats.some((f: { name: string }) => f.name === modelFormat.name), `${file}: ${runtime} does not serve ${modelFormat.name}`);
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

test('a wrong field in a ServingRuntime is caught (the check can fail)', () => {
  const doc = manifests().find((d) => d.doc.kind === 'ServingRuntime')!;
  const bad = structuredClone(doc.doc);
  bad.spec.supportedModelFormats[0].priority = 0;
  assert.throws(() => checkServingRuntime(doc.file, bad), /must be >= 1/);
  const typo = structuredClone(doc.doc);
  typo.spec.multiModels = false;
  assert.throws(() => checkServingRuntime(doc.file, typo), /must NOT have additional properties/);
  const port = structuredClone(doc.doc);
  port.spec.containers[0].ports[0].containerPort = '8080';
  assert.throws(() => checkServingRuntime(doc.file, port), /containerPort must be integer/);
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
