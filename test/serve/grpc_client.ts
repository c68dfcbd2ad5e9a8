/**
 * A @grpc/grpc-js client for the server's OIP gRPC service (serve/grpc/inference.proto), with promise-returning
 * calls for the tests:
 *
 *   const c = grpcClient(`127.0.0.1:${s.grpcPort}`);
 *   const r = await c.call('ModelInfer', { model_name: 'tiny', inputs: [...], raw_input_contents: [bytes] });
 *   c.close();
 */
import * as grpc from '@grpc/grpc-js';
import { loadInferenceService } from '../../serve/grpc/server.ts';

export interface GrpcClient {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  call(method: string, req: object, metadata?: Record<string, string>): Promise<any>;
  close(): void;
}

export function grpcClient(address: string, options: grpc.ClientOptions = {}): GrpcClient {
  const Service = loadInferenceService();
  const c = new Service(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, ...options });
  return {
    call: (method, req, md = {}) =>
      new Promise((resolve, reject) => {
        const meta = new grpc.Metadata();
        for (const [k, v] of Object.entries(md)) meta.set(k, v);
        (
          c[method] as (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, res: unknown) => void) => void
        ).call(c, req, meta, (e, res) => (e ? reject(e) : resolve(res)));
      }),
    close: () => c.close(),
  };
}

/** The status code of a failed call (or 'OK' when it did not fail). */
export async function grpcCode(p: Promise<unknown>): Promise<{ code: grpc.status | 'OK'; details: string }> {
  try {
    await p;
    return { code: 'OK', details: '' };
  } catch (e) {
    const err = e as grpc.ServiceError;
    return { code: err.code, details: err.details };
  }
}
