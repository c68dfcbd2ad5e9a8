/**
 * A plain static file server (node:http, no cmc code) for the browser tests: the demo must work from any
 * static host. `mounts` maps URL prefixes to folders ('/' -> web/dist, '/models/' -> a models folder).
 */
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
  '.map': 'application/json',
};

export interface StaticServer {
  url: string;
  /** Requests served, by path (for checks of what the page fetched). */
  hits: string[];
  /** While true every request's connection is reset, as if the network were gone (service worker fetches too). */
  down: boolean;
  close(): Promise<void>;
}

export async function startStaticServer(mounts: Record<string, string>): Promise<StaticServer> {
  const hits: string[] = [];
  let down = false;
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    hits.push(p);
    if (down) {
      req.socket.destroy();
      return;
    }
    const prefix = prefixes.find((m) => p.startsWith(m));
    const root = prefix ? path.resolve(mounts[prefix]) : null;
    let file = root ? path.resolve(root, '.' + p.slice(prefix!.length - 1)) : '';
    if (root && file.startsWith(root) && fs.existsSync(file) && fs.statSync(file).isDirectory())
      file = path.join(file, 'index.html');
    if (!root || !file.startsWith(root) || !fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const st = fs.statSync(file);
    // Cacheable like any static host's files (Chromium then also keeps the compiled .wasm code).
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': st.size,
      etag,
      'last-modified': st.mtime.toUTCString(),
      'cache-control': 'public, max-age=600',
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    get down() {
      return down;
    },
    set down(v: boolean) {
      down = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
