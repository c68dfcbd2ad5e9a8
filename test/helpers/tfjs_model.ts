/**
 * Load a tfjs graph model folder (model.json + weight shards, train/export/tfjs.ts) from disk in Node with
 * @tensorflow/tfjs-converter's loadGraphModel, through tfjs-core's own model.json parser
 * (io.getModelArtifactsForJSON), as its HTTP loader does in a browser; and run it on uint8 images.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';

export async function loadTfjsDir(dir: string): Promise<GraphModel> {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const handler: tf.io.IOHandler = {
    load: () =>
      tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((g) => g.weights);
        const bufs = manifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
        const all = Buffer.concat(bufs);
        return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)];
      }),
  };
  return loadGraphModel(handler);
}

/** Run `outputs` of a graph model on uint8 NHWC images (fed as int32, tfjs's type for DT_UINT8). */
export async function runTfjs(
  model: GraphModel,
  images: Uint8Array,
  n: number,
  size: number,
  outputs: string[],
): Promise<Record<string, Float32Array>> {
  const x = tf.tensor(Int32Array.from(images), [n, size, size, 3], 'int32');
  try {
    const res = model.execute({ images: x }, outputs) as tf.Tensor[];
    const list = Array.isArray(res) ? res : [res];
    const out: Record<string, Float32Array> = {};
    for (let k = 0; k < outputs.length; k++) out[outputs[k]] = new Float32Array(await list[k].data());
    tf.dispose(list);
    return out;
  } finally {
    x.dispose();
  }
}
