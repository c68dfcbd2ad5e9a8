/**
 * The demo's state: the manifest it runs, one result per image, and window.cmcDemo (DemoState), which the
 * browser tests (test/web/app.test.ts) and the console read.
 */
import type { Backend, Runtime } from './protocol.ts';

export interface ManifestFile {
  sha256: string;
  bytes: number;
  role: string;
  format?: string;
}

/** The part of a cmc export manifest (core/formats/manifest.ts) the page reads. */
export interface Manifest {
  name: string;
  version: string;
  input: { name: string; size: number };
  classNames: string[];
  embeddingDim: number;
  files: Record<string, ManifestFile>;
}

export interface ImageResult {
  name: string;
  file: Blob;
  width: number;
  height: number;
  embedding: number[];
  top: { label: string; index: number; probability: number }[];
  /** Per-image share of its batch's inference time (warm). */
  ms: number;
  /** The model input (uint8 size*size*3), base64, for parity checks. */
  input: string;
  serverCosine?: number;
  thumb: HTMLCanvasElement;
}

export interface BenchFigures {
  n: number;
  ms: number;
  maxGapMs: number;
  ticks: number;
  idleMaxGapMs: number;
}

export interface DemoState {
  ready: boolean;
  error?: string;
  notice?: string;
  runtime?: Runtime;
  backend?: Backend;
  /** runtime/backend pairs this model and browser offer, e.g. 'onnxruntime/wasm'. */
  options: string[];
  model?: { name: string; version: string; files: string[]; size: number; bytes: number };
  /** Cold load: files (cache or network) + session / graph model + first run. */
  loadMs?: number;
  filesMs?: number;
  sources?: Record<string, string>;
  manifestSource?: string;
  /** Mean warm per-image inference time over the batches so far. */
  warmMsPerImage?: number;
  images: Omit<ImageResult, 'file' | 'thumb'>[];
  errors: { name: string; message: string }[];
  /** For each image (index), its nearest neighbours by cosine: [index, cosine], best first. */
  neighbours: [number, number][][];
  similarity?: number;
  busy: number;
  logs: string[];
  /** The app-shell service worker: 'registered' (its scope follows), 'unsupported', or why it failed. */
  serviceWorker?: string;
  api?: {
    benchBatch(n: number): Promise<BenchFigures>;
  };
}

export const state: DemoState = {
  ready: false,
  images: [],
  errors: [],
  neighbours: [],
  busy: 0,
  options: [],
  logs: [],
};
(window as unknown as { cmcDemo: DemoState }).cmcDemo = state;

/** Every image so far, in the order added (state.images holds their plain parts). */
export const results: ImageResult[] = [];
