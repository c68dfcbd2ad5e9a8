/** STL-10 binaries (Stl10BinSource): 3x96x96 per image, each plane column-major; labels 1-based on disk. */
import fs from 'node:fs';
import path from 'node:path';
import { checkIndex, isFile, RecordFile, type DataSource, type Sample, type SourceSpec, type Split } from './source.ts';

const STL10_CLASSES = ['airplane', 'bird', 'car', 'cat', 'deer', 'dog', 'horse', 'monkey', 'ship', 'truck'];
const STL_SIDE = 96;
const STL_PLANE = STL_SIDE * STL_SIDE;
const STL_REC = 3 * STL_PLANE;

export function stlDir(dir: string): string | null {
  for (const d of [dir, path.join(dir, 'stl10_binary')]) {
    if (['train_X.bin', 'test_X.bin', 'unlabeled_X.bin'].some((f) => isFile(path.join(d, f)))) return d;
  }
  return null;
}

export class Stl10BinSource implements DataSource {
  readonly kind = 'stl10' as const;
  readonly length: number;
  readonly width = STL_SIDE;
  readonly height = STL_SIDE;
  readonly classNames: readonly string[];
  private readonly parts: { x: RecordFile; y: Uint8Array | null; start: number }[] = [];

  constructor(
    readonly dir: string,
    readonly split: Split = 'train',
  ) {
    const d = stlDir(dir);
    if (!d) throw new Error(`STL-10: no train_X.bin / test_X.bin / unlabeled_X.bin under ${dir}`);
    const partNames: ('train' | 'test' | 'unlabeled')[] =
      split === 'train+unlabeled' ? ['train', 'unlabeled'] : [split];
    let n = 0;
    for (const p of partNames) {
      const xPath = path.join(d, `${p}_X.bin`);
      if (!isFile(xPath)) throw new Error(`STL-10: ${xPath} not found (split '${split}')`);
      const x = new RecordFile(xPath, STL_REC);
      let y: Uint8Array | null = null;
      if (p !== 'unlabeled') {
        const yPath = path.join(d, `${p}_y.bin`);
        if (!isFile(yPath)) throw new Error(`STL-10: ${yPath} not found`);
        y = new Uint8Array(fs.readFileSync(yPath));
        if (y.length !== x.count) throw new Error(`STL-10: ${yPath} has ${y.length} labels for ${x.count} images`);
        for (let k = 0; k < y.length; k++) {
          if (y[k] < 1 || y[k] > 10)
            throw new Error(`STL-10: ${yPath}[${k}] = ${y[k]}, expected 1..10 (1-based labels)`);
        }
      }
      this.parts.push({ x, y, start: n });
      n += x.count;
    }
    this.length = n;
    const names = path.join(d, 'class_names.txt');
    this.classNames = isFile(names)
      ? fs
          .readFileSync(names, 'utf8')
          .split(/\r?\n/)
          .map((s) => s.trim())
          .filter((s) => s.length > 0)
      : STL10_CLASSES;
  }

  labels(): Int32Array | null {
    if (this.parts.every((p) => p.y === null)) return null;
    const out = new Int32Array(this.length).fill(-1);
    for (const p of this.parts) if (p.y) for (let k = 0; k < p.y.length; k++) out[p.start + k] = p.y[k] - 1;
    return out;
  }

  async get(i: number): Promise<Sample> {
    checkIndex(i, this.length);
    let k = this.parts.length - 1;
    while (this.parts[k].start > i) k--;
    const part = this.parts[k];
    const j = i - part.start;
    const rec = part.x.read(j);
    // Each channel plane is stored column-major: byte (c, x, y) at c*96*96 + x*96 + y.
    const rgb = new Uint8Array(STL_REC);
    for (let y = 0; y < STL_SIDE; y++) {
      for (let x = 0; x < STL_SIDE; x++) {
        const o = 3 * (y * STL_SIDE + x);
        const s = x * STL_SIDE + y;
        rgb[o] = rec[s];
        rgb[o + 1] = rec[STL_PLANE + s];
        rgb[o + 2] = rec[2 * STL_PLANE + s];
      }
    }
    return { rgb, width: STL_SIDE, height: STL_SIDE, label: part.y ? part.y[j] - 1 : -1 };
  }

  spec(): SourceSpec {
    return { kind: 'stl10', dir: this.dir, split: this.split };
  }

  close(): void {
    for (const p of this.parts) p.x.close();
  }
}

// ------------------------------------------------------------------------------------------------------
// ImageFolder
