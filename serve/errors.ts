/**
 * API errors: every failure the server reports is an ApiError with an HTTP status, a stable machine code
 * and a one-line message; the HTTP layer turns it into `{ "error": { "code", "message" } }` (never a stack).
 *
 *   throw new ApiError(415, 'unsupported_media_type', `content type ${ct} is not supported`);
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers (e.g. Retry-After on 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The batcher's queue is full (→ 429 with Retry-After). */
export class OverloadedError extends ApiError {
  constructor(message: string, retryAfterS = 1) {
    super(429, 'overloaded', message, { 'Retry-After': String(retryAfterS) });
    this.name = 'OverloadedError';
  }
}

/** A request waited in the queue longer than --timeout_ms (→ 503). */
export class QueueTimeoutError extends ApiError {
  constructor(message: string) {
    super(503, 'timeout', message, { 'Retry-After': '1' });
    this.name = 'QueueTimeoutError';
  }
}

/** The server is draining (SIGTERM) and takes no new work (→ 503). */
export class ShuttingDownError extends ApiError {
  constructor() {
    super(503, 'shutting_down', 'the server is shutting down');
    this.name = 'ShuttingDownError';
  }
}

export const badRequest = (message: string, code = 'bad_request') => new ApiError(400, code, message);
export const notFound = (message: string, code = 'not_found') => new ApiError(404, code, message);
export const tooLarge = (message: string, code = 'payload_too_large') => new ApiError(413, code, message);
export const unsupported = (message: string, code = 'unsupported_media_type') => new ApiError(415, code, message);
export const unprocessable = (message: string, code = 'invalid_image') => new ApiError(422, code, message);

/**
 * Map anything thrown to an ApiError. body-parser style errors (`status`/`type` fields) keep their
 * status; anything else is a 500 whose message is generic (details go to the server log only).
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const err = e as { status?: unknown; statusCode?: unknown; type?: unknown; message?: unknown };
  const status =
    typeof err?.status === 'number' ? err.status : typeof err?.statusCode === 'number' ? err.statusCode : 500;
  if (status === 413) return tooLarge('request body too large');
  if (status === 400 && err?.type === 'entity.parse.failed') return badRequest('malformed JSON body', 'bad_json');
  if (status >= 400 && status < 500)
    return new ApiError(
      status,
      'bad_request',
      typeof err?.message === 'string' ? err.message.slice(0, 200) : 'bad request',
    );
  return new ApiError(500, 'internal', 'internal server error');
}

export function errorBody(e: ApiError): { error: { code: string; message: string } } {
  return { error: { code: e.code, message: e.message } };
}
