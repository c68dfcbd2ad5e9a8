/**
 * Open Inference Protocol (KServe v2) inference, independent of the transport (REST in routes/v2.ts,
 * gRPC in grpc/server.ts): run the graphs a parsed request (request.ts) needs and return flat FP32 output
 * tensors.
 *
 *   const r = parseInferRequest(json, m, maxImages, binary);   // request.ts
 *   const outs = await runInfer(m, r.images, r.outputs);       // [{ name, datatype: 'FP32', shape, data }]
 */
import { finiteOutputs } from '../image_runner.ts';
import type { ModelVersion } from '../repository.ts';
import { planGraphs } from './request.ts';

export interface OutputTensor {
  name: string;
  datatype: 'FP32';
  shape: number[];
  data: Float32Array;
}

/** Run the graphs the outputs need (through their batchers); FP32 tensors [N, width] in request order. */
export async function runInfer(m: ModelVersion, images: Uint8Array[], outputs: string[]): Promise<OutputTensor[]> {
  const results = new Map<string, Float32Array[]>();
  for (const [graph, names] of planGraphs(m, outputs)) {
    const outs = finiteOutputs(m, await graph.batcher.submit(images), names);
    for (const name of names)
      results.set(
        name,
        outs.map((o) => o[name]),
      );
  }
  return outputs.map((name) => {
    const rows = results.get(name)!;
    const w = rows[0]?.length ?? 0;
    const data = new Float32Array(rows.length * w);
    rows.forEach((r, i) => data.set(r, i * w));
    return { name, datatype: 'FP32', shape: [rows.length, w], data };
  });
}

/** float32 values as little-endian bytes (the binary extension's and gRPC raw contents' layout). */
export function float32Bytes(v: Float32Array): Buffer {
  const b = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i], i * 4);
  return b;
}
