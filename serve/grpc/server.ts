/**
 * The Open Inference Protocol gRPC service (inference.GRPCInferenceService, declared in inference.proto,
 * our wire-compatible subset of the protocol) on its own port, over the same repository and batchers as HTTP:
 * ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer (inputs as
 * raw_input_contents or contents.uint_contents; outputs always as raw_output_contents, FP32 little-endian,
 * as Triton answers).
 *
 *   const g = await startGrpcServer({ repo, metrics, host: '127.0.0.1', port: 8001, maxImages: 64, maxMessageBytes: 32 << 20 });
 *   ... await g.close();
 *
 * Errors map to gRPC status codes (statusFor): 400/415/422 INVALID_ARGUMENT, 401 UNAUTHENTICATED,
 * 404 NOT_FOUND, 413/429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, anything else INTERNAL (no details leak).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ApiError, badRequest, toApiError } from '../errors.ts';
import type { InferenceFlow } from '../flow.ts';
import type { Metrics } from '../metrics.ts';
import { float32Bytes, runInfer } from '../oip/infer.ts';
import { parseInferRequest } from '../oip/request.ts';
import type { Repository } from '../repository.ts';
import { modelMetadata, serverMetadata } from '../routes/v2.ts';

export const PROTO_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'inference.proto');

/** proto-loader options shared by the server and clients (tests, README example). */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export function loadInferenceService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    inference: { GRPCInferenceService: grpc.ServiceClientConstructor };
  };
  return pkg.inference.GRPCInferenceService;
}

export function statusFor(e: ApiError): grpc.status {
  if (e.status === 401) return grpc.status.UNAUTHENTICATED;
  if (e.status === 404) return grpc.status.NOT_FOUND;
  if (e.status === 413 || e.status === 429) return grpc.status.RESOURCE_EXHAUSTED;
  if (e.status === 503) return grpc.status.UNAVAILABLE;
  if (e.status >= 400 && e.status < 500) return grpc.status.INVALID_ARGUMENT;
  return grpc.status.INTERNAL;
}

export interface GrpcOptions {
  repo: Repository;
  metrics: Metrics;
  host: string;
  /** 0 = any free port. */
  port: number;
  maxImages: number;
  /** Largest request message (the HTTP body limit's counterpart). */
  maxMessageBytes: number;
  authToken?: string;
  isDraining?: () => boolean;
  /** ModelInfer calls count as on their way to the batchers until they submit (flow.ts). */
  flow?: InferenceFlow;
  log?: (line: string) => void;
}

export interface RunningGrpc {
  port: number;
  /** Finish in-flight calls (up to `timeoutMs`), then stop. */
  close(timeoutMs?: number): Promise<void>;
}

interface InferTensor {
  name: string;
  datatype: string;
  shape: number[];
  contents: { uint_contents?: number[] } | null;
}

interface ModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  inputs: InferTensor[];
  outputs: { name: string }[];
  raw_input_contents: Buffer[];
}

/** A ModelInferRequest → the REST request shape parseInferRequest validates (raw bytes as binary data). */
export function restShape(r: ModelInferRequest): { json: Record<string, unknown>; binary: Uint8Array } {
  const raw = r.raw_input_contents ?? [];
  if (raw.length > 0 && raw.length !== r.inputs.length)
    throw badRequest(`raw_input_contents has ${raw.length} entries for ${r.inputs.length} inputs`, 'invalid_input');
  if (raw.length > 0 && r.inputs.some((t) => (t.contents?.uint_contents?.length ?? 0) > 0))
    throw badRequest('inputs carry both contents and raw_input_contents; send one', 'invalid_input');
  const inputs = r.inputs.map((t, i) => {
    const base = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (raw.length === 0) return { ...base, data: t.contents?.uint_contents ?? [] };
    const want =
      t.shape.length > 0 && t.shape.every((d) => Number.isInteger(d) && d >= 0)
        ? t.shape.reduce((a, b) => a * b, 1)
        : undefined;
    if (want !== undefined && t.datatype === 'UINT8' && raw[i].length !== want) {
      throw badRequest(
        `raw_input_contents[${i}] holds ${raw[i].length} bytes; shape [${t.shape.join(', ')}] of UINT8 needs ${want}`,
        'invalid_input',
      );
    }
    return { ...base, parameters: { binary_data_size: raw[i].length } };
  });
  const json: Record<string, unknown> = {
    inputs,
    ...(r.id ? { id: r.id } : {}),
    ...(r.outputs.length ? { outputs: r.outputs.map((o) => ({ name: o.name })) } : {}),
  };
  return { json, binary: raw.length > 0 ? raw[0] : new Uint8Array(0) };
}

