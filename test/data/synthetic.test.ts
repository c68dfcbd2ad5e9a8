/**
 * The generated dataset's property that the demo relies on: with colours 'random' the class is the shape
 * alone. A nearest-neighbour classifier on colour histograms is near chance there (and far above it on the
 * default 'by-class' colours, which the other tests use), while a colour-blind shape descriptor recovers the
 * class. Then `cmc train --demo` end to end (a tiny model, 1 epoch): its run goes to the temp folder and it
 * ends with the one line that compares kNN after training with the random-init encoder.
 *   node --import tsx --test test/data/synthetic.test.ts
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYNTHETIC_CLASSES, writeSyntheticDataset, type SyntheticColours } from '../../train/data/synthetic.ts';
import { writeTinySpec } from '../helpers/tiny_spec.ts';

const CMC = fileURLToPath(new URL('../../bin/cmc.js', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-synthetic-test-'));
const SIZE = 32;
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Split {
  x: Uint8Array;
  y: Uint8Array;
  n: number;
}

function readSplits(colours: SyntheticColours): { train: Split; test: Split } {
  const dir = writeSyntheticDataset(path.join(tmp, colours), { size: SIZE, train: 256, test: 128, seed: 11, colours });
  const read = (split: string): Split => {
    const y = new Uint8Array(fs.readFileSync(path.join(dir, `${split}_y.u8`)));
    return { x: new Uint8Array(fs.readFileSync(path.join(dir, `${split}_x.u8`))), y, n: y.length };
  };
  return { train: read('train'), test: read('test') };
}

const pixel = (s: Split, i: number, p: number) =>
  s.x.subarray((i * SIZE * SIZE + p) * 3, (i * SIZE * SIZE + p) * 3 + 3);

/** Normalised 4×4×4 RGB histogram: the image's colours, nothing of where they are. */
function colourHistogram(s: Split, i: number): number[] {
  const h = new Array<number>(64).fill(0);
  for (let p = 0; p < SIZE * SIZE; p++) {
    const [r, g, b] = pixel(s, i, p);
    h[(r >> 6) * 16 + (g >> 6) * 4 + (b >> 6)] += 1 / (SIZE * SIZE);
  }
  return h;
}

/**
 * Colour-blind shape descriptor: the foreground mask (pixels far from the border's median colour), then its
 * fill of the bounding box (square 1, disc π/4, ring and stripes lower), whether the centroid is filled (not
 * for a ring), and mask transitions per row (many for stripes).
 */
function shapeDescriptor(s: Split, i: number): number[] {
  const border: number[][] = [];
  for (let k = 0; k < SIZE; k++)
    for (const [xx, yy] of [
      [k, 0],
      [k, SIZE - 1],
      [0, k],
      [SIZE - 1, k],
    ])
      border.push([...pixel(s, i, yy * SIZE + xx)]);
  const bg = [0, 1, 2].map((c) => border.map((p) => p[c]).sort((a, b) => a - b)[border.length >> 1]);
  const mask = new Uint8Array(SIZE * SIZE);
  let area = 0,
    sx = 0,
    sy = 0,
    x0 = SIZE,
    x1 = 0,
    y0 = SIZE,
    y1 = 0;
  for (let p = 0; p < SIZE * SIZE; p++) {
    const v = pixel(s, i, p);
    if (Math.hypot(v[0] - bg[0], v[1] - bg[1], v[2] - bg[2]) > 40) {
      const xx = p % SIZE,
        yy = Math.floor(p / SIZE);
      mask[p] = 1;
      area++;
      sx += xx;
      sy += yy;
      x0 = Math.min(x0, xx);
      x1 = Math.max(x1, xx);
      y0 = Math.min(y0, yy);
      y1 = Math.max(y1, yy);
    }
  }
  if (area === 0) return [0, 0, 0];
  const cx = Math.round(sx / area),
    cy = Math.round(sy / area);
  let centre = 0;
  for (let dy = -1; dy <= 1; dy++)
    for (let dx = -1; dx <= 1; dx++)
      centre += mask[Math.min(SIZE - 1, Math.max(0, cy + dy)) * SIZE + Math.min(SIZE - 1, Math.max(0, cx + dx))] / 9;
  let transitions = 0;
  for (let yy = y0; yy <= y1; yy++)
    for (let xx = x0 + 1; xx <= x1; xx++) transitions += mask[yy * SIZE + xx] !== mask[yy * SIZE + xx - 1] ? 1 : 0;
  return [area / ((x1 - x0 + 1) * (y1 - y0 + 1)), centre, transitions / (y1 - y0 + 1) / 4];
}

