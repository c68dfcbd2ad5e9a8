/**
 * Each protocol's error body, for the one ApiError the handlers throw (errors.ts):
 *
 *   /v1/embeddings   OpenAI:  { "error": { "message", "type", "param", "code" } }
 *   /v2/...          Open Inference Protocol: { "error": "<message>" }  (kserve/open-inference-protocol
 *                    specification/protocol/inference_rest.md; the machine code stays in the log/metrics)
 *   everything else  this server's own { "error": { "code", "message" } }
 */
import { ApiError, errorBody } from './errors.ts';

/** An ApiError that names the request field at fault (OpenAI's `param`). */
export class ParamError extends ApiError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly param: string | null,
  ) {
    super(status, code, message);
    this.name = 'ParamError';
  }
}

/** OpenAI's error `type` for a status (their API uses these four). */
export function openAiErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

export function openAiErrorBody(e: ApiError): {
  error: { message: string; type: string; param: string | null; code: string };
} {
  return {
    error: {
      message: e.message,
      type: openAiErrorType(e.status),
      param: e instanceof ParamError ? e.param : null,
      code: e.code,
    },
  };
}

export function oipErrorBody(e: ApiError): { error: string } {
  return { error: e.message };
}

export type ErrorProtocol = 'openai' | 'oip' | 'cmc';

export function protocolOf(path: string): ErrorProtocol {
  if (path === '/v1/embeddings') return 'openai';
  if (path === '/v2' || path.startsWith('/v2/')) return 'oip';
  return 'cmc';
}

/** The error body a request to `path` gets. */
export function errorBodyFor(path: string, e: ApiError): object {
  const p = protocolOf(path);
  return p === 'openai' ? openAiErrorBody(e) : p === 'oip' ? oipErrorBody(e) : errorBody(e);
}
