/**
 * The Open Inference Protocol (KServe v2) REST routes, as kserve/open-inference-protocol
 * specification/protocol/inference_rest.md gives them:
 *
 *   GET  /v2/health/live | /v2/health/ready                 { live } | { ready } (503 when not ready)
 *   GET  /v2                                                server metadata, with the extensions served
 *   GET  /v2/models/{name}[/versions/{v}]                   model metadata
 *   GET  /v2/models/{name}[/versions/{v}]/ready             { name, version, ready }
 *   POST /v2/models/{name}[/versions/{v}]/infer             JSON, or JSON + binary tensor data (oip/binary.ts)
 *
 * Errors are the spec's { "error": "<message>" } (protocol_errors.ts, by path).
 */
import type { Express, Request } from 'express';
import { unsupported } from '../errors.ts';
import { mediaType, readBody, type InputLimits } from '../inputs.ts';
import { BINARY_EXTENSION, encodeInferResponse, HEADER_LENGTH } from '../oip/binary.ts';
import { runInfer } from '../oip/infer.ts';
import { decodeInferBody, parseInferRequest } from '../oip/request.ts';
import type { RouteWrap } from '../middleware.ts';
import type { ModelVersion, Repository, TensorInfo } from '../repository.ts';

export const SERVER_NAME = 'cmc-serve';
export const SERVER_VERSION = '0.1.0';
/** OIP extensions this server implements (listed in the server metadata). */
export const EXTENSIONS = [BINARY_EXTENSION];

export interface V2Deps {
  repo: Repository;
  provider: string;
  /** One line per provider tried at start-up and why it was (not) chosen (providers.ts). */
  providerNotes?: string[];
  /** Body size, JSON size and shape limits, the shared body budget (serve/inputs.ts). */
  limits: InputLimits;
  maxImages: number;
}

/** The spec's name, version and extensions, plus the execution provider and why it was chosen. */
export function serverMetadata(provider: string, providerNotes: string[] = []) {
  return {
    name: SERVER_NAME,
    version: SERVER_VERSION,
    extensions: EXTENSIONS,
    provider,
    provider_notes: providerNotes,
  };
}

export function modelMetadata(m: ModelVersion, versions: string[]) {
  const outputs = new Map<string, TensorInfo>();
  for (const g of m.classifier ? [m.encoder, m.classifier] : [m.encoder])
    for (const o of g.outputs) if (!outputs.has(o.name)) outputs.set(o.name, o);
  return {
    name: m.name,
    versions,
    platform: 'onnxruntime_onnx',
    inputs: [m.encoder.input],
    outputs: [...outputs.values()],
    parameters: { view: m.manifest.view, input_size: m.size, class_names: m.classifier ? m.classNames : [] },
  };
}

/** Read an inference body: application/json, or any type with Inference-Header-Content-Length (binary). */
async function readInferBody(req: Request, limits: InputLimits): Promise<{ json: unknown; binary: Buffer }> {
  const headerLength = req.headers[HEADER_LENGTH] as string | undefined;
  if (headerLength === undefined && mediaType(req) !== 'application/json') {
    throw unsupported(
      `inference takes application/json, or a JSON header + binary tensor data with ${'Inference-Header-Content-Length'}`,
    );
  }
  // A plain JSON body is held to the JSON size limit; with binary tensors only the JSON header is.
  const body = await readBody(
    req,
    headerLength === undefined ? Math.min(limits.maxBodyBytes, limits.maxJsonBytes ?? Infinity) : limits.maxBodyBytes,
    limits.bodyBudget,
  );
  return decodeInferBody(body, headerLength, limits.maxJsonBytes);
}

/** The health routes: open even with --auth_token (app.ts mounts them before the auth gate). */
export function mountV2Health(
  app: Express,
  route: RouteWrap,
  d: { repo: Repository; isDraining?: () => boolean },
): void {
  app.get(
    '/v2/health/live',
    route('/v2/health/live', (_req, res) => void res.json({ live: true })),
  );
  app.get(
    '/v2/health/ready',
    route('/v2/health/ready', (_req, res) => {
      const ready = d.repo.ready && !d.isDraining?.();
      res.status(ready ? 200 : 503).json({ ready });
    }),
  );
}

/** Server and model metadata, model ready and infer (behind the auth gate). */
export function mountV2(app: Express, route: RouteWrap, d: V2Deps): void {
  const { repo } = d;
  app.get(
    '/v2',
    route('/v2', (_req, res) => void res.json(serverMetadata(d.provider, d.providerNotes))),
  );
  const resolve = (req: Request) => repo.resolve(String(req.params.name), req.params.version as string | undefined);
  const meta = (pattern: string) =>
    route(pattern, (req, res) => {
      const m = resolve(req);
      res.json(
        modelMetadata(
          m,
          repo.versions(m.name).map((v) => v.version),
        ),
      );
    });
  app.get('/v2/models/:name', meta('/v2/models/{name}'));
  app.get('/v2/models/:name/versions/:version', meta('/v2/models/{name}/versions/{version}'));
  const ready = (pattern: string) =>
    route(pattern, (req, res) => {
      const m = resolve(req);
      res.json({ name: m.name, version: m.version, ready: true });
    });
  app.get('/v2/models/:name/ready', ready('/v2/models/{name}/ready'));
  app.get('/v2/models/:name/versions/:version/ready', ready('/v2/models/{name}/versions/{version}/ready'));
  const infer = (pattern: string) =>
    route(pattern, async (req, res) => {
      const m = resolve(req);
      res.locals.model = `${m.name}:${m.version}`;
      const { json, binary } = await readInferBody(req, d.limits);
      const r = parseInferRequest(json, m, d.maxImages, binary);
      const outputs = await runInfer(m, r.images, r.outputs);
      const { body, headerLength } = encodeInferResponse(
        { model_name: m.name, model_version: m.version, ...(r.id !== undefined ? { id: r.id } : {}) },
        outputs,
        r.binary,
      );
      if (headerLength !== undefined) {
        res.setHeader('Inference-Header-Content-Length', String(headerLength));
        res.type('application/octet-stream');
      } else res.type('application/json');
      res.send(body);
    });
  app.post('/v2/models/:name/infer', infer('/v2/models/{name}/infer'));
  app.post('/v2/models/:name/versions/:version/infer', infer('/v2/models/{name}/versions/{version}/infer'));
}
