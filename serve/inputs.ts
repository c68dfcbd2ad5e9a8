/**
 * Request bodies → encoded images + parameters, with limits enforced while streaming:
 *
 *   raw body     Content-Type image/jpeg | image/png | image/webp: one image
 *   multipart    multipart/form-data: every file part is an image (any field name); text fields
 *                `model`, `version`, `top_k`; parsed with busboy, never buffered past the limits
 *   JSON         application/json: { "images": ["<base64>" | "data:image/png;base64,...", ...],
 *                "model"?, "version"?, "top_k"? }
 *
 * JSON bodies are checked before JSON.parse (which blocks the event loop): at most maxJsonBytes, and a
 * one-pass scan bounds nesting depth, containers, object keys and values (JSON_LIMITS), so a legal body
 * parses in tens of milliseconds; deeply nested or key-heavy bodies are refused unparsed.
 * Bodies held in memory by all requests together are bounded by a shared Budget (429 when it is spent).
 *
 * Errors: 413 body or image count over the limits, 415 other content types, 400 malformed JSON / wrong
 * shapes / malformed multipart, 422 bad base64, 429 no room for the body now.
 */
import type { Request } from 'express';
import busboy from 'busboy';
import type { Budget } from './budget.ts';
import { badRequest, OverloadedError, tooLarge, unprocessable, unsupported } from './errors.ts';

export interface InputLimits {
  /** Whole request body, bytes. */
  maxBodyBytes: number;
  /** Images per request. */
  maxImages: number;
  /** JSON request body, bytes (defaults to maxBodyBytes). */
  maxJsonBytes?: number;
  /** Bytes of request bodies held in memory by all requests together. */
  bodyBudget?: Budget;
}

/** Shape limits of a JSON body, checked by scanJson before parsing. */
export const JSON_LIMITS = { maxDepth: 8, maxContainers: 100_000, maxKeys: 1_000, maxValues: 500_000 };

/**
 * One pass over a JSON text (strings skipped natively with indexOf) counting depth, containers (arrays +
 * objects), object keys and values: 400 bad_json past the depth, 413 json_too_complex past the counts. Malformed JSON is left to
 * JSON.parse.
 */
export function scanJson(buf: Buffer, lim = JSON_LIMITS): void {
  let depth = 0,
    containers = 0,
    keys = 0,
    values = 0;
  const n = buf.length;
  for (let i = 0; i < n; i++) {
    const c = buf[i];
    if (c === 0x22) {
      // Skip to the closing quote: one not preceded by an odd number of backslashes.
      let j = i;
      for (;;) {
        j = buf.indexOf(0x22, j + 1);
        if (j < 0) return; // unterminated: JSON.parse reports it
        let k = j - 1,
          bs = 0;
        while (buf[k] === 0x5c) {
          bs++;
          k--;
        }
        if (bs % 2 === 0) break;
      }
      i = j;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > lim.maxDepth)
        throw badRequest(`malformed JSON body: nested deeper than ${lim.maxDepth} levels`, 'bad_json');
      if (++containers > lim.maxContainers)
        throw tooLarge(`JSON body holds more than ${lim.maxContainers} arrays and objects`, 'json_too_complex');
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x3a) {
      if (++keys > lim.maxKeys)
        throw tooLarge(`JSON body holds more than ${lim.maxKeys} object keys`, 'json_too_complex');
    } else if (c === 0x2c) {
      if (++values > lim.maxValues)
        throw tooLarge(`JSON body holds more than ${lim.maxValues} values`, 'json_too_complex');
    }
  }
}

/**
 * Counts the body bytes a request holds against the shared budget; all of them are given back when its
 * response closes. Returns a function that takes `n` more bytes (false: the budget is spent).
 */
function bodyAccount(req: Request, budget: Budget | undefined): (n: number) => boolean {
  if (!budget) return () => true;
  let held = 0;
  const giveBack = () => {
    budget.give(held);
    held = 0;
  };
  if (req.res) req.res.once('close', giveBack);
  else req.once('close', giveBack);
  return (n) => {
    if (!budget.tryTake(n)) return false;
    held += n;
    return true;
  };
}

const busy = (budget: Budget) =>
  new OverloadedError(
    `server busy: ${budget.capacity} bytes of request bodies are in memory (--max_inflight_body_mb); retry later`,
  );

export interface ImageRequest {
  images: Buffer[];
  params: Record<string, unknown>;
}

export const RAW_IMAGE_TYPES = new Set(['image/jpeg', 'image/jpg', 'image/png', 'image/webp']);

