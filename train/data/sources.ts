/**
 * Dataset sources. A source has N samples; sample i is row i of the memory banks (the index of upstream's
 * `ImageFolderInstance`, HobbitLong/CMC `dataset.py`). `get(i)` returns the decoded image as RGB uint8 HWC.
 *
 *   const src = await openSource('auto', 'data/imagenette64-sub', 'train');
 *   const { rgb, width, height, label } = await src.get(0);
 *
 * Kinds:
 *  - RawU8Source       our raw layout: `{split}_x.u8` (N*H*W*3 bytes, NHWC RGB, no header), `{split}_y.u8`
 *                      (N class bytes, optional) and meta.json ({ splits: { train: { shape: [N,H,W,3] } }, class_names })
 *  - ImageFolderSource torchvision ImageFolder order (class dirs sorted, files sorted, recursive), decoded by sharp
 *  - Cifar10BinSource  CIFAR-10 binary batches (1 label byte + 3072 bytes CHW per record)
 *  - Stl10BinSource    STL-10 binaries (3x96x96 per image, each plane column-major; labels 1-based on disk)
 *
 * Binary sources read records lazily with positional reads (no whole-file load), so STL-10's 2.7 GB
 * unlabeled split costs no memory and many worker threads share the OS page cache.
 *
 * Every source can describe itself as a plain, structured-clonable `SourceSpec` so that loader worker
 * threads reopen the *same* sample list (for ImageFolder the validated file list travels in the spec, so
 * workers neither rescan nor disagree on indices).
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

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
  readonly kind: SourceKind;
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
  | { kind: 'imagefolder'; root: string; classNames: string[]; files: string[]; labels: number[] };

function checkIndex(i: number, n: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`sample index ${i} out of range [0, ${n})`);
}

/** sharp/libvips messages repeat lines; keep one line per distinct message part. */
function oneLine(msg: string): string {
  return [
    ...new Set(
      msg
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l.length > 0),
    ),
  ].join('; ');
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A run of fixed-size records in one file, read with positional reads. */
class RecordFile {
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

const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const CIFAR_REC = 1 + 3072;

/** The directory holding the .bin batches: `dir` itself or its `cifar-10-batches-bin/`. */
function cifarDir(dir: string): string | null {
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

const STL10_CLASSES = ['airplane', 'bird', 'car', 'cat', 'deer', 'dog', 'horse', 'monkey', 'ship', 'truck'];
const STL_SIDE = 96;
const STL_PLANE = STL_SIDE * STL_SIDE;
const STL_REC = 3 * STL_PLANE;

function stlDir(dir: string): string | null {
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

/** Extensions we decode (case-insensitive). torchvision also lists .ppm/.bmp/.pgm/.tif/.tiff. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'];

/** Extensions torchvision's ImageFolder would also pick up but we do not decode (reported, skipped). */
const TORCHVISION_ONLY_EXTENSIONS = ['.ppm', '.bmp', '.pgm', '.tif', '.tiff'];

function hasImageExt(name: string): boolean {
  const l = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => l.endsWith(e));
}

/** Python's default str ordering (by code point) for the names we compare. */
function pyCompare(a: string, b: string): number {
  const ca = Array.from(a),
    cb = Array.from(b);
  const n = Math.min(ca.length, cb.length);
  for (let k = 0; k < n; k++) {
    const d = ca[k].codePointAt(0)! - cb[k].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

/**
 * Files of one class directory in torchvision's order: `for root, _, fnames in sorted(os.walk(dir,
 * followlinks=True)): for fname in sorted(fnames)` — directories by full path, files by name.
 */
function walkClassDir(dir: string, skipped: string[] = []): string[] {
  const dirs: { root: string; files: string[] }[] = [];
  const seen = new Set<string>();
  const visit = (d: string) => {
    let real: string;
    try {
      real = fs.realpathSync(d);
    } catch {
      return;
    }
    if (seen.has(real)) return; // symlink loop guard
    seen.add(real);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    const files: string[] = [];
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory() || (e.isSymbolicLink() && isDir(p))) visit(p);
      else if (e.isFile() || (e.isSymbolicLink() && isFile(p))) files.push(e.name);
    }
    dirs.push({ root: d, files });
  };
  visit(dir);
  dirs.sort((a, b) => pyCompare(a.root, b.root));
  const out: string[] = [];
  for (const d of dirs) {
    d.files.sort(pyCompare);
    for (const f of d.files) {
      if (hasImageExt(f)) out.push(path.join(d.root, f));
      else if (TORCHVISION_ONLY_EXTENSIONS.some((e) => f.toLowerCase().endsWith(e))) skipped.push(path.join(d.root, f));
    }
  }
  return out;
}

export interface ImageFolderOptions {
  /** Problems that are skipped rather than fatal (bad files). Default: console.warn. */
  onWarn?: WarnFn;
  /** 'header' (default): sharp metadata of every file at scan time; 'none': no check at scan time. */
  validate?: 'header' | 'none';
  /** Parallel header checks (default 16). */
  concurrency?: number;
}

/** Decode any sharp-readable file to RGB uint8 HWC (EXIF orientation applied, alpha dropped, sRGB). */
export async function decodeImageFile(file: string): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(file, { failOn: 'warning' })
    .rotate()
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = info;
  const n = width * height;
  if (channels === 3) return { rgb: new Uint8Array(data.buffer, data.byteOffset, n * 3), width, height };
  // Defensive: expand grey (1 ch) and drop anything past RGB (4 ch) should libvips hand those back.
  const rgb = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) rgb[3 * p + c] = data[p * channels + (channels >= 3 ? c : 0)];
  }
  return { rgb, width, height };
}

