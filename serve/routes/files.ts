/**
 * Files for the browser demo:
 *
 *   GET /                               the built demo (web/dist, static) or a page saying it is not built;
 *                                       open even with --auth_token (mounted before the gate)
 *   GET /models/{name}/{file}           read-only model files: manifest.json and the manifest's *.onnx files
 *   GET /models/{name}/tfjs/{role}/{file}   the tfjs graph models (cmc export --format tfjs): model.json and
 *                                       its weight shards (?version=, default the latest)
 *
 * The name and version are looked up in memory (repo.resolve validates them); the file name must be
 * manifest.json or a plain file name that the manifest lists, so no request can leave the model folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import express, { type Express, type Request } from 'express';
import { notFound } from '../errors.ts';
import { stringParam } from '../inputs.ts';
import type { RouteWrap } from '../middleware.ts';
import { MAX_MANIFEST_BYTES, MAX_ONNX_BYTES, openModelFile } from '../model_files.ts';
import type { Repository } from '../repository.ts';

/** Model files served at /models/{name}/{file} besides manifest.json (only those the manifest lists). */
const MODEL_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.onnx$/;
const TFJS_FILE_RE = /^tfjs\/(encoder|classifier)\/(model\.json|group\d{1,4}-shard\d{1,4}of\d{1,4}\.bin)$/;

/** The demo at / : web/dist when it is built, else a page pointing at the API. */
export function mountDemo(app: Express, route: RouteWrap, webDist: string | undefined): void {
  if (webDist && fs.existsSync(webDist)) {
    app.use(express.static(webDist, { index: 'index.html', dotfiles: 'ignore', fallthrough: true }));
    return;
  }
  app.get(
    '/',
    route('/', (_req, res) => {
      res
        .type('html')
        .send(
          '<!doctype html><meta charset="utf-8"><title>cmc serve</title>' +
            '<h1>cmc serve</h1><p>The browser demo is not built (web/dist is missing). ' +
            'The API is up: see <a href="/openapi.json">/openapi.json</a>, <a href="/v1/models">/v1/models</a> and <a href="/metrics">/metrics</a>.</p>',
        );
    }),
  );
}

export function mountModelFiles(app: Express, route: RouteWrap, repo: Repository): void {
  const modelFile = (routePath: string, fileOf: (req: Request) => string) =>
    route(routePath, async (req, res) => {
      const m = repo.resolve(String(req.params.name), stringParam(req, {}, 'version'));
      const file = fileOf(req);
      const allowed =
        file === 'manifest.json' ||
        ((MODEL_FILE_RE.test(file) || TFJS_FILE_RE.test(file)) &&
          !file.includes('..') &&
          Object.hasOwn(m.manifest.files ?? {}, file));
      if (!allowed)
        throw notFound(
          `model ${m.name} v${m.version} serves no file ${JSON.stringify(file.slice(0, 64))} (manifest.json or its .onnx files)`,
          'file_not_found',
        );
      const full = path.resolve(m.dir, file);
      if (path.relative(path.resolve(m.dir), full) !== file.split('/').join(path.sep))
        throw notFound('no such file', 'file_not_found');
      // Opened once and checked on the descriptor: a regular file inside the repository (a symlink swapped
      // in after start-up cannot point the route at another file of the machine).
      let opened: { fd: number; size: number };
      try {
        opened = openModelFile(full, repo.opts.root, file === 'manifest.json' ? MAX_MANIFEST_BYTES : MAX_ONNX_BYTES);
      } catch {
        throw notFound(`model ${m.name} v${m.version} has no ${file}`, 'file_not_found');
      }
      const { fd, size } = opened;
      res.setHeader(
        'Content-Type',
        file.endsWith('.json') ? 'application/json; charset=utf-8' : 'application/octet-stream',
      );
      res.setHeader('Content-Length', String(size));
      // The browser keeps the (large) ONNX files: each request revalidates with the file's sha256 from the
      // manifest as its ETag and gets a 304 while the model is unchanged.
      const sha = file === 'manifest.json' ? null : m.manifest.files[file]?.sha256;
      res.setHeader('Cache-Control', 'no-cache');
      res.setHeader('X-Model-Version', m.version);
      if (sha) {
        const etag = `"${sha}"`;
        res.setHeader('ETag', etag);
        if (req.headers['if-none-match'] === etag) {
          fs.closeSync(fd);
          res.status(304).end();
          return;
        }
      }
      if (req.method === 'HEAD') {
        fs.closeSync(fd);
        res.end();
        return;
      }
      await new Promise<void>((resolve, reject) => {
        const s = fs.createReadStream('', { fd, start: 0, end: Math.max(0, size - 1), autoClose: true });
        s.once('error', reject);
        res.once('close', () => {
          s.destroy();
          resolve();
        });
        s.pipe(res);
      });
    });
  app.get(
    '/models/:name/:file',
    modelFile('/models/{name}/{file}', (req) => String(req.params.file)),
  );
  app.get(
    '/models/:name/tfjs/:role/:file',
    modelFile(
      '/models/{name}/tfjs/{role}/{file}',
      (req) => `tfjs/${String(req.params.role)}/${String(req.params.file)}`,
    ),
  );
}
