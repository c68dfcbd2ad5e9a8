/**
 * Model files through the Cache API, keyed by their sha256 from manifest.json: the cache key is the file's
 * URL with `#sha256=<hex>` replaced into a query (`?cmc-sha256=<hex>`), so a new export (new sha256) never
 * hits an old entry. Every read, from the cache or the network, is checked against the sha256: a corrupt or
 * mismatched cached file is deleted and fetched again; a mismatched download is an error (not cached).
 * The manifest itself is fetched from the network first and falls back to its last cached copy offline.
 *
 * Works in a window and in a worker (caches and crypto.subtle are in both; secure contexts only: https or
 * localhost / 127.0.0.1). Without the Cache API it just fetches.
 */

export const CACHE_NAME = 'cmc-models-v1';

export type FileSource = 'cache' | 'network' | 'refetched';

export interface FetchedFile {
  bytes: Uint8Array;
  source: FileSource;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The cache key of a model file with this sha256. */
export function cacheKey(url: string, sha256: string): string {
  const u = new URL(url);
  u.searchParams.set('cmc-sha256', sha256);
  return u.href;
}

async function openCache(): Promise<Cache | null> {
  try {
    return typeof caches === 'undefined' ? null : await caches.open(CACHE_NAME);
  } catch {
    return null; // e.g. an insecure context
  }
}

async function download(url: string): Promise<Uint8Array> {
  const r = await fetch(url, { cache: 'no-cache' });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** A model file with a known sha256: from the cache when present and intact, else downloaded and cached. */
export async function fetchVerified(
  url: string,
  sha256: string,
  log: (line: string) => void = () => {},
): Promise<FetchedFile> {
  const cache = await openCache();
  const key = cacheKey(url, sha256);
  let discarded = false;
  if (cache) {
    const hit = await cache.match(key);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      if ((await sha256Hex(bytes)) === sha256) return { bytes, source: 'cache' };
      log(`cached ${url} does not match its sha256: discarded, fetching it again`);
      await cache.delete(key);
      discarded = true;
    }
  }
  const bytes = await download(url);
  const got = await sha256Hex(bytes);
  if (got !== sha256)
    throw new Error(`${url}: sha256 ${got} does not match the manifest's ${sha256} (file corrupt or replaced)`);
  if (cache) {
    try {
      await cache.put(
        key,
        new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream' } }),
      );
    } catch (e) {
      log(`could not cache ${url}: ${(e as Error).message}`); // quota: the page still works
    }
  }
  return { bytes, source: discarded ? 'refetched' : 'network' };
}

/** manifest.json: the network first (it names the current files), else the last copy cached. */
export async function fetchManifest(url: string): Promise<{ manifest: unknown; source: 'network' | 'cache' }> {
  const cache = await openCache();
  try {
    const r = await fetch(url, { cache: 'no-cache' });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    const text = await r.text();
    const manifest = JSON.parse(text) as unknown;
    if (cache)
      await cache.put(url, new Response(text, { headers: { 'content-type': 'application/json' } })).catch(() => {});
    return { manifest, source: 'network' };
  } catch (e) {
    const hit = cache ? await cache.match(url) : undefined;
    if (!hit) throw e;
    return { manifest: JSON.parse(await hit.text()) as unknown, source: 'cache' };
  }
}
