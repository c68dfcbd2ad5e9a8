/**
 * Build the browser demo into web/dist: esbuild bundles web/main.ts (with onnxruntime-web and the shared
 * preprocessing of core/preprocess/resize.ts) to dist/main.js, copies index.html, and copies the
 * onnxruntime-web runtime files the bundle loads at run time (ort-wasm-simd-threaded*.mjs + .wasm) to
 * dist/ort/, so the page needs nothing beyond the server (main.ts sets ort.env.wasm.wasmPaths to ./ort/).
 * Last, dist/sw.js: the service worker (sw.ts) with the list and hash of those files (app_shell.ts).
 *
 *   npm run build:web            # or: node --import tsx web/build.ts [--outdir web/dist] [--no-minify]
 *   cmc serve --models models    # serves web/dist at /
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import { isShellFile, type AppShell } from './app_shell.ts';

const WEB = path.dirname(fileURLToPath(import.meta.url));

export interface WebBuildResult {
  outdir: string;
  bundleBytes: number;
  runtimeFiles: string[];
  /** What dist/sw.js precaches, and the build's version (a hash of those files). */
  shell: AppShell;
  ms: number;
}

/** The shell's version: a hash of each file's path and content (so a rename counts too). */
export function shellVersion(outdir: string, files: string[]): string {
  const h = crypto.createHash('sha256');
  for (const f of [...files].sort()) {
    const fileHash = crypto
      .createHash('sha256')
      .update(fs.readFileSync(path.join(outdir, f)))
      .digest('hex');
    h.update(`${f}\0${fileHash}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * Bundle sw.ts into outdir/sw.js for these shell files (paths relative to outdir), with their current hash.
 * Run again after any of them changes (the tests do, to make a "new build").
 */
export async function writeServiceWorker(outdir: string, files: string[], minify = true): Promise<AppShell> {
  const shell: AppShell = { version: shellVersion(outdir, files), files: files.filter(isShellFile).sort() };
  await esbuild.build({
    entryPoints: [path.join(WEB, 'sw.ts')],
    outfile: path.join(outdir, 'sw.js'),
    bundle: true,
    // A classic script: every browser with service workers runs those (module workers came later).
    format: 'iife',
    platform: 'browser',
    target: ['es2022'],
    minify,
    legalComments: 'none',
    logLevel: 'warning',
    define: { __CMC_SHELL__: JSON.stringify(shell) },
  });
  return shell;
}

/** The directory holding onnxruntime-web's dist files. */
function ortDistDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
}

export async function buildWeb(
  o: { outdir?: string; minify?: boolean; log?: (l: string) => void } = {},
): Promise<WebBuildResult> {
  const t0 = performance.now();
  const outdir = path.resolve(o.outdir ?? path.join(WEB, 'dist'));
  fs.mkdirSync(path.join(outdir, 'ort'), { recursive: true });
  const r = await esbuild.build({
    entryPoints: { main: path.join(WEB, 'main.ts'), worker: path.join(WEB, 'worker.ts') },
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    // The ort build that loads its wasm glue (.mjs) and binary (.wasm) from env.wasm.wasmPaths.
    conditions: ['onnxruntime-web-use-extern-wasm'],
    minify: o.minify ?? true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
  });
  // onnxruntime-web lives in the worker bundle.
  const bundle = fs.readFileSync(path.join(outdir, 'worker.js'), 'utf8');
  // Copy exactly the runtime variants the bundle names (e.g. ort-wasm-simd-threaded.jsep.mjs / .wasm).
  const names = new Set<string>();
  for (const m of bundle.matchAll(/ort-wasm-simd-threaded(?:\.[a-z]+)?\.(?:mjs|wasm)/g)) names.add(m[0]);
  for (const n of [...names]) names.add(n.replace(/\.mjs$/, '.wasm')).add(n.replace(/\.wasm$/, '.mjs'));
  if (names.size === 0) throw new Error('web build: the bundle names no ort-wasm-simd-threaded runtime file');
  const src = ortDistDir();
  const runtimeFiles: string[] = [];
  for (const n of [...names].sort()) {
    const from = path.join(src, n);
    if (!fs.existsSync(from)) continue;
    const to = path.join(outdir, 'ort', n);
    const st = fs.statSync(from);
    if (!fs.existsSync(to) || fs.statSync(to).size !== st.size || fs.statSync(to).mtimeMs < st.mtimeMs)
      fs.copyFileSync(from, to);
    runtimeFiles.push(n);
  }
  // tfjs-backend-wasm's binaries (setWasmPaths('tfjs/') in worker.ts): plain, SIMD, threaded SIMD.
  const tfjsWasm = path.dirname(
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm.wasm'),
  );
  fs.mkdirSync(path.join(outdir, 'tfjs'), { recursive: true });
  for (const n of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
    fs.copyFileSync(path.join(tfjsWasm, n), path.join(outdir, 'tfjs', n));
    runtimeFiles.push(`tfjs/${n}`);
  }
  fs.copyFileSync(path.join(WEB, 'index.html'), path.join(outdir, 'index.html'));
  const bundleBytes = Buffer.byteLength(bundle) + fs.statSync(path.join(outdir, 'main.js')).size;
  // Exactly what this build wrote (not a listing of outdir, which may hold files of older builds).
  const shellFiles = [
    'index.html',
    'main.js',
    'worker.js',
    ...runtimeFiles.map((f) => (f.startsWith('tfjs/') ? f : `ort/${f}`)),
  ];
  const shell = await writeServiceWorker(outdir, shellFiles, o.minify ?? true);
  const res = { outdir, bundleBytes, runtimeFiles, shell, ms: performance.now() - t0 };
  o.log?.(
    `[web] ${path.relative(process.cwd(), outdir) || outdir}: main.js + worker.js ${(res.bundleBytes / 1e3).toFixed(0)} kB, ${shell.files.filter((f) => f.endsWith('.wasm') || f.endsWith('.mjs')).join(', ')}, sw.js (app shell ${shell.version}, ${shell.files.length} files) (${res.ms.toFixed(0)} ms)`,
  );
  void r;
  return res;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { outdir: { type: 'string' }, 'no-minify': { type: 'boolean', default: false } },
  });
  await buildWeb({ outdir: values.outdir, minify: !values['no-minify'], log: (l) => console.log(l) });
}
