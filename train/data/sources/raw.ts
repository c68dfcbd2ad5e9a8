/** Our raw layout (RawU8Source): `{split}_x.u8` NHWC RGB bytes, optional `{split}_y.u8` labels and meta.json. */
import fs from 'node:fs';
import path from 'node:path';
import {
  checkIndex,
  isFile,
  RecordFile,
  NoTestSplitError,
  type DataSource,
  type Sample,
  type SourceSpec,
} from './source.ts';

interface RawMeta {
  height?: number;
  width?: number;
  class_names?: string[];
  splits?: Record<string, { n?: number; shape?: number[] }>;
}

export class RawU8Source implements DataSource {
  readonly kind = 'raw' as const;
  readonly length: number;
  readonly width: number;
  readonly height: number;
  readonly classNames: readonly string[];
  private readonly x: RecordFile;
  private readonly y: Int32Array | null;

  constructor(
    readonly dir: string,
    readonly split: 'train' | 'test' = 'train',
  ) {
    const metaPath = path.join(dir, 'meta.json');
    if (!isFile(metaPath)) throw new Error(`raw dataset: ${metaPath} not found`);
    const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as RawMeta;
    const s = meta.splits?.[split];
    if (!s) {
      const has = Object.keys(meta.splits ?? {}).join(', ') || 'none';
      if (split === 'test')
        throw new NoTestSplitError(
          `raw dataset ${dir} has no labelled test split (meta.json has no split 'test'; has: ${has})`,
        );
      throw new Error(`raw dataset ${dir}: meta.json has no split '${split}' (has: ${has})`);
    }
    const shape = s.shape ?? [s.n ?? -1, meta.height ?? -1, meta.width ?? -1, 3];
    const [n, h, w, c] = shape;
    if (!(n >= 0 && h > 0 && w > 0 && c === 3))
      throw new Error(
        `raw dataset ${dir}: bad shape ${JSON.stringify(shape)} for split '${split}' (expected [N,H,W,3])`,
      );
    this.length = n;
    this.height = h;
    this.width = w;
    this.classNames = meta.class_names ?? [];
    const xPath = path.join(dir, `${split}_x.u8`);
    if (!isFile(xPath)) throw new Error(`raw dataset: ${xPath} not found`);
    const xSize = fs.statSync(xPath).size;
    if (xSize !== n * h * w * 3)
      throw new Error(`${xPath}: ${xSize} bytes, expected ${n}*${h}*${w}*3 = ${n * h * w * 3}`);
    this.x = new RecordFile(xPath, h * w * 3, 0, n);
    const yPath = path.join(dir, `${split}_y.u8`);
    if (isFile(yPath)) {
      const yb = fs.readFileSync(yPath);
      if (yb.length !== n) throw new Error(`${yPath}: ${yb.length} labels, expected ${n}`);
      this.y = Int32Array.from(yb);
    } else this.y = null;
  }

  labels(): Int32Array | null {
    return this.y;
  }

  async get(i: number): Promise<Sample> {
    checkIndex(i, this.length);
    return { rgb: this.x.read(i), width: this.width, height: this.height, label: this.y ? this.y[i] : -1 };
  }

  spec(): SourceSpec {
    return { kind: 'raw', dir: this.dir, split: this.split };
  }

  close(): void {
    this.x.close();
  }
}

// ------------------------------------------------------------------------------------------------------
// CIFAR-10 binary
