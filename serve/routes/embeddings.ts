/**
 * POST /v1/embeddings in OpenAI's shape (as TEI, Infinity and vLLM serve it), for images:
 *
 *   request   { "model": "tiny" | "tiny:1", "input": "<data URI or base64>" | [ ... ],
 *               "encoding_format"?: "float" | "base64", "dimensions"?: <the model's dim>,
 *               "modality"?: "image" (Infinity's field), "user"?: string }
 *   response  { "object": "list", "model", "data": [{ "object": "embedding", "index", "embedding" }],
 *               "usage": { "prompt_tokens", "total_tokens" } }   one "token" per image
 *
 * `embedding` is a number[] (float) or the base64 of the little-endian float32 bytes (base64), which is
 * what the official openai client asks for by default and decodes itself. URLs are refused (400): the
 * server never fetches anything on a client's behalf. Errors are OpenAI's { error: { message, type,
 * param, code } } (protocol_errors.ts).
 */
import type { Request, Response } from 'express';
import { ApiError, unsupported } from '../errors.ts';
import type { ImageRunner } from '../image_runner.ts';
import { decodeBase64Image, mediaType, readJson, type InputLimits } from '../inputs.ts';
import { ParamError } from '../protocol_errors.ts';
import type { Repository } from '../repository.ts';

export interface EmbeddingsRequest {
  model?: string;
  version?: string;
  images: Buffer[];
  encoding: 'float' | 'base64';
  dimensions?: number;
}

const URL_RE = /^[a-z][a-z0-9+.-]*:\/\//i;

const invalid = (message: string, param: string | null, code = 'invalid_request') =>
  new ParamError(400, code, message, param);

/** Validate an OpenAI embeddings request body (no model lookup, no decoding). */
export function parseEmbeddingsRequest(body: unknown, maxImages: number): EmbeddingsRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw invalid('the request body must be a JSON object with "input" and "model"', null);
  const o = body as Record<string, unknown>;
  let model: string | undefined, version: string | undefined;
  if (o.model !== undefined) {
    if (typeof o.model !== 'string' || o.model.length === 0 || o.model.length > 256)
      throw invalid('"model" must be a model name, optionally "name:version"', 'model');
    const at = o.model.lastIndexOf(':');
    [model, version] = at > 0 ? [o.model.slice(0, at), o.model.slice(at + 1)] : [o.model, undefined];
  }
  if (o.encoding_format !== undefined && o.encoding_format !== 'float' && o.encoding_format !== 'base64') {
    throw invalid(
      `"encoding_format" must be "float" or "base64", got ${JSON.stringify(o.encoding_format)?.slice(0, 40)}`,
      'encoding_format',
    );
  }
  if (o.modality !== undefined && o.modality !== 'image') {
    throw invalid(
      `this server embeds images only; "modality" must be "image", got ${JSON.stringify(o.modality)?.slice(0, 40)}`,
      'modality',
    );
  }
  if (o.dimensions !== undefined && !(Number.isInteger(o.dimensions) && (o.dimensions as number) > 0))
    throw invalid('"dimensions" must be a positive integer', 'dimensions');
  if (o.user !== undefined && typeof o.user !== 'string') throw invalid('"user" must be a string', 'user');
  if (o.input === undefined)
    throw invalid('"input" is required: an image (data URI or base64) or an array of them', 'input');
  const list = typeof o.input === 'string' ? [o.input] : o.input;
  if (!Array.isArray(list))
    throw invalid('"input" must be a string (data URI or base64) or an array of strings', 'input');
  if (list.length === 0) throw invalid('"input" is empty', 'input');
  if (list.every((x) => typeof x === 'number') || list.some((x) => Array.isArray(x))) {
    throw invalid(
      '"input" holds token ids; this server embeds images: send data URIs (data:image/jpeg;base64,...) or base64 strings',
      'input',
    );
  }
  if (list.length > maxImages)
    throw new ParamError(
      413,
      'too_many_images',
      `${list.length} images in one request; the limit is ${maxImages}`,
      'input',
    );
  const images = list.map((s, i) => {
    if (typeof s !== 'string')
      throw invalid(
        `input[${i}] must be a string (data URI or base64), got ${s === null ? 'null' : typeof s}`,
        'input',
      );
    if (URL_RE.test(s.trimStart())) {
      throw invalid(
        `input[${i}] is a URL; this server does not fetch URLs: send the image itself as a data URI (data:image/jpeg;base64,...) or base64`,
        'input',
        'url_not_supported',
      );
    }
    try {
      return decodeBase64Image(s, i);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      throw new ParamError(e.status, e.code, e.message.replace(/^images\[/, 'input['), 'input');
    }
  });
  return {
    model,
    version,
    images,
    encoding: o.encoding_format === 'base64' ? 'base64' : 'float',
    dimensions: o.dimensions as number | undefined,
  };
}

/** float32 little-endian bytes, base64 (OpenAI's encoding_format "base64"). */
export function float32Base64(v: Float32Array): string {
  const b = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i], i * 4);
  return b.toString('base64');
}

export interface EmbeddingsDeps {
  repo: Repository;
  inferImages: ImageRunner;
  limits: InputLimits;
  maxImages: number;
}

export function embeddingsHandler(d: EmbeddingsDeps) {
  return async (req: Request, res: Response): Promise<void> => {
    if (mediaType(req) !== 'application/json')
      throw unsupported(`/v1/embeddings takes application/json, got ${JSON.stringify(mediaType(req) || '(none)')}`);
    const body = await readJson(req, d.limits);
    const r = parseEmbeddingsRequest(body, d.maxImages);
    let m;
    try {
      m = d.repo.resolve(r.model, r.version);
    } catch (e) {
      if (e instanceof ApiError && e.status < 500)
        throw new ParamError(
          e.status,
          e.code === 'model_not_found' || e.code === 'version_not_found' ? 'model_not_found' : e.code,
          e.message,
          'model',
        );
      throw e;
    }
    res.locals.model = `${m.name}:${m.version}`;
    const dim = m.encoder.outputs.find((o) => o.name === 'embedding')?.shape[1];
    if (r.dimensions !== undefined && r.dimensions !== dim) {
      throw new ParamError(
        400,
        'invalid_dimensions',
        `model ${m.name}:${m.version} gives ${dim}-dimensional embeddings; "dimensions" must be ${dim} or absent`,
        'dimensions',
      );
    }
    const outs = await d.inferImages(m, m.encoder, r.images, 'input');
    const vectors = outs.map((o) => o.embedding ?? Object.values(o)[0]);
    res.json({
      object: 'list',
      model: `${m.name}:${m.version}`,
      data: vectors.map((v, index) => ({
        object: 'embedding',
        index,
        embedding: r.encoding === 'base64' ? float32Base64(v) : Array.from(v),
      })),
      usage: { prompt_tokens: vectors.length, total_tokens: vectors.length },
    });
  };
}
