/**
 * onnxruntime-node execution providers: `auto` tries CUDA, then a hardware WebGPU adapter, then the CPU,
 * and says what it chose; an explicit provider that fails falls back to the CPU with a warning, never a
 * crash. Each candidate is probed by creating and running a one-node session.
 *
 * CUDA: onnxruntime-node ships the CUDA execution provider's libraries (libonnxruntime_providers_cuda.so,
 * libonnxruntime_providers_shared.so) only when they were downloaded at install time (Linux x64, CUDA 12 +
 * cuDNN 9 on the machine). Its install script fetches them from NuGet; package.json's allowScripts keeps
 * `npm ci` from running it, so fetch them by hand:
 *
 *     ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js
 *
 * WebGPU: bundled in the Linux x64 / Windows / macOS binaries (experimental); it needs a Vulkan (Linux)
 * driver for a real GPU. Software adapters (SwiftShader, llvmpipe) are not chosen by `auto`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import ort from 'onnxruntime-node';
import { DataType, encodeModel, makeModel, makeNode, valueInfo } from '../core/onnx/onnx_proto.ts';
import { hasGpuDevice } from '../core/util/gpu.ts';

export const PROVIDERS = ['auto', 'cuda', 'webgpu', 'cpu'] as const;
export type ProviderRequest = (typeof PROVIDERS)[number];
export type Provider = Exclude<ProviderRequest, 'auto'>;

export interface ProviderChoice {
  requested: ProviderRequest;
  provider: Provider;
  /** One line per provider tried and why it was (not) chosen. */
  notes: string[];
}

export type Logger = (line: string) => void;

/** Folder holding onnxruntime-node's native binding for this platform (where the CUDA libraries go). */
export function ortBinaryDir(): string | null {
  try {
    const req = createRequire(import.meta.url);
    const pkg = path.dirname(req.resolve('onnxruntime-node/package.json'));
    return path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return null;
  }
}

export function cudaLibrariesInstalled(): boolean {
  const dir = ortBinaryDir();
  return (
    !!dir &&
    fs.existsSync(path.join(dir, 'libonnxruntime_providers_cuda.so')) &&
    fs.existsSync(path.join(dir, 'libonnxruntime_providers_shared.so'))
  );
}

export const CUDA_HINT =
  'the CUDA execution provider libraries are not installed; on a Linux x64 machine with CUDA 12 and cuDNN 9 run ' +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js`';

let probeModel: Uint8Array | null = null;

function tinyModel(): Uint8Array {
  probeModel ??= encodeModel(
    makeModel({
      graph: {
        name: 'probe',
        node: [makeNode('Cast', ['x'], ['y'], 'cast', { to: DataType.FLOAT }), makeNode('Relu', ['y'], ['z'], 'relu')],
        input: [valueInfo('x', DataType.UINT8, ['N', 4])],
        output: [valueInfo('z', DataType.FLOAT, ['N', 4])],
      },
    }),
  );
  return probeModel;
}

/**
 * `spinning: false` stops onnxruntime's idle intra-op threads from busy-waiting between runs: a server
 * spends those gaps decoding images and answering HTTP on the same cores, which the spinning threads
 * would otherwise steal (onnxruntime's default, true, suits a process that only runs the model).
 */
export function sessionOptions(p: Provider, threads?: number, spinning = true): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: p === 'cpu' ? ['cpu'] : [p, 'cpu'],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  };
  if (threads && threads > 0) o.intraOpNumThreads = threads;
  if (!spinning) o.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };
  return o;
}

/** Create and run a one-node session on `p`; throws when the provider does not work. */
async function probe(p: Provider): Promise<void> {
  const s = await ort.InferenceSession.create(tinyModel(), { executionProviders: [p], logSeverityLevel: 4 });
  try {
    const r = await s.run({ x: new ort.Tensor('uint8', new Uint8Array([1, 2, 3, 4]), [1, 4]) });
    const z = r.z.data as Float32Array;
    if (z[3] !== 4) throw new Error(`probe returned ${Array.from(z)}`);
  } finally {
    await s.release();
  }
}

/** Pick the execution provider. Never throws: the CPU is always the last resort. */
export async function chooseProvider(requested: ProviderRequest, log: Logger = () => {}): Promise<ProviderChoice> {
  process.env.XDG_RUNTIME_DIR ??= os.tmpdir(); // the Vulkan loader complains on every start without it
  const notes: string[] = [];
  const tryOne = async (p: Provider, precheck?: () => string | null): Promise<boolean> => {
    const why = precheck?.();
    if (why) {
      notes.push(`${p}: skipped (${why})`);
      return false;
    }
    try {
      await probe(p);
      notes.push(`${p}: ok`);
      return true;
    } catch (e) {
      notes.push(`${p}: failed (${firstLine((e as Error).message)})`);
      return false;
    }
  };
  const cudaCheck = () =>
    process.platform !== 'linux' || process.arch !== 'x64'
      ? 'CUDA builds exist for Linux x64 only'
      : cudaLibrariesInstalled()
        ? null
        : CUDA_HINT;
  const webgpuCheck = () =>
    hasGpuDevice() ? null : 'no GPU device node (/dev/dri/renderD*, /dev/nvidia0): only a software adapter could exist';
  let chosen: Provider = 'cpu';
  if (requested === 'auto') {
    if (await tryOne('cuda', cudaCheck)) chosen = 'cuda';
    else if (await tryOne('webgpu', webgpuCheck)) chosen = 'webgpu';
  } else if (requested !== 'cpu') {
    if (await tryOne(requested, requested === 'cuda' ? cudaCheck : undefined)) chosen = requested;
    else log(`[serve] warning: provider ${requested} is unavailable (${notes[notes.length - 1]}); falling back to cpu`);
  }
  if (chosen === 'cpu') notes.push('cpu: ok');
  log(providerLine(requested, chosen, notes));
  return { requested, provider: chosen, notes };
}

/**
 * Create a session on the chosen provider; if that fails for this model (an operator the provider lacks,
 * out of device memory), warn and create it on the CPU instead.
 */
export async function createSession(
  bytes: Uint8Array,
  provider: Provider,
  opts: { threads?: number; spinning?: boolean; log?: Logger; what?: string } = {},
): Promise<{ session: ort.InferenceSession; provider: Provider }> {
  if (provider !== 'cpu') {
    try {
      return {
        session: await ort.InferenceSession.create(bytes, sessionOptions(provider, opts.threads, opts.spinning)),
        provider,
      };
    } catch (e) {
      opts.log?.(
        `[serve] warning: ${opts.what ?? 'model'} failed on ${provider} (${firstLine((e as Error).message)}); using cpu`,
      );
    }
  }
  return {
    session: await ort.InferenceSession.create(bytes, sessionOptions('cpu', opts.threads, opts.spinning)),
    provider: 'cpu',
  };
}

/**
 * The start-up line: the provider chosen and, under auto, each candidate's outcome in a word. The reasons
 * (an install hint can run to 300 characters) are in the server metadata, GET /v2 `provider_notes`.
 */
export function providerLine(requested: ProviderRequest, chosen: Provider, notes: string[]): string {
  const outcomes = notes.map((n) => n.replace(/^(\w+): (\w+).*$/, '$1 $2'));
  const detail = requested === 'auto' ? ` (auto: ${outcomes.join(', ')}; reasons: GET /v2)` : '';
  return `[serve] execution provider: ${chosen}${detail}`;
}

function firstLine(s: string): string {
  const l = s.split('\n').find((x) => x.trim() !== '') ?? s;
  return l.length > 240 ? `${l.slice(0, 240)}…` : l;
}