/**
 * torchvision ImageFolder: `root/<class>/**.{jpg,jpeg,png,webp}`, classes sorted, files sorted.
 *
 * Bad files — our policy:
 *  1. Scan time (`ImageFolderSource.open`): every file's header is read with `sharp().metadata()`
 *     (cheap, no pixel decode). Files whose header cannot be read (corrupt, not an image, zero bytes)
 *     are reported through `onWarn` (path + reason) and DROPPED from the list, so they get no index.
 *  2. Read time (`get(i)`): a file whose header was fine but whose pixels fail to decode (e.g. a
 *     truncated PNG/JPEG — sharp runs with failOn 'warning') is reported once and remembered as bad;
 *     `get(i)` then returns the next good sample (i+1, i+2, ... wrapping) with ITS label, while the
 *     caller keeps using i as the memory-bank row. Indices thus stay stable (a run can resume) and the
 *     substitution is deterministic (independent of worker scheduling). The row of a bad file simply
 *     holds a duplicate of its neighbour, which does not disturb NCE training measurably.
 *  Empty or missing root / no image at all → Error before training starts.
 */
export class ImageFolderSource implements DataSource {
  readonly kind = 'imagefolder' as const;
  readonly width = null;
  readonly height = null;
  readonly length: number;
  private readonly bad = new Set<number>();
  private readonly onWarn: WarnFn;
  private readonly labelArr: Int32Array;

  private constructor(
    readonly root: string,
    readonly classNames: string[],
    readonly files: string[],
    labels: number[],
    onWarn?: WarnFn,
  ) {
    this.length = files.length;
    this.labelArr = Int32Array.from(labels);
    this.onWarn = onWarn ?? ((m) => console.warn(m));
  }

