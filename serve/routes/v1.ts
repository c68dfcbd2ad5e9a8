/**
 * This server's own API, behind the auth gate:
 *
 *   GET  /v1/models      the repository: every model version, its input, view, embedding size, classes
 *   POST /v1/embed       images → { model, version, dim, embeddings: number[][] }
 *   POST /v1/classify    images → { model, version, predictions: [{ label, index, probability }][] }
 *   POST /v1/embeddings  OpenAI's embeddings shape (embeddings.ts)
 *
 * Images come as a raw body, multipart or JSON base64 (inputs.ts); errors are `{ "error": { code, message } }`
 * (OpenAI's on /v1/embeddings).
 */
import type { Express } from 'express';
import { topK } from '../../core/util/top_k.ts';
import { notFound } from '../errors.ts';
import type { ImageRunner } from '../image_runner.ts';
import { intParam, readImageRequest, stringParam, type InputLimits } from '../inputs.ts';
import type { RouteWrap } from '../middleware.ts';
import type { Repository } from '../repository.ts';
import { embeddingsHandler } from './embeddings.ts';

export interface V1Deps {
  repo: Repository;
  /** Execution provider in use. */
  provider: string;
  inferImages: ImageRunner;
  limits: InputLimits;
  maxImages: number;
  /** Default and largest top_k for /v1/classify. */
  defaultTopK?: number;
}

/** The top-k classes of one probability row, as /v1/classify answers them. */
export function topk(
  p: Float32Array,
  names: string[],
  k: number,
): { label: string; index: number; probability: number }[] {
  return topK(p, k).map(({ index, value }) => ({ label: names[index] ?? String(index), index, probability: value }));
}

export function mountV1(app: Express, route: RouteWrap, d: V1Deps): void {
  const { repo, inferImages, limits } = d;
  app.get(
    '/v1/models',
    route('/v1/models', (_req, res) => {
      res.json({
        default: repo.defaultModel ?? null,
        provider: d.provider,
        models: repo.all().map((m) => ({
          name: m.name,
          version: m.version,
          input: { name: m.encoder.input.name, size: m.size, layout: 'NHWC', dtype: 'uint8' },
          view: m.manifest.view,
          arch: m.manifest.arch,
          layer: m.manifest.layer,
          embeddingDim: m.encoder.outputs.find((o) => o.name === 'embedding')?.shape[1] ?? null,
          classifier: !!m.classifier,
          classNames: m.classifier ? m.classNames : [],
          provider: m.encoder.provider,
          metrics: m.manifest.metrics ?? null,
        })),
      });
    }),
  );

  app.post(
    '/v1/embed',
    route('/v1/embed', async (req, res) => {
      const { images, params } = await readImageRequest(req, limits);
      const m = repo.resolve(stringParam(req, params, 'model'), stringParam(req, params, 'version'));
      res.locals.model = `${m.name}:${m.version}`;
      const outs = await inferImages(m, m.encoder, images);
      const embeddings = outs.map((o) => Array.from(o.embedding ?? Object.values(o)[0]));
      res.json({ model: m.name, version: m.version, dim: embeddings[0]?.length ?? 0, embeddings });
    }),
  );

  app.post(
    '/v1/classify',
    route('/v1/classify', async (req, res) => {
      const { images, params } = await readImageRequest(req, limits);
      const m = repo.resolve(stringParam(req, params, 'model'), stringParam(req, params, 'version'));
      res.locals.model = `${m.name}:${m.version}`;
      const k = intParam(req, params, 'top_k', d.defaultTopK ?? 5, 1, 100000);
      if (!m.classifier)
        throw notFound(
          `model ${m.name} v${m.version} has no classifier (export it with a probe head)`,
          'classifier_not_found',
        );
      const outs = await inferImages(m, m.classifier, images);
      const predictions = outs.map((o) => topk(o.probabilities ?? Object.values(o)[0], m.classNames, k));
      res.json({ model: m.name, version: m.version, predictions });
    }),
  );

  app.post(
    '/v1/embeddings',
    route('/v1/embeddings', embeddingsHandler({ repo, inferImages, limits, maxImages: d.maxImages })),
  );
}
