/** CIFAR-10 binary batches (Cifar10BinSource): 1 label byte + 3072 bytes CHW per record. */
import fs from 'node:fs';
import path from 'node:path';
import { checkIndex, isFile, RecordFile, type DataSource, type Sample, type SourceSpec } from './source.ts';

const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const CIFAR_REC = 1 + 3072;

/** The directory holding the .bin batches: `dir` itself or its `cifar-10-batches-bin/`. */
export function cifarDir(dir: string): string | null {
  for (const d of [dir, path.join(dir, 'cifar-10-batches-bin')]) {
    if (isFile(path.join(d, 'data_batch_1.bin')) || isFile(path.join(d, 'test_batch.bin'))) return d;
  }
  return null;
}

export class Cifar10BinSource implements DataSource {
  readonly kind = 'cifar10' as const;
  readonly length: number;
  readonly width = 32;
  readonly height = 32;
  readonly classNames: readonly string[];
  private readonly files: RecordFile[];
  private readonly starts: number[] = [];
  private labelCache: Int32Array | null = null;

  constructor(
    readonly dir: string,
    readonly split: 'train' | 'test' = 'train',
  ) {
    const d = cifarDir(dir);
    if (!d) throw new Error(`CIFAR-10: no data_batch_*.bin / test_batch.bin under ${dir}`);
    const names = split === 'train' ? [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`) : ['test_batch.bin'];
    const present = names.filter((f) => isFile(path.join(d, f)));
    if (present.length === 0) throw new Error(`CIFAR-10: no ${names.join(', ')} in ${d}`);
    // A partial set must be data_batch_1..k (tests and quick runs use fewer batches); a gap is an error.
    const gap = present.findIndex((f, k) => f !== names[k]);
    if (gap >= 0)
      throw new Error(`CIFAR-10: batches must be consecutive from ${names[0]}; found ${present.join(', ')} in ${d}`);
    this.files = present.map((f) => new RecordFile(path.join(d, f), CIFAR_REC));
    let n = 0;
    for (const f of this.files) {
      this.starts.push(n);
      n += f.count;
    }
    this.length = n;
    const meta = path.join(d, 'batches.meta.txt');
    this.classNames = isFile(meta)
      ? fs
          .readFileSync(meta, 'utf8')
          .split(/\r?\n/)
          .map((s) => s.trim())
          .filter((s) => s.length > 0)
      : CIFAR10_CLASSES;
  }

  private locate(i: number): [RecordFile, number] {
    let k = this.files.length - 1;
    while (this.starts[k] > i) k--;
    return [this.files[k], i - this.starts[k]];
  }

  labels(): Int32Array {
    if (!this.labelCache) {
      const y = new Int32Array(this.length);
      this.files.forEach((f, k) => f.scan((rec, j) => (y[this.starts[k] + j] = rec[0])));
      this.labelCache = y;
    }
    return this.labelCache;
  }

  async get(i: number): Promise<Sample> {
    checkIndex(i, this.length);
    const [f, j] = this.locate(i);
    const rec = f.read(j);
    const rgb = new Uint8Array(32 * 32 * 3);
    // record: label, then R plane (1024, row-major), G plane, B plane
    for (let p = 0; p < 1024; p++) {
      rgb[3 * p] = rec[1 + p];
      rgb[3 * p + 1] = rec[1 + 1024 + p];
      rgb[3 * p + 2] = rec[1 + 2048 + p];
    }
    return { rgb, width: 32, height: 32, label: rec[0] };
  }

  spec(): SourceSpec {
    return { kind: 'cifar10', dir: this.dir, split: this.split };
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

// ------------------------------------------------------------------------------------------------------
// STL-10 binary
