/**
 * A small generated image dataset in the raw uint8 layout (meta.json + {split}_x.u8 / _y.u8), so the
 * demo and the tests run on a fresh clone without downloading anything. Four classes whose colour and
 * shape differ (disc, square, stripes, ring) on a noisy background, randomly placed and sized.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../util/rng.ts';

export const SYNTHETIC_CLASSES = ['disc', 'square', 'stripes', 'ring'];

export function writeSyntheticDataset(dir: string, opts: { size?: number; train?: number; test?: number; seed?: number } = {}): string {
  const size = opts.size ?? 32;
  const counts = { train: opts.train ?? 256, test: opts.test ?? 64 };
  const rng = new Rng(opts.seed ?? 7);
  fs.mkdirSync(dir, { recursive: true });
  const splits: Record<string, { shape: number[] }> = {};
  for (const [split, n] of Object.entries(counts)) {
    const x = new Uint8Array(n * size * size * 3);
    const y = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const cls = i % SYNTHETIC_CLASSES.length;
      y[i] = cls;
      drawSample(x.subarray(i * size * size * 3, (i + 1) * size * size * 3), size, cls, rng);
    }
    fs.writeFileSync(path.join(dir, `${split}_x.u8`), x);
    fs.writeFileSync(path.join(dir, `${split}_y.u8`), y);
    splits[split] = { shape: [n, size, size, 3] };
  }
  const meta = { name: 'cmc synthetic shapes', generator: 'train/data/synthetic.ts', class_names: SYNTHETIC_CLASSES, height: size, width: size, splits };
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 2));
  return dir;
}

function drawSample(out: Uint8Array, size: number, cls: number, rng: Rng): void {
  const bg = [rng.int(256), rng.int(256), rng.int(256)];
  // Each class has a hue family, so the ab view carries signal, and a shape, so L does too.
  const hue = [
    [220, 60, 50],
    [60, 180, 70],
    [60, 90, 220],
    [230, 200, 40],
  ][cls];
  const fg = hue.map((v) => Math.max(0, Math.min(255, v + rng.int(61) - 30)));
  const cx = size * rng.range(0.3, 0.7);
  const cy = size * rng.range(0.3, 0.7);
  const r = size * rng.range(0.18, 0.32);
  for (let yy = 0; yy < size; yy++) {
    for (let xx = 0; xx < size; xx++) {
      const dx = xx - cx;
      const dy = yy - cy;
      const d = Math.hypot(dx, dy);
      let inside: boolean;
      if (cls === 0) inside = d < r;
      else if (cls === 1) inside = Math.abs(dx) < r && Math.abs(dy) < r;
      else if (cls === 2) inside = Math.abs(dx) < r * 1.3 && Math.abs(dy) < r * 1.3 && Math.floor((xx + yy) / 3) % 2 === 0;
      else inside = d < r && d > r * 0.55;
      const p = (yy * size + xx) * 3;
      for (let c = 0; c < 3; c++) {
        const v = (inside ? fg[c] : bg[c] * 0.6) + (rng.uniform() - 0.5) * 30;
        out[p + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
}
