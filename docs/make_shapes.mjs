// A tiny ImageFolder data set for docs/NEWCOMER.md: 3 classes of coloured shapes on grey backgrounds,
// 64x64 JPEGs, 60 per class in train/ and 15 per class in val/ (seeded, so every run writes the same files).
//
//   node docs/make_shapes.mjs /tmp/newcomer/shapes
//
// Run it from the repository: sharp is resolved from its node_modules.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

const out = process.argv[2];
if (!out) {
  console.error('usage: node docs/make_shapes.mjs <output folder>');
  process.exit(1);
}

// mulberry32: a small seeded generator, so the data set is the same on every machine.
let state = 1234;
function random() {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const uniform = (a, b) => a + random() * (b - a);

const shapes = {
  circle: (x, y, r, c) => `<circle cx="${x}" cy="${y}" r="${r}" fill="${c}"/>`,
  square: (x, y, r, c) => `<rect x="${x - r}" y="${y - r}" width="${2 * r}" height="${2 * r}" fill="${c}"/>`,
  triangle: (x, y, r, c) => `<polygon points="${x},${y - r} ${x + r},${y + r} ${x - r},${y + r}" fill="${c}"/>`,
};
const colours = { circle: [220, 50, 50], square: [50, 170, 60], triangle: [50, 80, 220] };

for (const [split, n] of [
  ['train', 60],
  ['val', 15],
]) {
  for (const [cls, draw] of Object.entries(shapes)) {
    const dir = path.join(out, split, cls);
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < n; i++) {
      const c = colours[cls].map((v) => Math.round(Math.min(255, Math.max(0, v + uniform(-40, 40)))));
      const bg = Math.round(uniform(150, 255));
      const svg =
        `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">` +
        `<rect width="64" height="64" fill="rgb(${bg},${bg},${bg})"/>` +
        draw(uniform(22, 42), uniform(22, 42), uniform(10, 18), `rgb(${c})`) +
        `</svg>`;
      await sharp(globalThis.Buffer.from(svg))
        .jpeg({ quality: 90 })
        .toFile(path.join(dir, `${String(i).padStart(3, '0')}.jpg`));
    }
  }
}
console.log(`wrote ${3 * 60} images to ${path.join(out, 'train')} and ${3 * 15} to ${path.join(out, 'val')}`);
