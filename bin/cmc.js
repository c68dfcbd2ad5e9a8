#!/usr/bin/env node
// The `cmc` command. The sources are TypeScript run through tsx's loader (no build step), so a fresh
// clone works after `npm ci`.
import { register } from 'tsx/esm/api';

// Node ends a process whose event loop drained while `main` was still pending with exit code 13 and no word
// (a dropped promise somewhere); say so, so that no failure is silent.
let settled = false;
process.on('exit', (code) => {
  if (!settled && (code === 13 || process.exitCode === 13)) {
    console.error(
      'cmc: stopped before the command finished (work was left pending: an internal error); rerun with CMC_DEBUG=1 and report it',
    );
  }
});
register();
const { main } = await import('./cli.ts');
await main(process.argv);
settled = true;
