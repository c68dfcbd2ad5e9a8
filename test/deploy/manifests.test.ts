/**
 * deploy/: the KServe manifests against the schemas of the resources they use — Kubernetes' own types
 * (ObjectMeta, Container: the ServingRuntime's containers and the container part of each InferenceService's
 * model) with kubernetes-models (Kubernetes' published OpenAPI); the KServe resources with our JSON Schemas of
 * them (deploy/schemas/, written from KServe's v1alpha1 ServingRuntime and v1beta1 InferenceService API types),
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
import { ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta';
import { exportModel } from '../../train/export/export.ts';
import { initBackend } from '../../train/engine/backend.ts';
import { randomModelCheckpoint } from '../helpers/random_model.ts';

const deploy = fileURLToPath(new URL('../../deploy', import.meta.url));
type Doc = { apiVersion: string; kind: string; metadata: Record<string, unknown>; spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

function manifests(): { file: string; doc: Doc }[] {
  const dir = path.join(deploy, 'kserve');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8')).map((d) => {
        assert.equal(d.errors.length, 0, `${f}: ${d.errors.map((e) => e.message).join('; ')}`);
        return { file: f, doc: d.toJS() as Doc };
      }),
    );
}

type Schema = { definitions: Record<string, unknown>; [k: string]: unknown };
const schema = (file: string): Schema => JSON.parse(fs.readFileSync(path.join(deploy, 'schemas', file), 'utf8'));
const SERVING_RUNTIME = schema('kserve-servingruntime-v1alpha1.schema.json');
const INFERENCE_SERVICE = schema('kserve-inferenceservice-v1beta1.schema.json');
const ajv = new Ajv({ strict: true, allErrors: true });
const validateRuntime = ajv.compile(SERVING_RUNTIME);
const validateService = ajv.compile(INFERENCE_SERVICE);
const K8S_REF = '#/definitions/kubernetes';

/** The model's members that are its inlined Kubernetes Container (the schema marks them with K8S_REF). */
const MODEL_CONTAINER_FIELDS = Object.entries(
  (INFERENCE_SERVICE.definitions.model as { properties: Record<string, { $ref?: string }> }).properties,
)
  .filter(([, s]) => s.$ref === K8S_REF)
  .map(([k]) => k);

function checkServingRuntime(file: string, doc: Doc): void {
  assert.ok(validateRuntime(doc), `${file}: ${JSON.stringify(validateRuntime.errors)}`);
  for (const c of doc.spec.containers) new Container(c).validate();
}

function checkInferenceService(file: string, doc: Doc, runtimes: Map<string, Doc>): void {
  assert.ok(validateService(doc), `${file}: ${JSON.stringify(validateService.errors)}`);
  const { model } = doc.spec.predictor;
  const container = Object.fromEntries(Object.entries(model).filter(([k]) => MODEL_CONTAINER_FIELDS.includes(k)));
  new Container({ name: 'kserve-container', ...container }).validate();
  assert.match(model.storageUri, /^(s3|gs|pvc|https?):\/\//, `${file}: storageUri`);
  assert.equal(model.protocolVersion, 'v2', `${file}: both runtimes speak the v2 (Open Inference) protocol`);
  if (model.runtime === 'kserve-tritonserver') {
    // KServe's Triton runtime lists onnx among its supportedModelFormats (config/runtimes/kserve-tritonserver.yaml)
    assert.equal(model.modelFormat.name, 'onnx', `${file}: cmc export --format triton writes ONNX models`);
  } else {
    const rt = runtimes.get(model.runtime);
    assert.ok(rt, `${file}: runtime ${model.runtime} is not defined in deploy/kserve/`);
    assert.ok(
      rt.spec.supportedModelFormats.some((f: { name: string }) => f.name === model.modelFormat.name),
      `${file}: ${model.runtime} does not serve ${model.modelFormat.name}`,
    );
  }
}

test('deploy/kserve manifests validate against the Kubernetes and KServe schemas they use', () => {
  const docs = manifests();
  const runtimes = new Map(
    docs.filter((d) => d.doc.kind === 'ServingRuntime').map((d) => [d.doc.metadata.name as string, d.doc]),
  );
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
  const runtimes = new Map(
    docs.filter((d) => d.doc.kind === 'ServingRuntime').map((d) => [d.doc.metadata.name as string, d.doc]),
  );
  const isvc = docs.find((d) => d.doc.kind === 'InferenceService')!;
  const noFormat = structuredClone(isvc.doc);
  delete noFormat.spec.predictor.model.modelFormat;
  assert.throws(
    () => checkInferenceService(isvc.file, noFormat, runtimes),
    /must have required property 'modelFormat'/,
  );
  const replicas = structuredClone(isvc.doc);
  replicas.spec.predictor.minReplicas = '1';
  assert.throws(() => checkInferenceService(isvc.file, replicas, runtimes), /minReplicas.*must be integer/);
  const quantity = structuredClone(isvc.doc);
  quantity.spec.predictor.model.resources = { limits: { memory: 'lots' } };
  assert.throws(() => checkInferenceService(isvc.file, quantity, runtimes), /memory must match format "quantity"/);
  const typo = structuredClone(isvc.doc);
  typo.spec.predictor.model.storageURI = typo.spec.predictor.model.storageUri;
  assert.throws(() => checkInferenceService(isvc.file, typo, runtimes), /must NOT have additional properties/);
  const protocol = structuredClone(isvc.doc);
  protocol.spec.predictor.model.protocolVersion = 'V2';
  assert.throws(
    () => checkInferenceService(isvc.file, protocol, runtimes),
    /protocolVersion.*must be equal to one of the allowed values/,
  );
  const predictorTypo = structuredClone(isvc.doc);
  predictorTypo.spec.predictor.minReplica = 1;
  assert.throws(
    () => checkInferenceService(isvc.file, predictorTypo, runtimes),
    /"additionalProperty":"minReplica".*must NOT have additional properties/,
  );
  const version = structuredClone(isvc.doc);
  version.apiVersion = 'serving.kserve.io/v1alpha1';
  assert.throws(() => checkInferenceService(isvc.file, version, runtimes), /apiVersion.*must be equal to constant/);
  const noContainers = structuredClone(doc.doc);
  delete noContainers.spec.containers;
  assert.throws(() => checkServingRuntime(doc.file, noContainers), /must have required property 'containers'/);
  assert.ok(
    MODEL_CONTAINER_FIELDS.includes('resources') && MODEL_CONTAINER_FIELDS.includes('env'),
    `container fields of the model: ${MODEL_CONTAINER_FIELDS}`,
  );
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
