/**
 * Which model, runtime and backend the page runs: the model name (?model=, else the server's default when
 * the page comes from cmc serve, offline the one it named last, else imagenette64), the graph (the classifier when exported, else the
 * encoder), the runtimes its files allow (onnxruntime on <role>.onnx, tfjs on tfjs/<role>/model.json) and
 * the backends this browser offers (webgpu when it gives an adapter, then wasm).
 */
import type { Backend, Runtime } from './protocol.ts';
import type { Manifest } from './state.ts';

export type Role = 'classifier' | 'encoder';

export async function webgpuAvailable(): Promise<boolean> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown | null> } }).gpu;
  if (!gpu) return false;
  try {
    return !!(await gpu.requestAdapter());
  } catch {
    return false;
  }
}

/**
 * Where the page keeps the model cmc serve chose last: offline (the service worker opens the page, /v1/models
 * does not answer) it runs that one, whose files are cached, not the static-host default.
 */
const LAST_SERVER_MODEL = 'cmc-last-server-model';

function remember(name: string): string {
  try {
    localStorage.setItem(LAST_SERVER_MODEL, name);
  } catch {
    // storage off: offline falls back to the default
  }
  return name;
}

function lastServerModel(): string | null {
  try {
    return localStorage.getItem(LAST_SERVER_MODEL);
  } catch {
    return null;
  }
}

/** The model name, and whether the page comes from cmc serve (its /v1 API answers). */
export async function modelName(
  params: URLSearchParams,
  asset: (p: string) => string,
): Promise<{ name: string; serverApi: boolean }> {
  const p = params.get('model');
  try {
    const r = await fetch(asset('v1/models'));
    if (r.ok && (r.headers.get('content-type') ?? '').includes('json')) {
      const list = (await r.json()) as { default?: string | null; models?: { name: string }[] };
      if (p) return { name: p, serverApi: true };
      if (list.default) return { name: remember(list.default), serverApi: true };
      if (list.models?.length) return { name: remember(list.models[0].name), serverApi: true };
      return { name: 'imagenette64', serverApi: true };
    }
  } catch {
    // offline (or no server at all): the model cmc serve chose last time, if any
    return { name: p ?? lastServerModel() ?? 'imagenette64', serverApi: false };
  }
  return { name: p ?? 'imagenette64', serverApi: false };
}

export function roleOf(m: Manifest): Role {
  return m.files['classifier.onnx'] || m.files['tfjs/classifier/model.json'] ? 'classifier' : 'encoder';
}

export function runtimesOf(m: Manifest, role: Role): Runtime[] {
  const r: Runtime[] = [];
  if (m.files[`${role}.onnx`]) r.push('onnxruntime');
  if (m.files[`tfjs/${role}/model.json`]) r.push('tfjs');
  return r;
}

/** The files a runtime fetches for the graph, with their manifest sha256. */
export function filesFor(m: Manifest, runtime: Runtime, role: Role): { path: string; sha256: string }[] {
  if (runtime === 'onnxruntime') return [{ path: `${role}.onnx`, sha256: m.files[`${role}.onnx`].sha256 }];
  return Object.entries(m.files)
    .filter(([k]) => k.startsWith(`tfjs/${role}/`))
    .map(([path, f]) => ({ path, sha256: f.sha256 }));
}

export interface RuntimeChoice {
  role: Role;
  runtime: Runtime;
  backend: Backend;
  /** runtime/backend pairs offered, e.g. 'onnxruntime/wasm'. */
  options: string[];
  /** Set when ?runtime= asked for one this model lacks. */
  notice?: string;
}

/**
 * The runtime (?runtime=, else the first the model has) and backend (?backend= or the older ?ep=, else the
 * first the browser offers). A backend the browser lacks is an error; a missing runtime falls back.
 */
export function chooseRuntime(name: string, m: Manifest, params: URLSearchParams, backends: Backend[]): RuntimeChoice {
  const role = roleOf(m);
  const runtimes = runtimesOf(m, role);
  if (runtimes.length === 0) throw new Error(`models/${name} lists neither ${role}.onnx nor a tfjs export`);
  const options = runtimes.flatMap((r) => backends.map((b) => `${r}/${b}`));
  let notice: string | undefined;
  let runtime = (params.get('runtime') as Runtime | null) ?? runtimes[0];
  if (!runtimes.includes(runtime)) {
    notice = `${name} has no ${runtime} export here; using ${runtimes[0]}`;
    runtime = runtimes[0];
  }
  const wantBackend = (params.get('backend') ?? params.get('ep')) as Backend | null;
  const backend: Backend = wantBackend ?? backends[0];
  if (wantBackend && !backends.includes(wantBackend))
    throw new Error(`this browser offers no ${wantBackend} (available: ${backends.join(', ')})`);
  return { role, runtime, backend, options, notice };
}
