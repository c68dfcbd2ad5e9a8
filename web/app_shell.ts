/**
 * The app shell the service worker (sw.ts) keeps for offline use: the built files of web/dist (index.html,
 * main.js, worker.js, onnxruntime-web's and tfjs' runtime files) under one cache per build,
 * `cmc-app-<version>`, where the version is a hash of the files (build.ts computes it). Model files are not
 * part of it: model_cache.ts keeps them by sha256 in its own cache.
 *
 * Pure functions, shared by the build (node), the service worker and the tests.
 */

export const APP_CACHE_PREFIX = 'cmc-app-';

export interface AppShell {
  /** Hash of the shell files' contents (hex), new for every build that changes any of them. */
  version: string;
  /** The shell files, relative to the app's folder (the service worker's scope), e.g. 'ort/x.wasm'. */
  files: string[];
}

export function appCacheName(version: string): string {
  return APP_CACHE_PREFIX + version;
}

/** Files of the build that belong in the shell: not source maps (debugging only), not the service worker. */
export function isShellFile(rel: string): boolean {
  return !rel.endsWith('.map') && rel !== 'sw.js';
}

/** The service worker's own caches from older builds (other caches, the models' included, are not its own). */
export function staleCaches(keys: string[], current: string): string[] {
  return keys.filter((k) => k.startsWith(APP_CACHE_PREFIX) && k !== current);
}

/**
 * The shell file a GET request asks for, or null when the service worker must leave the request to the
 * network (model files, the API under cmc serve, anything outside its scope or list). A navigation to the
 * app's folder itself ('/', '/?model=x') is index.html; the query of an asset does not select a file.
 */
export function shellFileFor(url: string, scope: string, files: readonly string[], navigate: boolean): string | null {
  const u = new URL(url);
  const s = new URL(scope);
  if (u.origin !== s.origin || !u.pathname.startsWith(s.pathname)) return null;
  const rel = decodeURIComponent(u.pathname.slice(s.pathname.length));
  if (navigate) return rel === '' || rel === 'index.html' ? 'index.html' : null;
  return files.includes(rel) ? rel : null;
}