/** 1-nearest-neighbour top-1 on the test split (L1 distance). */
function nearestNeighbourTop1(train: Split, test: Split, feature: (s: Split, i: number) => number[]): number {
  const tr = Array.from({ length: train.n }, (_, i) => feature(train, i));
  let correct = 0;
  for (let i = 0; i < test.n; i++) {
    const f = feature(test, i);
    let best = Infinity,
      label = -1;
    tr.forEach((g, j) => {
      const d = g.reduce((acc, v, k) => acc + Math.abs(v - f[k]), 0);
      if (d < best) {
        best = d;
        label = train.y[j];
      }
    });
    if (label === test.y[i]) correct++;
  }
  return correct / test.n;
}

/**
 * Nearest class mean of colour histograms, scored by the dot product with (class mean − overall mean): the
 * background's random colours, common to every class, cancel, and each class's own colours, if any, stand out.
 */
function colourCentroidTop1(train: Split, test: Split): number {
  const classes = SYNTHETIC_CLASSES.length;
  const hist = Array.from({ length: train.n }, (_, i) => colourHistogram(train, i));
  const mean = (rows: number[][]) => rows[0].map((_, k) => rows.reduce((a, r) => a + r[k], 0) / rows.length);
  const all = mean(hist);
  const centres = Array.from({ length: classes }, (_, c) =>
    mean(hist.filter((_, i) => train.y[i] === c)).map((v, k) => v - all[k]),
  );
  let correct = 0;
  for (let i = 0; i < test.n; i++) {
    const h = colourHistogram(test, i);
    const scores = centres.map((m) => m.reduce((a, v, k) => a + v * h[k], 0));
    if (scores.indexOf(Math.max(...scores)) === test.y[i]) correct++;
  }
  return correct / test.n;
}

test("colours 'random': colour histograms are near chance, the shape gives the class; 'by-class': colour alone does", () => {
  const chance = 1 / SYNTHETIC_CLASSES.length;
  const random = readSplits('random');
  const byClass = readSplits('by-class');
  const colourRandom = colourCentroidTop1(random.train, random.test);
  const colourByClass = colourCentroidTop1(byClass.train, byClass.test);
  const shapeRandom = nearestNeighbourTop1(random.train, random.test, shapeDescriptor);
  console.log(
    `colour-histogram centroid: random ${colourRandom}, by-class ${colourByClass}; shape 1-NN on random: ${shapeRandom}`,
  );
  assert.ok(colourRandom < chance + 0.1, `colour histograms classify 'random' at ${colourRandom}`);
  // The background (random colours, most of the image) dilutes the histogram: well above chance, not near 1.
  assert.ok(colourByClass > chance + 0.2, `colour histograms classify 'by-class' at ${colourByClass}`);
  assert.ok(shapeRandom > 0.8, `the shape descriptor classifies 'random' at ${shapeRandom}`);
});

test(
  'cmc train --demo: data and run in the temp folder, only the final checkpoint kept, one closing verdict line',
  { timeout: 240_000 },
  () => {
    // The demo's own code path with a tiny model and 1 epoch (its 512 images stay); TMPDIR points os.tmpdir() here.
    const spec = writeTinySpec(path.join(tmp, 'tiny.json'));
    const cwd = fs.mkdtempSync(path.join(tmp, 'cwd-'));
    const r = spawnSync(
      process.execPath,
      [
        CMC,
        'train',
        '--demo',
        '--model',
        spec,
        '--image_size',
        '16',
        '--feat_dim',
        '16',
        '--epochs',
        '1',
        '--backend',
        'wasm',
      ],
      {
        encoding: 'utf8',
        timeout: 230_000,
        cwd,
        env: { ...process.env, TMPDIR: tmp, CMC_WASM_THREADS: '1' },
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(cwd), [], 'the demo wrote into the current folder');
    const runDir = path.join(tmp, 'cmc-demo-runs', 'demo');
    assert.deepEqual(
      fs.readdirSync(runDir).filter((f) => f.endsWith('.ckpt')),
      ['current.ckpt'],
      'the demo keeps only its final checkpoint',
    );
    assert.ok(r.stdout.includes(`checkpoint: ${path.join(runDir, 'current.ckpt')}`), r.stdout);
    const last = r.stderr.trim().split('\n').at(-1)!;
    assert.match(
      last,
      /^\[cmc\] demo: (training learned|no gain from training): kNN top-1 \d+\.\d% after 1 epochs? vs \d+\.\d% at random init \([+-]\d+\.\d points; chance 25%\); .*next: .*--data_folder.*docs\/NEWCOMER\.md/,
    );
  },
);
