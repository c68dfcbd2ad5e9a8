/**
 * JPEG shrink-on-load (serve/preprocess.ts shrinkOnLoadSize) against full-size decoding, on photos:
 * decode + resize + crop time per image, and the classifier's top-1 on the same photos both ways.
 *
 * The photos are the imagenette64 test images upscaled (sharp, lanczos3) to each size and saved as JPEG
 * q90: the data that exists here is 64 px (/work/shared/data). Never committed, never written to disk.
 *
 *   node --import tsx bench/shrink_on_load.ts --data /work/shared/data/imagenette64-sub \
 *     --model models/imagenette64 --n 300 --sizes 1024x768,3000x2000
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { decodeImage, decodeToInput, toModelInput } from '../serve/preprocess.ts';

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: '/work/shared/data/imagenette64-sub' },
    model: { type: 'string', default: 'models/imagenette64' },
    n: { type: 'string', default: '300' },
    sizes: { type: 'string', default: '1024x768,3000x2000' },
  },
});
const dataDir = values.data!;
if (!fs.existsSync(path.join(dataDir, 'test_x.u8'))) {
  console.log(`skipped: no ${path.join(dataDir, 'test_x.u8')} (the imagenette64 subset)`);
  process.exit(0);
}
const meta = JSON.parse(fs.readFileSync(path.join(dataDir, 'meta.json'), 'utf8'));
const side = 64;
const x = new Uint8Array(fs.readFileSync(path.join(dataDir, 'test_x.u8')));
const y = new Uint8Array(fs.readFileSync(path.join(dataDir, 'test_y.u8')));
const n = Math.min(Number(values.n), y.length);
const manifest = JSON.parse(fs.readFileSync(path.join(values.model!, 'manifest.json'), 'utf8'));
const size: number = manifest.input.size;
const session = await ort.InferenceSession.create(path.join(values.model!, 'classifier.onnx'));
const limits = { maxPixels: 40_000_000 };
console.log(
  `# ${n} imagenette64 test photos (${meta.class_names?.length ?? 10} classes), model ${manifest.name} (input ${size})`,
);

async function top1(inputs: Uint8Array[]): Promise<number[]> {
  const preds: number[] = [];
  for (let i = 0; i < inputs.length; i += 32) {
    const chunk = inputs.slice(i, i + 32);
    const flat = new Uint8Array(chunk.length * size * size * 3);
    chunk.forEach((c, k) => flat.set(c, k * size * size * 3));
    const out = await session.run({ images: new ort.Tensor('uint8', flat, [chunk.length, size, size, 3]) });
    const p = out.probabilities.data as Float32Array;
    const c = p.length / chunk.length;
    for (let k = 0; k < chunk.length; k++) {
      let best = 0;
      for (let j = 1; j < c; j++) if (p[k * c + j] > p[k * c + best]) best = j;
      preds.push(best);
    }
  }
  return preds;
}

for (const wh of values.sizes!.split(',')) {
  const [w, h] = wh.split('x').map(Number);
  // Encode every photo first, then time each path over all of them in its own loop (no encoder work
  // between the timed decodes), alternating which path goes first.
  const jpegs: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const px = Buffer.from(x.subarray(i * side * side * 3, (i + 1) * side * side * 3));
    jpegs.push(
      await sharp(px, { raw: { width: side, height: side, channels: 3 } })
        .resize(w, h, { fit: 'fill', kernel: 'lanczos3' })
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
  }
  const full: Uint8Array[] = [],
    shrunk: Uint8Array[] = [];
  let tFull = 0,
    tShrunk = 0;
  for (const [lo, hi, fullFirst] of [
    [0, n >> 1, true],
    [n >> 1, n, false],
  ] as const) {
    const runFull = async () => {
      const t = performance.now();
      for (let i = lo; i < hi; i++) full[i] = toModelInput(await decodeImage(jpegs[i], limits), size, limits);
      tFull += performance.now() - t;
    };
    const runShrunk = async () => {
      const t = performance.now();
      for (let i = lo; i < hi; i++) shrunk[i] = await decodeToInput(jpegs[i], size, limits);
      tShrunk += performance.now() - t;
    };
    if (fullFirst) await runFull().then(runShrunk);
    else await runShrunk().then(runFull);
  }
  const [pf, ps] = [await top1(full), await top1(shrunk)];
  const acc = (p: number[]) => (100 * p.filter((v, i) => v === y[i]).length) / n;
  const agree = (100 * pf.filter((v, i) => v === ps[i]).length) / n;
  let maxDiff = 0;
  for (let i = 0; i < n; i++)
    for (let k = 0; k < full[i].length; k++) maxDiff = Math.max(maxDiff, Math.abs(full[i][k] - shrunk[i][k]));
  console.log(
    `${w}x${h}: decode+resize+crop ${(tFull / n).toFixed(1)} ms full, ${(tShrunk / n).toFixed(1)} ms shrink-on-load (${(tFull / tShrunk).toFixed(1)}x); ` +
      `top-1 ${acc(pf).toFixed(2)}% full, ${acc(ps).toFixed(2)}% shrink-on-load (${(acc(ps) - acc(pf)).toFixed(2)} points); predictions agree on ${agree.toFixed(1)}%; ` +
      `largest pixel difference ${maxDiff}`,
  );
}
