/**
 * Crash-safe file writes, the one home for them (checkpoints, epoch snapshots, probe heads, exported models,
 * rewritten logs): the bytes go to `<file>.tmp-<pid>` in the same folder, are fsync'ed, and the temporary
 * file is renamed over the target, so a reader (or a process killed at any moment) sees either the previous
 * file or the new one, never a torn one. A failed write (a full disk: ENOSPC) removes its temporary file,
 * keeps the previous target and throws an error that names the file.
 *
 *   writeFileAtomic('runs/x/current.ckpt', [head, blob]);
 *   copyFileAtomic('runs/x/current.ckpt', 'runs/x/ckpt_epoch_10.ckpt');
 *   removeStaleTemps('runs/x');   // on start: temporary files of processes that died mid-write
 *   appendToFile('runs/x/metrics.jsonl', line);   // not atomic (a log), but a failure names the file
 */
import fs from 'node:fs';
import path from 'node:path';

/** `<name>.tmp-<pid>`: the temporary file a write of `<name>` by process `pid` uses. */
const TEMP_RE = /\.tmp-(\d+)$/;

export function tempPathFor(file: string): string {
  return `${file}.tmp-${process.pid}`;
}

/**
 * Test-only hook: CMC_TEST_SLOW_WRITE_MS=n sleeps n ms after each chunk (before fsync and rename), widening
 * the window in which the chaos test (test/trainer/chaos.test.ts) SIGKILLs a writer; with it set, each write
 * announces itself on stderr so the test can aim its kills.
 */
const slowMs = Number(process.env.CMC_TEST_SLOW_WRITE_MS ?? 0);

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Write `data` (a string, bytes, or chunks in order) to `file` atomically and durably. */
export function writeFileAtomic(file: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  const chunks: Iterable<Uint8Array> =
    typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  atomically(file, (fd) => {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += fs.writeSync(fd, c, off, c.byteLength - off);
      if (slowMs > 0) pause(slowMs);
    }
  });
}

/** Copy `src` to `dst` atomically and durably (dst is either its previous self or a whole copy). */
export function copyFileAtomic(src: string, dst: string): void {
  const buf = Buffer.alloc(1 << 20);
  const sfd = fs.openSync(src, 'r');
  try {
    atomically(dst, (fd) => {
      for (;;) {
        const n = fs.readSync(sfd, buf, 0, buf.length, null);
        if (n === 0) break;
        let off = 0;
        while (off < n) off += fs.writeSync(fd, buf, off, n - off);
        if (slowMs > 0) pause(slowMs);
      }
    });
  } finally {
    fs.closeSync(sfd);
  }
}

function atomically(file: string, write: (fd: number) => void): void {
  const tmp = tempPathFor(file);
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    if (slowMs > 0) process.stderr.write(`[atomic-write] ${file}\n`);
    const fd = fs.openSync(tmp, 'w');
    try {
      write(fd);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // best effort: removeStaleTemps() deletes it on the next start
    }
    throw writeError(file, e as NodeJS.ErrnoException, fs.existsSync(file));
  }
  try {
    const dfd = fs.openSync(path.dirname(path.resolve(file)), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // fsync on a directory is not supported everywhere; the rename itself is atomic.
  }
}

/**
 * An error that names the file (node's own ENOSPC message names none): `cannot write <file>: <why>`, plus
 * `; the previous <name> is kept` when an atomic write left the old file in place.
 */
export function writeError(file: string, e: NodeJS.ErrnoException, previousKept = false): Error {
  const kept = previousKept ? `; the previous ${path.basename(file)} is kept` : '';
  const why =
    e.code === 'ENOSPC'
      ? 'no space left on device (ENOSPC)'
      : e.code === 'EDQUOT'
        ? 'disk quota exceeded (EDQUOT)'
        : e.message;
  const err = new Error(`cannot write ${file}: ${why}${kept}`);
  (err as NodeJS.ErrnoException).code = e.code;
  return err;
}

/** Append `text` to `file` (a log line: metrics.jsonl); a failure (a full disk) names the file. */
export function appendToFile(file: string, text: string): void {
  try {
    fs.appendFileSync(file, text);
  } catch (e) {
    throw writeError(file, e as NodeJS.ErrnoException);
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Delete the temporary files in `dir` left by writers that no longer run (killed, or stopped by a full disk),
 * which would otherwise accumulate and fill the disk; files of live processes are left alone. Returns the
 * paths removed.
 */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = TEMP_RE.exec(n);
    if (!m || alive(Number(m[1]))) continue;
    const p = path.join(dir, n);
    try {
      if (fs.lstatSync(p).isFile()) {
        fs.rmSync(p);
        removed.push(p);
      }
    } catch {
      // raced with another cleaner, or not ours to remove: leave it
    }
  }
  return removed;
}

/** True for a temporary file name of writeFileAtomic / copyFileAtomic. */
export function isTempFile(name: string): boolean {
  return TEMP_RE.test(name);
}