export function mediaType(req: Request): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/** Read the whole body up to `limit` bytes (413 beyond, checked on Content-Length first). */
export function readBody(req: Request, limit: number, budget?: Budget): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(tooLarge(`request body of ${declared} bytes exceeds the limit of ${limit}`));
  }
  const take = bodyAccount(req, budget);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let done = false;
    const finish = (e: unknown, b?: Buffer) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (e) reject(e);
      else resolve(b!);
    };
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        chunks.length = 0;
        finish(tooLarge(`request body exceeds the limit of ${limit} bytes`));
        return;
      }
      if (!take(c.length)) {
        chunks.length = 0;
        finish(busy(budget!));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => finish(null, Buffer.concat(chunks, n)));
    req.once('error', (e) => finish(badRequest(`request body could not be read: ${e.message}`, 'bad_body')));
    req.once('aborted', () => finish(badRequest('request aborted', 'aborted')));
  });
}

/** A JSON body within `limits` (size, then scanJson's shape limits), parsed. */
export async function readJson(req: Request, limits: InputLimits): Promise<unknown> {
  const buf = await readBody(req, Math.min(limits.maxBodyBytes, limits.maxJsonBytes ?? Infinity), limits.bodyBudget);
  if (buf.length === 0) throw badRequest('empty JSON body', 'bad_json');
  scanJson(buf);
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw badRequest(`malformed JSON body: ${(e as Error).message.slice(0, 120)}`, 'bad_json');
  }
}

const BASE64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;
const DATA_URI_RE = /^data:([\w.+-]+\/[\w.+-]+)?((?:;[\w-]+=[\w.-]+)*);base64,/i;

/** Strict base64 (standard or URL-safe alphabet, optional padding, whitespace ignored) or a data URI. */
export function decodeBase64Image(s: string, index: number): Buffer {
  let body = s;
  const m = DATA_URI_RE.exec(s);
  if (m) {
    const type = (m[1] ?? '').toLowerCase();
    if (type && !RAW_IMAGE_TYPES.has(type))
      throw unsupported(`images[${index}]: data URI type ${type} is not an accepted image type`);
    body = s.slice(m[0].length);
  } else if (s.startsWith('data:')) {
    throw unprocessable(
      `images[${index}]: data URI must be base64-encoded (data:image/...;base64,...)`,
      'invalid_base64',
    );
  }
  body = body.replace(/\s+/g, '');
  if (body.length === 0) throw unprocessable(`images[${index}]: empty image data`, 'invalid_base64');
  if (!BASE64_RE.test(body) || body.length % 4 === 1)
    throw unprocessable(`images[${index}]: not valid base64`, 'invalid_base64');
  const buf = Buffer.from(body, body.includes('-') || body.includes('_') ? 'base64url' : 'base64');
  if (buf.length === 0) throw unprocessable(`images[${index}]: empty image data`, 'invalid_base64');
  return buf;
}

/** Parse `{ images: [...] , model?, version?, top_k? }`. */
export function imagesFromJson(body: unknown, limits: InputLimits): ImageRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw badRequest('JSON body must be an object with an "images" array', 'invalid_request');
  const o = body as Record<string, unknown>;
  if (!('images' in o)) throw badRequest('JSON body has no "images" field', 'invalid_request');
  if (!Array.isArray(o.images))
    throw badRequest('"images" must be an array of base64 strings or data URIs', 'invalid_request');
  if (o.images.length === 0) throw badRequest('"images" is empty', 'no_images');
  if (o.images.length > limits.maxImages)
    throw tooLarge(`${o.images.length} images in one request; the limit is ${limits.maxImages}`, 'too_many_images');
  const images = o.images.map((s, i) => {
    if (typeof s !== 'string')
      throw badRequest(
        `images[${i}] must be a string (base64 or data URI), got ${s === null ? 'null' : typeof s}`,
        'invalid_request',
      );
    return decodeBase64Image(s, i);
  });
  const { images: _, ...params } = o;
  return { images, params };
}

