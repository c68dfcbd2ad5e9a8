/**
 * A small generated image dataset in the raw uint8 layout (meta.json + {split}_x.u8 / _y.u8), so the
 * demo and the tests run on a fresh clone without downloading anything. Four shapes (disc, square, stripes,
 * ring) on a noisy background, randomly placed and sized.
 *
 * colours 'by-class' (the default, which the tests' small runs rely on): each class also has its own hue, so
 * colour alone separates the classes and even a random encoder's features do. colours 'random': the shape
 * is the class, and the foreground and background colours are drawn per image, independent of the class.
 * Colour then says nothing about the class; the silhouette, seen in both L (a lightness step) and ab (a
 * chroma step), is what CMC's two views can agree on beyond colour (`cmc train --demo`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../../core/util/rng.ts';
import { labPixelToRgb } from '../../core/preprocess/color.ts';

export const SYNTHETIC_CLASSES = ['disc', 'square', 'stripes', 'ring'];

export type SyntheticColours = 'by-class' | 'random';

export interface SyntheticOptions {
  size?: number;
  train?: number;
  test?: number;
  seed?: number;
  colours?: SyntheticColours;
}

export function writeSyntheticDataset(dir: string, opts: SyntheticOptions = {}): string {
  const colours = opts.colours ?? 'by-class';
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
      drawSample(x.subarray(i * size * size * 3, (i + 1) * size * size * 3), size, cls, colours, rng);
    }
    fs.writeFileSync(path.join(dir, `${split}_x.u8`), x);
    fs.writeFileSync(path.join(dir, `${split}_y.u8`), y);
    splits[split] = { shape: [n, size, size, 3] };
  }
  const meta = {
    name: 'cmc synthetic shapes',
    generator: 'train/data/synthetic.ts',
    colours,
    class_names: SYNTHETIC_CLASSES,
    height: size,
    width: size,
    splits,
  };
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 2));
  return dir;
}

/** Class hues of colours 'by-class'. */
const HUES = [
  [220, 60, 50],
  [60, 180, 70],
  [60, 90, 220],
  [230, 200, 40],
];
function drawSample(out: Uint8Array, size: number, cls: number, colours: SyntheticColours, rng: Rng): void {
  const jitter = (rgb: number[]) => rgb.map((v) => Math.max(0, Math.min(255, v + rng.int(61) - 30)));
  let fg: number[];
  let bg: number[];
  if (colours === 'by-class') {
    bg = [rng.int(256), rng.int(256), rng.int(256)].map((v) => v * 0.6);
    // Each class has a hue family, so the ab view carries signal, and a shape, so L does too.
    fg = jitter(HUES[cls]);
  } else {
    // Lightness and chroma drawn independently: the L view sees a lightness step of random sign, the ab view
    // a step between two random hues, and nothing in one view's colours predicts the other's. What the two
    // views share is the geometry (the shape, its place and size), which is what CMC's objective rewards.
    const lFg = rng.range(30, 80);
    const lBg = lFg + (lFg > 55 || (lFg > 35 && rng.uniform() < 0.5) ? -1 : 1) * rng.range(20, 30);
    const hue = rng.range(0, 2 * Math.PI);
    const hueBg = hue + Math.PI + rng.range(-Math.PI / 3, Math.PI / 3);
    const chroma = 35;
    fg = labPixelToRgb(lFg, chroma * Math.cos(hue), chroma * Math.sin(hue));
    bg = labPixelToRgb(lBg, chroma * Math.cos(hueBg), chroma * Math.sin(hueBg));
  }
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
      else if (cls === 2)
        inside = Math.abs(dx) < r * 1.3 && Math.abs(dy) < r * 1.3 && Math.floor((xx + yy) / 3) % 2 === 0;
      else inside = d < r && d > r * 0.55;
      const p = (yy * size + xx) * 3;
      for (let c = 0; c < 3; c++) {
        const v = (inside ? fg[c] : bg[c]) + (rng.uniform() - 0.5) * 30;
        out[p + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
}
