/**
 * Whether this machine has a GPU that native graphics drivers can reach, without loading any GPU library:
 * the server's `--provider auto` skips onnxruntime's WebGPU provider without one, and training points
 * Dawn at the SwiftShader software Vulkan driver instead.
 *
 * Linux exposes GPUs as device nodes: /dev/nvidia0 (NVIDIA's driver) or /dev/dri/renderD* (DRM render
 * nodes, which Mesa's and the vendors' Vulkan drivers open). Without one the only system Vulkan driver is
 * a software one (Mesa's llvmpipe) at best. macOS (Metal) and Windows (D3D12) reach the GPU through
 * their own APIs, with no such nodes, so there the answer is yes and the adapter probe decides.
 */
import fs from 'node:fs';

export interface GpuProbeEnv {
  platform: NodeJS.Platform;
  exists(path: string): boolean;
  /** Entries of a folder; throws when it is missing. */
  readdir(path: string): string[];
}

const NODE_ENV: GpuProbeEnv = {
  platform: process.platform,
  exists: (p) => fs.existsSync(p),
  readdir: (p) => fs.readdirSync(p),
};

export function hasGpuDevice(env: GpuProbeEnv = NODE_ENV): boolean {
  if (env.platform === 'darwin' || env.platform === 'win32') return true;
  if (env.exists('/dev/nvidia0')) return true;
  try {
    return env.readdir('/dev/dri').some((f) => f.startsWith('renderD'));
  } catch {
    return false;
  }
}
