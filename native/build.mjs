#!/usr/bin/env node
// Builds the oneDNN addon (native/build/Release/cmc_native.node) with the node-gyp that npm bundles.
//
//   node native/build.mjs           npm's install hook: never fails the install; says in one line what happened
//   node native/build.mjs --strict  `npm run build:native`: fails with node-gyp's output when the build fails
//
// The addon is optional: without libdnnl-dev or a compiler, `npm ci` still succeeds and `--backend auto`
// uses wasm. CMC_SKIP_NATIVE=1 skips the build.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const strict = process.argv.includes('--strict');
const here = path.dirname(fileURLToPath(import.meta.url));

function done(ok, msg, detail = '') {
  const line = `[cmc] native oneDNN backend: ${msg}`;
  if (ok || !strict) {
    console.log(line + (ok ? '' : ' -- the wasm backend is used instead (README: "Native CPU backend (oneDNN)")'));
    process.exit(0);
  }
  console.error(detail ? `${detail}\n${line}` : line);
  process.exit(1);
}

if (process.env.CMC_SKIP_NATIVE === '1' && !strict) done(false, 'build skipped (CMC_SKIP_NATIVE=1)');
if (process.platform !== 'linux' && !strict)
  done(false, `not built: only Linux builds are set up (this is ${process.platform})`);

// npm sets npm_config_node_gyp for lifecycle scripts; otherwise find the copy bundled with npm.
const candidates = [
  process.env.npm_config_node_gyp,
  process.env.npm_execpath &&
    path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  path.join(
    path.dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  ),
].filter(Boolean);
const nodeGyp = candidates.find((p) => fs.existsSync(p));
if (!nodeGyp) done(false, 'not built: node-gyp (bundled with npm) was not found');

// Node's headers next to the node binary (Debian's /usr/include/node, or an official tarball's include/)
// spare node-gyp a download.
const prefix = path.resolve(path.dirname(process.execPath), '..');
const args = [nodeGyp, 'rebuild'];
if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);

const r = spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8', maxBuffer: 64 << 20 });
if (r.status !== 0) {
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const reason = /dnnl\.hpp: No such file/.test(out)
    ? 'not built: oneDNN headers are missing (apt-get install libdnnl-dev)'
    : /cannot find -ldnnl/.test(out)
      ? 'not built: libdnnl is missing (apt-get install libdnnl-dev)'
      : `not built: node-gyp failed (${(out.match(/error[^\n]*/i) ?? [r.error?.message ?? `exit ${r.status}`])[0].slice(0, 200)})`;
  done(false, reason, out);
}
done(true, `built ${path.join(here, 'build', 'Release', 'cmc_native.node')}`);
