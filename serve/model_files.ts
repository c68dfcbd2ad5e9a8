/**
 * Files of the model repository (manifest.json, *.onnx): only regular files that resolve inside the
 * repository root, within a size limit. A FIFO would block start-up forever, a device such as /dev/zero
 * would be read until memory runs out, and a symlink could expose any file of the machine at
 * /models/{name}/{file}.
 *
 *   const { fd, size } = openModelFile(path.join(dir, 'manifest.json'), root, MAX_MANIFEST_BYTES);
 */
import fs from 'node:fs';
import path from 'node:path';

/** Largest manifest.json accepted. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
/** Largest ONNX file accepted: protobuf's 2 GiB message limit (larger models need external data files). */
export const MAX_ONNX_BYTES = 2 * 1024 * 1024 * 1024 - 1;

export class ModelFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFileError';
  }
}

/** `file` → its real path, refused unless it lies inside `root` (symlinks within the repository are fine). */
export function resolveInside(file: string, root: string): string {
  let real: string, realRoot: string;
  try {
    real = fs.realpathSync(file);
    realRoot = fs.realpathSync(root);
  } catch (e) {
    throw new ModelFileError(
      `${path.basename(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (e as Error).message}`,
    );
  }
  const rel = path.relative(realRoot, real);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new ModelFileError(`${path.basename(file)} resolves to ${real}, outside the model repository ${realRoot}`);
  }
  return real;
}

/**
 * Open a repository file for reading: inside `root`, a regular file (checked on the open descriptor, so it
 * cannot be swapped after the check; O_NONBLOCK keeps a FIFO from blocking the open), at most `maxBytes`.
 * The caller closes `fd`.
 */
export function openModelFile(
  file: string,
  root: string,
  maxBytes: number,
): { fd: number; size: number; real: string } {
  const real = resolveInside(file, root);
  let fd: number;
  try {
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw new ModelFileError(`${path.basename(file)}: cannot open: ${(e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new ModelFileError(`${path.basename(file)} is not a regular file (${fileKind(st)})`);
    if (st.size > maxBytes)
      throw new ModelFileError(`${path.basename(file)} is ${st.size} bytes, more than the limit of ${maxBytes}`);
    return { fd, size: st.size, real };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** The whole file, with openModelFile's checks (reads no more than the size it had when opened). */
export function readModelFile(file: string, root: string, maxBytes: number): Buffer {
  const { fd, size } = openModelFile(file, root, maxBytes);
  try {
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = fs.readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return off === size ? buf : buf.subarray(0, off);
  } finally {
    fs.closeSync(fd);
  }
}

function fileKind(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a plain file';
}
