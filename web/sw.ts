/**
 * The service worker: the app shell (app_shell.ts) for offline use. build.ts bundles it to dist/sw.js with
 * the build's file list and version (__CMC_SHELL__), so every build that changes a file is a new sw.js,
 * which the browser installs as an update.
 *
 * - install: every shell file into `cmc-app-<version>` (all or nothing: a failed download keeps the old one);
 * - activate: deletes the caches of older builds and takes over open pages at once;
 * - fetch: shell files cache-first (network when missing); everything else (model files, which
 *   model_cache.ts keeps by sha256, the /v1 /v2 /metrics API of cmc serve) is not intercepted at all.
 */
import { appCacheName, shellFileFor, staleCaches, type AppShell } from './app_shell.ts';

declare const __CMC_SHELL__: AppShell;

/** The parts of the service worker global scope used here (tsconfig's libs are DOM, not WebWorker). */
interface ExtendableEvent extends Event {
  waitUntil(p: Promise<unknown>): void;
}
interface FetchEvent extends ExtendableEvent {
  request: Request;
  respondWith(r: Promise<Response>): void;
}
interface SwScope {
  registration: { scope: string };
  clients: { claim(): Promise<void> };
  skipWaiting(): Promise<void>;
  addEventListener(type: 'install' | 'activate', f: (e: ExtendableEvent) => void): void;
  addEventListener(type: 'fetch', f: (e: FetchEvent) => void): void;
}

const sw = self as unknown as SwScope;
const shell = __CMC_SHELL__;
const CACHE = appCacheName(shell.version);
const fileUrl = (f: string) => new URL(f, sw.registration.scope).href;

sw.addEventListener('install', (e) => {
  e.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // no-cache: revalidate with the server, so an HTTP-cached file of an older build cannot enter this one.
      await cache.addAll(shell.files.map((f) => new Request(fileUrl(f), { cache: 'no-cache' })));
      // A new build replaces the old at once: pages load every shell file at start-up, so an open page of
      // the old build does not mix in files of the new one.
      await sw.skipWaiting();
    })(),
  );
});

sw.addEventListener('activate', (e) => {
  e.waitUntil(
    (async () => {
      await Promise.all(staleCaches(await caches.keys(), CACHE).map((k) => caches.delete(k)));
      await sw.clients.claim();
    })(),
  );
});

sw.addEventListener('fetch', (e) => {
  if (e.request.method !== 'GET') return;
  const file = shellFileFor(e.request.url, sw.registration.scope, shell.files, e.request.mode === 'navigate');
  if (!file) return;
  e.respondWith(
    (async () => {
      const hit = await (await caches.open(CACHE)).match(fileUrl(file));
      return hit ?? fetch(e.request);
    })(),
  );
});