  /** Scan (and by default header-check) `root`. */
  static async open(root: string, opts: ImageFolderOptions = {}): Promise<ImageFolderSource> {
    const warn = opts.onWarn ?? ((m: string) => console.warn(m));
    const noImages = () =>
      new Error(
        `no images found under ${root}; expected class sub-folders of .jpg/.png/.webp (e.g. ${path.join(root, '<class>', 'img.jpg')})`,
      );
    if (!isDir(root)) throw noImages();
    const classNames = fs
      .readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() || (e.isSymbolicLink() && isDir(path.join(root, e.name))))
      .map((e) => e.name)
      .sort(pyCompare);
    let files: string[] = [];
    let labels: number[] = [];
    const unsupported: string[] = [];
    classNames.forEach((c, k) => {
      const fl = walkClassDir(path.join(root, c), unsupported);
      if (fl.length === 0) warn(`imagefolder: class '${c}' (label ${k}) has no images under ${path.join(root, c)}`);
      for (const f of fl) {
        files.push(f);
        labels.push(k);
      }
    });
    if (unsupported.length > 0) {
      warn(
        `imagefolder: ${unsupported.length} file(s) with extensions torchvision reads but we do not (${TORCHVISION_ONLY_EXTENSIONS.join(' ')}) are skipped, so indices differ from torchvision's; first: ${unsupported[0]}`,
      );
    }
    if (files.length === 0) throw noImages();
    if ((opts.validate ?? 'header') === 'header') {
      const ok = new Uint8Array(files.length);
      let next = 0;
      const worker = async () => {
        for (;;) {
          const k = next++;
          if (k >= files.length) return;
          try {
            const m = await sharp(files[k]).metadata();
            if (!m.width || !m.height) throw new Error('no image dimensions in header');
            ok[k] = 1;
          } catch (e) {
            warn(`imagefolder: skipping unreadable image ${files[k]}: ${oneLine((e as Error).message)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 16) }, worker));
      files = files.filter((_, k) => ok[k]);
      labels = labels.filter((_, k) => ok[k]);
      if (files.length === 0)
        throw new Error(`no readable images under ${root} (every file failed its header check; see warnings)`);
    }
    return new ImageFolderSource(root, classNames, files, labels, warn);
  }

  /** Rebuild from a spec without rescanning (used in loader workers). */
  static fromSpec(spec: Extract<SourceSpec, { kind: 'imagefolder' }>, onWarn?: WarnFn): ImageFolderSource {
    return new ImageFolderSource(spec.root, spec.classNames, spec.files, spec.labels, onWarn);
  }

  labels(): Int32Array {
    return this.labelArr;
  }

  /** Path of sample i. */
  fileOf(i: number): string {
    checkIndex(i, this.length);
    return this.files[i];
  }

  async get(i: number): Promise<Sample> {
    checkIndex(i, this.length);
    for (let t = 0; t < this.length; t++) {
      const k = (i + t) % this.length;
      if (this.bad.has(k)) continue;
      try {
        const d = await decodeImageFile(this.files[k]);
        return { ...d, label: this.labelArr[k] };
      } catch (e) {
        this.bad.add(k);
        this.onWarn(
          `imagefolder: cannot decode ${this.files[k]} (${oneLine((e as Error).message)}); sample ${k} is replaced by the next readable image`,
        );
      }
    }
    throw new Error(`imagefolder: no image under ${this.root} could be decoded`);
  }

  spec(): SourceSpec {
    return {
      kind: 'imagefolder',
      root: this.root,
      classNames: [...this.classNames],
      files: this.files,
      labels: Array.from(this.labelArr),
    };
  }

  close(): void {}
}

// ------------------------------------------------------------------------------------------------------
// Opening

/** Which kind of dataset lives at `p` (for `split`), or null if none recognised. */
export function detectKind(p: string, split: Split = 'train'): SourceKind | null {
  if (
    isFile(path.join(p, 'meta.json')) &&
    (isFile(path.join(p, `${split}_x.u8`)) || isFile(path.join(p, 'train_x.u8')))
  )
    return 'raw';
  if (cifarDir(p)) return 'cifar10';
  if (stlDir(p)) return 'stl10';
  if (isDir(p)) return 'imagefolder';
  return null;
}

/**
 * For ImageFolder, CMC's layout is `<data>/train` and `<data>/val`: use `p/<split>` when it exists. Training
 * falls back to `p` itself (plain `p/<class>/` folders); the test split never does, since `p` holds the training
 * images (or `train/` as a class): it is a NoTestSplitError.
 */
function imageFolderRoot(p: string, split: Split): string {
  const cands = split === 'test' ? ['test', 'val'] : split === 'train' ? ['train'] : [];
  for (const c of cands) if (isDir(path.join(p, c))) return path.join(p, c);
  if (split === 'test')
    throw new NoTestSplitError(
      `${p} has no labelled test split (no ${path.join(p, 'val')}/<class>/ or ${path.join(p, 'test')}/<class>/ folder)`,
    );
  return p;
}

function rawOrCifarSplit(kind: string, split: Split): 'train' | 'test' {
  if (split !== 'train' && split !== 'test') throw new Error(`${kind} has no split '${split}' (use train or test)`);
  return split;
}

/**
 * Open a dataset. 'auto' detects: meta.json + *_x.u8 → raw; data_batch_*.bin/test_batch.bin → cifar10;
 * *_X.bin → stl10; any other directory → imagefolder (using `path/train` or `path/val|test` if present).
 */
export async function openSource(
  kind: SourceKind | 'auto',
  p: string,
  split: Split = 'train',
  opts: ImageFolderOptions = {},
): Promise<DataSource> {
  const k = kind === 'auto' ? detectKind(p, split) : kind;
  if (k === null) throw new Error(`dataset path ${p} does not exist or is not a directory`);
  switch (k) {
    case 'raw':
      return new RawU8Source(p, rawOrCifarSplit('raw dataset', split));
    case 'cifar10':
      return new Cifar10BinSource(p, rawOrCifarSplit('CIFAR-10', split));
    case 'stl10':
      return new Stl10BinSource(p, split);
    case 'imagefolder':
      if (split !== 'train' && split !== 'test')
        throw new Error(`imagefolder has no split '${split}' (use train or test)`);
      return ImageFolderSource.open(imageFolderRoot(p, split), opts);
    default: {
      const never: never = k;
      throw new Error(`unknown dataset kind '${String(never)}'; expected raw, imagefolder, cifar10, stl10 or auto`);
    }
  }
}

/** Reopen a source from its spec (no rescan for ImageFolder). */
export function sourceFromSpec(spec: SourceSpec, onWarn?: WarnFn): DataSource {
  switch (spec.kind) {
    case 'raw':
      return new RawU8Source(spec.dir, spec.split);
    case 'cifar10':
      return new Cifar10BinSource(spec.dir, spec.split);
    case 'stl10':
      return new Stl10BinSource(spec.dir, spec.split);
    case 'imagefolder':
      return ImageFolderSource.fromSpec(spec, onWarn);
  }
}