export async function startGrpcServer(o: GrpcOptions): Promise<RunningGrpc> {
  const { repo, metrics } = o;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': o.maxMessageBytes,
    'grpc.max_send_message_length': -1,
  });
  const want = o.authToken ? crypto.createHash('sha256').update(o.authToken).digest() : undefined;
  const authorise = (md: grpc.Metadata) => {
    if (!want) return;
    const m = /^Bearer\s+(.+)$/i.exec(String(md.get('authorization')[0] ?? ''));
    const got = crypto
      .createHash('sha256')
      .update(m ? m[1].trim() : '')
      .digest();
    if (!m || !crypto.timingSafeEqual(want, got))
      throw new ApiError(401, 'unauthorized', 'missing or invalid bearer token');
  };
  /** A unary handler: errors become statuses; `open` methods need no token. */
  const unary =
    <Req, Res>(method: string, h: (req: Req) => Promise<Res> | Res, open = false) =>
    (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
      (async () => {
        if (o.isDraining?.()) throw new ApiError(503, 'shutting_down', 'the server is shutting down');
        if (!open) authorise(call.metadata);
        return h(call.request);
      })().then(
        (res) => cb(null, res),
        (err) => {
          const e = toApiError(err);
          if (e.status >= 500 && e.code === 'internal')
            o.log?.(`[serve] gRPC ${method} error: ${(err as Error)?.stack ?? String(err)}`);
          cb({ code: statusFor(e), details: e.message });
        },
      );
    };
  const resolve = (name: string, version: string) => repo.resolve(name, version || undefined);
  server.addService(loadInferenceService().service, {
    ServerLive: unary('ServerLive', () => ({ live: true }), true),
    ServerReady: unary('ServerReady', () => ({ ready: repo.ready && !o.isDraining?.() }), true),
    ModelReady: unary(
      'ModelReady',
      (r: { name: string; version: string }) => (resolve(r.name, r.version), { ready: true }),
    ),
    ServerMetadata: unary('ServerMetadata', () => {
      const { name, version, extensions } = serverMetadata('');
      return { name, version, extensions };
    }),
    ModelMetadata: unary('ModelMetadata', (r: { name: string; version: string }) => {
      const m = resolve(r.name, r.version);
      const { name, versions, platform, inputs, outputs } = modelMetadata(
        m,
        repo.versions(m.name).map((v) => v.version),
      );
      return { name, versions, platform, inputs, outputs };
    }),
    ModelInfer: unary('ModelInfer', async (r: ModelInferRequest) =>
      o.flow ? o.flow.track(() => modelInfer(r)) : modelInfer(r),
    ),
  });
  /** ModelInfer: the REST validation and runner over the gRPC request. */
  async function modelInfer(r: ModelInferRequest) {
    const t0 = performance.now();
    let model = 'unresolved';
    try {
      const m = resolve(r.model_name, r.model_version);
      model = `${m.name}:${m.version}`;
      const { json, binary } = restShape(r);
      const req = parseInferRequest(json, m, o.maxImages, binary);
      const outs = await runInfer(m, req.images, req.outputs);
      metrics.observeInference(model, 'grpc/ModelInfer', true, (performance.now() - t0) / 1000);
      return {
        model_name: m.name,
        model_version: m.version,
        id: r.id,
        outputs: outs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
        raw_output_contents: outs.map((t) => float32Bytes(t.data)),
      };
    } catch (e) {
      metrics.observeInference(model, 'grpc/ModelInfer', false, (performance.now() - t0) / 1000);
      throw e;
    }
  }
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync(
      `${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`,
      grpc.ServerCredentials.createInsecure(),
      (e, p) => (e ? rej(e) : res(p)),
    ),
  );
  const close = (timeoutMs = 10000) =>
    new Promise<void>((res) => {
      const t = setTimeout(() => {
        server.forceShutdown();
        res();
      }, timeoutMs);
      t.unref();
      server.tryShutdown(() => {
        clearTimeout(t);
        res();
      });
    });
  return { port, close };
}
