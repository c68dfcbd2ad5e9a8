/** What every dataset source is and shares: the sample and source interfaces, the structured-clonable spec workers reopen, and the positional record reader the binary formats use. */
import fs from 'node:fs';

export interface Sample {
  /** RGB uint8, interleaved HWC, length width*height*3. */
  rgb: Uint8Array;
  width: number;
  height: number;
  /** Class index, or -1 when the sample has none (STL-10 unlabeled). */
  label: number;
}

export type SourceKind = 'raw' | 'imagefolder' | 'cifar10' | 'stl10';
export type Split = 'train' | 'test' | 'unlabeled' | 'train+unlabeled';

/** Receives one line per problem that did not stop the run (bad image skipped, substitution...). */
export type WarnFn = (message: string) => void;

/**
 * The dataset has no labelled test split (an ImageFolder without val/ or test/, a raw dataset without a 'test'
 * split). Evaluation must not fall back to the training images; callers say how to make one.
 */
export class NoTestSplitError extends Error {}

export interface DataSource {
  /** The format, or 'concat' for several sources as one (./concat.ts). */
  readonly kind: SourceKind | 'concat';
  /** Number of samples = memory-bank rows. */
  readonly length: number;
  /** Fixed image size, or null when images vary (ImageFolder). */
  readonly width: number | null;
  readonly height: number | null;
  /** Class names in label order (may be empty when unknown). */
  readonly classNames: readonly string[];
  /** Label of every sample (-1 = unlabeled), or null if the source has no labels at all. */
  labels(): Int32Array | null;
  get(i: number): Promise<Sample>;
  /** Structured-clonable description that `sourceFromSpec` turns back into an equivalent source. */
  spec(): SourceSpec;
  /** Release file handles. */
  close(): void;
}

export type SourceSpec =
  | { kind: 'raw'; dir: string; split: 'train' | 'test' }
  | { kind: 'cifar10'; dir: string; split: 'train' | 'test' }
  | { kind: 'stl10'; dir: string; split: Split }
  | { kind: 'imagefolder'; root: string; classNames: string[]; files: string[]; labels: number[] }
  | { kind: 'concat'; parts: SourceSpec[]; labelled?: boolean };

export function checkIndex(i: number, n: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`sample index ${i} out of range [0, ${n})`);
}

/** sharp/libvips messages repeat lines; keep one line per distinct message part. */
export function oneLine(msg: string): string {
  return [
    ...new Set(
      msg
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l.length > 0),
    ),
  ].join('; ');
}

export function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A run of fixed-size records in one file, read with positional reads. */
export class RecordFile {
  readonly count: number;
  private fd: number | null = null;

  constructor(
    readonly file: string,
    readonly recordBytes: number,
    readonly offset = 0,
    count?: number,
  ) {
    const size = fs.statSync(file).size;
    const avail = Math.floor((size - offset) / recordBytes);
    if (count === undefined) {
      if ((size - offset) % recordBytes !== 0) {
        throw new Error(`${file}: size ${size} is not a whole number of ${recordBytes}-byte records`);
      }
      this.count = avail;
    } else {
      if (avail < count)
        throw new Error(`${file}: expected ${count} records of ${recordBytes} bytes, file has ${size} bytes`);
      this.count = count;
    }
  }

  read(i: number, out = new Uint8Array(this.recordBytes)): Uint8Array {
    if (this.fd === null) this.fd = fs.openSync(this.file, 'r');
    let done = 0;
    while (done < this.recordBytes) {
      const n = fs.readSync(this.fd, out, done, this.recordBytes - done, this.offset + i * this.recordBytes + done);
      if (n <= 0) throw new Error(`${this.file}: unexpected end of file reading record ${i}`);
      done += n;
    }
    return out;
  }

  /** Calls fn(record, index) for each record, reading in large chunks. */
  scan(fn: (rec: Uint8Array, i: number) => void): void {
    const per = Math.max(1, Math.floor((8 << 20) / this.recordBytes));
    const buf = new Uint8Array(per * this.recordBytes);
    const fd = fs.openSync(this.file, 'r');
    try {
      for (let start = 0; start < this.count; start += per) {
        const k = Math.min(per, this.count - start);
        const len = k * this.recordBytes;
        let done = 0;
        while (done < len) {
          const n = fs.readSync(fd, buf, done, len - done, this.offset + start * this.recordBytes + done);
          if (n <= 0) throw new Error(`${this.file}: unexpected end of file`);
          done += n;
        }
        for (let j = 0; j < k; j++) fn(buf.subarray(j * this.recordBytes, (j + 1) * this.recordBytes), start + j);
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

// ------------------------------------------------------------------------------------------------------
// Raw uint8 (shared/data/README.md)
