/** torchvision's ImageFolder (ImageFolderSource): class folders and files in its order, decoded by sharp; a corrupt image is reported and skipped. */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import {
  checkIndex,
  isDir,
  isFile,
  oneLine,
  type DataSource,
  type Sample,
  type SourceSpec,
  type WarnFn,
} from './source.ts';

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
