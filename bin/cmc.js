#!/usr/bin/env node
// The `cmc` command. The sources are TypeScript run through tsx's loader (no build step), so a fresh
// clone works after `npm ci`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
await main(process.argv);
