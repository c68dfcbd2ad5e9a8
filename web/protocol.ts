/** Messages between the page (main.ts) and the inference worker (worker.ts). */

export type Runtime = 'onnxruntime' | 'tfjs';
export type Backend = 'webgpu' | 'wasm';

export interface LoadRequest {
  type: 'load';
  runtime: Runtime;
  backend: Backend;
  /** Absolute URL of the model folder (ends with '/'); file paths are relative to it. */
  modelBase: string;
  /** The files to fetch (ONNX: one; tfjs: model.json and its shards), with their manifest sha256. */
  files: { path: string; sha256: string }[];
  inputName: string;
  size: number;
  outputs: string[];
  /** Absolute URLs of onnxruntime-web's and tfjs-backend-wasm's .wasm files (served beside the page). */
  ortPath: string;
  tfjsPath: string;
}

export interface RunRequest {
  type: 'run';
  id: number;
  /** n images, uint8 NHWC RGB, size x size each. */
  images: Uint8Array;
  n: number;
}

export type WorkerRequest = LoadRequest | RunRequest;

export type WorkerReply =
  | {
      type: 'loaded';
      runtime: Runtime;
      backend: Backend;
      loadMs: number;
      filesMs: number;
      sources: Record<string, 'cache' | 'network' | 'refetched'>;
      bytes: number;
    }
  | { type: 'result'; id: number; outputs: Record<string, Float32Array>; ms: number }
  | { type: 'error'; id?: number; message: string }
  | { type: 'log'; line: string };
