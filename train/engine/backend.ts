/**
 * Chooses and initialises the tfjs compute backend: `tensorflow` (tfjs-node-gpu / tfjs-node, CUDA or
 * native CPU, only if the user installed it), `webgpu` (Dawn through the `webgpu` npm package: Vulkan,
 * Metal, D3D12, or SwiftShader in software), `native` (wasm with oneDNN convolutions, matmuls, batch
 * norm, pooling and ReLU through the optional addon in native/), `wasm` (XNNPACK plus our own training
 * kernels) and `cpu` (plain JS reference). `auto` takes the fastest that works and says what it chose.
 *
 *   const info = await initBackend('auto'); console.log(info.name, info.device);
 */
import * as tf from '@tensorflow/tfjs-core';
import fs from 'node:fs';
import os from 'node:os';
import { registerTrainingGradients, registerTrainingKernels } from '../kernels/register_all.ts';
import { finishWasmThreads, prepareWasmThreads, wasmThreadsWanted } from '../kernels/wasm_threads.ts';
import { ensureGradients } from './gradients.ts';
import { loadNativeAddon } from '../kernels/native/addon.ts';
import { registerNativeBackend } from '../kernels/native/register.ts';
import { hasGpuDevice } from '../../core/util/gpu.ts';

export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'native', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** The tfjs backend name that is now active. */
  name: Exclude<BackendName, 'auto'>;
  /** Human-readable device: "CUDA GPU", "SwiftShader (software Vulkan)", "XNNPACK SIMD, 1 thread", ... */
  device: string;
  /** True when the device is real hardware acceleration (not a software rasteriser or the CPU). */
  accelerated: boolean;
}

export class BackendUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendUnavailableError';
  }
}

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** The message a user sees when the native TensorFlow binding is missing. */
export const TENSORFLOW_HINT =
  'The `tensorflow` backend needs @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node (CPU), which are ' +
  'not installed (their install downloads libtensorflow, so they are optional). On a machine with internet access run\n' +
  '    npm install @tensorflow/tfjs-node-gpu@4.22.0     # NVIDIA GPU with CUDA 11.8 + cuDNN 8.6\n' +
  'or  npm install @tensorflow/tfjs-node@4.22.0         # native CPU\n' +
  'or pick another backend: --backend webgpu|wasm|cpu.';

let current: BackendInfo | null = null;
const initialised = new Map<string, BackendInfo>();

/** Initialise a backend; `auto` tries tensorflow, then a hardware WebGPU adapter, then native, then wasm. */
export async function initBackend(name: BackendName = 'auto', opts: { quiet?: boolean } = {}): Promise<BackendInfo> {
  await ensureGradients();
  registerTrainingGradients();
  if (current && name === 'auto') return current;
  const known = initialised.get(name);
  if (known) {
    // Tests switch between backends in one process (cpu reference vs wasm vs webgpu).
    await tf.setBackend(known.name);
    current = known;
    return known;
  }
  let info: BackendInfo;
  if (name === 'auto') {
    let why = '';
    info =
      (await tryInit(initTensorflow)) ??
      (await tryInit(async () => {
        const i = await initWebgpu({ allowSoftware: false });
        return i;
      })) ??
      (await tryInit(
        initNative,
        (e) => (why = `; native unavailable: ${e.message.replace(NATIVE_UNAVAILABLE, '')}`),
      )) ??
      (await initWasm());
    if (!opts.quiet) console.error(`[cmc] backend: ${info.name} on ${info.device} (chosen by --backend auto${why})`);
  } else {
    switch (name) {
      case 'tensorflow':
        info = await initTensorflow();
        break;
      case 'webgpu':
        info = await initWebgpu({ allowSoftware: true });
        break;
      case 'native':
        info = await initNative();
        break;
      case 'wasm':
        info = await initWasm();
        break;
      case 'cpu':
        info = await initCpu();
        break;
      default: {
        const never: never = name;
        throw new BackendUnavailableError(
          `Unknown backend '${String(never)}'; expected one of: ${BACKENDS.join(', ')}`,
        );
      }
    }
    if (!opts.quiet) console.error(`[cmc] backend: ${info.name} on ${info.device}`);
  }
  current = info;
  initialised.set(name, info);
  initialised.set(info.name, info);
  return info;
}

/** The backend chosen by the last initBackend call (null before any). */
export function backendInfo(): BackendInfo | null {
  return current;
}

async function tryInit(f: () => Promise<BackendInfo>, onError?: (e: Error) => void): Promise<BackendInfo | null> {
  try {
    return await f();
  } catch (e) {
    onError?.(e as Error);
    return null;
  }
}