/** Stream a multipart/form-data body through busboy, keeping file parts (images) and small text fields. */
export function imagesFromMultipart(req: Request, limits: InputLimits): Promise<ImageRequest> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxBodyBytes) {
    return Promise.reject(tooLarge(`request body of ${declared} bytes exceeds the limit of ${limits.maxBodyBytes}`));
  }
  const take = bodyAccount(req, limits.bodyBudget);
  let bb: busboy.Busboy;
  try {
    bb = busboy({
      headers: req.headers,
      limits: {
        fileSize: limits.maxBodyBytes,
        files: limits.maxImages,
        fields: 16,
        fieldSize: 1024,
        parts: limits.maxImages + 16,
        headerPairs: 64,
      },
    });
  } catch (e) {
    return Promise.reject(badRequest(`malformed multipart request: ${(e as Error).message}`, 'bad_multipart'));
  }
  return new Promise((resolve, reject) => {
    const images: Buffer[] = [];
    const params: Record<string, unknown> = {};
    let total = 0;
    let done = false;
    const fail = (e: unknown) => {
      if (done) return;
      done = true;
      req.unpipe(bb);
      bb.removeAllListeners();
      bb.on('error', () => {});
      req.resume(); // discard the rest of the body
      reject(e);
    };
    bb.on('file', (_field, stream, _info) => {
      const chunks: Buffer[] = [];
      let n = 0;
      stream.on('data', (c: Buffer) => {
        if (done) return;
        n += c.length;
        total += c.length;
        if (total > limits.maxBodyBytes)
          return fail(tooLarge(`request body exceeds the limit of ${limits.maxBodyBytes} bytes`));
        chunks.push(c);
      });
      stream.on('limit', () => fail(tooLarge(`an uploaded image exceeds the limit of ${limits.maxBodyBytes} bytes`)));
      stream.on('end', () => {
        if (!done) images.push(Buffer.concat(chunks, n));
      });
      stream.on('error', (e) => fail(badRequest(`malformed multipart request: ${e.message}`, 'bad_multipart')));
    });
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) return fail(tooLarge(`form field ${name} is too long`, 'field_too_large'));
      if (name === 'model' || name === 'version' || name === 'top_k') params[name] = value;
    });
    bb.on('filesLimit', () => fail(tooLarge(`more than ${limits.maxImages} images in one request`, 'too_many_images')));
    bb.on('partsLimit', () => fail(tooLarge('too many parts in the multipart body', 'too_many_parts')));
    bb.on('fieldsLimit', () => fail(tooLarge('too many form fields', 'too_many_fields')));
    bb.on('error', (e: Error) => fail(badRequest(`malformed multipart request: ${e.message}`, 'bad_multipart')));
    bb.on('close', () => {
      if (done) return;
      done = true;
      if (images.length === 0) reject(badRequest('the multipart body holds no file part (image)', 'no_images'));
      else resolve({ images, params });
    });
    req.on('aborted', () => fail(badRequest('request aborted', 'aborted')));
    // The whole body counts (preamble, headers, fields), not only file data.
    let received = 0;
    req.on('data', (c: Buffer) => {
      if (done) return;
      received += c.length;
      if (received > limits.maxBodyBytes)
        fail(tooLarge(`request body exceeds the limit of ${limits.maxBodyBytes} bytes`));
      else if (!take(c.length)) fail(busy(limits.bodyBudget!));
    });
    req.pipe(bb);
  });
}

/** Dispatch on the Content-Type. */
export async function readImageRequest(req: Request, limits: InputLimits): Promise<ImageRequest> {
  const type = mediaType(req);
  if (RAW_IMAGE_TYPES.has(type)) {
    const buf = await readBody(req, limits.maxBodyBytes, limits.bodyBudget);
    if (buf.length === 0) throw unprocessable('empty request body (no image)', 'empty_image');
    return { images: [buf], params: {} };
  }
  if (type === 'multipart/form-data') return imagesFromMultipart(req, limits);
  if (type === 'application/json') return imagesFromJson(await readJson(req, limits), limits);
  throw unsupported(
    `content type ${type ? JSON.stringify(type) : '(none)'} is not supported: send image/jpeg, image/png, image/webp, multipart/form-data or application/json`,
  );
}

/** A string parameter from the body or the query string (body wins); 400 on a wrong type. */
export function stringParam(req: Request, body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key] !== undefined ? body[key] : (req.query as Record<string, unknown>)[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw badRequest(`parameter ${key} must be a string`, 'invalid_parameter');
  if (v.length > 256) throw badRequest(`parameter ${key} is too long`, 'invalid_parameter');
  return v;
}

export function intParam(
  req: Request,
  body: Record<string, unknown>,
  key: string,
  def: number,
  min: number,
  max: number,
): number {
  const v = body[key] !== undefined ? body[key] : (req.query as Record<string, unknown>)[key];
  if (v === undefined || v === null || v === '') return def;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw badRequest(`parameter ${key} must be an integer in [${min}, ${max}]`, 'invalid_parameter');
  return n;
}