async function initTensorflow(): Promise<BackendInfo> {
  let device: string;
  try {
    // Variable specifiers keep TypeScript and bundlers from insisting the optional packages exist.
    const gpuPkg = '@tensorflow/tfjs-node-gpu';
    await import(gpuPkg);
    device = 'libtensorflow with CUDA (tfjs-node-gpu)';
  } catch {
    try {
      const cpuPkg = '@tensorflow/tfjs-node';
      await import(cpuPkg);
      device = 'libtensorflow on CPU (tfjs-node)';
    } catch {
      throw new BackendUnavailableError(TENSORFLOW_HINT);
    }
  }
  if (!(await tf.setBackend('tensorflow'))) throw new BackendUnavailableError(TENSORFLOW_HINT);
  await tf.ready();
  return { name: 'tensorflow', device, accelerated: device.includes('CUDA') };
}

let webgpuGlobalsInstalled = false;

/**
 * WebGPU in Node through Dawn. Without a GPU device node (core/util/gpu.ts) the only system Vulkan driver is
 * usually Mesa's llvmpipe, which Dawn rejects, so we point the Vulkan loader at Chromium's SwiftShader ICD
 * (software), which is how this project's tests exercise the GPU code path on CPU-only CI.
 */
async function initWebgpu({ allowSoftware }: { allowSoftware: boolean }): Promise<BackendInfo> {
  const usedSoftwareIcd =
    !process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && !hasGpuDevice() && fs.existsSync(SWIFTSHADER_ICD);
  if (usedSoftwareIcd) {
    if (!allowSoftware) throw new BackendUnavailableError('no hardware WebGPU adapter');
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  process.env.XDG_RUNTIME_DIR ??= os.tmpdir(); // the Vulkan loader complains on every start without it
  let webgpu: typeof import('webgpu');
  try {
    webgpu = await import('webgpu');
  } catch (e) {
    throw new BackendUnavailableError(`The webgpu package (Dawn for Node) failed to load: ${(e as Error).message}`);
  }
  const gpu = webgpu.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new BackendUnavailableError(
      'No WebGPU adapter found. Install a Vulkan driver (or `apt-get install chromium libvulkan1` for the SwiftShader ' +
        `software adapter at ${SWIFTSHADER_ICD}), or pick --backend wasm.`,
    );
  }
  const ai = adapter.info;
  const desc =
    ai.description || [ai.vendor, ai.architecture, ai.device].filter((s) => s).join(' ') || 'unknown adapter';
  const software = usedSoftwareIcd || /swiftshader|llvmpipe|software|cpu/i.test(desc);
  if (software && !allowSoftware) throw new BackendUnavailableError('only a software WebGPU adapter is available');
  if (!webgpuGlobalsInstalled) {
    Object.assign(globalThis, webgpu.globals);
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    webgpuGlobalsInstalled = true;
  }
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu')))
    throw new BackendUnavailableError('tfjs could not initialise its webgpu backend');
  await tf.ready();
  return { name: 'webgpu', device: `${desc}${software ? ' (software)' : ''}`, accelerated: !software };
}

/** XNNPACK threads of the wasm backend: CMC_WASM_THREADS, else one per available core (at most 8). */
async function initWasm(): Promise<BackendInfo> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  registerTrainingKernels('wasm');
  prepareWasmThreads(wasmThreadsWanted(), wasm);
  try {
    if (!(await tf.setBackend('wasm'))) throw new BackendUnavailableError('tfjs could not initialise its wasm backend');
    await tf.ready();
  } finally {
    finishWasmThreads(tf.findBackend('wasm'));
  }
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = wasm.getThreadsCount();
  return {
    name: 'wasm',
    device: `WebAssembly${simd ? ' SIMD' : ''} (XNNPACK) on CPU, ${threads} thread${threads === 1 ? '' : 's'}`,
    accelerated: false,
  };
}

const NATIVE_UNAVAILABLE = 'The native backend is unavailable: ';

/**
 * The wasm backend with oneDNN convolutions, matrix products, batch norm, pooling and ReLU, and the SGD
 * step in the addon (train/kernels/native/). It needs the addon built by `npm ci` where libdnnl-dev and
 * a compiler exist; without it this says why.
 */
async function initNative(): Promise<BackendInfo> {
  const loaded = loadNativeAddon();
  if ('error' in loaded) throw new BackendUnavailableError(`${NATIVE_UNAVAILABLE}${loaded.error}`);
  const wasmInfo = initialised.get('wasm') ?? (await initWasm());
  initialised.set('wasm', wasmInfo);
  const threads = (await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount();
  const { version, isa } = registerNativeBackend(threads).info();
  if (!(await tf.setBackend('native')))
    throw new BackendUnavailableError('tfjs could not initialise the native backend');
  await tf.ready();
  return {
    name: 'native',
    device: `oneDNN ${version} (${isa}) for convolutions, matmuls, batch norm, pooling and ReLU, native loops for SGD, gathers, slices and elementwise ops, the rest ${wasmInfo.device}`,
    accelerated: false,
  };
}

async function initCpu(): Promise<BackendInfo> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new BackendUnavailableError('tfjs could not initialise its cpu backend');
  await tf.ready();
  return { name: 'cpu', device: 'plain JavaScript on CPU (reference)', accelerated: false };
}
